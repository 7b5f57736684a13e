"""Question: how fast does ``SELECT *`` stream out of ``arrowlog serve``, next to a bare
pyarrow Flight server sending the same table from memory? And how much memory does the
server need while it streams?

Both servers run as subprocesses on this machine, in the same run:

- ``arrowlog``: ``python -m arrowlog serve`` over the reference data set (loaded once and
  compacted, ``queries_embedded.load``), query ``SELECT * FROM http_logs`` (every column,
  the system columns ``_offset`` and ``_ingested_at`` included): DataFusion scans the
  Parquet files and the server streams the batches. Read two ways: a plain Flight
  ``DoGet`` with the SQL as ticket, and the ADBC Flight SQL driver (``cursor.execute``,
  then ``fetch_record_batch`` read batch by batch).
- ``raw pyarrow``: a minimal ``FlightServerBase`` whose ``do_get`` returns a
  ``RecordBatchStream`` over the very same table held in memory (the stream's live
  Parquet files read whole at start-up): the ceiling for Flight in Python here. It also
  answers ``GetFlightInfo`` for a Flight SQL statement with that table, so the ADBC
  client can read it too: the ceiling for ADBC, whose client alone spends about twice
  the CPU of pyarrow's on the same bytes (a detail of the ADBC row; the row's ratio is
  against the pyarrow client, as for DoGet).

Clients receive every batch and count rows and Arrow bytes (``RecordBatch.nbytes``),
converting nothing. The three paths take turns (bare, DoGet, ADBC, bare, ...), so a
neighbour's load weighs on all alike. Throughput: bytes / second, median of ``--reps``
after one warm-up round. Server memory: ``VmHWM`` (peak RSS) of the ``arrowlog serve``
process, reset through ``/proc/PID/clear_refs`` before each transfer and read after it;
the highest is compared with the size of the result. A bounded server stays far below it.
Its query workers' peak is recorded beside it (a detail of the memory row): a result
that is only stored columns is read in the server itself, any other in a worker.

Run: ``python -m benchmarks.flight_transfer [--rows N] [--reps N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq

from arrowlog import testing
from arrowlog.demo import DEMO_STREAM
from benchmarks import _harness as h
from benchmarks import _suite

BENCH = "flight_transfer"
TARGET_RATIO = 0.8
MEMORY_TARGET_BYTES = 500_000_000  # 0.5 GB
QUERY = f"SELECT * FROM {DEMO_STREAM}"


# -- the reference server ----------------------------------------------------------------------


class _RawServer(flight.FlightServerBase):
    """The baseline: any ticket streams the in-memory table; so does any SQL statement
    (``GetFlightInfo``, all ADBC needs besides ``DoGet``)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        super().__init__("grpc://127.0.0.1:0")

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        if b"CommandStatementQuery" not in (descriptor.command or b""):
            # e.g. ADBC's GetSqlInfo at connect: refused, as the driver tolerates.
            raise flight.FlightUnimplementedError("the bare server answers statements only")
        endpoint = flight.FlightEndpoint(b"table", [])
        return flight.FlightInfo(self._table.schema, descriptor, [endpoint], -1, -1)

    def do_get(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> flight.RecordBatchStream:
        return flight.RecordBatchStream(self._table)


def _serve_raw(data_dir: Path) -> int:
    from benchmarks.queries_embedded import live_files

    table = pq.read_table(live_files(data_dir), partitioning=None)  # no hive "day" column
    server = _RawServer(table)
    print(f"flight listening on grpc://127.0.0.1:{server.port}", flush=True)
    server.serve()  # returns on SIGTERM/SIGINT
    return 0


# -- the clients -------------------------------------------------------------------------------


def _count(batches: Any) -> dict[str, int]:
    rows = nbytes = count = 0
    for batch in batches:
        rows += batch.num_rows
        nbytes += batch.nbytes
        count += 1
    return {"rows": rows, "bytes": nbytes, "batches": count}


def doget(url: str) -> dict[str, int]:
    """``SELECT *`` as a Flight ticket; every batch received and counted."""
    with flight.connect(url) as client:
        reader = client.do_get(flight.Ticket(QUERY.encode()))
        return _count(chunk.data for chunk in reader)


def adbc(url: str) -> dict[str, int]:
    """``SELECT *`` through the ADBC Flight SQL driver, read batch by batch."""
    with flightsql.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(QUERY)
        return _count(cur.fetch_record_batch())


def _measure(
    servers: dict[str, tuple[int, str]],
    clients: dict[str, Callable[[str], dict[str, int]]],
    reps: int,
) -> dict[str, dict[str, Any]]:
    """Every path ``reps`` times after one warm-up, taking turns; peak RSS per transfer.

    ``servers``: each path's server as (PID, Flight URL). The server's peak RSS is reset
    before each transfer and read after it, so each path's peak is its own even though the
    paths take turns.
    """
    idle = {name: h.rss_bytes(servers[name][0]) for name in clients}
    peaks: dict[str, list[int]] = {name: [] for name in clients}
    worker_peaks: dict[str, list[int]] = {name: [] for name in clients}
    cpu: dict[str, list[float]] = {name: [] for name in clients}
    started: dict[int, float] = {}
    resets: dict[str, bool] = {}

    def before(name: str) -> None:
        pid = servers[name][0]
        resets[name] = h.reset_peak_rss(pid)
        for child in h.child_pids(pid):
            h.reset_peak_rss(child)
        started.clear()
        started.update({p: h.cpu_seconds(p) for p in (pid, *h.child_pids(pid))})

    def after(name: str, _: object) -> None:
        pid = servers[name][0]
        peaks[name].append(h.peak_rss_bytes(pid))
        worker_peaks[name].append(max([h.peak_rss_bytes(c) for c in h.child_pids(pid)] or [0]))
        # Server and workers together; a worker started meanwhile counts from 0.
        procs = {pid, *started, *h.child_pids(pid)}
        cpu[name].append(sum(max(0.0, h.cpu_seconds(p) - started.get(p, 0.0)) for p in procs))

    stats = h.interleaved(
        {name: lambda fn=fn, name=name: fn(servers[name][1]) for name, fn in clients.items()},
        reps,
        before=before,
        after=after,
    )
    results = {}
    for name, s in stats.items():
        last = s.results[-1]
        results[name] = {
            **last,
            "gb_per_s": last["bytes"] / s.median / 1e9,
            "rows_per_s": last["rows"] / s.median,
            "server_rss_idle_bytes": idle[name],
            "server_peak_rss_bytes": max(peaks[name]),
            "server_peak_rss_per_transfer_bytes": peaks[name],
            "workers_peak_rss_bytes": max(worker_peaks[name]),
            # CPU seconds of the server and its workers per transfer (the warm-up first):
            # steadier than the time on a shared machine.
            "server_cpu_s_per_transfer": cpu[name],
            "server_cpu_s_median": statistics.median(cpu[name][s.warmup :]),
            "peak_rss_reset_before_stream": resets[name],
            **s.to_dict(),
        }
    return results


def run(
    rows: int,
    reps: int,
    *,
    seed: int = h.SEED,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
) -> list[dict[str, Any]]:
    from benchmarks.queries_embedded import load

    data_dir, load_meta = load(rows, seed)
    logs = Path(tempfile.mkdtemp(prefix="flight-transfer-", dir=h.CACHE_ROOT))
    common = {
        "run_id": run_id,
        "bench": BENCH,
        "rows": rows,
        "seed": seed,
        "data_dir": str(data_dir),
    }
    raw_args = ["-m", "benchmarks.flight_transfer", "--serve-raw", "--data-dir", str(data_dir)]
    raw = testing.start_process(
        raw_args, testing.FLIGHT_READY, log_dir=logs / "raw", env=h.CHILD_ENV, timeout=180
    )
    try:
        with h.serve(data_dir, logs / "arrowlog", **h.READ_ONLY_SETTINGS) as server:
            h.progress(f"{BENCH}: bare pyarrow, DoGet and ADBC taking turns, {reps} reps")
            arrowlog_serve = (server.pid, server.flight_url)
            results = _measure(
                {
                    "raw pyarrow Flight": (raw.pid, raw.match["url"]),
                    "raw pyarrow Flight, ADBC": (raw.pid, raw.match["url"]),
                    "Flight DoGet": arrowlog_serve,
                    "ADBC": arrowlog_serve,
                },
                {
                    "raw pyarrow Flight": doget,
                    "raw pyarrow Flight, ADBC": adbc,
                    "Flight DoGet": doget,
                    "ADBC": adbc,
                },
                reps,
            )
    finally:
        raw.stop(timeout=30)
    for name, result in results.items():
        if result["rows"] != rows:
            raise RuntimeError(f"{name} streamed {result['rows']:,} rows, expected {rows:,}")
    return [
        h.emit({**common, "case": "transfer", "variant": name, "load": load_meta, **result}, out)
        for name, result in results.items()
    ]


# -- the suite's rows --------------------------------------------------------------------------


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {r["variant"]: r for r in records if r.get("bench") == BENCH}
    if not by:
        return []
    raw = by["raw pyarrow Flight"]
    reference = _suite.throughput(
        f"bare pyarrow Flight server, same table in memory ({raw['bytes'] / 1e9:.2f} GB)",
        raw["bytes"] / 1e9,
        raw,
        "GB/s",
    )
    rows = []
    for variant in ("Flight DoGet", "ADBC"):
        r = by[variant]
        ratio = r["gb_per_s"] / raw["gb_per_s"]
        what = f"{r['bytes'] / 1e9:.2f} GB in {r['batches']:,} batches"
        if "server_cpu_s_median" in r:
            what += (
                f"; server CPU {r['server_cpu_s_median'] * 1e3:.0f} ms per transfer "
                f"(bare: {raw['server_cpu_s_median'] * 1e3:.0f} ms)"
            )
        details = None
        bare_adbc = by.get("raw pyarrow Flight, ADBC")
        if variant == "ADBC" and bare_adbc is not None:
            details = {
                "bare_server_adbc_gb_per_s": bare_adbc["gb_per_s"],
                "ratio_to_bare_server_adbc": r["gb_per_s"] / bare_adbc["gb_per_s"],
            }
            what += (
                f"; the bare server read through ADBC: {bare_adbc['gb_per_s']:.3g} GB/s "
                f"({details['ratio_to_bare_server_adbc']:.2f} of it)"
            )
        rows.append(
            _suite.row(
                "transfer_" + variant.split()[-1].lower(),
                f"result transfer, SELECT * of {r['rows']:,} rows ({variant})",
                f"arrowlog serve, {variant}",
                _suite.throughput(what, r["bytes"] / 1e9, r, "GB/s"),
                reference,
                ratio=ratio,
                ratio_of="arrowlog / reference GB/s (higher is better)",
                target=f">= {TARGET_RATIO}",
                met=ratio >= TARGET_RATIO,
                reps=r["reps"],
                record=r,
                details=details,
            )
        )
    variants = ("Flight DoGet", "ADBC")
    peak = max(by[v]["server_peak_rss_bytes"] for v in variants)
    result_bytes = by["Flight DoGet"]["bytes"]
    first = by["Flight DoGet"]
    rows.append(
        _suite.row(
            "server_memory",
            f"server memory while streaming the {first['rows']:,}-row result",
            "peak RSS (VmHWM) of arrowlog serve over the DoGet and ADBC transfers",
            _suite.figure(
                f"idle {first['server_rss_idle_bytes'] / 1e9:.2f} GB before streaming"
                + (
                    f"; its query workers' peak {workers / 1e9:.2f} GB"
                    if (workers := max(by[v].get("workers_peak_rss_bytes", 0) for v in variants))
                    else ""
                ),
                "GB peak RSS",
                peak / 1e9,
            ),
            _suite.figure("size of the result (Arrow bytes)", "GB", result_bytes / 1e9),
            ratio=peak / result_bytes,
            ratio_of="peak RSS / result size (lower is better)",
            target="< 0.5 GB",
            met=peak < MEMORY_TARGET_BYTES,
            reps=first["reps"] + first["warmup"],
            record=first,
            details={
                v: {
                    k: by[v][k]
                    for k in (
                        "server_rss_idle_bytes",
                        "server_peak_rss_per_transfer_bytes",
                        "server_peak_rss_bytes",
                        "workers_peak_rss_bytes",
                        "peak_rss_reset_before_stream",
                    )
                    if k in by[v]
                }
                for v in ("Flight DoGet", "ADBC")
            },
        )
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.flight_transfer", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS, help="rows in the data set")
    parser.add_argument("--reps", type=int, default=h.REPS, help="timed transfers per path")
    parser.add_argument("--seed", type=int, default=h.SEED)
    h.add_common_arguments(parser)
    parser.add_argument("--serve-raw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_raw:
        return _serve_raw(args.data_dir)
    records = run(args.rows, args.reps, seed=args.seed, out=args.out, run_id=args.run_id)
    if not args.no_table:
        print(_suite.markdown(summarize(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
