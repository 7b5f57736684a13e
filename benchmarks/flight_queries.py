"""Question: how fast is the demo query set through a real Flight SQL client?

The demo data set of ``benchmarks.queries_embedded`` (``--rows``, cached) is served by
``python -m flight_server`` in a subprocess; each query of ``DEMO_QUERIES`` runs through the
ADBC Flight SQL driver (``cursor.execute`` + ``fetch_arrow_table``: prepare, plan, stream,
client-side Arrow), next to DuckDB in-process ``read_parquet`` on the same live files, in
the same run. Target: median ratio arrowlog-over-ADBC / DuckDB <= 1.0.

Run: ``python -m benchmarks.flight_queries [--rows N] [--reps N]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import duckdb

from arrowlog.demo import DEMO_QUERIES
from benchmarks import _harness as h
from benchmarks.flight_transfer import _start
from benchmarks.queries_embedded import check_agree, live_files, load, over_files

BENCH = "flight_queries"


def run(
    rows: int, reps: int, *, out: Path = h.RESULTS_PATH, run_id: str = h.RUN_ID
) -> list[dict[str, Any]]:
    data_dir, _ = load(rows)
    files = live_files(data_dir)
    con = duckdb.connect()
    logs = Path(tempfile.mkdtemp(prefix="flight-queries-", dir=h.CACHE_ROOT))
    server = _start(["-m", "flight_server", "--data-dir", str(data_dir), "--port", "0"], logs)
    records: list[dict[str, Any]] = []
    try:
        conn = flightsql.connect(server.url, autocommit=True)
        cursor = conn.cursor()

        def adbc(query: str) -> Any:
            cursor.execute(query)
            return cursor.fetch_arrow_table()

        for name, query in DEMO_QUERIES.items():
            h.progress(f"{BENCH}: {name}, {reps} reps x 2")
            raw = over_files(query, files)
            expected = con.sql(raw).to_arrow_table()
            check_agree(name, expected, adbc(query), "arrowlog over ADBC")
            ours = h.repeat(lambda _, q=query: adbc(q), reps)
            duck = h.repeat(lambda _, q=raw: con.sql(q).to_arrow_table(), reps)
            records.append(
                {
                    "bench": BENCH,
                    "run_id": run_id,
                    "rows": rows,
                    "query": name,
                    "arrowlog_adbc_ms": ours.median * 1e3,
                    "duckdb_read_parquet_ms": duck.median * 1e3,
                    "ratio": ours.median / duck.median,
                    "files": len(files),
                    "data_dir": str(h.CACHE_ROOT),
                }
            )
        cursor.close()
        conn.close()
    finally:
        server.stop()
    median = statistics.median(r["ratio"] for r in records)
    records.append(
        {"bench": BENCH, "run_id": run_id, "rows": rows, "query": "median", "ratio": median}
    )
    return [h.emit(r, out) for r in records]


def report(records: Sequence[dict[str, Any]]) -> str:
    rows = [r for r in records if r.get("bench") == BENCH and r["query"] != "median"]
    if not rows:
        return ""
    [summary] = [r for r in records if r.get("bench") == BENCH and r["query"] == "median"] or [
        {"ratio": None}
    ]
    return (
        f"### Queries over Flight SQL (ADBC driver), {rows[0]['rows']:,} rows\n\n"
        + h.markdown_table(rows, ["query", "arrowlog_adbc_ms", "duckdb_read_parquet_ms", "ratio"])
        + f"\n\n- median ratio arrowlog over ADBC / DuckDB in-process: **{summary['ratio']:.2f}** (target <= 1.0)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS)
    parser.add_argument("--reps", type=int, default=h.REPS)
    parser.add_argument("--out", type=Path, default=h.RESULTS_PATH)
    parser.add_argument("--run-id", default=h.RUN_ID, help=argparse.SUPPRESS)
    parser.add_argument("--no-table", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    records = run(args.rows, args.reps, out=args.out, run_id=args.run_id)
    if not args.no_table:
        print(report(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
