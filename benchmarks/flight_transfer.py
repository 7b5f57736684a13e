"""Question: how fast does ``SELECT *`` stream out of arrowlog's Flight server, next to a
bare pyarrow Flight server sending the same rows from memory? And how much memory does the
server need while it streams?

Both servers run as subprocesses on this machine, in the same run, and are read by the same
client loop (``do_get``, then every batch is received and counted, nothing converted):

- ``arrowlog``: ``python -m flight_server`` over a data directory holding ``--rows`` demo
  records (loaded once and cached under ``CACHE_ROOT/flight``, compacted), ticket
  ``SELECT * FROM http_logs``: DataFusion scans the Parquet segments and the server
  streams its batches, coalesced to ``--batch-rows`` rows per Flight message. ``SELECT *``
  includes the two system columns (``_offset``, ``_ingested_at``).
- ``raw pyarrow``: a minimal ``FlightServerBase`` whose ``do_get`` returns
  ``RecordBatchStream`` over the demo table itself (the harness's memory-mapped IPC file,
  100k-row batches, no system columns): the ceiling for Flight in Python on this machine.

Throughput is the Arrow bytes received (``RecordBatch.nbytes``) per second, median of
``--reps`` after one warm-up; the headline is arrowlog GB/s / raw GB/s, target >= 0.8.
Server memory: ``VmHWM`` of the server process (peak RSS), reset through
``/proc/PID/clear_refs`` before each variant's transfers when the kernel allows, plus
``VmRSS`` sampled every 20 ms while the stream runs. A bounded server stays far below the
result's size.

Run: ``python -m benchmarks.flight_transfer [--rows N] [--reps N] [--batch-rows 65536,1]``
(``--batch-rows 1`` sends DataFusion's own 8192-row batches unchanged).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from arrowlog.demo import DEMO_STREAM
from benchmarks import _harness as h

BENCH = "flight_transfer"
TARGET_RATIO = 0.8
READY = re.compile(r"flight listening on (grpc://\S+)")
REPO = Path(__file__).resolve().parent.parent
FLIGHT_CACHE = h.CACHE_ROOT / "flight"  # our own copy: another benchmark may hold the shared one


# -- the servers -------------------------------------------------------------------------------


class _RawServer(flight.FlightServerBase):
    """The baseline: any ticket streams the in-memory demo table."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        super().__init__("grpc://127.0.0.1:0")

    def do_get(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> flight.RecordBatchStream:
        return flight.RecordBatchStream(self._table)


def _serve_raw(rows: int, seed: int) -> int:
    table = h.dataset(rows, seed)
    server = _RawServer(table)
    print(f"flight listening on grpc://127.0.0.1:{server.port}", flush=True)
    server.serve()  # returns on SIGTERM/SIGINT
    return 0


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    url: str
    log_dir: Path

    def output(self) -> str:
        return "\n".join(
            (self.log_dir / name).read_text(errors="replace") for name in ("stdout", "stderr")
        )

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _start(args: Sequence[str], log_dir: Path, timeout: float = 120.0) -> _Process:
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "stdout").open("wb") as out, (log_dir / "stderr").open("wb") as err:
        popen = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, cwd=REPO)
    deadline = time.monotonic() + timeout
    while True:
        match = READY.search((log_dir / "stdout").read_text(errors="replace"))
        if match:
            return _Process(popen, match[1], log_dir)
        try:
            code = popen.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None or time.monotonic() > deadline:
            process = _Process(popen, "", log_dir)
            process.stop()
            raise RuntimeError(f"{' '.join(args)} did not start:\n{process.output()}")


# -- memory ------------------------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, same user); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _RssSampler:
    """Samples a process's VmRSS every 20 ms until stopped; keeps the maximum."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.max_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.max_kb = max(self.max_kb, _status_kb(self.pid, "VmRSS"))

    def __enter__(self) -> _RssSampler:
        self.max_kb = _status_kb(self.pid, "VmRSS")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the transfer ------------------------------------------------------------------------------


def _transfer(url: str, ticket: bytes) -> dict[str, int]:
    client = flight.connect(url)
    try:
        reader = client.do_get(flight.Ticket(ticket))
        rows = nbytes = batches = largest = 0
        for chunk in reader:
            batch = chunk.data
            rows += batch.num_rows
            nbytes += batch.nbytes
            batches += 1
            largest = max(largest, batch.num_rows)
    finally:
        client.close()
    return {"rows": rows, "bytes": nbytes, "batches": batches, "largest_batch_rows": largest}


def _measure(process: _Process, ticket: bytes, reps: int) -> dict[str, Any]:
    pid = process.popen.pid
    rss_idle_kb = _status_kb(pid, "VmRSS")
    reset = _reset_peak(pid)
    with _RssSampler(pid) as sampler:
        stats = h.repeat(lambda _: _transfer(process.url, ticket), reps, warmup=1)
    last = stats.results[-1]
    gbps = last["bytes"] / stats.median / 1e9
    return {
        "gb_per_s": gbps,
        "rows_per_s": last["rows"] / stats.median,
        **last,
        "server_rss_idle_bytes": rss_idle_kb * 1024,
        "server_rss_max_sampled_bytes": sampler.max_kb * 1024,
        "server_peak_rss_bytes": _status_kb(pid, "VmHWM") * 1024,
        "peak_rss_reset_before_stream": reset,
        "stats": stats.to_dict(),
    }


def run(
    rows: int,
    reps: int,
    batch_rows: Sequence[int],
    *,
    seed: int = h.SEED,
    out: Path = h.RESULTS_PATH,
) -> dict[str, Any]:
    from benchmarks.queries_embedded import load

    data_dir, load_meta = load(rows, seed, cache_root=FLIGHT_CACHE)
    h.dataset(rows, seed)  # build the shared IPC cache before the raw server maps it
    logs = Path(h.CACHE_ROOT) / "flight-logs"
    raw = _start(
        [
            "-m",
            "benchmarks.flight_transfer",
            "--serve-raw",
            "--rows",
            str(rows),
            "--seed",
            str(seed),
        ],
        logs / "raw",
    )
    variants: list[dict[str, Any]] = []
    try:
        h.progress(f"{BENCH}: raw pyarrow server, {reps} reps of {rows:,} rows")
        baseline = _measure(raw, b"all", reps)
        for size in batch_rows:
            server = _start(
                [
                    "-m",
                    "flight_server",
                    "--data-dir",
                    str(data_dir),
                    "--port",
                    "0",
                    "--batch-rows",
                    str(size),
                    "--log-level",
                    "WARNING",
                ],
                logs / f"arrowlog-{size}",
            )
            try:
                h.progress(f"{BENCH}: arrowlog server, batch_rows={size}, {reps} reps")
                result = _measure(server, f"SELECT * FROM {DEMO_STREAM}".encode(), reps)
            finally:
                server.stop()
            if result["rows"] != rows:
                raise RuntimeError(f"arrowlog streamed {result['rows']} rows, expected {rows}")
            variants.append(
                {
                    "batch_rows": size,
                    **result,
                    "ratio_vs_raw": result["gb_per_s"] / baseline["gb_per_s"],
                }
            )
    finally:
        raw.stop()
    best = max(variants, key=lambda v: v["ratio_vs_raw"])
    return h.emit(
        {
            "bench": BENCH,
            "rows": rows,
            "seed": seed,
            "reps": reps,
            "data_dir": str(data_dir),
            "load": load_meta,
            "raw_pyarrow": baseline,
            "arrowlog": variants,
            "arrowlog_gb_per_s": best["gb_per_s"],
            "raw_gb_per_s": baseline["gb_per_s"],
            "ratio": best["ratio_vs_raw"],
            "best_batch_rows": best["batch_rows"],
            "arrowlog_server_peak_rss_bytes": best["server_peak_rss_bytes"],
            "target": f">= {TARGET_RATIO}",
            "target_met": best["ratio_vs_raw"] >= TARGET_RATIO,
        },
        out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.flight_transfer", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS, help="rows in the data set")
    parser.add_argument("--reps", type=int, default=3, help="timed transfers per server")
    parser.add_argument(
        "--batch-rows",
        default="65536",
        help="comma-separated rows per Flight message to try on the arrowlog server",
    )
    parser.add_argument("--seed", type=int, default=h.SEED)
    parser.add_argument("--out", type=Path, default=h.RESULTS_PATH, help="JSON-lines output")
    parser.add_argument("--serve-raw", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_raw:
        return _serve_raw(args.rows, args.seed)
    sizes = [int(s) for s in args.batch_rows.split(",") if s.strip()]
    record = run(args.rows, args.reps, sizes, seed=args.seed, out=args.out)
    print(json.dumps(record, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
