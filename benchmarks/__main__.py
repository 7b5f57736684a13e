"""Run the benchmarks: ``python -m benchmarks [ingest|queries|all] [--quick]``.

Each benchmark runs as a child process of this one (a fresh interpreter, so one case's
memory and threads cannot colour the next) and appends its JSON lines under one run id;
this process then prints the markdown tables of that run, and rewrites the ``.md`` beside
the JSON lines with each benchmark's most recent run (``report`` does only that). ``--quick`` is the CI-smoke size: 200k rows and 3 repetitions, written to
``results/quick.jsonl`` so that ``results/latest.jsonl`` holds full-size runs only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import _harness as h
from benchmarks import compaction, flight_queries, http_ingest, ingest_embedded, queries_embedded

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = {
    "ingest": ingest_embedded,
    "queries": queries_embedded,
    "http": http_ingest,
    "compaction": compaction,
    "flight-queries": flight_queries,
}
FULL_ROWS = {
    "ingest": h.INGEST_ROWS,
    "queries": h.QUERY_ROWS,
    "http": 1_000_000,
    "compaction": h.QUERY_ROWS,
    "flight-queries": h.QUERY_ROWS,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=[*BENCHMARKS, "all", "report"],
        help="what to run; 'report' only re-renders the latest results",
    )
    parser.add_argument("--quick", action="store_true", help="200k rows, 3 reps (CI smoke)")
    parser.add_argument(
        "--rows", type=int, default=None, help="override the row count of every benchmark"
    )
    parser.add_argument("--reps", type=int, default=None, help="override the repetitions")
    parser.add_argument("--out", type=Path, default=None, help="JSON-lines output")
    args = parser.parse_args(argv)

    out = args.out or (h.RESULTS_DIR / "quick.jsonl" if args.quick else h.RESULTS_PATH)
    if args.which == "report":
        print(_write_latest(out))
        return 0
    names = list(BENCHMARKS) if args.which == "all" else [args.which]
    reps = args.reps or (h.QUICK_REPS if args.quick else h.REPS)
    failed = []
    for name in names:
        rows = args.rows or (h.QUICK_ROWS if args.quick else FULL_ROWS[name])
        module = BENCHMARKS[name].__name__
        cmd = [sys.executable, "-m", module, "--rows", str(rows), "--reps", str(reps)]
        cmd += ["--out", str(out), "--run-id", h.RUN_ID, "--no-table"]
        h.progress(f"running {' '.join(cmd[1:])}")
        code = subprocess.run(cmd, cwd=REPO, check=False).returncode
        if code != 0:
            h.progress(f"{module} failed with exit code {code}")
            failed.append(name)

    records = h.read_records(out, h.RUN_ID)
    report = "\n".join(part for part in (BENCHMARKS[n].report(records) for n in names) if part)
    print(f"## arrowlog benchmarks, run {h.RUN_ID}\n\n{_machine_line(records)}\n\n{report}")
    _write_latest(out)
    h.progress(f"records appended to {out}; latest tables in {out.with_suffix('.md')}")
    return 1 if failed else 0


def _write_latest(out: Path) -> str:
    """Render each benchmark's most recent run in ``out`` into ``out.md``; return the text.

    Per benchmark, so that running only one of them keeps the other's last tables.
    """
    records = h.read_records(out)
    parts = ["# arrowlog benchmarks: latest results\n"]
    for name, module in BENCHMARKS.items():
        mine = [r for r in records if r.get("bench") == module.BENCH]
        if not mine:
            continue
        run_id = mine[-1]["run_id"]
        run = [r for r in mine if r["run_id"] == run_id]
        parts.append(f"## {name}: run {run_id}\n\n{_machine_line(run)}\n\n{module.report(run)}")
    text = "\n".join(parts)
    out.with_suffix(".md").write_text(text)
    return text


def _machine_line(records: list[dict]) -> str:
    if not records:
        return "(no records)"
    m = records[-1]["machine"]
    disk = m.get("disk", {})
    loads = [r["machine"]["loadavg_1m"] for r in records]
    return (
        f"Machine: {m['cpu_model']}, {m['cpu_count']} CPUs, {m['ram_bytes'] / 2**30:.0f} GiB RAM, "
        f"{disk.get('fs_type', '?')} on {disk.get('device', '?')}; Python {m['python']}, "
        f"pyarrow {m['pyarrow']}, datafusion {m['datafusion']}, duckdb {m['duckdb']}, "
        f"deltalake {m['deltalake']}, arrowlog {m['arrowlog']} (git {m['git']}); "
        f"1-min load average {min(loads):.1f}-{max(loads):.1f} while recording (the "
        f"benchmark included; above {m['cpu_count']}, other processes competed for the CPUs)."
    )


if __name__ == "__main__":
    sys.exit(main())
