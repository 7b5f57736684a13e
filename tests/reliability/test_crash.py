"""kill -9 at random moments (appends, group commits, flushes); every ack must survive once."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

import arrowlog

WRITER = Path(__file__).with_name("_writer.py")


def _run_and_kill(
    data_dir: Path, k_start: int, acks_before_kill: int
) -> list[tuple[int, int, int]]:
    # stderr goes to a file, not a pipe nobody drains (a full pipe would block the child).
    errors = open(data_dir.parent / f"writer-{k_start}.stderr", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir), str(k_start), "3"],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    acks = []
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if first != "ready\n":
            errors.seek(0)
            pytest.fail(f"writer failed to start: {first!r}\n{errors.read()}")
        for line in proc.stdout:
            a, b, k = map(int, line.split())
            acks.append((a, b, k))
            if len(acks) >= acks_before_kill:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        errors.close()
    # Lines already written by the child before it died are acknowledged too.
    assert proc.stdout is not None
    for line in proc.stdout.read().splitlines():
        parts = line.split()
        if len(parts) == 3:
            acks.append(tuple(map(int, parts)))
    return acks


def _check(data_dir: Path, acks: list[tuple[int, int, int]]) -> int:
    with arrowlog.open(data_dir) as log:
        table = log.sql("SELECT _offset, k FROM crash ORDER BY _offset").to_arrow()
    offsets = table.column("_offset").to_pylist()
    ks = table.column("k").to_pylist()
    # Gap-free, no duplicates: the offsets are exactly 0..n-1.
    assert offsets == list(range(len(offsets))), "offsets have gaps or duplicates"
    assert len(set(ks)) == len(ks), "a record was duplicated"
    by_offset = dict(zip(offsets, ks, strict=True))
    for first, last, k0 in acks:
        for i, off in enumerate(range(first, last + 1)):
            assert by_offset.get(off) == k0 + i, f"acknowledged offset {off} lost or wrong"
    assert pc.max(table.column("_offset")).as_py() + 1 == len(offsets)
    return len(offsets)


def _cycles(tmp_path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    all_acks: list[tuple[int, int, int]] = []
    k = 0
    for _ in range(n):
        acks = _run_and_kill(data_dir, k, rng.randint(1, 120))
        all_acks += acks
        k += 10_000_000  # fresh k range per cycle: unacknowledged k's may or may not exist
        rows = _check(data_dir, all_acks)
        assert rows >= sum(b - a + 1 for a, b, _ in all_acks)


def test_kill_9_during_appends_and_flushes_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    _cycles(tmp_path, 3, seed=1)


@pytest.mark.slow
def test_kill_9_fifty_cycles(tmp_path: Path) -> None:
    _cycles(tmp_path, 50, seed=2)
