"""A helper process fed one framed input at a time, restarted when it dies or hangs.

The fuzz harnesses (``test_fuzz_decoders.py``, ``test_fuzz_binary_decoders.py``) decode in
such a process: a native crash (SIGSEGV) then ends one input, not the pytest run, and
faulthandler's frames on the process's stderr say where it died.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from tests.conftest import REPO_ROOT


class WorkerProcess:
    """``python -X faulthandler *args``, answering each request frame with one line."""

    def __init__(self, args: Sequence[str], *, hang_seconds: float = 60.0) -> None:
        self._args = list(args)
        self._hang_seconds = hang_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the worker's; close() closes it

    def _start(self) -> subprocess.Popen[bytes]:
        path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO_ROOT)]))
        self.stderr.seek(0)
        self.stderr.truncate()
        return subprocess.Popen(
            [sys.executable, "-X", "faulthandler", *self._args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, "PYTHONPATH": path},
            cwd=REPO_ROOT,
        )

    def where(self) -> str:
        """Where the last worker died: the innermost frames faulthandler wrote."""
        self.stderr.seek(0)
        lines = self.stderr.read().decode(errors="replace").splitlines()
        frames = [line.strip() for line in lines if line.strip().startswith("File ")]
        return " <- ".join(f.split("/")[-1] for f in frames[:3])

    def request(self, frame: bytes) -> str:
        """The worker's answer, ``crash <exit code>`` (the worker is restarted) or ``hang``."""
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        p = self.process
        assert p.stdin is not None and p.stdout is not None
        try:
            p.stdin.write(frame)
            p.stdin.flush()
            ready, _, _ = select.select([p.stdout], [], [], self._hang_seconds)
            line = p.stdout.readline() if ready else None
        except BrokenPipeError:
            line = b""
        if line is None:
            p.kill()
            p.wait()
            self.process = None
            return "hang"
        if not line:
            code = p.wait(timeout=30)
            self.process = None
            return f"crash {code}"
        return line.decode().strip()

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()  # type: ignore[union-attr]
            self.process.wait(timeout=30)
        self.stderr.close()
