"""Shared fixtures: real server processes on free ports, started and stopped carefully.

``start_process`` is the one way tests start a server: ``sys.executable -m <module>`` with
stdout and stderr going to files (never an undrained pipe, which would block a chatty
server), a wait for its ready line with a deadline (polling the file while waiting on the
process, so a crash is noticed at once and reported with everything it printed), and a
teardown that terminates, waits, then kills. Other servers (HTTP, ``arrowlog serve``)
reuse it with their own module and ready line.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FLIGHT_READY = r"flight listening on (?P<url>grpc(?:\+tls)?://\S+)"
TEST_TOKEN = "test-token-0123456789"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (prefer ``--port 0`` where a server supports it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A server started by :func:`start_process`: its process, ready-line match and output."""

    process: subprocess.Popen[bytes]
    match: re.Match[str]
    stdout_path: Path
    stderr_path: Path
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """Everything the process printed so far (stdout, then stderr)."""
        out = self.stdout_path.read_text(errors="replace")
        err = self.stderr_path.read_text(errors="replace")
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the process, wait up to ``timeout``, then kill; return its exit code."""
        return stop_process(self.process, sig=sig, timeout=timeout)


def _scrubbed_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARROWLOG_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def start_process(
    args: Sequence[str],
    ready_line_regex: str,
    timeout: float = 30.0,
    *,
    log_dir: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start ``sys.executable *args`` and wait until stdout shows a line matching the regex.

    Args:
        args: the arguments after the interpreter, e.g. ``["-m", "arrowlog", "serve", ...]``.
        ready_line_regex: what the server prints once it accepts connections.
        timeout: seconds to wait for that line.
        log_dir: where ``stdout.log`` and ``stderr.log`` go.
        cwd: working directory (default ``log_dir``, so no stray ``arrowlog.toml`` is read).
        env: extra environment variables; ``ARROWLOG_*`` from the outer environment are
            removed so tests do not depend on the developer's shell.

    Returns:
        The running :class:`ServerProcess`; its ``match`` holds the ready line's groups.

    Raises:
        pytest.fail: the process exited or the deadline passed; the message holds its output.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = log_dir / "stdout.log", log_dir / "stderr.log"
    pattern = re.compile(ready_line_regex)
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd or log_dir,
            env=_scrubbed_env(env),
        )
    server = ServerProcess(process, re.match("", ""), stdout_path, stderr_path)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    while True:
        match = pattern.search(stdout_path.read_text(errors="replace"))
        if match:
            server.match = match
            return server
        try:
            # Waiting on the process (not sleeping): returns at once if it dies.
            code = process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            pytest.fail(
                f"{' '.join(args)} exited with code {code} before it was ready\n{server.output()}"
            )
        if time.monotonic() > deadline:
            stop_process(process)
            pytest.fail(f"{' '.join(args)} not ready after {timeout} s\n{server.output()}")


def stop_process(
    process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15.0
) -> int:
    """Terminate (or send ``sig``), wait up to ``timeout``, then kill; return the exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


# -- TLS -----------------------------------------------------------------------------------


def self_signed_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """Write a self-signed certificate valid for ``host`` and localhost; return (cert, key).

    Uses the ``cryptography`` package when installed, else the ``openssl`` command; skips
    the test when neither exists.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    try:
        _cert_with_cryptography(cert_path, key_path, host)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither the cryptography package nor openssl is available for TLS")
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                str(key_path),
                "-out",
                str(cert_path),
                "-subj",
                "/CN=localhost",
                "-addext",
                f"subjectAltName=DNS:localhost,IP:{host}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return cert_path, key_path


def _cert_with_cryptography(cert_path: Path, key_path: Path, host: str) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


# -- the Flight server -----------------------------------------------------------------------


@dataclass
class FlightServer:
    """A running ``python -m arrowlog -v serve``: its Flight address and what it serves."""

    url: str
    data_dir: Path
    token: str | None
    process: ServerProcess

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def start_flight_server(
    base: Path,
    *,
    token: str | None = None,
    tls: tuple[Path, Path] | None = None,
    extra_args: Sequence[str] = (),
) -> FlightServer:
    """Start ``arrowlog serve`` on free ports over a data directory under ``base``.

    As the Flight-only server these tests were written for: logging at INFO (``-v``, some
    tests read the log), queries in the server process with no time limit (as in an
    embedded ``arrowlog.open()``).
    """
    data_dir = base / "data"
    args = [
        "-m", "arrowlog", "-v", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
        "--flight-port", "0", "--http-port", "0",
    ]  # fmt: skip
    env = {"ARROWLOG_QUERY_WORKERS": "0", "ARROWLOG_QUERY_TIMEOUT": "0"}
    if token is not None:
        env["ARROWLOG_TOKEN"] = token  # the environment, not a flag: flags show in `ps`
    if tls is not None:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    process = start_process([*args, *extra_args], FLIGHT_READY, log_dir=base / "logs", env=env)
    return FlightServer(process.match["url"], data_dir, token, process)


@pytest.fixture(scope="module")
def flight_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlightServer]:
    """A Flight server without a token over a fresh data directory, for one test module."""
    server = start_flight_server(tmp_path_factory.mktemp("flight"))
    yield server
    server.process.stop()


@pytest.fixture(scope="module")
def flight_server_with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlightServer]:
    """A Flight server requiring ``TEST_TOKEN``, for one test module."""
    server = start_flight_server(tmp_path_factory.mktemp("flight-token"), token=TEST_TOKEN)
    yield server
    server.process.stop()


@pytest.fixture
def stream_name(request: pytest.FixtureRequest) -> str:
    """A stream name unique to the test, so tests can share one server."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:100]
    return f"t_{name}_{time.monotonic_ns() % 1_000_000}"


# -- S3 (SeaweedFS) ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real S3 server (SeaweedFS ``weed mini``) for the whole session, on free ports."""
    from tests._seaweed import start_seaweedfs

    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def s3_url(s3_server: object, request: pytest.FixtureRequest) -> str:
    """An ``s3://`` storage root unique to the test, on the session's SeaweedFS."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:80]
    return s3_server.url(f"t/{name}-{time.monotonic_ns()}")  # type: ignore[attr-defined]
