"""``arrowlog serve`` as a real subprocess: Flight and HTTP on free ports over one Log.

Built on ``tests.conftest.start_process`` (output to files, ready line with a deadline,
terminate → wait → kill). ``--flight-port 0 --http-port 0`` let the server pick free
ports; the ready lines say which.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_TOKEN, ServerProcess, start_process

SERVE_READY = r"flight listening on (?P<flight>\S+)\nhttp listening on (?P<http>\S+)\n"


@dataclass
class ArrowlogServe:
    """A running ``python -m arrowlog serve``."""

    flight_url: str
    http_url: str
    data_dir: Path
    token: str | None
    process: ServerProcess

    def client(self, *, token: str | None = ..., timeout: float = 30.0) -> httpx.Client:  # type: ignore[assignment]
        """An httpx client for the HTTP API, sending the server's token unless told otherwise."""
        token = self.token if token is ... else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.http_url, headers=headers, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        return self.process.stop(sig, timeout)


def start_arrowlog_serve(
    base: Path,
    *,
    data_dir: Path | None = None,
    token: str | None = None,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    log_name: str = "logs",
) -> ArrowlogServe:
    """Start ``python -m arrowlog serve`` on free ports over ``data_dir`` (default base/data)."""
    data_dir = data_dir or base / "data"
    args = [
        "-m", "arrowlog", "serve", "--data-dir", str(data_dir),
        "--flight-port", "0", "--http-port", "0", *extra_args,
    ]  # fmt: skip
    env = dict(env or {})
    if token is not None:
        env["ARROWLOG_TOKEN"] = token  # not a flag: flags show in process lists
    process = start_process(args, SERVE_READY, log_dir=base / log_name, env=env)
    return ArrowlogServe(process.match["flight"], process.match["http"], data_dir, token, process)


@pytest.fixture(scope="module")
def arrowlog_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArrowlogServe]:
    """One ``arrowlog serve`` with a token for a test module; bodies limited to 1 MiB.

    Teardown checks the server exits 0 on SIGTERM: a crash at shutdown fails the module.
    """
    server = start_arrowlog_serve(
        tmp_path_factory.mktemp("serve"),
        token=TEST_TOKEN,
        env={"ARROWLOG_MAX_BODY_BYTES": str(1 << 20)},
    )
    yield server
    code = server.stop()
    assert code == 0, server.process.output()
