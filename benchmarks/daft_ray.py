"""Question: when does Daft on Ray beat single-node DataFusion on a stream's Delta table?

``--rows`` demo records (10M by default) are loaded once into an arrowlog data directory
cached under ``CACHE_ROOT`` (appends, ``flush``, ``compact``; reused while rows, seed and
arrowlog version match). Then every query of ``arrowlog.demo.DEMO_QUERIES``, plus an
``overhead`` query whose ``_offset`` filter prunes every file, runs two ways over the same files:

- ``datafusion``: ``log.sql(q).to_arrow()``, arrowlog's default engine, in this process;
- ``daft_ray``: ``arrowlog.distributed.daft_sql(q, {stream: table_uri})``, Daft's Ray
  runner on a Ray started in this process (127.0.0.2, ``--cpus`` CPUs, 1.5 GB object
  store) or on ``--address``.

Each is the median of ``--reps`` after one warm-up (page cache warm, Ray workers and
Daft's actors already up); the Ray start and Daft's first (cold) query are reported apart.
Results must agree (sorted rows; floats to 1e-6 relative, Daft's exact percentile
interpolating a hair away from ``quantile_cont``) or the run fails.

The crossover: a query costs Daft-on-Ray a fixed ``c0`` (planning, scheduling the plan on
Ray actors, moving results through the object store: the ``overhead`` query's time) plus
scan-and-compute work that spreads over nodes. On ``k`` machines like this one,
``T_ray(k) ~ c0 + (T_ray(1) - c0) / k``; it beats ``T_df`` once
``k > (T_ray(1) - c0) / (T_df - c0)``, and never while ``T_df <= c0`` (data too small to
amortise the fixed cost). The report prints both per query, measured, not assumed.

Run: ``python -m benchmarks.daft_ray [--rows N] [--reps N] [--cpus N] [--address HOST:PORT]``
Needs the distributed extra: ``pip install 'arrowlog[distributed]'``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

import arrowlog
from arrowlog.demo import DEMO_QUERIES, DEMO_STREAM
from benchmarks import _harness as h

BENCH = "daft_ray"
REL_TOL = 1e-6
QUERIES: dict[str, str] = {
    **DEMO_QUERIES,
    # Pruned by file statistics in both engines: what a query costs before any work. (Not
    # a time filter: Daft 0.7 does not prune Delta files by the timestamp column's stats.)
    "overhead": "SELECT count(*) AS n FROM http_logs WHERE _offset < 0",
}


class ResultMismatch(AssertionError):
    """Daft-on-Ray and DataFusion returned different answers to the same query."""


def load(rows: int, seed: int = h.SEED, *, cache_root: Path = h.CACHE_ROOT) -> tuple[Path, dict]:
    """The query benchmarks' cached data dir of ``rows`` demo records (built once)."""
    from benchmarks.queries_embedded import load as load_demo

    return load_demo(rows, seed, cache_root=cache_root)


def _rows(table: pa.Table) -> list[tuple]:
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return sorted(rows, key=lambda row: tuple((v is None, v) for v in row))


def check_agree(name: str, want: pa.Table, got: pa.Table) -> None:
    if got.column_names != want.column_names:
        raise ResultMismatch(f"{name}: columns {got.column_names} != {want.column_names}")
    a, b = _rows(got), _rows(want)
    if len(a) != len(b):
        raise ResultMismatch(f"{name}: {len(a)} rows != {len(b)}")
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            same = (
                math.isclose(u, v, rel_tol=REL_TOL, abs_tol=1e-9)
                if isinstance(u, float) and isinstance(v, float)
                else u == v
            )
            if not same:
                raise ResultMismatch(f"{name}: {x} != {y}")


def run(
    rows: int,
    reps: int,
    *,
    seed: int = h.SEED,
    cpus: int = 2,
    address: str | None = None,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
) -> list[dict[str, Any]]:
    from arrowlog import distributed

    data_dir, load_meta = load(rows, seed)
    records: list[dict[str, Any]] = []
    with arrowlog.open(data_dir) as log:
        tables = {DEMO_STREAM: log.storage.table_uri(DEMO_STREAM)}
        start = time.perf_counter()
        if address is None:
            distributed.start_local_ray(num_cpus=cpus, object_store_memory=1_500_000_000)
        ray_address = distributed.connect_ray(address)
        ray_start_s = time.perf_counter() - start
        h.progress(f"Ray at {ray_address} in {ray_start_s:.1f} s")
        try:
            start = time.perf_counter()
            distributed.daft_sql(QUERIES["overhead"], tables)
            cold_s = time.perf_counter() - start
            h.progress(f"Daft's first query (actors starting) took {cold_s:.1f} s")
            for name, query in QUERIES.items():
                df = h.repeat(lambda _, q=query: log.sql(q).to_arrow(), reps)
                ray = h.repeat(lambda _, q=query: distributed.daft_sql(q, tables), reps)
                check_agree(name, df.results[-1], ray.results[-1])
                h.progress(f"{name}: datafusion {df.median:.3f} s, daft-ray {ray.median:.3f} s")
                records.append(
                    {
                        "bench": BENCH,
                        "query": name,
                        "rows": rows,
                        "datafusion": {k: v for k, v in df.to_dict().items()},
                        "daft_ray": {k: v for k, v in ray.to_dict().items()},
                    }
                )
        finally:
            if address is None:
                distributed.shutdown_ray()
    c0 = next(r["daft_ray"]["median_s"] for r in records if r["query"] == "overhead")
    for r in records:
        t_df, t_ray = r["datafusion"]["median_s"], r["daft_ray"]["median_s"]
        r["ratio_ray_over_df"] = t_ray / t_df
        # Machines like this one that Ray needs to match DataFusion (None: never, at this size).
        r["crossover_nodes"] = (t_ray - c0) / (t_df - c0) if t_df > c0 else None
    summary = {
        "bench": BENCH,
        "query": "_summary",
        "rows": rows,
        "ray_address": ray_address,
        "local_ray": address is None,
        "cpus": cpus,
        "ray_start_s": ray_start_s,
        "daft_cold_first_query_s": cold_s,
        "fixed_cost_c0_s": c0,
        "median_ratio": statistics.median(
            r["ratio_ray_over_df"] for r in records if r["query"] != "overhead"
        ),
        "load": load_meta,
        "data_dir": str(data_dir),
    }
    for record in [*records, summary]:
        h.emit({**record, "run_id": run_id}, out)
    return [*records, summary]


def report(records: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in records:
        if r["query"] == "_summary":
            continue
        nodes = r["crossover_nodes"]
        rows.append(
            {
                "query": r["query"],
                "DataFusion s": r["datafusion"]["median_s"],
                "Daft-on-Ray s": r["daft_ray"]["median_s"],
                "Ray / DF": r["ratio_ray_over_df"],
                "nodes to break even": "never" if nodes is None else f"{nodes:.1f}",
            }
        )
    s = records[-1]
    return (
        h.markdown_table(rows)
        + f"\n\n{s['rows']:,} rows; Ray start {s['ray_start_s']:.1f} s, Daft's first query "
        f"{s['daft_cold_first_query_s']:.1f} s, fixed cost per query c0 = "
        f"{s['fixed_cost_c0_s']:.3f} s; median Ray/DataFusion {s['median_ratio']:.1f}x"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.daft_ray", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS, help="rows in the data set")
    parser.add_argument("--reps", type=int, default=h.REPS, help="timed repetitions per engine")
    parser.add_argument("--seed", type=int, default=h.SEED)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--address", help="an existing Ray cluster (host:port) instead")
    parser.add_argument("--out", type=Path, default=h.RESULTS_PATH, help="JSON-lines output")
    parser.add_argument("--run-id", default=h.RUN_ID, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        records = run(
            args.rows,
            args.reps,
            seed=args.seed,
            cpus=args.cpus,
            address=args.address,
            out=args.out,
            run_id=args.run_id,
        )
    except ResultMismatch as e:
        print(f"RESULTS DISAGREE: {e}", file=sys.stderr)
        return 2
    print(report(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
