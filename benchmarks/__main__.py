"""The benchmark suite: ``python -m benchmarks [CASE] [--quick] [--rows N]``.

Without a CASE it runs every case of the suite, each next to its reference, in one run:
durable ingest burst, sustained ingest, freshness, NDJSON over HTTP, result transfer and
server memory, the query set and the time-bounded query, per-query overhead, 8 clients at
once, needles by id and text search, storage. Each case module runs as a child process of
this one (a fresh interpreter, so one case's memory and threads cannot colour the next) and
appends its raw records under one run id; this process then writes one JSON document
(``results/latest.json``: per case the arrowlog figure, the reference, their ratio, the
target and whether it was met, plus the raw records, library versions and the machine) and
its markdown table (``results/latest.md``), and prints the table.

``--quick`` is the CI-smoke size (1M rows, 3 repetitions, a 10 s sustained phase) and
writes ``results/quick.json`` / ``quick.md``, so the full results are never overwritten.
A single CASE replaces only its own rows in the JSON document; the others are kept with
their own run ids. No time is ever asserted: exit code 0 means every case ran, whatever
the figures; 1 means a case failed to run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks import _harness as h
from benchmarks import _suite

REPO = Path(__file__).resolve().parent.parent
HTTP_ROWS = 1_000_000  # NDJSON of 1M rows is ~210 MB of bodies, held in memory
QUICK_TRIALS, FULL_TRIALS = 20, 100


@dataclass(frozen=True)
class Job:
    """One child process: a module, its arguments, the suite rows it yields."""

    module: str
    cases: tuple[str, ...]  # the suite rows (``_suite.row`` case ids) it produces
    extra: tuple[str, ...] = ()
    in_suite: bool = True


JOBS: dict[str, Job] = {
    "ingest": Job("ingest_server", ("ingest_burst", "ingest_burst_adbc"), ("--cases", "burst")),
    "sustained": Job("ingest_server", ("sustained_ingest",), ("--cases", "sustained")),
    "freshness": Job("ingest_server", ("freshness",), ("--cases", "freshness")),
    "http": Job("http_ingest", ("http_ndjson",)),
    "transfer": Job("flight_transfer", ("transfer_doget", "transfer_adbc", "server_memory")),
    "queries": Job("flight_queries", ("query_set", "query_set_polars", "time_bounded_query")),
    "latency": Job("query_latency", ("per_query_overhead",)),
    "concurrency": Job("concurrency", ("concurrency",)),
    "search": Job("search", ("needle", "needle_same_files", "text_search")),
    "storage": Job("storage", ("storage",)),
    # Not part of the suite: the embedded (no server) views and the compaction lifecycle.
    "ingest-embedded": Job("ingest_embedded", (), in_suite=False),
    "queries-embedded": Job("queries_embedded", (), in_suite=False),
    "compaction": Job("compaction", (), in_suite=False),
}
SUITE = [name for name, job in JOBS.items() if job.in_suite]
ALL_CASES = [case for name in SUITE for case in JOBS[name].cases]


def _module(job: Job) -> ModuleType:
    import importlib

    return importlib.import_module(f"benchmarks.{job.module}")


def _command(name: str, job: Job, args: argparse.Namespace, records: Path) -> list[str]:
    rows, reps, seconds, trials = args.rows, args.reps, args.seconds, args.trials
    cmd = [sys.executable, "-m", f"benchmarks.{job.module}", *job.extra]
    if name == "http":
        cmd += ["--rows", str(min(rows, HTTP_ROWS)), "--dataset-rows", str(rows)]
    elif name == "ingest-embedded":
        cmd += ["--rows", str(min(rows, h.INGEST_ROWS))]
    else:
        cmd += ["--rows", str(rows)]
    cmd += ["--reps", str(reps)]
    if name == "sustained":
        cmd += ["--seconds", str(seconds)]
    if name == "freshness":
        cmd += ["--trials", str(trials)]
    return [*cmd, "--out", str(records), "--run-id", h.RUN_ID, "--no-table"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=["all", *JOBS, "report"],
        help="one case (default: all of the suite); 'report' re-renders the markdown",
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke: 1M rows, 3 reps, 10 s sustained"
    )
    parser.add_argument("--rows", type=int, default=None, help="rows of the reference data set")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per case")
    parser.add_argument("--seconds", type=float, default=None, help="sustained-ingest phase")
    parser.add_argument("--trials", type=int, default=None, help="freshness trials")
    parser.add_argument(
        "--out", type=Path, default=None, help="the JSON document (markdown beside it, .md)"
    )
    args = parser.parse_args(argv)
    args.rows = args.rows or (h.QUICK_ROWS if args.quick else h.QUERY_ROWS)
    args.reps = args.reps or (h.QUICK_REPS if args.quick else h.REPS)
    args.seconds = args.seconds or (h.QUICK_SECONDS if args.quick else h.SECONDS)
    args.trials = args.trials or (QUICK_TRIALS if args.quick else FULL_TRIALS)
    out: Path = args.out or h.RESULTS_DIR / ("quick.json" if args.quick else "latest.json")

    if args.which == "report":
        doc = json.loads(out.read_text())
        out.with_suffix(".md").write_text(render(doc))
        print(render(doc))
        return 0

    names = SUITE if args.which == "all" else [args.which]
    h.CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    records_path = h.CACHE_ROOT / f"records-{h.RUN_ID}.jsonl"
    started = datetime.now(UTC)
    clock = time.perf_counter()
    failed: list[str] = []
    durations: dict[str, float] = {}
    for name in names:
        cmd = _command(name, JOBS[name], args, records_path)
        h.progress(f"{name}: {shlex.join(['python', *cmd[1:]])}")
        job_start = time.perf_counter()
        code = subprocess.run(cmd, cwd=REPO, check=False).returncode
        durations[name] = time.perf_counter() - job_start
        if code != 0:
            h.progress(f"{name} failed with exit code {code}")
            failed.append(name)

    records = h.read_records(records_path, h.RUN_ID)
    records_path.unlink(missing_ok=True)
    doc = _document(args, names, records, failed, durations, started, time.perf_counter() - clock)
    if args.which != "all" and out.exists():
        doc = _merge(json.loads(out.read_text()), doc)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    text = render(doc)
    out.with_suffix(".md").write_text(text)
    for name in names:
        if not JOBS[name].in_suite:
            report = getattr(_module(JOBS[name]), "report", None)
            if report is not None:
                text += "\n" + report(records)
    print(text)
    h.progress(f"wrote {out} and {out.with_suffix('.md')} in {time.perf_counter() - clock:.0f} s")
    return 1 if failed else 0


def _document(
    args: argparse.Namespace,
    names: Sequence[str],
    records: list[dict[str, Any]],
    failed: list[str],
    durations: dict[str, float],
    started: datetime,
    seconds: float,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for name in names:
        job = JOBS[name]
        if not job.in_suite:
            continue
        produced = {r["case"]: r for r in _module(job).summarize(records)}
        rows += [produced[c] for c in job.cases if c in produced]
    machine = records[-1]["machine"] if records else h.machine_info()
    by_bench: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_bench.setdefault(r["bench"], []).append({k: v for k, v in r.items() if k != "machine"})
    argv = ["python", "-m", "benchmarks", *(sys.argv[1:] if sys.argv[1:] else [])]
    return {
        "suite": "arrowlog benchmarks",
        "command": shlex.join(argv),
        "run_id": h.RUN_ID,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": seconds,
        "job_duration_s": durations,
        "quick": args.quick,
        "rows": args.rows,
        "reps": args.reps,
        "sustained_seconds": args.seconds,
        "freshness_trials": args.trials,
        "machine": machine,
        "loadavg_1m_range": _load_range(records),
        "cases": rows,
        "missing_cases": [
            c for n in names for c in JOBS[n].cases if c not in {r["case"] for r in rows}
        ],
        "failed_jobs": failed,
        "records": by_bench,
    }


def _load_range(records: list[dict[str, Any]]) -> list[float] | None:
    loads = [r["machine"]["loadavg_1m"] for r in records if "machine" in r]
    return [min(loads), max(loads)] if loads else None


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s cases replace the same cases of ``old``; the rest of ``old`` is kept."""
    mine = {r["case"] for r in new["cases"]}
    kept = [r for r in old.get("cases", []) if r["case"] not in mine]
    order = {c: i for i, c in enumerate(ALL_CASES)}
    cases = sorted(kept + new["cases"], key=lambda r: order.get(r["case"], len(order)))
    records = {**old.get("records", {}), **new["records"]}
    present = {r["case"] for r in cases}
    return {
        **new,
        "cases": cases,
        "records": records,
        "missing_cases": [c for c in ALL_CASES if c not in present],
        "merged_from": sorted({r.get("run_id") for r in cases if r.get("run_id")}),
    }


# -- markdown ----------------------------------------------------------------------------------


def render(doc: dict[str, Any]) -> str:
    """The markdown of a results document: the table, then what it ran on."""
    m = doc["machine"]
    cases = doc["cases"]
    met = sum(1 for r in cases if r["met"] is True)
    missed = [r for r in cases if r["met"] is False]
    load = doc.get("loadavg_1m_range")
    lines = [
        "# arrowlog benchmarks",
        "",
        f"`{doc['command']}`: run {doc['run_id']}, {doc['started']}, "
        f"{doc['duration_s'] / 60:.0f} min; {doc['rows']:,} rows in the reference data set, "
        f"median of {doc['reps']} repetitions after one warm-up (min to max in brackets).",
        "",
        _suite.markdown(cases),
        f"Targets met: {met} of {met + len(missed)}"
        + (f"; missed: {', '.join(r['case'] for r in missed)}." if missed else "."),
    ]
    if doc.get("missing_cases"):
        lines.append(f"Cases without a result: {', '.join(doc['missing_cases'])}.")
    if doc.get("failed_jobs"):
        lines.append(f"Jobs that failed: {', '.join(doc['failed_jobs'])}.")
    if doc.get("merged_from") and len(doc["merged_from"]) > 1:
        lines.append(f"Rows merged from runs {', '.join(doc['merged_from'])}.")
    per_query = next((r["details"]["per_query"] for r in cases if r["case"] == "query_set"), None)
    if per_query:
        lines += [
            "",
            "Query set, per query (ms, median; arrowlog via ADBC / DuckDB / Polars in-process):",
            "",
            "| query | result rows | arrowlog ADBC | DuckDB read_parquet | Polars scan_parquet "
            "| arrowlog / DuckDB | arrowlog / Polars |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, q in per_query.items():
            lines.append(
                f"| {name} | {q['result_rows']:,} | {q['arrowlog_adbc_ms']:.1f} | "
                f"{q['duckdb_read_parquet_ms']:.1f} | {q['polars_scan_parquet_ms']:.1f} | "
                f"{q['ratio_vs_duckdb']:.2f} | {q['ratio_vs_polars']:.2f} |"
            )
    versions = ", ".join(
        f"{k} {m.get(k)}"
        for k in ("pyarrow", "datafusion", "deltalake", "duckdb", "polars", "adbc_driver_flightsql")
    )
    disk = m.get("disk", {})
    lines += [
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} cores ({m.get('cpus_usable')} usable), "
        f"{m['ram_bytes'] / 2**30:.0f} GiB RAM, {disk.get('fs_type', '?')} on "
        f"{disk.get('device', '?')}; Python {m['python']}; {versions}; arrowlog "
        f"{m['arrowlog']} (git {m['git']}).",
    ]
    if load:
        lines.append(
            f"1-minute load average {load[0]:.1f} to {load[1]:.1f} while recording (the "
            f"benchmark included; above {m['cpu_count']}, other processes competed for the cores)."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
