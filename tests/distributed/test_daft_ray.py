"""Daft on a two-node Ray cluster over the streams' Delta tables: same answers as DataFusion.

The demo query set runs through ``arrowlog.distributed.daft_sql`` (written in arrowlog's
dialect, rewritten for Daft where the spelling differs) and through ``log.sql`` with
DataFusion; results are compared after sorting, with a relative tolerance for floats.
"""

from __future__ import annotations

import math
import sys
from datetime import timedelta

import pyarrow as pa
import pytest

pytest.importorskip("daft", reason="pip install 'arrowlog[distributed]'")
pytest.importorskip("ray", reason="pip install 'arrowlog[distributed]'")

from arrowlog.demo import DEMO_QUERIES, DEMO_STREAM, generate_web_logs
from arrowlog.distributed import (
    EXTRA_HINT,
    DeltaSource,
    daft_sql,
    to_daft_dialect,
)
from arrowlog.errors import InvalidInput, ReadOnlyQuery, StreamNotFound, Unavailable
from tests.distributed.conftest import ROWS, START

pytestmark = pytest.mark.distributed
# Sums and averages agree to ~1e-15; Daft's exact percentile interpolates between the same
# two neighbours as quantile_cont but lands up to ~1e-7 (relative) away from it.
REL_TOL = 1e-6


def _tables(log) -> dict[str, str]:
    return {s.name: log.storage.table_uri(s.name) for s in log.streams()}


def _rows(table: pa.Table) -> list[tuple]:
    def key(row: tuple) -> tuple:
        return tuple((v is None, v) for v in row)

    return sorted((tuple(r.values()) for r in table.to_pylist()), key=key)


def assert_same(got: pa.Table, want: pa.Table) -> None:
    assert got.column_names == want.column_names
    for g, w in zip(got.schema, want.schema, strict=True):
        assert g.type == w.type, f"{g.name}: {g.type} != {w.type}"
    got_rows, want_rows = _rows(got), _rows(want)
    assert len(got_rows) == len(want_rows)
    for g, w in zip(got_rows, want_rows, strict=True):
        for a, b in zip(g, w, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                assert math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-9), (g, w)
            else:
                assert a == b, (g, w)


@pytest.mark.parametrize("name", sorted(DEMO_QUERIES))
def test_demo_queries_match_datafusion(ray_cluster, demo_log, name) -> None:
    query = DEMO_QUERIES[name]
    want = demo_log.sql(query).to_arrow()
    got = daft_sql(query, _tables(demo_log), address=ray_cluster.address)
    assert got.num_rows == want.num_rows > 0
    assert_same(got, want)


def test_the_cluster_has_two_nodes_and_daft_runs_on_ray(ray_cluster, demo_log) -> None:
    import daft
    import ray

    daft_sql("SELECT count(*) AS n FROM http_logs", _tables(demo_log), address=ray_cluster.address)
    assert daft.runners.get_or_infer_runner_type() == "ray"
    nodes = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    assert nodes == {"127.0.0.2", "127.0.0.3"}


def test_params_and_timestamp_literals(ray_cluster, demo_log) -> None:
    tables = _tables(demo_log)
    cutoff = START + timedelta(hours=6, microseconds=123_456)
    want = (
        demo_log.sql(
            "SELECT count(*) AS n FROM http_logs WHERE ts >= $1 AND level = $2",
            params=[cutoff, "ERROR"],
        )
        .to_arrow()
        .to_pylist()
    )
    for query, params in [
        ("SELECT count(*) AS n FROM http_logs WHERE ts >= ? AND level = ?", [cutoff, "ERROR"]),
        ("SELECT count(*) AS n FROM http_logs WHERE ts >= $1 AND level = $2", [cutoff, "ERROR"]),
        (
            "SELECT count(*) AS n FROM http_logs WHERE ts >= $t AND level = $l",
            {"t": cutoff, "l": "ERROR"},
        ),
    ]:
        assert daft_sql(query, tables, params=params).to_pylist() == want
    # A zoneless TIMESTAMP literal means UTC, as in DataFusion; fractions survive.
    literal = (
        "SELECT count(*) AS n FROM http_logs "
        "WHERE ts >= TIMESTAMP '2026-01-01 06:00:00.123456' AND level = 'ERROR'"
    )
    assert daft_sql(literal, tables).to_pylist() == want
    # A quote in a string parameter stays data.
    none = daft_sql(
        "SELECT count(*) AS n FROM http_logs WHERE level = ?", tables, params=["x' OR '1'='1"]
    )
    assert none.to_pylist() == [{"n": 0}]


def test_select_star_has_the_stream_columns(ray_cluster, demo_log) -> None:
    got = daft_sql("SELECT * FROM http_logs ORDER BY _offset LIMIT 5", _tables(demo_log))
    want = demo_log.sql("SELECT * FROM http_logs ORDER BY _offset LIMIT 5").to_arrow()
    assert got.column_names == want.column_names  # no `day` partition column
    assert got.to_pylist() == want.to_pylist()


def test_buffer_and_pinned_version_see_unflushed_rows(ray_cluster, tmp_path) -> None:
    import arrowlog

    with arrowlog.open(tmp_path / "buffered") as log:
        for t in generate_web_logs(20_000, seed=3, start=START):
            log.append(DEMO_STREAM, t)
        log.flush()
        for t in generate_web_logs(5_000, seed=4, start=START + timedelta(days=1)):
            log.append(DEMO_STREAM, t)  # in the buffer only
        query = "SELECT count(*) AS n, max(_offset) AS last FROM http_logs"
        uri = log.storage.table_uri(DEMO_STREAM)
        # Daft alone sees what is in the Delta log...
        flushed = daft_sql(query, {DEMO_STREAM: uri})
        assert flushed.to_pylist() == [{"n": 20_000, "last": 19_999}]
        # ...and with the buffer, pinned to the version it was taken with, what SQL sees.
        s = log._streams[DEMO_STREAM]
        with log._lock:
            version = s.catalog.version
            buffer = pa.concat_tables(b.table for b in s.buffer.durable(log._wal.synced_seq))
        source = DeltaSource(uri, version=version, buffer=buffer)
        got = daft_sql(query, {DEMO_STREAM: source}).to_pylist()
        assert got == log.sql(query).to_arrow().to_pylist()
        assert daft_sql(query, {DEMO_STREAM: source}).to_pylist() == [{"n": 25_000, "last": 24_999}]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_parquet('/etc/hostname')",
        "SELECT * FROM read_deltalake('/tmp')",
        "SELECT url_download('file:///etc/hostname') AS x",
        "SELECT * FROM '/etc/hostname.parquet'",
        "SELECT * FROM http_logs, '/etc/x.parquet'",
        "DROP TABLE http_logs",
        "INSERT INTO http_logs VALUES (1)",
        "SET x = 1",
    ],
)
def test_read_only(query) -> None:
    # Refused before Ray is needed.
    with pytest.raises(ReadOnlyQuery):
        daft_sql(query, {"http_logs": "/nonexistent"})


def test_errors(ray_cluster, demo_log) -> None:
    tables = _tables(demo_log)
    with pytest.raises(StreamNotFound, match="nosuch"):
        daft_sql("SELECT * FROM nosuch", tables)
    with pytest.raises(InvalidInput, match="nosuchcol"):
        daft_sql("SELECT nosuchcol FROM http_logs", tables)
    with pytest.raises(InvalidInput, match="one SQL statement"):
        daft_sql("SELECT 1; SELECT 2", tables)
    with pytest.raises(InvalidInput):
        daft_sql("SELEC 1", tables)
    # EXTRACT's FROM is not a table clause.
    got = daft_sql(
        "SELECT extract(hour FROM ts) AS h FROM http_logs ORDER BY _offset LIMIT 1", tables
    )
    assert got.to_pylist() == [{"h": 0}]


def test_missing_extra_names_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "daft", None)  # import daft -> ImportError
    with pytest.raises(Unavailable, match="arrowlog\\[distributed\\]"):
        daft_sql("SELECT 1 AS x", {})
    assert "arrowlog[distributed]" in EXTRA_HINT


def test_dialect_rewrites_only_code() -> None:
    q = to_daft_dialect(
        "SELECT quantile_cont(x, 0.5), 'quantile_cont(x)' FROM t "
        "WHERE ts > TIMESTAMP '2026-01-01T00:00:00' -- quantile_cont(\n"
    )
    assert q.startswith("SELECT percentile(x, 0.5), 'quantile_cont(x)' FROM t ")
    assert "timestamp_micros(1767225600000000)" in q
    assert q.endswith("-- quantile_cont(\n")


def test_identical_answers_at_any_time_window(ray_cluster, demo_log) -> None:
    """A time filter (file and row-group pruning in both engines) agrees too."""
    lo, hi = START + timedelta(hours=3), START + timedelta(hours=4, minutes=30)
    query = (
        "SELECT level, count(*) AS n, sum(latency_ms) AS total FROM http_logs "
        "WHERE ts >= $1 AND ts < $2 GROUP BY level"
    )
    want = demo_log.sql(query, params=[lo, hi]).to_arrow()
    got = daft_sql(query, _tables(demo_log), params=[lo, hi])
    assert_same(got, want)
    assert sum(want.column("n").to_pylist()) < ROWS


def test_log_sql_engine_daft_ray_sees_segments_and_buffer(ray_cluster, tmp_path) -> None:
    import arrowlog

    with arrowlog.open(tmp_path / "data", ray_address=ray_cluster.address) as log:
        tables = list(generate_web_logs(20_000, seed=3, start=START))
        log.append(DEMO_STREAM, tables[0])
        log.flush()
        log.append(DEMO_STREAM, pa.table({"ts": [START], "level": ["ERROR"]}))  # buffered
        query = f"SELECT level, count(*) AS n FROM {DEMO_STREAM} GROUP BY level"
        want = log.sql(query).to_arrow()
        got = log.sql(query, engine="daft-ray").to_arrow()
        assert_same(got, want)
        assert sum(got["n"].to_pylist()) == 20_001


def test_cli_query_engine_daft_ray(ray_cluster, tmp_path) -> None:
    import json
    import os
    import subprocess

    import arrowlog

    with arrowlog.open(tmp_path / "data") as log:
        log.append(DEMO_STREAM, pa.concat_tables(generate_web_logs(5_000, seed=5, start=START)))

    env = {k: v for k, v in os.environ.items() if not k.startswith("ARROWLOG_")}
    env["ARROWLOG_RAY_ADDRESS"] = ray_cluster.address
    env.update({k: v for k, v in ray_cluster.env.items() if k.startswith("RAY_AUTH")})
    out = subprocess.run(
        [sys.executable, "-m", "arrowlog", "query", "--engine", "daft-ray", "--format", "json",
         "--data-dir", str(tmp_path / "data"),
         f"SELECT count(*) AS n FROM {DEMO_STREAM}"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0]) == {"n": 5_000}
