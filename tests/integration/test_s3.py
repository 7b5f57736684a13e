"""Streams on S3: a real SeaweedFS server, the embedded Log and `arrowlog serve` over it.

The WAL stays local (``data_dir``); every segment and Delta commit goes to the bucket.
Each test gets its own prefix of the session's SeaweedFS (``s3_url``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
from deltalake import DeltaTable

import arrowlog
from arrowlog.config import Settings
from arrowlog.demo import DEMO_QUERIES, DEMO_STREAM, generate_web_logs
from tests.conftest import FLIGHT_READY, start_process


def _settings(tmp_path: Path, s3_server, s3_url: str, **kw) -> Settings:
    return Settings.load(env=s3_server.env(), data_dir=tmp_path / "local", storage=s3_url, **kw)


def _rows(n: int, start: datetime, step: timedelta, first: int = 0) -> list[dict]:
    return [
        {"ts": start + i * step, "level": "ERROR" if i % 7 == 0 else "INFO", "n": first + i}
        for i in range(n)
    ]


T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_append_flush_query_and_reopen_on_s3(tmp_path, s3_server, s3_url) -> None:
    settings = _settings(tmp_path, s3_server, s3_url)
    with arrowlog.open(settings=settings) as log:
        log.append("events", _rows(1000, T0, timedelta(seconds=1)))
        log.flush()
        log.append("events", _rows(500, T0 + timedelta(hours=1), timedelta(seconds=1), 1000))
        # Half flushed to S3, half only in the buffer: SQL sees both.
        got = log.sql("SELECT count(*) AS c, max(n) AS m FROM events").to_arrow().to_pylist()
        assert got == [{"c": 1500, "m": 1499}]
        segments = log.describe("events").segments
        assert segments >= 1
    # Nothing of the table is on local disk; the WAL is.
    assert not (tmp_path / "local" / "streams" / "events").exists()
    assert any((tmp_path / "local" / "wal").iterdir())
    table = DeltaTable(f"{s3_url}/streams/events", storage_options=s3_server.storage_options())
    assert all(uri.startswith(f"{s3_url}/streams/events/day=") for uri in table.file_uris())
    # Reopen: the Delta log on S3 plus the local WAL give back every record, in order.
    with arrowlog.open(settings=settings) as log:
        got = log.sql("SELECT n FROM events ORDER BY _offset").to_arrow().column("n").to_pylist()
        assert got == list(range(1500))
        assert log.read("events", 1490, 5).column("n").to_pylist() == [1490, 1491, 1492, 1493, 1494]


def test_engines_agree_and_time_filters_prune_s3_files(tmp_path, s3_server, s3_url) -> None:
    settings = _settings(tmp_path, s3_server, s3_url)
    with arrowlog.open(settings=settings) as log:
        for day in range(3):
            log.append("events", _rows(200, T0 + timedelta(days=day), timedelta(minutes=1)))
            log.flush()
        query = (
            "SELECT level, count(*) AS c FROM events WHERE ts >= $1 GROUP BY level ORDER BY level"
        )
        since = T0 + timedelta(days=2)
        datafusion = log.sql(query, params=[since]).to_arrow().to_pylist()
        duckdb = log.sql(query.replace("$1", "?"), engine="duckdb", params=[since])
        assert datafusion == duckdb.to_arrow().to_pylist()
        assert sum(r["c"] for r in datafusion) == 200
        plan = log.sql(f"EXPLAIN SELECT count(*) FROM events WHERE ts >= '{since.isoformat()}'")
        text = "\n".join(str(v) for v in plan.to_arrow().column("plan").to_pylist())
        assert "day=2026-11-22" in text
        assert "day=2026-11-20" not in text  # the catalog pruned the older days' files


def test_compaction_and_retention_on_s3(tmp_path, s3_server, s3_url) -> None:
    settings = _settings(tmp_path, s3_server, s3_url, vacuum_grace_hours=0, retention_days=2.0)
    now = datetime.now(UTC)
    with arrowlog.open(settings=settings) as log:
        old = now - timedelta(days=10)
        for i in range(4):
            log.append(
                "events",
                _rows(100, now - timedelta(minutes=30 - i), timedelta(milliseconds=1), 100 * i),
            )
            log.flush()
        log.append("events", _rows(50, old, timedelta(seconds=1), 1000))
        log.flush()
        before = log.sql("SELECT count(*) AS c FROM events").to_arrow().to_pylist()
        assert before == [{"c": 450}]
        [result] = log.compact("events")
        assert result.files_removed == 4 and result.files_added == 1
        assert log.sql("SELECT count(*) AS c FROM events").to_arrow().to_pylist() == before
        [dropped] = log.apply_retention("events")
        assert dropped.files_removed == 1
        got = log.sql("SELECT min(n) AS lo, count(*) AS c FROM events").to_arrow().to_pylist()
        assert got == [{"lo": 0, "c": 400}]
    table = DeltaTable(f"{s3_url}/streams/events", storage_options=s3_server.storage_options())
    assert len(table.file_uris()) == 1
    history = [c.get("operation") for c in table.history()]
    assert "DELETE" in history  # retention: a metadata-only Delta delete


def test_concurrent_delta_writers_on_s3_all_land(s3_server, s3_url) -> None:
    """Delta commits on S3 use conditional puts: concurrent writers never overwrite a commit."""
    from deltalake import write_deltalake

    uri = f"{s3_url}/concurrent"
    options = s3_server.storage_options()
    write_deltalake(uri, pa.table({"w": [-1], "i": [-1]}), storage_options=options)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(15):
                write_deltalake(
                    uri, pa.table({"w": [w], "i": [i]}), mode="append", storage_options=options
                )
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 45
    rows = table.to_pyarrow_table().to_pylist()
    assert sorted((r["w"], r["i"]) for r in rows if r["w"] >= 0) == [
        (w, i) for w in range(3) for i in range(15)
    ]


def test_serve_with_s3_storage_answers_flight_sql(tmp_path, s3_server, s3_url) -> None:
    server = start_process(
        [
            "-m",
            "arrowlog",
            "serve",
            "--data-dir",
            str(tmp_path / "local"),
            "--storage",
            s3_url,
            "--host",
            "127.0.0.1",
            "--flight-port",
            "0",
            "--http-port",
            "0",
        ],
        FLIGHT_READY,
        log_dir=tmp_path / "logs",
        env=s3_server.env(),
        timeout=60,
    )
    try:
        table = pa.concat_tables(generate_web_logs(20_000, start=T0))
        with flightsql.connect(server.match["url"]) as conn, conn.cursor() as cur:
            cur.adbc_ingest(DEMO_STREAM, table, mode="create_append")
            conn.commit()
            cur.execute(f"SELECT count(*) AS c FROM {DEMO_STREAM}")
            assert cur.fetch_arrow_table().to_pylist() == [{"c": 20_000}]
            for _name, sql in list(DEMO_QUERIES.items())[:3]:
                cur.execute(sql)
                assert cur.fetch_arrow_table().num_rows > 0
    finally:
        assert server.stop() == 0, server.output()
    table = DeltaTable(
        f"{s3_url}/streams/{DEMO_STREAM}", storage_options=s3_server.storage_options()
    )
    assert sum(1 for _ in table.file_uris()) >= 1  # the shutdown flush landed on S3
