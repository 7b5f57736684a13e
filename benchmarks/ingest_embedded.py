"""Question: how fast does embedded ``Log.append`` ingest durably, next to a naive fsync loop?

Both sides get the same pre-built batches of the demo schema (``--batch-rows`` rows each)
and acknowledge a batch only once it is on disk:

- ``arrowlog``: ``log.append("http_logs", batch)`` into a fresh data directory, from 1 and
  from 4 threads; an append returns after the WAL fsync, and concurrent appends share
  fsyncs (group commit). Default settings, so the background flusher writes Parquet
  segments during the run, as it would in production.
- ``raw IPC + fsync``: the per-batch-fsync reference. One Arrow IPC stream file; for each
  batch ``write_table`` then ``os.fsync``, under one lock, so with 4 threads the writers
  simply take turns: one fsync per batch, no group commit, no validation, no offsets.

A repetition is timed from the first append until the last one returned; opening the log
(and closing it, which flushes what is still buffered) is outside the timed part. The ratio
arrowlog/raw with 4 threads is the headline; the target is >= 0.5.

Run: ``python -m benchmarks.ingest_embedded [--rows N] [--batch-rows N] [--reps N]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

import arrowlog
from arrowlog.demo import DEMO_SCHEMA, DEMO_STREAM
from benchmarks import _harness as h

BENCH = "ingest_embedded"
THREADS = (1, 4)
TARGET_RATIO = 0.5
RAW_NOTE = "per-batch-fsync reference: one IPC file, write+os.fsync per batch under one lock"


@dataclass
class _Run:
    """One repetition's state: its scratch directory and whatever it writes into."""

    directory: Path
    log: arrowlog.Log | None = None
    sink: pa.NativeFile | None = None
    writer: pa.ipc.RecordBatchStreamWriter | None = None
    close_s: float = 0.0


def bench_arrowlog(
    batches: Sequence[pa.Table], threads: int, reps: int, workdir: Path
) -> tuple[h.Stats, list[dict[str, Any]]]:
    """Time durable appends into a fresh data directory per repetition."""
    extras: list[dict[str, Any]] = []

    def setup() -> _Run:
        run = _Run(Path(tempfile.mkdtemp(prefix="arrowlog-", dir=workdir)))
        run.log = arrowlog.open(run.directory)
        return run

    def append_all(run: _Run) -> dict[str, Any]:
        log = run.log
        assert log is not None
        h.feed_threads(
            threads, batches, lambda _, b: log.append(DEMO_STREAM, b), name="bench-ingest"
        )
        wal = log._wal
        return {"fsyncs": wal.fsync_count, "fsync_s": wal.fsync_seconds}

    def teardown(run: _Run) -> None:
        if run.log is not None:
            start = time.perf_counter()
            run.log.close()
            extras.append({"close_s": time.perf_counter() - start})
        shutil.rmtree(run.directory)

    stats = h.repeat(append_all, reps, warmup=1, setup=setup, teardown=teardown)
    # teardown ran once per repetition, warm-up first
    closes = extras[stats.warmup :]
    return stats, [dict(r, **c) for r, c in zip(stats.results, closes, strict=True)]


def _raw_setup(workdir: Path) -> _Run:
    run = _Run(Path(tempfile.mkdtemp(prefix="raw-", dir=workdir)))
    run.sink = pa.OSFile(str(run.directory / "raw.arrows"), "wb")
    run.writer = pa.ipc.new_stream(run.sink, DEMO_SCHEMA)
    return run


def _raw_append_all(run: _Run, threads: int, batches: Sequence[pa.Table]) -> dict[str, Any]:
    sink, writer = run.sink, run.writer
    assert sink is not None and writer is not None
    fd = sink.fileno()
    lock = threading.Lock()
    count = 0

    def durable_append(batch: pa.Table) -> None:
        nonlocal count
        with lock:
            writer.write_table(batch)
            os.fsync(fd)
            count += 1

    h.feed_threads(threads, batches, lambda _, b: durable_append(b), name="bench-ingest")
    return {"fsyncs": count}


def _raw_teardown(run: _Run) -> None:
    if run.writer is not None:
        run.writer.close()
    if run.sink is not None:
        run.sink.close()
    shutil.rmtree(run.directory)


def bench_raw(
    batches: Sequence[pa.Table], threads: int, reps: int, workdir: Path
) -> tuple[h.Stats, list[dict[str, Any]]]:
    """Time the naive durable baseline: IPC append + fsync per batch, one writer at a time."""
    stats = h.repeat(
        lambda run: _raw_append_all(run, threads, batches),
        reps,
        warmup=1,
        setup=lambda: _raw_setup(workdir),
        teardown=_raw_teardown,
    )
    return stats, list(stats.results)


def raw_ipc_fsync_once(batches: Sequence[pa.Table], threads: int, workdir: Path) -> float:
    """One timed repetition of the reference (opening and closing the file untimed): seconds."""
    run = _raw_setup(workdir)
    try:
        start = time.perf_counter()
        _raw_append_all(run, threads, batches)
        return time.perf_counter() - start
    finally:
        _raw_teardown(run)


def run(
    rows: int = h.INGEST_ROWS,
    batch_rows: int = h.BATCH_ROWS,
    reps: int = h.REPS,
    *,
    seed: int = h.SEED,
    workdir: Path | None = None,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
) -> list[dict[str, Any]]:
    """Run every case and emit one record per case plus the ratio; return the records."""
    table = h.dataset(rows, seed)
    # Materialise each batch once (outside any timing), so both sides append identical,
    # contiguous tables and neither pays for slicing.
    batches = [
        pa.Table.from_batches([b], schema=DEMO_SCHEMA)
        for b in table.combine_chunks().to_batches(max_chunksize=batch_rows)
    ]
    workdir = Path(workdir or h.CACHE_ROOT / "ingest-scratch")
    workdir.mkdir(parents=True, exist_ok=True)
    common = {
        "run_id": run_id,
        "bench": BENCH,
        "rows": rows,
        "batch_rows": batch_rows,
        "batches": len(batches),
        "seed": seed,
        "data_dir": str(workdir),
    }
    records = []
    for case, bench, note in (
        ("arrowlog", bench_arrowlog, "Log.append, ack after WAL fsync (group commit)"),
        ("raw IPC + fsync", bench_raw, RAW_NOTE),
    ):
        for threads in THREADS:
            h.progress(f"{BENCH}: {case}, {threads} thread(s), {reps} reps of {rows:,} rows")
            stats, per_rep = bench(batches, threads, reps, workdir)
            fsyncs = sorted(r["fsyncs"] for r in per_rep)[len(per_rep) // 2]
            record = {
                **common,
                "case": case,
                "threads": threads,
                "rows_per_s": rows / stats.median,
                "batches_per_s": len(batches) / stats.median,
                "fsyncs_per_rep": fsyncs,
                "batches_per_fsync": len(batches) / fsyncs if fsyncs else None,
                "close_s": _median([r["close_s"] for r in per_rep if "close_s" in r]),
                "note": note,
                **stats.to_dict(),
                "per_rep": per_rep,
            }
            records.append(h.emit(record, out))
    by = {(r["case"], r["threads"]): r for r in records}
    for threads in THREADS:
        ratio = by["arrowlog", threads]["rows_per_s"] / by["raw IPC + fsync", threads]["rows_per_s"]
        summary = {
            **common,
            "case": "ratio arrowlog/raw",
            "threads": threads,
            "ratio": ratio,
        }
        if threads == max(THREADS):
            summary.update(target=f">= {TARGET_RATIO}", target_met=ratio >= TARGET_RATIO)
        records.append(h.emit(summary, out))
    return records


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def report(records: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per case and thread count, then the ratios."""
    cases = [r for r in records if r.get("bench") == BENCH and "rows_per_s" in r]
    ratios = [r for r in records if r.get("bench") == BENCH and "ratio" in r]
    if not cases:
        return ""
    first = cases[0]
    rows = [
        {
            "case": r["case"],
            "threads": r["threads"],
            "rows/s": r["rows_per_s"],
            "batches/s": r["batches_per_s"],
            "fsyncs/rep": r["fsyncs_per_rep"],
            "batches/fsync": r["batches_per_fsync"],
            "close s (untimed)": r.get("close_s"),
            "median s": r["median_s"],
            "min s": r["min_s"],
            "max s": r["max_s"],
        }
        for r in cases
    ]
    lines = [
        f"### Ingest, embedded: {first['rows']:,} rows in {first['batches']:,} batches of "
        f"{first['batch_rows']:,}, median of {first['reps']} reps",
        "",
        h.markdown_table(rows),
        "",
        f"`raw IPC + fsync` is the {RAW_NOTE}.",
        "",
    ]
    for r in ratios:
        target = ""
        if "target" in r:
            target = f" (target {r['target']}: {'met' if r['target_met'] else 'NOT met'})"
        lines.append(
            f"- arrowlog/raw rows/s, {r['threads']} thread(s): **{r['ratio']:.2f}**{target}"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest_embedded", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.INGEST_ROWS, help="rows per repetition")
    parser.add_argument("--batch-rows", type=int, default=h.BATCH_ROWS, help="rows per append")
    parser.add_argument("--reps", type=int, default=h.REPS, help="timed repetitions per case")
    parser.add_argument("--seed", type=int, default=h.SEED)
    parser.add_argument("--workdir", type=Path, default=None, help="where scratch data dirs go")
    h.add_common_arguments(parser)
    args = parser.parse_args(argv)
    records = run(
        args.rows,
        args.batch_rows,
        args.reps,
        seed=args.seed,
        workdir=args.workdir,
        out=args.out,
        run_id=args.run_id,
    )
    if not args.no_table:
        print(report(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
