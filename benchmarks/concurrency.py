"""Question: with 8 clients at once, how many demo queries per second does arrowlog answer,
and how long does the slowest take, next to DuckDB running the same queries in 8 threads?

The reference data set (``queries_embedded.load``) is served by ``arrowlog serve``; each of
``CLIENTS`` threads holds its own ADBC Flight SQL connection and runs the query set
(``arrowlog.demo.DEMO_QUERIES``) ``--reps`` times, each thread starting at a different
query so that all queries run side by side. DuckDB does the same in this process: one
connection, a cursor per thread, ``read_parquet`` over the stream's live files. Reported:
queries per second over the whole run and the p50/p99 of single queries, for both. The
first answer of every query on every thread must agree with DuckDB's. No target yet: the
figures are reported beside the reference.

Run: ``python -m benchmarks.concurrency [--rows N] [--reps N]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import numpy as np
import pyarrow as pa

from arrowlog.demo import DEMO_QUERIES, DEMO_QUERIES_DUCKDB
from benchmarks import _harness as h
from benchmarks import _suite
from benchmarks.queries_embedded import ResultMismatch, check_agree, live_files, load, over_files

BENCH = "concurrency"
CLIENTS = 8


def _hammer(
    clients: int, reps: int, run_query: Callable[[int, str], pa.Table]
) -> tuple[float, list[float], list[tuple[str, pa.Table]]]:
    """Run the query set ``reps`` times on each of ``clients`` threads at once.

    Returns the wall time, every query's latency, and each thread's first answers.
    """
    names = list(DEMO_QUERIES)
    latencies: list[float] = []
    answers: list[tuple[str, pa.Table]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        try:
            start.wait()
            order = names[i % len(names) :] + names[: i % len(names)]
            for rep in range(reps):
                for name in order:
                    began = time.perf_counter()
                    table = run_query(i, name)
                    took = time.perf_counter() - began
                    with lock:
                        latencies.append(took)
                        if rep == 0:
                            answers.append((name, table))
        except BaseException as e:  # reported after the join, with the thread's error
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return wall, latencies, answers


def _figures(wall: float, latencies: list[float]) -> dict[str, float]:
    ms = np.array(latencies) * 1e3
    return {
        "queries": len(latencies),
        "wall_s": wall,
        "qps": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def run(
    rows: int,
    reps: int,
    *,
    seed: int = h.SEED,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
    clients: int = CLIENTS,
) -> list[dict[str, Any]]:
    data_dir, _ = load(rows, seed)
    files = live_files(data_dir)
    con = duckdb.connect()
    duck_sql = {
        name: over_files(DEMO_QUERIES_DUCKDB.get(name, q), files)
        for name, q in DEMO_QUERIES.items()
    }
    expected = {name: con.sql(q).to_arrow_table() for name, q in duck_sql.items()}
    logs = Path(tempfile.mkdtemp(prefix="concurrency-", dir=h.CACHE_ROOT))
    with h.serve(data_dir, logs, **h.READ_ONLY_SETTINGS) as server:
        conns = [flightsql.connect(server.flight_url, autocommit=True) for _ in range(clients)]
        cursors = [c.cursor() for c in conns]
        try:

            def arrowlog_query(i: int, name: str) -> pa.Table:
                cursors[i].execute(DEMO_QUERIES[name])
                return cursors[i].fetch_arrow_table()

            for name in DEMO_QUERIES:  # one warm-up of each query, as the other cases do
                arrowlog_query(0, name)
            h.progress(f"{BENCH}: {clients} ADBC clients x {reps} query sets")
            ours = _hammer(clients, reps, arrowlog_query)
        finally:
            for c in cursors:
                c.close()
            for c in conns:
                c.close()
    duck_cursors = [con.cursor() for _ in range(clients)]
    h.progress(f"{BENCH}: DuckDB, {clients} threads x {reps} query sets")
    theirs = _hammer(
        clients, reps, lambda i, name: duck_cursors[i].sql(duck_sql[name]).to_arrow_table()
    )
    for engine, (_, _, answers) in (("arrowlog_adbc", ours), ("duckdb_threads", theirs)):
        for name, table in answers:
            check_agree(name, expected[name], table, engine)
    con.close()
    record = {
        "run_id": run_id,
        "bench": BENCH,
        "case": "concurrency",
        "rows": rows,
        "seed": seed,
        "files": len(files),
        "data_dir": str(data_dir),
        "clients": clients,
        "reps": reps,
        "arrowlog_adbc": _figures(ours[0], ours[1]),
        "duckdb_threads": _figures(theirs[0], theirs[1]),
    }
    record["ratio_qps"] = record["arrowlog_adbc"]["qps"] / record["duckdb_threads"]["qps"]
    return [h.emit(record, out)]


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = [r for r in records if r.get("bench") == BENCH and r["case"] == "concurrency"]
    if not mine:
        return []
    r = mine[-1]
    ours, duck = r["arrowlog_adbc"], r["duckdb_threads"]

    def fig(what: str, f: dict[str, float]) -> dict[str, Any]:
        text = f"{what}; p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms per query"
        return _suite.figure(text, "queries/s", f["qps"])

    return [
        _suite.row(
            "concurrency",
            f"{r['clients']} clients running the query set at once, {r['rows']:,} rows",
            "ADBC against arrowlog serve, one connection per client",
            fig(f"{ours['queries']} queries in {ours['wall_s']:.1f} s", ours),
            fig(f"DuckDB read_parquet in-process, {r['clients']} threads", duck),
            ratio=r["ratio_qps"],
            ratio_of="arrowlog / reference queries per second (higher is better)",
            target="—",
            met=None,
            reps=r["reps"],
            record=r,
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.concurrency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS)
    parser.add_argument("--reps", type=int, default=h.REPS, help="query sets per client")
    parser.add_argument("--seed", type=int, default=h.SEED)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    h.add_common_arguments(parser)
    args = parser.parse_args(argv)
    try:
        records = run(
            args.rows,
            args.reps,
            seed=args.seed,
            out=args.out,
            run_id=args.run_id,
            clients=args.clients,
        )
    except ResultMismatch as e:
        print(f"RESULTS DISAGREE: {e}", file=sys.stderr)
        return 2
    if not args.no_table:
        print(_suite.markdown(summarize(records)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
