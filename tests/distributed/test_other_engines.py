"""Other engines over the same Delta tables: Polars ``scan_delta`` and DuckDB's Parquet reader.

The examples docs/scale-out.md shows, run here: each reads a stream's table where it lies
and must give the same counts and aggregates as arrowlog's SQL. Neither needs Ray or Daft.
Like Daft, they see only what is flushed (the Delta log), never a Log's buffer.
"""

from __future__ import annotations

import math

import duckdb
import polars as pl
from deltalake import DeltaTable

from arrowlog.demo import DEMO_STREAM, NEEDLE_USER_ID
from tests.distributed.conftest import ROWS

PER_LEVEL = (
    "SELECT level, count(*) AS n, avg(latency_ms) AS avg_ms FROM http_logs "
    "GROUP BY level ORDER BY level"
)


def _arrowlog(log) -> list[tuple]:
    return [tuple(r.values()) for r in log.sql(PER_LEVEL).to_arrow().to_pylist()]


def _same(got: list[tuple], want: list[tuple]) -> None:
    assert len(got) == len(want)
    for (level, n, avg), (w_level, w_n, w_avg) in zip(got, want, strict=True):
        assert (level, n) == (w_level, w_n)
        assert math.isclose(avg, w_avg, rel_tol=1e-12)


def test_polars_scan_delta(demo_log) -> None:
    uri = demo_log.storage.table_uri(DEMO_STREAM)
    lf = pl.scan_delta(uri)  # storage_options=... for s3:// tables
    per_level = (
        lf.group_by("level")
        .agg(pl.len().alias("n"), pl.col("latency_ms").mean().alias("avg_ms"))
        .sort("level")
        .collect()
    )
    _same(per_level.rows(), _arrowlog(demo_log))
    assert lf.select(pl.len()).collect().item() == ROWS
    needle = lf.filter(pl.col("user_id") == NEEDLE_USER_ID).select(pl.len()).collect().item()
    want = demo_log.sql(f"SELECT count(*) AS n FROM http_logs WHERE user_id = {NEEDLE_USER_ID}")
    assert needle == want.to_arrow().column("n")[0].as_py() > 0


def test_duckdb_over_the_live_file_list(demo_log) -> None:
    uri = demo_log.storage.table_uri(DEMO_STREAM)
    # The live files of the current Delta version: never a directory glob, which would
    # also read files compaction replaced and not yet vacuumed.
    files = DeltaTable(uri).file_uris()
    con = duckdb.connect()
    con.read_parquet(files, hive_partitioning=False).create_view("http_logs")
    _same(con.sql(PER_LEVEL).fetchall(), _arrowlog(demo_log))
    assert con.sql("SELECT count(*) FROM http_logs").fetchall() == [(ROWS,)]
