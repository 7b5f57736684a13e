"""Shared fixtures: real server processes on free ports, started and stopped carefully.

The launcher is ``arrowlog.testing`` (output to files, a ready line awaited with a deadline
while watching the process, stop by PID: SIGTERM, wait, kill); these are thin wrappers that
turn a failed start into a test failure carrying the server's output. Other servers
(HTTP, ``arrowlog serve``: ``tests/integration/conftest.py``) reuse it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from arrowlog.testing import FLIGHT_READY, ServerProcess, free_port, serve
from arrowlog.testing import start_process as launch

__all__ = [
    "FLIGHT_READY",
    "REPO_ROOT",
    "TEST_TOKEN",
    "FlightServer",
    "ServerProcess",
    "free_port",
    "self_signed_cert",
    "start_flight_server",
    "start_process",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_TOKEN = "test-token-0123456789"


def start_process(
    args: Sequence[str],
    ready_line_regex: str,
    timeout: float = 30.0,
    *,
    log_dir: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """``arrowlog.testing.start_process``, failing the test (with the output) if it fails."""
    try:
        return launch(args, ready_line_regex, log_dir=log_dir, cwd=cwd, env=env, timeout=timeout)
    except RuntimeError as e:
        pytest.fail(str(e))


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

    As users run it: serve's defaults, so queries run in query worker processes with the
    default ``query_timeout`` (``arrowlog/_serve.py``). Logging at INFO (``-v``: some
    tests read the log). The token goes in the environment, not a flag.
    """
    settings: dict[str, object] = {}
    if token is not None:
        settings["token"] = token
    if tls is not None:
        settings.update(tls_cert=tls[0], tls_key=tls[1])
    try:
        server = serve(
            base / "data",
            log_dir=base / "logs",
            args=extra_args,
            verbose=1,
            timeout=30.0,
            **settings,
        )
    except RuntimeError as e:
        pytest.fail(str(e))
    return FlightServer(server.flight_url, server.data_dir, token, server.process)


@pytest.fixture(scope="module")
def flight_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlightServer]:
    """A Flight server without a token over a fresh data directory, for one test module."""
    server = start_flight_server(tmp_path_factory.mktemp("flight"))
    yield server
    server.process.stop(timeout=15)


@pytest.fixture(scope="module")
def flight_server_with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlightServer]:
    """A Flight server requiring ``TEST_TOKEN``, for one test module."""
    server = start_flight_server(tmp_path_factory.mktemp("flight-token"), token=TEST_TOKEN)
    yield server
    server.process.stop(timeout=15)


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
