"""Run ``arrowlog serve`` in the background: one launcher for tests, benchmarks and notebooks.

    from arrowlog.testing import serve

    with serve(flush_rows=1000) as server:   # free 127.0.0.1 ports, a temporary data directory
        client = server.connect()            # arrowlog.connect() with its URL and token
        ...

``serve`` starts ``python -m arrowlog serve`` as a child process of this interpreter and
returns once both listeners answer (HTTP ``/healthz`` and a Flight call). Settings reach the
child as ``ARROWLOG_*`` variables, not flags, since flags show in process lists. The
caller's own ``ARROWLOG_*`` variables are removed and the child's working directory is its
log directory, so neither a developer's shell nor a stray ``./arrowlog.toml`` changes what
it runs with. stdout and stderr go to files, never to an undrained pipe (which would block a
chatty server); a failed start raises ``RuntimeError`` carrying everything the child printed.

Stopping is by PID: SIGTERM (the server lets requests finish, flushes every buffer and exits
0), a wait, then SIGKILL. A server still running when the interpreter exits is stopped then.
A temporary directory ``serve`` made is deleted once the server has stopped; what the server
printed stays readable through ``output()``.

``start_process`` is the same launcher for any other server command (a benchmark's bare
Flight server, ``arrowlog serve`` with an unusual command line): it waits for a ready line
only.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pyarrow.flight as flight

from arrowlog.client import Client, connect
from arrowlog.config import ENV_PREFIX, Settings

__all__ = [
    "FLIGHT_READY",
    "SERVE_READY",
    "Server",
    "ServerProcess",
    "free_port",
    "serve",
    "start_process",
]

# What ``arrowlog serve`` prints once both listeners accept connections (arrowlog/cli.py).
SERVE_READY = r"flight listening on (?P<flight>\S+)\nhttp listening on (?P<http>\S+)\n"
# A Flight server's first ready line (``arrowlog serve``'s, or a bare one's).
FLIGHT_READY = r"flight listening on (?P<url>grpc(?:\+tls)?://\S+)"

# Settings given as flags rather than variables: serve() always sets them.
_FLAG_SETTINGS = ("host", "flight_port", "http_port")
_SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(Settings))
_PATH_SETTINGS = frozenset(
    f.name for f in dataclasses.fields(Settings) if issubclass(f.metadata["kind"], Path)
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (prefer port 0 where a server supports it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(eq=False)
class ServerProcess:
    """A child started by :func:`start_process`: the process, its ready line, its output.

    ``match`` holds the ready line's groups (for example the URL a server chose for port 0).
    """

    process: subprocess.Popen[bytes]
    match: re.Match[str]
    log_dir: Path
    _kept_output: str | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / "stderr.log"

    def output(self) -> str:
        """Everything the process printed so far: stdout, then stderr."""
        if self._kept_output is not None:
            return self._kept_output
        out = self.stdout_path.read_text(errors="replace")
        err = self.stderr_path.read_text(errors="replace")
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def keep_output(self) -> None:
        """Hold the output in memory, so ``output()`` outlives the log files."""
        self._kept_output = self.output()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` (SIGTERM: a graceful stop), wait up to ``timeout`` s, then kill.

        Returns the exit code (negative: the signal that ended it). Safe to call again.
        """
        atexit.unregister(self.stop)
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_process(
    args: Sequence[str],
    ready: str,
    *,
    log_dir: str | Path,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> ServerProcess:
    """Start ``sys.executable *args`` and return once its stdout matches ``ready``.

    Args:
        args: the arguments after the interpreter, e.g. ``["-m", "arrowlog", "serve", ...]``.
        ready: a regular expression for what the server prints once it accepts connections.
        log_dir: where ``stdout.log`` and ``stderr.log`` go (created if missing).
        cwd: the working directory; default ``log_dir``, where no ``arrowlog.toml`` lies.
        env: variables for the child, on top of this process's environment without its
            ``ARROWLOG_*`` variables.
        timeout: seconds to wait for the ready line.

    Returns:
        The running :class:`ServerProcess`.

    Raises:
        RuntimeError: the process exited, or printed no ready line in time (it is stopped
            then); the message carries its output.

    Example: ``start_process(["-m", "my_flight_server"], FLIGHT_READY, log_dir=d)``
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    child_env["PYTHONUNBUFFERED"] = "1"  # the ready line must reach the file at once
    child_env.update(env or {})
    stdout_path, stderr_path = log_dir / "stdout.log", log_dir / "stderr.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd if cwd is not None else log_dir,
            env=child_env,
        )
    started = ServerProcess(process, re.match("", ""), log_dir)  # type: ignore[arg-type]
    atexit.register(started.stop)
    pattern = re.compile(ready)
    deadline = time.monotonic() + timeout
    while True:
        match = pattern.search(stdout_path.read_text(errors="replace"))
        if match:
            started.match = match
            return started
        try:
            # Waiting on the process rather than sleeping: returns at once if it dies.
            code: int | None = process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            started.stop()
            raise RuntimeError(
                f"{' '.join(args)} exited with code {code} before it was ready\n{started.output()}"
            )
        if time.monotonic() > deadline:
            started.stop()
            raise RuntimeError(
                f"{' '.join(args)} not ready after {timeout:g} s\n{started.output()}"
            )


@dataclass(eq=False)
class Server:
    """A running ``arrowlog serve``: where it listens, its token, its process and output.

    Use it as a context manager, or call :meth:`stop` when done.
    """

    flight_url: str
    http_url: str
    data_dir: Path
    token: str | None
    process: ServerProcess
    tls_cert: Path | None = None
    stop_timeout: float = 30.0
    _temporary: Path | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(
        cls,
        data_dir: str | Path | None = None,
        *,
        log_dir: str | Path | None = None,
        args: Sequence[str] = (),
        verbose: int = 0,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        stop_timeout: float = 30.0,
        **settings: Any,
    ) -> Self:
        """:func:`serve`, as a constructor of this class (or a subclass)."""
        unknown = sorted(set(settings) - _SETTING_NAMES)
        if unknown:
            raise TypeError(f"serve() got settings that Settings does not declare: {unknown}")
        temporary = None
        if data_dir is None or log_dir is None:
            temporary = Path(tempfile.mkdtemp(prefix="arrowlog-serve-"))
            data_dir = temporary / "data" if data_dir is None else data_dir
            log_dir = temporary / "logs" if log_dir is None else log_dir
        # Absolute: the child runs in log_dir.
        data_dir, log_dir = Path(data_dir).absolute(), Path(log_dir).absolute()
        flags = {"host": "127.0.0.1", "flight_port": 0, "http_port": 0}
        flags.update({k: settings.pop(k) for k in _FLAG_SETTINGS if k in settings})
        command = ["-m", "arrowlog", *(["-" + "v" * verbose] if verbose else []), "serve"]
        command += ["--data-dir", str(data_dir)]
        for name, value in flags.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        child_env = {ENV_PREFIX + k.upper(): _env_value(k, v) for k, v in settings.items()}
        child_env.update(env or {})
        try:
            process = start_process(
                [*command, *args], SERVE_READY, log_dir=log_dir, env=child_env, timeout=timeout
            )
        except BaseException:
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)
            raise
        tls_cert = settings.get("tls_cert")
        server = cls(
            process.match["flight"],
            process.match["http"],
            data_dir,
            settings.get("token"),
            process,
            Path(tls_cert).absolute() if tls_cert else None,
            stop_timeout,
            temporary,
        )
        atexit.register(server.stop)
        try:
            _wait_answering(server, time.monotonic() + timeout)
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.running

    def output(self) -> str:
        """Everything the server printed so far (stdout, then stderr: its log)."""
        return self.process.output()

    def connect(self) -> Client:
        """An :class:`arrowlog.Client` for this server, with its token and certificate."""
        return connect(self.flight_url, self.token, tls_root_certs=self.tls_cert)

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int:
        """Send ``sig`` (SIGTERM: flush and exit 0), wait up to ``timeout`` s, then kill.

        ``timeout`` defaults to ``stop_timeout``. Returns the exit code. A temporary
        directory :func:`serve` made is deleted now; ``output()`` still answers. Safe to
        call again.
        """
        atexit.unregister(self.stop)
        self._stopped = True
        code = self.process.stop(sig, self.stop_timeout if timeout is None else timeout)
        if self._temporary is not None:
            self.process.keep_output()
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server; a non-zero exit here (a crash at shutdown) raises RuntimeError.

        A server the block stopped or killed itself is not checked again.
        """
        if self._stopped:
            return
        code = self.stop()
        if code != 0 and exc_type is None:
            raise RuntimeError(f"arrowlog serve exited with code {code}\n{self.output()}")


def serve(
    data_dir: str | Path | None = None,
    *,
    log_dir: str | Path | None = None,
    args: Sequence[str] = (),
    verbose: int = 0,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    stop_timeout: float = 30.0,
    **settings: Any,
) -> Server:
    """Start ``arrowlog serve`` on free 127.0.0.1 ports; return once HTTP and Flight answer.

    Args:
        data_dir: the data directory; default: a new temporary one, deleted on stop.
        log_dir: where the server's ``stdout.log`` and ``stderr.log`` go; default: a
            temporary directory, deleted on stop (``output()`` keeps the text).
        args: more ``serve`` flags, e.g. ``["--config", "arrowlog.toml"]``.
        verbose: ``-v`` count: 1 logs INFO and the HTTP access log, 2 DEBUG.
        env: more variables for the child (S3 credentials, ``PYTHONPATH``...).
        timeout: seconds to wait for the server to answer.
        stop_timeout: seconds ``stop`` waits after SIGTERM before it kills the server.
        settings: any :class:`arrowlog.config.Settings` field, e.g. ``token="t"``,
            ``flush_rows=1000``, ``tls_cert=...`` with ``tls_key=...``. ``host``,
            ``flight_port`` and ``http_port`` default to 127.0.0.1 and free ports.

    Returns:
        The running :class:`Server`; a context manager that stops it.

    Raises:
        TypeError: a setting that ``Settings`` does not declare.
        RuntimeError: the server exited, or did not answer in time; the message carries
            its output.

    Example: ``with serve(token="s3cret") as server: print(server.flight_url)``
    """
    return Server.start(
        data_dir,
        log_dir=log_dir,
        args=args,
        verbose=verbose,
        env=env,
        timeout=timeout,
        stop_timeout=stop_timeout,
        **settings,
    )


def _env_value(name: str, value: Any) -> str:
    """A setting as its ``ARROWLOG_*`` variable's text (read back by ``Settings.load``)."""
    if value is None:
        return ""  # unsets an optional setting
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in _PATH_SETTINGS:
        return str(Path(value).absolute())  # the child runs in its log directory
    return str(value)


def _wait_answering(server: Server, deadline: float) -> None:
    """Poll HTTP ``/healthz`` and a Flight call until both answer (any answer will do)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a probe of our own child on loopback
    headers = [(b"authorization", f"Bearer {server.token}".encode())] if server.token else []
    options = flight.FlightCallOptions(headers=headers, timeout=5)
    http_ok = flight_ok = False
    while True:
        if not http_ok:
            try:
                with urllib.request.urlopen(
                    f"{server.http_url}/healthz", timeout=5, context=context
                ):
                    http_ok = True
            except urllib.error.HTTPError:
                http_ok = True  # an error status is still an answer
            except OSError:
                http_ok = False  # not answering yet: try again until the deadline
        if not flight_ok:
            tls = server.flight_url.startswith("grpc+tls://")
            with flight.FlightClient(server.flight_url, disable_server_verification=tls) as client:
                try:
                    list(client.list_actions(options))
                    flight_ok = True
                except flight.FlightUnavailableError:
                    flight_ok = False  # not answering yet: try again until the deadline
                except flight.FlightError:
                    flight_ok = True  # refused (a token we do not know) is still an answer
        if http_ok and flight_ok:
            return
        if not server.running or time.monotonic() > deadline:
            what = " and ".join(
                name for name, ok in (("HTTP", http_ok), ("Flight", flight_ok)) if not ok
            )
            raise RuntimeError(f"arrowlog serve: {what} did not answer\n{server.output()}")
        time.sleep(0.05)
