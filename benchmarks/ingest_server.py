"""Question: how fast does Arrow ingest through ``arrowlog serve`` go, durably, next to the raw
pyarrow equivalents, and are acknowledged records visible at once?

Three cases, each against its own ``python -m arrowlog serve`` (default settings: WAL fsync
before every ack, background flushes to Parquet) over a fresh data directory, fed from the
reference data set cut into 10k-row batches:

- ``burst``: the first ``min(--rows, 2M)`` rows, sent by 4 clients taking batches from one
  shared queue, each batch acknowledged (after the WAL fsync) before that client sends its
  next. Two client paths: plain Flight ``DoPut`` (one long DoPut per client, one ack per
  batch) and ADBC ``cursor.adbc_ingest`` (one Flight SQL ingest call per batch). Reference,
  in the same repetitions: raw pyarrow IPC ``write_table`` + ``os.fsync`` per batch into
  one file, same batches, 4 threads taking turns (``ingest_embedded``'s reference). A
  repetition is timed from the first batch to the last ack; connecting is not timed.
  Each repetition runs the three in turn, so a neighbour's load weighs on all alike.
- ``sustained``: 4 DoPut clients cycle over the same batches for ``--seconds`` (60) while
  the server flushes to Parquet; then a ``flush`` action drains what is still buffered.
  The figure is acknowledged rows / (ingest time + final drain), so a flusher that fell
  behind pays for it; the buffered backlog is sampled once a second. Reference: raw
  ``pyarrow.parquet.write_table`` (zstd, then fsync) of the same rows, per repetition.
- ``freshness``: one DoPut client writes a 1,000-row batch, and the moment its ack arrives
  an ADBC ``SELECT count(*)`` runs; if it does not include the batch, it is polled until
  it does. The lag ack -> visible, max over ``--trials``: 0 ms is read-your-writes.

Run: ``python -m benchmarks.ingest_server [--cases burst,sustained,freshness] [--rows N]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq

from arrowlog.demo import DEMO_SCHEMA, DEMO_STREAM
from benchmarks import _harness as h
from benchmarks import _suite
from benchmarks.ingest_embedded import raw_ipc_fsync_once

BENCH = "ingest_server"
CLIENTS = 4
ALL_CASES = ("burst", "sustained", "freshness")
FRESHNESS_TRIALS = 100
FRESHNESS_ROWS = 1_000
WINDOWS = 6  # the sustained phase is reported per sixth (10 s of a 60 s run)
# The sustained phase stops early if the server's RSS passes this: a flusher that falls
# behind buffers without bound, and the machine is shared.
SUSTAINED_RSS_LIMIT = 4_000_000_000


# -- clients -----------------------------------------------------------------------------------


class _Queue:
    """Batches handed out one at a time to whichever client asks first."""

    def __init__(self, batches: Sequence[pa.RecordBatch]) -> None:
        self._it = iter(batches)
        self._lock = threading.Lock()

    def take(self) -> pa.RecordBatch | None:
        with self._lock:
            return next(self._it, None)


class _DoPut:
    """One long DoPut: ``send`` writes a batch and waits for its ack (after the fsync)."""

    def __init__(self, url: str, stream: str, schema: pa.Schema) -> None:
        self.client = flight.connect(url)
        descriptor = flight.FlightDescriptor.for_path(stream)
        self.writer, self.acks = self.client.do_put(descriptor, schema)

    def send(self, batch: pa.RecordBatch) -> int:
        self.writer.write_batch(batch)
        ack = self.acks.read()
        if ack is None:
            raise ConnectionError("DoPut ended without an acknowledgement")
        accepted = json.loads(ack.to_pybytes())["accepted"]
        if accepted != batch.num_rows:
            raise RuntimeError(f"acknowledged {accepted} of {batch.num_rows} rows")
        return accepted

    def close(self) -> None:
        try:
            self.writer.done_writing()
            while self.acks.read() is not None:
                pass
        finally:
            self.writer.close()
            self.client.close()


def _doput_burst(url: str, stream: str, batches: Sequence[pa.RecordBatch]) -> float:
    """4 DoPut clients send every batch; seconds from the first write to the last ack."""
    puts = [_DoPut(url, stream, DEMO_SCHEMA) for _ in range(CLIENTS)]
    queue = _Queue(batches)
    acked = [0] * CLIENTS

    def client(i: int) -> None:
        while (batch := queue.take()) is not None:
            acked[i] += puts[i].send(batch)

    try:
        start = time.perf_counter()
        h.in_threads(CLIENTS, client, name="bench-client")
        elapsed = time.perf_counter() - start
    finally:
        for p in puts:
            p.close()
    _check_rows(sum(acked), batches)
    return elapsed


def _adbc_burst(url: str, stream: str, batches: Sequence[pa.RecordBatch]) -> float:
    """4 ADBC connections, one ``adbc_ingest`` call per batch; seconds to the last answer."""
    conns = [flightsql.connect(url, autocommit=True) for _ in range(CLIENTS)]
    cursors = [c.cursor() for c in conns]
    queue = _Queue(batches)
    acked = [0] * CLIENTS

    def client(i: int) -> None:
        while (batch := queue.take()) is not None:
            acked[i] += cursors[i].adbc_ingest(stream, batch, mode="create_append")

    try:
        start = time.perf_counter()
        h.in_threads(CLIENTS, client, name="bench-client")
        elapsed = time.perf_counter() - start
    finally:
        for cur, conn in zip(cursors, conns, strict=True):
            cur.close()
            conn.close()
    _check_rows(sum(acked), batches)
    return elapsed


def _check_rows(acked: int, batches: Sequence[pa.RecordBatch]) -> None:
    sent = sum(b.num_rows for b in batches)
    if acked != sent:
        raise RuntimeError(f"{acked} rows acknowledged, {sent} sent")


# -- the cases ---------------------------------------------------------------------------------


def _action(url: str, name: str, body: str = "") -> list[bytes]:
    """A Flight action (``flush``, ``describe``...) on the server; the result bodies."""
    with flight.connect(url) as client:
        return [r.body.to_pybytes() for r in client.do_action(flight.Action(name, body.encode()))]


def _describe(url: str, stream: str) -> dict[str, Any]:
    return json.loads(_action(url, "describe", stream)[0])


def _batches(table: pa.Table, rows: int) -> list[pa.RecordBatch]:
    """The first ``rows`` of the reference data set as contiguous 10k-row batches."""
    return table.slice(0, rows).combine_chunks().to_batches(max_chunksize=h.BATCH_ROWS)


def burst(
    table: pa.Table, rows: int, reps: int, scratch: Path, common: dict[str, Any], out: Path
) -> list[dict]:
    batches = _batches(table, rows)
    tables = [pa.Table.from_batches([b]) for b in batches]
    samples: dict[str, list[float]] = {"raw IPC + fsync": [], "Flight DoPut": [], "adbc_ingest": []}
    with h.serve(scratch / "burst-data", scratch / "burst-server") as server:
        runs: dict[str, Callable[[], float]] = {
            "raw IPC + fsync": lambda: raw_ipc_fsync_once(tables, CLIENTS, scratch),
            "Flight DoPut": lambda: _doput_burst(server.flight_url, "burst_doput", batches),
            "adbc_ingest": lambda: _adbc_burst(server.flight_url, "burst_adbc", batches),
        }
        for rep in range(1 + reps):
            h.progress(f"{BENCH}: burst of {rows:,} rows, repetition {rep} of {reps} (0: warm-up)")
            for name, fn in runs.items():
                elapsed = fn()
                if rep:
                    samples[name].append(elapsed)
        rss = h.peak_rss_bytes(server.pid)
    records = []
    for name, times in samples.items():
        stats = h.Stats(tuple(times), 1)
        records.append(
            h.emit(
                {
                    **common,
                    "case": "burst",
                    "variant": name,
                    "rows": rows,
                    "batches": len(batches),
                    "batch_rows": h.BATCH_ROWS,
                    "clients": CLIENTS,
                    "rows_per_s": rows / stats.median,
                    "server_peak_rss_bytes": rss if name != "raw IPC + fsync" else None,
                    **stats.to_dict(),
                },
                out,
            )
        )
    return records


def sustained(
    table: pa.Table,
    rows: int,
    reps: int,
    seconds: float,
    scratch: Path,
    common: dict[str, Any],
    out: Path,
) -> list[dict]:
    batches = _batches(table, rows)
    n = len(batches)
    stop = threading.Event()
    acks: list[list[tuple[float, int]]] = [[] for _ in range(CLIENTS)]
    samples: list[dict[str, Any]] = []
    stopped_early: list[float] = []
    with h.serve(scratch / "sustained-data", scratch / "sustained-server") as server:
        puts = [_DoPut(server.flight_url, DEMO_STREAM, DEMO_SCHEMA) for _ in range(CLIENTS)]

        def client(i: int) -> None:
            k = i * n // CLIENTS  # each client starts at its own quarter of the batches
            while not stop.is_set():
                acked = puts[i].send(batches[k % n])
                acks[i].append((time.perf_counter(), acked))
                k += 1

        def monitor() -> None:
            while not stop.wait(1.0):
                info = _describe(server.flight_url, DEMO_STREAM) if any(acks) else {}
                rss = h.rss_bytes(server.pid)
                samples.append(
                    {
                        "t": time.perf_counter() - start,
                        "buffered_rows": info.get("buffered_rows", 0),
                        "segments": info.get("segments", 0),
                        "rss_bytes": rss,
                    }
                )
                if rss > SUSTAINED_RSS_LIMIT:
                    stopped_early.append(time.perf_counter() - start)
                    h.progress(
                        f"{BENCH}: server RSS {rss / 1e9:.1f} GB after {stopped_early[0]:.0f} s "
                        f"({info.get('buffered_rows', 0):,} rows buffered): stopping early"
                    )
                    stop.set()

        h.progress(f"{BENCH}: sustained ingest for {seconds:.0f} s from {CLIENTS} DoPut clients")
        watcher = threading.Thread(target=monitor, daemon=True)
        start = time.perf_counter()
        watcher.start()
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        try:
            h.in_threads(CLIENTS, client, name="bench-client")
        finally:
            stop.set()
            timer.cancel()
            watcher.join()
        ingest_s = time.perf_counter() - start
        for p in puts:
            p.close()
        drain_start = time.perf_counter()
        _action(server.flight_url, "flush", DEMO_STREAM)
        drain_s = time.perf_counter() - drain_start
        info = _describe(server.flight_url, DEMO_STREAM)
        peak_rss = h.peak_rss_bytes(server.pid)
    acked_rows = sum(a for client_acks in acks for _, a in client_acks)
    if info["rows"] != acked_rows or info["buffered_rows"]:
        raise RuntimeError(
            f"after the drain the stream says {info}, {acked_rows:,} rows were acked"
        )
    window = min(seconds, ingest_s) / WINDOWS
    per_window = [0] * WINDOWS
    for client_acks in acks:
        for t, a in client_acks:
            i = int((t - start) / window)
            if i < WINDOWS:
                per_window[i] += a
    window_rates = [r / window for r in per_window]
    arrowlog_record = h.emit(
        {
            **common,
            "case": "sustained",
            "variant": "Flight DoPut",
            "clients": CLIENTS,
            "seconds": seconds,
            "stopped_early_s": stopped_early[0] if stopped_early else None,
            "rss_limit_bytes": SUSTAINED_RSS_LIMIT,
            "rows_acked": acked_rows,
            "ingest_s": ingest_s,
            "drain_s": drain_s,
            "rows_per_s": acked_rows / (ingest_s + drain_s),
            "window_s": window,
            "window_rows_per_s": window_rates,
            "max_buffered_rows": max((s["buffered_rows"] for s in samples), default=0),
            "segments": info["segments"],
            "server_peak_rss_bytes": peak_rss,
            "samples": samples,
        },
        out,
    )
    shutil.rmtree(scratch / "sustained-data", ignore_errors=True)
    table = pa.Table.from_batches(batches)  # the rows the clients cycled over
    path = scratch / "raw.parquet"

    def write(_: None) -> None:
        pq.write_table(table, path, compression="zstd")
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    h.progress(f"{BENCH}: raw pyarrow.parquet zstd write of {table.num_rows:,} rows, {reps} reps")
    stats = h.repeat(write, reps)
    raw_record = h.emit(
        {
            **common,
            "case": "sustained",
            "variant": "raw pyarrow.parquet zstd",
            "rows": table.num_rows,
            "file_bytes": path.stat().st_size,
            "rows_per_s": table.num_rows / stats.median,
            **stats.to_dict(),
        },
        out,
    )
    path.unlink()
    return [arrowlog_record, raw_record]


def freshness(
    table: pa.Table, trials: int, scratch: Path, common: dict[str, Any], out: Path
) -> list[dict]:
    stream = "freshness"
    table = table.slice(0, FRESHNESS_ROWS * 100).combine_chunks()
    lags: list[float] = []
    query_ms: list[float] = []
    polls: list[int] = []
    with h.serve(scratch / "fresh-data", scratch / "fresh-server") as server:
        put = _DoPut(server.flight_url, stream, DEMO_SCHEMA)
        conn = flightsql.connect(server.flight_url, autocommit=True)
        cur = conn.cursor()
        expected = 0
        try:
            h.progress(f"{BENCH}: freshness, {trials} trials of ack -> SELECT count(*)")
            for i in range(trials + 1):
                first = i * FRESHNESS_ROWS % max(1, table.num_rows - FRESHNESS_ROWS)
                batch = table.slice(first, FRESHNESS_ROWS).to_batches()[0]
                expected += put.send(batch)
                acked = time.perf_counter()
                seen, tries = 0, 0
                while seen < expected:
                    cur.execute(f"SELECT count(*) AS n FROM {stream}")
                    seen = cur.fetchone()[0]
                    tries += 1
                    if tries == 1:
                        answered = time.perf_counter()
                    if tries > 10_000:
                        raise RuntimeError(
                            f"{expected} rows acked, {seen} visible after 10,000 polls"
                        )
                visible = time.perf_counter()
                if i:  # the first trial creates the stream
                    lags.append(0.0 if tries == 1 else (visible - acked) * 1e3)
                    query_ms.append((answered - acked) * 1e3)
                    polls.append(tries)
        finally:
            cur.close()
            conn.close()
            put.close()
    return [
        h.emit(
            {
                **common,
                "case": "freshness",
                "trials": trials,
                "batch_rows": FRESHNESS_ROWS,
                "max_lag_ms": max(lags),
                "median_lag_ms": statistics.median(lags),
                "visible_at_first_query": sum(1 for p in polls if p == 1),
                "query_ms_median": statistics.median(query_ms),
                "query_ms_min": min(query_ms),
                "query_ms_max": max(query_ms),
            },
            out,
        )
    ]


def run(
    rows: int,
    reps: int,
    seconds: float,
    cases: Sequence[str] = ALL_CASES,
    *,
    trials: int = FRESHNESS_TRIALS,
    seed: int = h.SEED,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
) -> list[dict[str, Any]]:
    root = h.CACHE_ROOT / "ingest-scratch"
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ingest-server-", dir=root))
    common = {"run_id": run_id, "bench": BENCH, "seed": seed, "data_dir": str(root)}
    table = h.dataset(rows, seed)
    burst_rows = min(rows, h.INGEST_ROWS)
    records: list[dict[str, Any]] = []
    try:
        if "burst" in cases:
            records += burst(table, burst_rows, reps, scratch, common, out)
        if "sustained" in cases:
            records += sustained(table, burst_rows, reps, seconds, scratch, common, out)
        if "freshness" in cases:
            records += freshness(table, trials, scratch, common, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return records


# -- the suite's rows --------------------------------------------------------------------------


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = [r for r in records if r.get("bench") == BENCH]
    rows = []
    burst_by = {r["variant"]: r for r in mine if r["case"] == "burst"}
    if burst_by:
        raw = burst_by["raw IPC + fsync"]
        reference = _suite.throughput(
            "raw pyarrow IPC write + fsync per batch, 4 threads", raw["rows"], raw, "rows/s"
        )
        for variant, path in (
            ("Flight DoPut", "Flight DoPut, 4 clients, 10k-row batches, ack after fsync"),
            ("adbc_ingest", "ADBC adbc_ingest, 4 clients, one call per 10k-row batch"),
        ):
            r = burst_by[variant]
            ratio = r["rows_per_s"] / raw["rows_per_s"]
            rows.append(
                _suite.row(
                    "ingest_burst" + ("" if variant == "Flight DoPut" else "_adbc"),
                    f"durable Arrow ingest burst ({variant}), {r['rows']:,} rows",
                    path,
                    _suite.throughput(f"arrowlog serve, {variant}", r["rows"], r, "rows/s"),
                    reference,
                    ratio=ratio,
                    ratio_of="arrowlog / reference rows/s (higher is better)",
                    target=">= 0.5",
                    met=ratio >= 0.5,
                    reps=r["reps"],
                    record=r,
                    details={"server_peak_rss_bytes": r["server_peak_rss_bytes"]},
                )
            )
    sus = {r["variant"]: r for r in mine if r["case"] == "sustained"}
    if sus:
        ours, raw = sus["Flight DoPut"], sus["raw pyarrow.parquet zstd"]
        ratio = ours["rows_per_s"] / raw["rows_per_s"]
        windows = ours["window_rows_per_s"]
        early = ours.get("stopped_early_s")
        stopped = (
            f"; STOPPED at {early:.0f} s: server RSS over {ours['rss_limit_bytes'] / 1e9:.0f} GB"
            if early
            else ""
        )
        rows.append(
            _suite.row(
                "sustained_ingest",
                f"sustained ingest, {ours['seconds']:.0f} s"
                + (f" (stopped at {early:.0f} s)" if early else ""),
                "Flight DoPut, 4 clients, flushes to Parquet in the background; "
                "rows acked / (run + final drain)",
                _suite.figure(
                    f"{ours['rows_acked']:,} rows acked in {ours['ingest_s']:.0f} s, then "
                    f"{ours['drain_s']:.1f} s to flush the backlog (at most "
                    f"{ours['max_buffered_rows']:,} rows buffered); acks per "
                    f"{ours['window_s']:.3g} s window {_suite.num(min(windows))} to "
                    f"{_suite.num(max(windows))} rows/s{stopped}",
                    "rows/s",
                    ours["rows_per_s"],
                ),
                _suite.throughput(
                    f"pyarrow.parquet.write_table zstd + fsync, {raw['rows']:,} rows",
                    raw["rows"],
                    raw,
                    "rows/s",
                ),
                ratio=ratio,
                ratio_of="arrowlog / reference rows/s (higher is better)",
                target=">= 0.7",
                met=ratio >= 0.7,
                reps=raw["reps"],
                record=ours,
                details={
                    k: ours[k]
                    for k in (
                        "ingest_s",
                        "drain_s",
                        "max_buffered_rows",
                        "segments",
                        "server_peak_rss_bytes",
                    )
                },
            )
        )
    fresh = [r for r in mine if r["case"] == "freshness"]
    if fresh:
        r = fresh[-1]
        rows.append(
            _suite.row(
                "freshness",
                "freshness: ack -> visible in SELECT count(*)",
                f"Flight DoPut of {r['batch_rows']:,} rows, then ADBC count(*) at once; "
                f"max over {r['trials']} trials",
                _suite.figure(
                    f"visible at the first query in {r['visible_at_first_query']}/{r['trials']} "
                    f"trials; the query took {r['query_ms_median']:.1f} ms",
                    "ms lag",
                    r["max_lag_ms"],
                ),
                None,
                ratio=None,
                ratio_of="",
                target="0 ms (read-your-writes)",
                met=r["max_lag_ms"] == 0,
                reps=r["trials"],
                record=r,
                details={k: r[k] for k in ("median_lag_ms", "query_ms_min", "query_ms_max")},
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS, help="the data set's rows")
    parser.add_argument("--reps", type=int, default=h.REPS, help="timed repetitions")
    parser.add_argument("--seconds", type=float, default=h.SECONDS, help="sustained phase")
    parser.add_argument("--trials", type=int, default=FRESHNESS_TRIALS, help="freshness trials")
    parser.add_argument("--cases", default=",".join(ALL_CASES), help="comma-separated")
    parser.add_argument("--seed", type=int, default=h.SEED)
    h.add_common_arguments(parser)
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(ALL_CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {', '.join(ALL_CASES)}")
    records = run(
        args.rows,
        args.reps,
        args.seconds,
        cases,
        trials=args.trials,
        seed=args.seed,
        out=args.out,
        run_id=args.run_id,
    )
    if not args.no_table:
        print(_suite.markdown(summarize(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
