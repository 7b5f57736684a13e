"""Question: how fast is embedded arrowlog SQL next to DuckDB on the very same Parquet files?

``--rows`` demo records are loaded once into an arrowlog data directory cached under
``CACHE_ROOT`` (appends of ``LOAD_BATCH_ROWS``, ``flush``, then ``compact``; reused while
rows, seed and arrowlog version match). Then every query of ``arrowlog.demo.DEMO_QUERIES``
runs four ways:

- ``arrowlog DataFusion``: ``log.sql(q).to_arrow()``, arrowlog's default engine, planning
  and the stream snapshot included, as a user pays them;
- ``DuckDB read_parquet``: in-process DuckDB over the stream's live files (from the Delta
  log, ``DeltaTable.file_uris()``) with the table name replaced by
  ``read_parquet([...files...])``; listing the files is not timed, the query is;
- ``arrowlog DuckDB``: ``log.sql(q, engine="duckdb").to_arrow()``;
- ``DataFusion native``: DataFusion's own Parquet scan of the same files, without arrowlog,
  which tells the engine's share of a gap from arrowlog's integration.

Each is the median of ``--reps`` after one warm-up, so all of them read from a warm page
cache. The headline is the ratio arrowlog-DataFusion / DuckDB-read_parquet per query and
its median over the queries; the target is <= 1.0. All results must agree (row counts,
values; approximate percentiles by rank) or the run fails.

Run: ``python -m benchmarks.queries_embedded [--rows N] [--reps N]``
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionConfig, SessionContext
from deltalake import DeltaTable

import arrowlog
from arrowlog.demo import DEMO_QUERIES, DEMO_QUERIES_DUCKDB, DEMO_STREAM
from benchmarks import _harness as h

BENCH = "queries_embedded"
TARGET_RATIO = 1.0
REFERENCE = "arrowlog_datafusion"  # the answer the other engines must match
FLOAT_TOLERANCE = 1e-9  # sums and averages may differ only by summation order


@dataclass(frozen=True)
class Quantile:
    """An approximate quantile in a result: checked by its rank in the data, not its value.

    Each engine has its own t-digest, and near the p99 of a heavy-tailed latency a tiny
    error in rank is a large one in value: on 200k rows the two engines put one service's
    p99 at 288 and 530 ms, both within 0.002 of rank 0.99. So each engine's estimate is
    checked against the data: the share of the group's rows at or below it must be ``q``
    within ``RANK_TOLERANCE``.
    """

    column: str
    q: float
    group_by: str


APPROX_COLUMNS = {("per_service_latency", "p99_ms"): Quantile("latency_ms", 0.99, "service")}
RANK_TOLERANCE = 0.005


class ResultMismatch(AssertionError):
    """Two engines returned different answers to the same query on the same data."""


class DataChanged(RuntimeError):
    """The stream's live files changed while the queries were being timed."""


# -- the data --------------------------------------------------------------------------------


def load(rows: int, seed: int = h.SEED, *, cache_root: Path = h.CACHE_ROOT) -> tuple[Path, dict]:
    """An arrowlog data dir holding ``rows`` demo records, built once and reused.

    The marker file is written only after the load closed cleanly, so a half-built
    directory is never mistaken for a finished one.
    """
    base = cache_root / f"{rows}-{seed}"
    data_dir, marker = base / "log", base / "log.json"
    want = {"rows": rows, "seed": seed, "arrowlog": arrowlog.__version__}
    if marker.exists():
        meta = json.loads(marker.read_text())
        if {k: meta.get(k) for k in want} == want:
            with arrowlog.open(data_dir) as log:
                try:
                    info = log.describe(DEMO_STREAM)
                except arrowlog.ArrowlogError:  # e.g. the directory was removed by hand
                    usable = False
                else:
                    usable = info.rows == rows and info.buffered_rows == 0
                if usable:
                    _settle(log)
            if usable:
                h.progress(f"reusing {data_dir} ({rows:,} rows, loaded in {meta['load_s']:.1f} s)")
                return data_dir, {**meta, "reused": True}
        h.progress(f"cached data dir {data_dir} does not match {want}: rebuilding")
    marker.unlink(missing_ok=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    table = h.dataset(rows, seed)
    h.progress(f"loading {rows:,} rows into {data_dir}")
    start = time.perf_counter()
    with arrowlog.open(data_dir) as log:
        for batch in table.combine_chunks().to_batches(max_chunksize=h.LOAD_BATCH_ROWS):
            log.append(DEMO_STREAM, batch)
        appended = time.perf_counter() - start
        log.flush()
        load_s = time.perf_counter() - start
        flushed_segments = log.describe(DEMO_STREAM).segments
        compact_s = _settle(log)
        segments = log.describe(DEMO_STREAM).segments
    meta = {
        **want,
        "load_s": load_s,
        "append_s": appended,
        "load_rows_per_s": rows / load_s,
        "segments_after_flush": flushed_segments,
        "compact_s": compact_s,
        "segments": segments,
    }
    marker.write_text(json.dumps(meta))
    h.progress(
        f"loaded in {load_s:.1f} s ({rows / load_s:,.0f} rows/s) into {flushed_segments} "
        f"segments; compacted to {segments} in {compact_s or 0:.1f} s"
    )
    return data_dir, {**meta, "reused": False}


def _settle(log: arrowlog.Log) -> float | None:
    """Compact now, so the files measured are the steady state, not a layout in flux.

    Left alone, background maintenance rewrites the segments ``compact_interval`` after the
    log opens: in the middle of the timings, on the same two cores, and under DuckDB's
    feet (which reads a file list taken up front). Returns seconds, or None when this
    arrowlog has no compaction.
    """
    compact = getattr(log, "compact", None)  # absent from arrowlog before compaction
    if compact is None:
        return None
    start = time.perf_counter()
    compact(DEMO_STREAM)
    return time.perf_counter() - start


def live_files(data_dir: Path) -> list[str]:
    """The stream's live Parquet files, from the Delta log (never a directory listing)."""
    uris = DeltaTable(str(data_dir / "streams" / DEMO_STREAM)).file_uris()
    return [u.removeprefix("file://") for u in uris]


def read_parquet(files: Sequence[str]) -> str:
    """A DuckDB table function reading exactly ``files``, with their own columns only."""
    listed = ", ".join(_sql_literal(f) for f in files)
    return f"read_parquet([{listed}], hive_partitioning = false)"


def over_files(query: str, files: Sequence[str]) -> str:
    """``query`` with the stream's table name replaced by a read_parquet of ``files``."""
    source = f"{read_parquet(files)} AS {DEMO_STREAM}"
    return re.sub(rf"\b{DEMO_STREAM}\b", lambda _: source, query)


# -- checking answers ------------------------------------------------------------------------


def _plain_rows(table: pa.Table) -> list[tuple]:
    """Rows as tuples of comparable values: instants as epoch µs, whatever their time zone."""
    columns = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.int64())
        columns.append(col.to_pylist())
    return list(zip(*columns, strict=True))


def check_agree(name: str, expected: pa.Table, actual: pa.Table, engine: str) -> None:
    """Raise ResultMismatch unless ``actual`` answers ``name`` as ``expected`` does.

    Approximate columns (``APPROX_COLUMNS``) are left to ``check_quantile_ranks``.
    """
    if expected.column_names != actual.column_names:
        raise ResultMismatch(
            f"{name}: {engine} returned columns {actual.column_names}, "
            f"arrowlog DataFusion {expected.column_names}"
        )
    if expected.num_rows != actual.num_rows:
        raise ResultMismatch(
            f"{name}: {engine} returned {actual.num_rows} rows, "
            f"arrowlog DataFusion {expected.num_rows}"
        )
    names = expected.column_names
    exact = [i for i, n in enumerate(names) if (name, n) not in APPROX_COLUMNS]

    # Sort on the exact columns: ORDER BY leaves ties in any order.
    def key(row: tuple) -> tuple:
        return tuple(
            (row[i] is None, round(row[i], 6) if isinstance(row[i], float) else row[i])
            for i in exact
        )

    left = sorted(_plain_rows(expected), key=key)
    right = sorted(_plain_rows(actual), key=key)
    for r, (a, b) in enumerate(zip(left, right, strict=True)):
        for i in exact:
            x, y = a[i], b[i]
            if isinstance(x, float) and isinstance(y, float):
                same = math.isclose(x, y, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
            else:
                same = x == y
            if not same:
                raise ResultMismatch(
                    f"{name}: row {r} column {names[i]!r}: arrowlog DataFusion has {x!r}, "
                    f"{engine} has {y!r}"
                )


def check_quantile_ranks(
    name: str, table: pa.Table, engine: str, con: duckdb.DuckDBPyConnection, files: Sequence[str]
) -> dict[str, float]:
    """Raise ResultMismatch unless every approximate quantile sits at its rank in the data.

    Returns the worst rank error per approximate column (for the record).
    """
    worst: dict[str, float] = {}
    for (query, column), spec in APPROX_COLUMNS.items():
        if query != name:
            continue
        groups = table.column(spec.group_by).to_pylist()
        values = table.column(column).to_pylist()
        pairs = ", ".join(
            "(" + _sql_literal(g) + ", " + repr(float(v)) + ")"
            for g, v in zip(groups, values, strict=True)
        )
        rank_sql = (
            f"SELECT e.g, avg((t.{spec.column} <= e.v)::DOUBLE) AS rank "
            f"FROM {read_parquet(files)} AS t JOIN (VALUES {pairs}) AS e(g, v) "
            f"ON t.{spec.group_by} = e.g GROUP BY e.g"
        )
        ranks = dict(con.sql(rank_sql).fetchall())
        errors = {g: abs(ranks[g] - spec.q) for g in groups}
        bad = {g: ranks[g] for g, err in errors.items() if err > RANK_TOLERANCE}
        if bad:
            raise ResultMismatch(
                f"{name}: {engine}'s {column} is not the {spec.q} quantile of {spec.column} "
                f"(within {RANK_TOLERANCE} of rank) for {bad}"
            )
        worst[column] = max(errors.values())
    return worst


def _sql_literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# -- timing ----------------------------------------------------------------------------------


def run(
    rows: int = h.QUERY_ROWS,
    reps: int = h.REPS,
    *,
    seed: int = h.SEED,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
) -> list[dict[str, Any]]:
    """Load (or reuse) the data, time every demo query on each engine, check and emit."""
    data_dir, load_meta = load(rows, seed)
    common = {
        "run_id": run_id,
        "bench": BENCH,
        "rows": rows,
        "seed": seed,
        "data_dir": str(data_dir),
    }
    con = duckdb.connect(":memory:")
    with arrowlog.open(data_dir) as log:
        files = live_files(data_dir)
        records = [h.emit({**common, "case": "load", "files": len(files), **load_meta}, out)]
        for name, query in DEMO_QUERIES.items():
            duck_query = DEMO_QUERIES_DUCKDB.get(name, query)
            raw_query = over_files(duck_query, files)
            runners: dict[str, Callable[[Any], pa.Table]] = {
                "arrowlog_datafusion": lambda _, q=query: log.sql(q).to_arrow(),
                "duckdb_read_parquet": lambda _, q=raw_query: con.sql(q).to_arrow_table(),
                "arrowlog_duckdb": lambda _, q=duck_query: log.sql(q, engine="duckdb").to_arrow(),
                "datafusion_read_parquet": lambda _, q=query: datafusion_over_files(q, files),
            }
            h.progress(f"{BENCH}: {name}, {reps} reps x {len(runners)} engines")
            stats = {engine: h.repeat(fn, reps, warmup=1) for engine, fn in runners.items()}
            answers = {engine: s.results[-1] for engine, s in stats.items()}
            reference = answers[REFERENCE]
            for engine, answer in answers.items():
                if engine != REFERENCE:
                    check_agree(name, reference, answer, engine)
            rank_errors = {
                engine: check_quantile_ranks(name, answer, engine, con, files)
                for engine, answer in answers.items()
            }
            ms = {f"{engine}_ms": s.median * 1000 for engine, s in stats.items()}
            baseline = ms["duckdb_read_parquet_ms"]
            records.append(
                h.emit(
                    {
                        **common,
                        "case": "query",
                        "query": name,
                        "sql": query,
                        "result_rows": reference.num_rows,
                        "files": len(files),
                        **ms,
                        "ratio_datafusion_vs_duckdb": ms["arrowlog_datafusion_ms"] / baseline,
                        "ratio_arrowlog_duckdb_vs_duckdb": ms["arrowlog_duckdb_ms"] / baseline,
                        "ratio_datafusion_vs_datafusion_native": (
                            ms["arrowlog_datafusion_ms"] / ms["datafusion_read_parquet_ms"]
                        ),
                        "results_agree": True,
                        "quantile_rank_errors": rank_errors,
                        "stats": {engine: s.to_dict() for engine, s in stats.items()},
                    },
                    out,
                )
            )
        if live_files(data_dir) != files:
            raise DataChanged(
                f"the live files of {data_dir} changed during the run (a compaction or "
                "retention run?): the engines did not all read the same data; run again"
            )
    con.close()
    queries = [r for r in records if r["case"] == "query"]

    def median_of(key: str) -> float:
        return statistics.median(r[key] for r in queries)

    median_ratio = median_of("ratio_datafusion_vs_duckdb")
    records.append(
        h.emit(
            {
                **common,
                "case": "summary",
                "reps": reps,
                "median_ratio_datafusion_vs_duckdb": median_ratio,
                "median_ratio_arrowlog_duckdb_vs_duckdb": median_of(
                    "ratio_arrowlog_duckdb_vs_duckdb"
                ),
                "median_ratio_datafusion_vs_datafusion_native": median_of(
                    "ratio_datafusion_vs_datafusion_native"
                ),
                "target": f"<= {TARGET_RATIO}",
                "target_met": median_ratio <= TARGET_RATIO,
            },
            out,
        )
    )
    return records


def datafusion_over_files(query: str, files: Sequence[str]) -> pa.Table:
    """``query`` on DataFusion's own Parquet scan of ``files``: the engine without arrowlog.

    DataFusion's Python API registers one path per table, so the files are read one by one
    and unioned; each becomes a native Parquet scan, as ``read_parquet`` is in DuckDB.
    """
    ctx = SessionContext(SessionConfig(_DATAFUSION_CONFIG))
    frames = [ctx.read_parquet(f) for f in files]
    ctx.register_table(DEMO_STREAM, functools.reduce(lambda a, b: a.union(b), frames))
    return ctx.sql(query).to_arrow_table()


# Plain utf8 in results, as arrowlog's engine asks for, so the answers compare as they are.
_DATAFUSION_CONFIG = {"datafusion.execution.parquet.schema_force_view_types": "false"}


def report(records: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per query (ms and ratios), then the load and the median ratios."""
    mine = [r for r in records if r.get("bench") == BENCH]
    queries = [r for r in mine if r["case"] == "query"]
    if not queries:
        return ""
    summary = next(r for r in mine if r["case"] == "summary")
    load_rec = next(r for r in mine if r["case"] == "load")
    rows = [
        {
            "query": r["query"],
            "result rows": r["result_rows"],
            "arrowlog DataFusion ms": r["arrowlog_datafusion_ms"],
            "DuckDB read_parquet ms": r["duckdb_read_parquet_ms"],
            "**ratio**": r["ratio_datafusion_vs_duckdb"],
            "arrowlog DuckDB ms": r["arrowlog_duckdb_ms"],
            "arrowlog-DuckDB / DuckDB": r["ratio_arrowlog_duckdb_vs_duckdb"],
            "DataFusion native ms": r["datafusion_read_parquet_ms"],
            "arrowlog-DF / DF native": r["ratio_datafusion_vs_datafusion_native"],
        }
        for r in queries
    ]
    met = "met" if summary["target_met"] else "NOT met"
    reused = " (data dir reused from an earlier run)" if load_rec["reused"] else ""
    return "\n".join(
        [
            f"### Queries, embedded: {load_rec['rows']:,} rows in {load_rec['files']} Parquet "
            f"files, median of {summary['reps']} reps after 1 warm-up",
            "",
            h.markdown_table(rows),
            "",
            "**ratio** = arrowlog DataFusion / DuckDB read_parquet on the same files. "
            "DataFusion native = DataFusion's own Parquet scan of the same files "
            "(no arrowlog), which separates the engine from arrowlog's integration.",
            "",
            f"- median ratio arrowlog-DataFusion / DuckDB-read_parquet: "
            f"**{summary['median_ratio_datafusion_vs_duckdb']:.2f}** "
            f"(target {summary['target']}: {met})",
            f"- median ratio arrowlog-DuckDB / DuckDB-read_parquet: "
            f"{summary['median_ratio_arrowlog_duckdb_vs_duckdb']:.2f}",
            f"- median ratio arrowlog-DataFusion / DataFusion-native: "
            f"{summary['median_ratio_datafusion_vs_datafusion_native']:.2f}",
            "- all engines' results agree: row counts and values; each engine's approximate "
            f"p99 is within {RANK_TOLERANCE} of rank 0.99 in the data",
            f"- load: {load_rec['load_s']:.1f} s, {load_rec['load_rows_per_s']:,.0f} rows/s "
            f"(appends of {h.LOAD_BATCH_ROWS:,} rows, then flush){reused}; "
            f"{load_rec.get('segments_after_flush', load_rec.get('segments'))} segments after the flush, "
            f"{load_rec['files']} after compaction (the files queried)",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.queries_embedded", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS, help="rows in the data set")
    parser.add_argument("--reps", type=int, default=h.REPS, help="timed repetitions per engine")
    parser.add_argument("--seed", type=int, default=h.SEED)
    h.add_common_arguments(parser)
    args = parser.parse_args(argv)
    try:
        records = run(args.rows, args.reps, seed=args.seed, out=args.out, run_id=args.run_id)
    except ResultMismatch as e:
        print(f"RESULTS DISAGREE: {e}", file=sys.stderr)
        return 2
    except DataChanged as e:
        print(f"DATA CHANGED: {e}", file=sys.stderr)
        return 3
    if not args.no_table:
        print(report(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
