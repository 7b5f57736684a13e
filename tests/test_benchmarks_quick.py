"""CI smoke test of the benchmark suite: ``python -m benchmarks --quick`` runs every case.

Shrunk further than ``--quick`` (a few thousand rows, one repetition, a 2 s sustained
phase) so that it takes well under a minute on two cores; the data sets and scratch data
go to a temporary directory, the results to a temporary JSON, never ``benchmarks/results``.
It asserts only that the suite ran and reported every case: never a time or a target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.__main__ import ALL_CASES

REPO = Path(__file__).resolve().parent.parent


def test_quick_suite_runs_every_case(tmp_path: Path) -> None:
    out = tmp_path / "results" / "quick.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARROWLOG_")}
    env["BENCHMARKS_CACHE"] = str(tmp_path / "cache")
    args = ["--quick", "--rows", "30000", "--reps", "1", "--seconds", "2", "--trials", "3"]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}"
    doc = json.loads(out.read_text())
    assert [r["case"] for r in doc["cases"]] == ALL_CASES
    assert doc["failed_jobs"] == [] and doc["missing_cases"] == []
    for case in doc["cases"]:
        assert case["arrowlog"]["median"] is not None, case
    assert doc["quick"] is True and doc["machine"]["cpu_count"]
    assert "| case |" in out.with_suffix(".md").read_text()
