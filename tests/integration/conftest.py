"""``arrowlog serve`` as a real subprocess: Flight and HTTP on free ports over one Log.

A thin layer over ``arrowlog.testing`` (output to files, ready lines and a first answer from
both listeners within a deadline, stop by PID: SIGTERM, wait, kill), adding an httpx client
that sends the server's token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from arrowlog.testing import SERVE_READY, Server
from tests.conftest import TEST_TOKEN

__all__ = ["SERVE_READY", "ArrowlogServe", "start_arrowlog_serve"]


class ArrowlogServe(Server):
    """A running ``python -m arrowlog serve`` (``arrowlog.testing.Server``) for tests."""

    def client(self, *, token: str | None = ..., timeout: float = 30.0) -> httpx.Client:  # type: ignore[assignment]
        """An httpx client for the HTTP API, sending the server's token unless told otherwise."""
        token = self.token if token is ... else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.http_url, headers=headers, timeout=timeout)


def start_arrowlog_serve(
    base: Path,
    *,
    data_dir: Path | None = None,
    token: str | None = None,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    verbose: int = 0,
    log_name: str = "logs",
) -> ArrowlogServe:
    """Start ``arrowlog serve`` on free ports over ``data_dir`` (default base/data).

    The token goes in the environment, not a flag (flags show in process lists); its log
    goes to ``base/log_name``. A failed start fails the test with the server's output.
    """
    try:
        return ArrowlogServe.start(
            data_dir or base / "data",
            log_dir=base / log_name,
            args=extra_args,
            verbose=verbose,
            env=env,
            timeout=30.0,
            **({"token": token} if token is not None else {}),
        )
    except RuntimeError as e:
        pytest.fail(str(e))


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
