"""Question: what does one small query cost, end to end, on a stream of many segments?

Dashboards send small time-bounded queries every few seconds; on them the fixed cost per
query (three RPCs, planning, the snapshot, pruning, the worker round trips) is all there
is. A stream of ``--rows`` rows in ``--rows / 1,000`` segments (at most 10,000: 1,000 day
partitions x up to 10 flushes, as ``benchmarks/compaction.py`` builds them; cached) is
served by ``arrowlog serve``; through ADBC (``cursor.execute`` + ``fetch_arrow_table``),
taking turns:

- ``count(*)`` over the last 5 minutes of the stream's time range (one segment holds them);
- ``SELECT 1``: the floor, the protocol and the worker without a stream.

Reported: p50 and p99 of ``--queries`` executions each. Targets: p50 <= 10 ms and
p99 <= 30 ms for the count.

Run: ``python -m benchmarks.query_latency [--rows N] [--queries N]``
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import numpy as np
import pyarrow as pa

import arrowlog
from benchmarks import _harness as h
from benchmarks import _suite

BENCH = "query_latency"
STREAM = "big"
DAYS = 1_000
ROWS_PER_SEGMENT = 1_000
P50_TARGET_MS, P99_TARGET_MS = 10.0, 30.0
DAY_S = 86_400


def layout(rows: int) -> tuple[int, int]:
    """(days, flushes): ``rows`` in segments of 1,000 rows, one per day and flush."""
    segments = max(1, rows // ROWS_PER_SEGMENT)
    days = min(DAYS, segments)
    return days, max(1, min(10, segments // days))


def build(rows: int) -> tuple[Path, int]:
    """The stream (cached by size): each flush appends 1,000 rows to each day partition.

    Flush ``f`` covers ``[f/F, (f+1)/F)`` of every day, so the last 5 minutes of the
    stream fall in the last flush of the last day: one segment.
    """
    days, flushes = layout(rows)
    data_dir = h.CACHE_ROOT / f"latency-{days}x{flushes}"
    if (data_dir / "done").exists():
        return data_dir, days * flushes
    h.progress(f"{BENCH}: building {days * flushes:,} segments ({days} days x {flushes} flushes)")
    shutil.rmtree(data_dir, ignore_errors=True)
    rng = np.random.default_rng(h.SEED)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    slot = DAY_S * 1_000_000 // flushes  # µs of a day each flush covers
    step = slot // ROWS_PER_SEGMENT
    settings = {"flush_rows": 10**8, "flush_bytes": 2**34, "flush_interval": 3600.0}
    with arrowlog.open(data_dir, compact_interval=10**6, **settings) as log:
        for f in range(flushes):
            day = np.repeat(np.arange(days, dtype=np.int64), ROWS_PER_SEGMENT)
            within = np.tile(np.arange(ROWS_PER_SEGMENT, dtype=np.int64), days)
            us = day * DAY_S * 1_000_000 + f * slot + within * step
            n = len(us)
            table = pa.table(
                {
                    "ts": pa.array(start + us.astype("timedelta64[us]"), pa.timestamp("us", "UTC")),
                    "service": pa.array(rng.choice(["api", "auth", "db", "web"], n)),
                    "status": pa.array(rng.choice([200, 200, 200, 404, 500], n).astype("int32")),
                    "latency_ms": pa.array(rng.gamma(2.0, 20.0, n)),
                }
            )
            for batch in table.to_batches(max_chunksize=h.LOAD_BATCH_ROWS):
                log.append(STREAM, batch)
            log.flush()
    (data_dir / "done").touch()
    return data_dir, days * flushes


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


def run(
    rows: int,
    queries: int,
    *,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
) -> list[dict[str, Any]]:
    data_dir, segments = build(rows)
    logs = Path(tempfile.mkdtemp(prefix="query-latency-", dir=h.CACHE_ROOT))
    with (
        h.serve(data_dir, logs, **h.READ_ONLY_SETTINGS) as server,
        flightsql.connect(server.flight_url, autocommit=True) as conn,
        conn.cursor() as cursor,
    ):

        def adbc(query: str) -> pa.Table:
            cursor.execute(query)
            return cursor.fetch_arrow_table()

        [hi] = adbc(f"SELECT max(ts) AS hi FROM {STREAM}").column("hi").to_pylist()
        literal = (hi - np.timedelta64(5, "m").item()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        count_sql = f"SELECT count(*) AS n FROM {STREAM} WHERE ts >= TIMESTAMP '{literal}'"
        h.progress(f"{BENCH}: {queries} x 2 queries through ADBC, taking turns")
        stats = h.interleaved(
            {"count_last_5_min": lambda: adbc(count_sql), "select_1": lambda: adbc("SELECT 1")},
            queries,
            warmup=5,
        )
        [matched] = stats["count_last_5_min"].results[-1].column("n").to_pylist()
        [total] = adbc(f"SELECT count(*) AS n FROM {STREAM}").column("n").to_pylist()
    shutil.rmtree(logs, ignore_errors=True)
    if total != segments * ROWS_PER_SEGMENT or not matched:
        raise RuntimeError(
            f"the stream holds {total:,} rows in {segments:,} segments; {matched} matched"
        )
    record: dict[str, Any] = {
        "run_id": run_id,
        "bench": BENCH,
        "case": "per_query",
        "rows": total,
        "segments": segments,
        "sql": count_sql,
        "matched_rows": matched,
        "queries": queries,
    }
    for name, s in stats.items():
        ms = [x * 1e3 for x in s.samples]
        record[name] = {"p50_ms": percentile(ms, 0.5), "p99_ms": percentile(ms, 0.99)}
        record[name]["min_ms"], record[name]["max_ms"] = min(ms), max(ms)
    return [h.emit(record, out)]


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = [r for r in records if r.get("bench") == BENCH and r["case"] == "per_query"]
    if not mine:
        return []
    r = mine[-1]
    count, floor = r["count_last_5_min"], r["select_1"]
    met = count["p50_ms"] <= P50_TARGET_MS and count["p99_ms"] <= P99_TARGET_MS
    return [
        _suite.row(
            "per_query_overhead",
            f"per-query overhead, {r['rows']:,} rows in {r['segments']:,} segments",
            "count(*) over the last 5 minutes via ADBC against arrowlog serve",
            _suite.figure(
                f"p50 (p99 {count['p99_ms']:.1f} ms)",
                "ms",
                count["p50_ms"],
                count["min_ms"],
                count["max_ms"],
            ),
            _suite.figure(
                f"SELECT 1 via ADBC, the floor: p50 (p99 {floor['p99_ms']:.1f} ms)",
                "ms",
                floor["p50_ms"],
                floor["min_ms"],
                floor["max_ms"],
            ),
            ratio=count["p50_ms"] / floor["p50_ms"],
            ratio_of="p50 of the count / p50 of SELECT 1 (lower is better)",
            target=f"p50 <= {P50_TARGET_MS:g} ms, p99 <= {P99_TARGET_MS:g} ms",
            met=met,
            reps=r["queries"],
            record=r,
            details={"sql": r["sql"], "count": count, "select_1": floor},
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.query_latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS)
    parser.add_argument("--reps", type=int, default=h.REPS, help="queries = 60 x reps")
    parser.add_argument("--queries", type=int, default=None, help="executions of each query")
    h.add_common_arguments(parser)
    args = parser.parse_args(argv)
    h.CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    records = run(args.rows, args.queries or 60 * args.reps, out=args.out, run_id=args.run_id)
    if not args.no_table:
        print(_suite.markdown(summarize(records)))
        for name in ("count_last_5_min", "select_1"):
            print(name, records[-1][name])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
