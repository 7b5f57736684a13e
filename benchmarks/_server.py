"""Server processes for the benchmarks: ``arrowlog serve``, a bare Flight server, their memory.

``start`` runs ``sys.executable *args`` with stdout and stderr going to files (never an
undrained pipe) and waits for a ready line, noticing at once if the process dies (its
output is in the error). ``serve`` is ``python -m arrowlog serve`` on free ports over one
data directory; settings come through ``ARROWLOG_*`` variables (the outer environment's
are removed, so a developer's shell cannot change a result). Memory is read from
``/proc``: ``VmRSS`` and ``VmHWM`` (peak RSS), reset through ``/proc/PID/clear_refs`` when
the kernel allows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.flight as flight

REPO = Path(__file__).resolve().parent.parent
FLIGHT_READY = r"flight listening on (?P<flight>grpc://\S+)"
SERVE_READY = FLIGHT_READY + r"\s+http listening on (?P<http>https?://\S+)"

# For servers that only answer queries: no background compaction or retention run may
# rewrite the files in the middle of the timings (the data sets are compacted already).
READ_ONLY_SETTINGS = {"ARROWLOG_COMPACT_INTERVAL": "1000000"}


@dataclass
class Process:
    """A started server process, the groups of its ready line, and where its output went."""

    popen: subprocess.Popen[bytes]
    log_dir: Path
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def flight_url(self) -> str:
        return self.urls["flight"]

    @property
    def http_url(self) -> str:
        return self.urls["http"]

    def output(self) -> str:
        return "\n".join(
            (self.log_dir / name).read_text(errors="replace") for name in ("stdout", "stderr")
        )

    def rss_bytes(self) -> int:
        return status_kb(self.pid, "VmRSS") * 1024

    def peak_rss_bytes(self) -> int:
        return status_kb(self.pid, "VmHWM") * 1024

    def reset_peak_rss(self) -> bool:
        return reset_peak(self.pid)

    def action(self, name: str, body: str = "") -> list[bytes]:
        """A Flight action (``flush``, ``compact``, ``describe``...); the result bodies."""
        with flight.connect(self.flight_url) as client:
            return [
                r.body.to_pybytes() for r in client.do_action(flight.Action(name, body.encode()))
            ]

    def describe(self, stream: str) -> dict[str, Any]:
        return json.loads(self.action("describe", stream)[0])

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM (``arrowlog serve`` flushes and exits 0), wait, then kill."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        code = self.stop()
        if code != 0 and exc[0] is None:
            raise RuntimeError(f"server exited with code {code}:\n{self.output()[-4000:]}")


def start(
    args: Sequence[str],
    ready: str,
    log_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
) -> Process:
    """Start ``sys.executable *args``; return once its stdout matches ``ready``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARROWLOG_")}
    clean.update(PYTHONUNBUFFERED="1", **(env or {}))
    with (log_dir / "stdout").open("wb") as out, (log_dir / "stderr").open("wb") as err:
        popen = subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=log_dir,  # no stray arrowlog.toml
            env={**clean, "PYTHONPATH": str(REPO)},
        )
    process = Process(popen, log_dir)
    pattern = re.compile(ready)
    deadline = time.monotonic() + timeout
    while True:
        match = pattern.search((log_dir / "stdout").read_text(errors="replace"))
        if match:
            process.urls = {k: v for k, v in match.groupdict().items() if v}
            return process
        try:
            code = popen.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None or time.monotonic() > deadline:
            process.stop(timeout=10)
            raise RuntimeError(f"{' '.join(args)} did not start:\n{process.output()[-4000:]}")


def serve(data_dir: Path, log_dir: Path, settings: Mapping[str, str] | None = None) -> Process:
    """``python -m arrowlog serve`` over ``data_dir`` on free ports (Flight and HTTP).

    ``settings``: ``ARROWLOG_*`` variables; without them every setting is the default.
    """
    args = ["-m", "arrowlog", "serve", "--data-dir", str(data_dir)]
    args += ["--flight-port", "0", "--http-port", "0"]
    return start(args, SERVE_READY, log_dir, env=settings)


# -- memory ------------------------------------------------------------------------------------


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, same user); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
