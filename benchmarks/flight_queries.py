"""Question: how fast are the demo queries through a real Flight SQL client, next to DuckDB
and Polars in-process on the same files? And a time-bounded query, next to DuckDB on the
same data written as one unsorted file?

The reference data set (``queries_embedded.load``: ``--rows`` demo records, loaded once
and compacted, cached) is served by ``python -m arrowlog serve``; every query goes through
the ADBC Flight SQL driver (``cursor.execute`` + ``fetch_arrow_table``: prepare, plan,
stream, client-side Arrow). In the same run, in this process:

- the query set (``arrowlog.demo.DEMO_QUERIES``): DuckDB ``read_parquet`` over the stream's
  live files (the table name replaced), and Polars ``scan_parquet`` of the same files with
  each query written as a lazy Polars query (``POLARS_QUERIES``: Polars' SQL lacks some
  of the functions used). Target: median over the queries of arrowlog / DuckDB <= 1.0.
- the time-bounded query (the last 5% of the time range, grouped by service): arrowlog
  over the server, next to DuckDB ``read_parquet`` of the same records shuffled and
  written as one Parquet file (zstd, cached beside the data set): what a plain Parquet
  dump without time order or a catalog gives. Target: arrowlog >= 3x faster.

Every engine's answer must agree with DuckDB's (values, row counts) or the run fails.

Run: ``python -m benchmarks.flight_queries [--rows N] [--reps N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from arrowlog.demo import DEMO_QUERIES, DEMO_QUERIES_DUCKDB, DEMO_STREAM, NEEDLE_USER_ID
from benchmarks import _harness as h
from benchmarks import _suite
from benchmarks.queries_embedded import ResultMismatch, check_agree, live_files, load, over_files

BENCH = "flight_queries"
TARGET_RATIO = 1.0
TIME_BOUNDED_TARGET = 3.0

# The demo queries as lazy Polars queries over the stream's files (same columns, same order).
POLARS_QUERIES: dict[str, Callable[[pl.LazyFrame], pl.LazyFrame]] = {
    "errors_last_hour": lambda lf: lf.filter(
        (pl.col("level") == "ERROR") & (pl.col("ts") > pl.col("ts").max() - pl.duration(hours=1))
    ).select(pl.len().cast(pl.Int64).alias("errors")),
    "per_service_latency": lambda lf: (
        lf.group_by("service")
        .agg(
            pl.len().cast(pl.Int64).alias("requests"),
            pl.col("latency_ms").mean().alias("avg_ms"),
            pl.col("latency_ms").quantile(0.99, interpolation="linear").alias("p99_ms"),
        )
        .sort("requests", descending=True)
    ),
    "top_error_hosts": lambda lf: (
        lf.filter(pl.col("level") == "ERROR")
        .group_by("host")
        .agg(pl.len().cast(pl.Int64).alias("errors"))
        .sort(["errors", "host"], descending=[True, False])
        .head(10)
    ),
    "needle_user": lambda lf: (
        lf.filter(pl.col("user_id") == NEEDLE_USER_ID)
        .select("ts", "service", "endpoint", "status", "latency_ms", "message")
        .sort("ts")
    ),
    "histogram_1m": lambda lf: (
        lf.group_by(pl.col("ts").dt.truncate("1m").alias("minute"))
        .agg(pl.len().cast(pl.Int64).alias("requests"))
        .sort("minute")
    ),
}


def unsorted_file(rows: int, seed: int) -> Path:
    """The reference data set shuffled (seeded) into one Parquet file, written once."""
    path = h.CACHE_ROOT / f"{rows}-{seed}" / "unsorted.parquet"
    if not path.exists():
        h.progress(f"writing {rows:,} shuffled rows into {path}")
        table = h.dataset(rows, seed)
        order = np.random.default_rng(seed).permutation(table.num_rows)
        tmp = path.with_suffix(".tmp")
        pq.write_table(table.take(pa.array(order)), tmp, compression="zstd")
        tmp.replace(path)
    return path


def time_bounded_sql(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> str:
    """The last 5% of the data's time range, per service (the table name left to replace)."""
    table = over_files(DEMO_STREAM, files)
    [(lo, hi)] = con.sql(f"SELECT epoch_us(min(ts)), epoch_us(max(ts)) FROM {table}").fetchall()
    cut = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=lo + (hi - lo) * 95 // 100)
    literal = cut.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"SELECT service, count(*) AS n, avg(latency_ms) AS avg_ms FROM {DEMO_STREAM} "
        f"WHERE ts >= TIMESTAMP '{literal}' GROUP BY service ORDER BY service"
    )


def run(
    rows: int,
    reps: int,
    *,
    seed: int = h.SEED,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
) -> list[dict[str, Any]]:
    data_dir, _ = load(rows, seed)
    files = live_files(data_dir)
    unsorted = unsorted_file(rows, seed)
    con = duckdb.connect()
    frame = pl.scan_parquet(files, hive_partitioning=False)
    logs = Path(tempfile.mkdtemp(prefix="flight-queries-", dir=h.CACHE_ROOT))
    common = {
        "run_id": run_id,
        "bench": BENCH,
        "rows": rows,
        "seed": seed,
        "files": len(files),
        "data_dir": str(data_dir),
    }
    records: list[dict[str, Any]] = []
    with (
        h.serve(data_dir, logs, **h.READ_ONLY_SETTINGS) as server,
        flightsql.connect(server.flight_url, autocommit=True) as conn,
        conn.cursor() as cursor,
    ):

        def arrowlog_adbc(query: str) -> pa.Table:
            cursor.execute(query)
            return cursor.fetch_arrow_table()

        for name, query in DEMO_QUERIES.items():
            h.progress(f"{BENCH}: {name}, {reps} reps x 3 engines, taking turns")
            raw = over_files(DEMO_QUERIES_DUCKDB.get(name, query), files)
            polars_query = POLARS_QUERIES[name](frame)
            runners: dict[str, Callable[[], pa.Table]] = {
                "arrowlog_adbc": lambda q=query: arrowlog_adbc(q),
                "duckdb_read_parquet": lambda q=raw: con.sql(q).to_arrow_table(),
                "polars_scan_parquet": lambda q=polars_query: q.collect().to_arrow(),
            }
            stats = h.interleaved(runners, reps)
            expected = stats["duckdb_read_parquet"].results[-1]
            for engine in ("arrowlog_adbc", "polars_scan_parquet"):
                check_agree(name, expected, stats[engine].results[-1], engine)
            ms = {f"{engine}_ms": s.median * 1e3 for engine, s in stats.items()}
            records.append(
                {
                    **common,
                    "case": "query",
                    "query": name,
                    "result_rows": expected.num_rows,
                    **ms,
                    "ratio_vs_duckdb": ms["arrowlog_adbc_ms"] / ms["duckdb_read_parquet_ms"],
                    "ratio_vs_polars": ms["arrowlog_adbc_ms"] / ms["polars_scan_parquet_ms"],
                    "stats": {engine: s.to_dict() for engine, s in stats.items()},
                }
            )
        bounded = time_bounded_sql(con, files)
        duck_sql = bounded.replace(
            f"FROM {DEMO_STREAM}", f"FROM read_parquet('{unsorted}') AS {DEMO_STREAM}"
        )
        h.progress(f"{BENCH}: last 5% of the time range, {reps} reps x 2")
        bounded_stats = h.interleaved(
            {
                "arrowlog_adbc": lambda: arrowlog_adbc(bounded),
                "duckdb_unsorted_file": lambda: con.sql(duck_sql).to_arrow_table(),
            },
            reps,
        )
        ours, duck = bounded_stats["arrowlog_adbc"], bounded_stats["duckdb_unsorted_file"]
        check_agree("time_bounded", duck.results[-1], ours.results[-1], "arrowlog_adbc")
        records.append(
            {
                **common,
                "case": "time_bounded",
                "sql": bounded,
                "unsorted_file": str(unsorted),
                "unsorted_file_bytes": unsorted.stat().st_size,
                "unsorted_row_groups": pq.ParquetFile(unsorted).num_row_groups,
                "result_rows": ours.results[-1].num_rows,
                "arrowlog_adbc_ms": ours.median * 1e3,
                "duckdb_unsorted_file_ms": duck.median * 1e3,
                "speedup": duck.median / ours.median,
                "stats": {"arrowlog_adbc": ours.to_dict(), "duckdb_unsorted_file": duck.to_dict()},
            }
        )
    if live_files(data_dir) != files:
        raise RuntimeError(f"the live files of {data_dir} changed during the run; run again")
    con.close()
    queries = [r for r in records if r["case"] == "query"]
    records.append(
        {
            **common,
            "case": "summary",
            "reps": reps,
            "median_ratio_vs_duckdb": statistics.median(r["ratio_vs_duckdb"] for r in queries),
            "median_ratio_vs_polars": statistics.median(r["ratio_vs_polars"] for r in queries),
        }
    )
    return [h.emit(r, out) for r in records]


# -- the suite's rows --------------------------------------------------------------------------


def _query_figure(queries: Sequence[dict[str, Any]], engine: str, what: str) -> dict[str, Any]:
    """Sum of the per-query medians (ms) for the whole set; range: per-rep min/max sums."""
    key = engine + "_ms"
    total = sum(q[key] for q in queries)
    lo = sum(q["stats"][engine]["min_s"] for q in queries) * 1e3
    hi = sum(q["stats"][engine]["max_s"] for q in queries) * 1e3
    return _suite.figure(what, "ms for the set", total, lo, hi)


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = [r for r in records if r.get("bench") == BENCH]
    queries = [r for r in mine if r["case"] == "query"]
    summaries = [r for r in mine if r["case"] == "summary"]
    rows = []
    if queries and summaries:
        s = summaries[-1]
        per_query = {
            q["query"]: {
                "arrowlog_adbc_ms": q["arrowlog_adbc_ms"],
                "duckdb_read_parquet_ms": q["duckdb_read_parquet_ms"],
                "polars_scan_parquet_ms": q["polars_scan_parquet_ms"],
                "ratio_vs_duckdb": q["ratio_vs_duckdb"],
                "ratio_vs_polars": q["ratio_vs_polars"],
                "result_rows": q["result_rows"],
            }
            for q in queries
        }
        arrowlog = _query_figure(
            queries, "arrowlog_adbc", f"{len(queries)} demo queries, sum of medians"
        )
        for engine, label, ratio_key, target, met in (
            ("duckdb_read_parquet", "DuckDB read_parquet", "median_ratio_vs_duckdb", "<= 1.0",
             s["median_ratio_vs_duckdb"] <= TARGET_RATIO),
            ("polars_scan_parquet", "Polars scan_parquet", "median_ratio_vs_polars", "—", None),
        ):  # fmt: skip
            rows.append(
                _suite.row(
                    "query_set" + ("" if engine.startswith("duckdb") else "_polars"),
                    f"query set, {s['rows']:,} rows (vs {label.split()[0]})",
                    "demo queries via ADBC against arrowlog serve",
                    arrowlog,
                    _query_figure(
                        queries, engine, f"{label} in-process, same {s['files']} file(s)"
                    ),
                    ratio=s[ratio_key],
                    ratio_of="median over queries of arrowlog / reference time (lower is better)",
                    target=target,
                    met=met,
                    reps=s["reps"],
                    record=s,
                    details={"per_query": per_query},
                )
            )
    bounded = [r for r in mine if r["case"] == "time_bounded"]
    if bounded:
        r = bounded[-1]
        ours, duck = r["stats"]["arrowlog_adbc"], r["stats"]["duckdb_unsorted_file"]
        rows.append(
            _suite.row(
                "time_bounded_query",
                f"time-bounded query, last 5% of the time range, {r['rows']:,} rows",
                "ADBC against arrowlog serve, after compaction",
                _suite.figure(
                    "group by service", "ms", ours["median_s"] * 1e3, ours["min_s"] * 1e3,
                    ours["max_s"] * 1e3,
                ),
                _suite.figure(
                    f"DuckDB read_parquet, same rows as one unsorted file "
                    f"({r['unsorted_row_groups']} row group(s))",
                    "ms",
                    duck["median_s"] * 1e3,
                    duck["min_s"] * 1e3,
                    duck["max_s"] * 1e3,
                ),
                ratio=r["speedup"],
                ratio_of="reference / arrowlog time: speed-up (higher is better)",
                target=">= 3",
                met=r["speedup"] >= TIME_BOUNDED_TARGET,
                reps=ours["reps"],
                record=r,
                details={"sql": r["sql"]},
            )
        )  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.flight_queries", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS)
    parser.add_argument("--reps", type=int, default=h.REPS)
    parser.add_argument("--seed", type=int, default=h.SEED)
    h.add_common_arguments(parser)
    args = parser.parse_args(argv)
    try:
        records = run(args.rows, args.reps, seed=args.seed, out=args.out, run_id=args.run_id)
    except ResultMismatch as e:
        print(f"RESULTS DISAGREE: {e}", file=sys.stderr)
        return 2
    if not args.no_table:
        print(_suite.markdown(summarize(records)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
