"""Question: what do compaction and catalog pruning buy, and does the catalog scale?

1. ``--rows`` demo records are appended in 10k-row batches with small flushes (every
   ``--flush-rows``), leaving many small segments, as a trickle of log shipping does.
2. The demo query set and a time-bounded query (the last 5% of the time range) run before
   and after ``compact()``; the time-bounded query also runs in DuckDB ``read_parquet``
   over the uncompacted files (no catalog to prune with): target, after compaction
   arrowlog is >= 3x faster than that.
3. A stream with 10,000 segments (1,000 days x 10 flushes) plus 100 small streams: time to
   ``arrowlog.open()`` it (target < 2 s) and to plan and run a pruned query.

Run: ``python -m benchmarks.compaction [--rows N] [--reps N]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

import arrowlog
from arrowlog.demo import DEMO_QUERIES, DEMO_STREAM
from benchmarks._harness import (
    BATCH_ROWS,
    CACHE_ROOT,
    QUERY_ROWS,
    REPS,
    add_common_arguments,
    dataset,
    emit,
    markdown_table,
    progress,
    repeat,
)

BENCH = "compaction"


def _time_bounded(log: arrowlog.Log) -> tuple[str, datetime]:
    lo, hi = (
        log.sql(f"SELECT min(ts) AS lo, max(ts) AS hi FROM {DEMO_STREAM}")
        .to_arrow()
        .to_pylist()[0]
        .values()
    )
    cut = lo + (hi - lo) * 0.95
    literal = cut.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sql = (
        f"SELECT service, count(*) AS n, avg(latency_ms) AS avg_ms FROM {DEMO_STREAM} "
        f"WHERE ts >= TIMESTAMP '{literal}' GROUP BY service ORDER BY service"
    )
    return sql, cut


def _live_files(data_dir: Path) -> list[str]:
    return DeltaTable(str(data_dir / "streams" / DEMO_STREAM)).file_uris()


def lifecycle(rows: int, flush_rows: int, reps: int) -> list[dict]:
    data_dir = Path(tempfile.mkdtemp(prefix="arrowlog-bench-compaction-", dir=CACHE_ROOT))
    table = dataset(rows)
    records: list[dict] = []
    try:
        with arrowlog.open(
            data_dir,
            flush_rows=flush_rows,
            flush_interval=3600.0,
            compact_interval=10**6,
            vacuum_grace_hours=0,
        ) as log:
            progress(
                f"appending {rows:,} rows in {BATCH_ROWS:,}-row batches, flushing every {flush_rows:,}"
            )
            started = time.perf_counter()
            pending = 0
            for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                log.append(DEMO_STREAM, batch)
                pending += batch.num_rows
                if pending >= flush_rows:  # explicit: the background flusher would batch up
                    log.flush()
                    pending = 0
            log.flush()
            load_s = time.perf_counter() - started
            before_files = _live_files(data_dir)
            bounded, _ = _time_bounded(log)
            queries = {**DEMO_QUERIES, "last_5_percent": bounded}

            def measure(stage: str) -> dict[str, float]:
                return {
                    name: repeat(lambda _, q=q: log.sql(q).to_arrow(), reps).median * 1e3
                    for name, q in queries.items()
                }

            progress(f"{len(before_files)} segments; querying before compaction")
            before = measure("before")
            con = duckdb.connect()
            listed = ", ".join(f"'{f}'" for f in before_files)
            duck_sql = bounded.replace(f"FROM {DEMO_STREAM}", f"FROM read_parquet([{listed}])")
            duck_ms = repeat(lambda _: con.sql(duck_sql).to_arrow_table(), reps).median * 1e3
            expected = con.sql(duck_sql).to_arrow_table().to_pylist()
            started = time.perf_counter()
            [result] = log.compact(DEMO_STREAM)
            compact_s = time.perf_counter() - started
            after_files = _live_files(data_dir)
            progress(
                f"compacted {result.files_removed} files into {result.files_added} in {compact_s:.1f} s"
            )
            after = measure("after")
            got = log.sql(bounded).to_arrow().to_pylist()
            if [(r["service"], r["n"]) for r in got] != [(r["service"], r["n"]) for r in expected]:
                raise SystemExit("arrowlog and DuckDB disagree on the time-bounded query")
        for name in queries:
            records.append(
                {
                    "bench": BENCH,
                    "case": name,
                    "rows": rows,
                    "segments_before": len(before_files),
                    "segments_after": len(after_files),
                    "before_ms": before[name],
                    "after_ms": after[name],
                    "speedup": before[name] / after[name],
                    "duckdb_uncompacted_ms": duck_ms if name == "last_5_percent" else None,
                    "vs_duckdb": duck_ms / after[name] if name == "last_5_percent" else None,
                    "load_s": load_s,
                    "compact_s": compact_s,
                    "data_dir": str(CACHE_ROOT),
                }
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return records


def many_segments(reps: int) -> dict:
    data_dir = CACHE_ROOT / "segments-10000"
    if not (data_dir / "streams" / "big").exists():
        progress("building 10,000 segments (1,000 days x 10 flushes) and 100 small streams")
        shutil.rmtree(data_dir, ignore_errors=True)
        with arrowlog.open(data_dir, flush_interval=3600.0, compact_interval=10**6) as log:
            for f in range(10):
                ts = np.datetime64("2024-01-01T00:00:00", "us") + (
                    np.arange(1000) * 86_400 + f * 60
                ).astype("timedelta64[s]")
                log.append(
                    "big",
                    pa.table(
                        {
                            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                            "n": np.arange(1000) + f * 1000,
                        }
                    ),
                )
                log.flush()
            for i in range(100):
                log.append(
                    f"s{i}", [{"ts": datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i), "n": i}]
                )
            log.flush()

    def open_close(_: None) -> None:
        arrowlog.open(data_dir, compact_interval=10**6).close()

    open_stats = repeat(open_close, reps)
    with arrowlog.open(data_dir, compact_interval=10**6) as log:
        segments = log.describe("big").segments
        q = "SELECT count(*) AS c FROM big WHERE ts >= TIMESTAMP '2026-09-01T00:00:00Z'"
        query_stats = repeat(lambda _: log.sql(q).to_arrow(), reps)
    return {
        "bench": BENCH,
        "case": "open_10000_segments",
        "streams": 101,
        "segments": segments,
        "open_ms": open_stats.median * 1e3,
        "pruned_query_ms": query_stats.median * 1e3,
        "data_dir": str(CACHE_ROOT),
    }


def report(records: list[dict]) -> str:
    """Markdown tables of one run's records."""
    lifecycle_rows = [r for r in records if "before_ms" in r]
    scale_rows = [r for r in records if "open_ms" in r]
    parts = []
    if lifecycle_rows:
        r0 = lifecycle_rows[0]
        parts.append(
            f"### Compaction: {r0['rows']:,} rows appended in {BATCH_ROWS:,}-row batches with small flushes, "
            f"{r0['segments_before']} segments -> {r0['segments_after']} (compaction took {r0['compact_s']:.1f} s)\n\n"
            + markdown_table(
                lifecycle_rows,
                ["case", "before_ms", "after_ms", "speedup", "duckdb_uncompacted_ms", "vs_duckdb"],
            )
            + "\n\n`vs_duckdb`: DuckDB read_parquet over the uncompacted files / arrowlog after compaction"
            " (target >= 3 for last_5_percent)."
        )
    if scale_rows:
        parts.append(
            "### Many segments\n\n"
            + markdown_table(
                scale_rows, ["case", "streams", "segments", "open_ms", "pruned_query_ms"]
            )
            + "\n\nTarget: open in under 2 s."
        )
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=QUERY_ROWS)
    parser.add_argument("--flush-rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=REPS)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    flush_rows = min(args.flush_rows, max(1, args.rows // 20))
    records = [*lifecycle(args.rows, flush_rows, args.reps), many_segments(args.reps)]
    written = [emit({**r, "run_id": args.run_id}, args.out) for r in records]
    if not args.no_table:
        print(report(written))


if __name__ == "__main__":
    main()
