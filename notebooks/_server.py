"""Start a throwaway arrowlog server for a notebook, and stop it when the notebook is done.

    from _server import start_server
    server = start_server()        # `arrowlog serve` on free ports over a temporary directory
    client = arrowlog.connect(server.flight_url)
    ...
    server.stop()                  # also runs at interpreter exit if the notebook forgets

The server is a child process: its ready lines (``flight listening on URL``, then
``http listening on URL``) are awaited with a deadline, and ``stop`` sends SIGTERM (the
server flushes and exits 0), waits, and kills it only if it hangs. Its log goes to
``server.log`` in a temporary directory (next to the default data directory), so a failed
start can say why; that directory is deleted once the server has stopped.
"""

from __future__ import annotations

import atexit
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Server", "start_server"]

_READY = re.compile(r"^(flight|http) listening on (\S+)$")


@dataclass
class Server:
    """A running ``arrowlog serve`` child process."""

    flight_url: str
    http_url: str | None
    data_dir: Path
    log_file: Path
    process: subprocess.Popen[str] = field(repr=False)
    temporary: Path | None = field(default=None, repr=False)  # deleted after stop, log included

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code; idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
        atexit.unregister(self.stop)
        return self.process.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    data_dir: str | Path | None = None,
    *,
    timeout: float = 60.0,
) -> Server:
    """Start a server on free ports (port 0) and return once it accepts connections.

    Args:
        data_dir: the data directory; default: a new temporary one, deleted on stop.
        timeout: seconds to wait for the ready line(s).

    Raises:
        RuntimeError: the server exited, or was not ready within ``timeout``; the message
            carries the end of its log.
    """
    base = Path(tempfile.mkdtemp(prefix="arrowlog-notebook-"))
    data_dir = Path(data_dir) if data_dir is not None else base / "data"
    log_file = base / "server.log"
    args = ["-m", "arrowlog", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
            "--flight-port", "0", "--http-port", "0"]  # fmt: skip
    wanted = {"flight", "http"}
    # Only this server's settings: no ARROWLOG_* from the notebook's environment, and the
    # working directory is the temporary one, so no stray ./arrowlog.toml is picked up.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARROWLOG_")}
    with log_file.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=base,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process, lines), daemon=True).start()
    urls: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    try:
        while not wanted <= urls.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"the server was not ready after {timeout:g} s")
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue  # poll again until the deadline
            if line is None:
                raise RuntimeError(f"the server exited with code {process.wait()}")
            match = _READY.match(line.strip())
            if match:
                urls[match[1]] = match[2]
    except BaseException as e:
        _kill(process)
        tail = "".join(log_file.read_text(errors="replace").splitlines(keepends=True)[-20:])
        shutil.rmtree(base, ignore_errors=True)
        if isinstance(e, RuntimeError):
            raise RuntimeError(f"{e}; the end of its log:\n{tail}") from None
        raise
    server = Server(urls["flight"], urls.get("http"), data_dir, log_file, process, base)
    atexit.register(server.stop)
    return server


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    """Move the child's stdout into ``lines`` (None at EOF), so waiting for it can time out."""
    assert process.stdout is not None
    with process.stdout:
        for line in process.stdout:
            lines.put(line)
    lines.put(None)


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
