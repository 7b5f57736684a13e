"""A real Ray cluster for the Daft-on-Ray tests: two nodes on one machine, for the session.

``ray start --head`` on 127.0.0.2 plus a second node (``ray start --address=...``) on
127.0.0.3, each with one CPU and a 512 MB object store, so Daft really schedules across
nodes. Ray replaces 127.0.0.1 with the host's outward IP, hence the other loopback
addresses. Both run in their own process group under a short temporary directory (Ray's
socket paths must stay under 107 bytes) with a token of their own, and are stopped at the
end of the session by their process group, never by ``ray stop`` (which stops every Ray
on the machine).

The tests skip when Daft or Ray are not installed (``pip install 'arrowlog[distributed]'``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

HAVE_DISTRIBUTED = all(importlib.util.find_spec(m) for m in ("daft", "ray"))
ROWS = 200_000
# Ray reads its auth settings once, when first imported: set them before any test module
# imports it. The session's cluster gets a token of its own (never ~/.ray/auth_token).
if HAVE_DISTRIBUTED:
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
START = datetime(2026, 1, 1, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "distributed: Daft-on-Ray tests (need the distributed extra and a Ray cluster)"
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class RayCluster:
    address: str  # host:port of the head's GCS
    processes: list[subprocess.Popen[bytes]]
    temp_dir: Path
    env: dict[str, str]

    def logs(self) -> str:
        out = []
        for path in sorted(self.temp_dir.glob("*.log")):
            out.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        for p in reversed(self.processes):
            _stop_group(p)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _stop_group(p: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):  # what the group still holds
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def _ray_start(args: list[str], temp_dir: Path, log: str, env: dict[str, str]) -> subprocess.Popen:
    ray = str(Path(sys.executable).parent / "ray")
    with (temp_dir / log).open("wb") as out:
        return subprocess.Popen(
            [ray, "start", *args, "--disable-usage-stats", "--block"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def _wait_for_nodes(cluster: RayCluster, nodes: int, timeout: float = 120.0) -> None:
    import ray

    deadline = time.monotonic() + timeout
    while True:
        for p in cluster.processes:
            if p.poll() is not None:
                raise RuntimeError(f"ray start exited with {p.returncode}:\n{cluster.logs()}")
        try:
            if not ray.is_initialized():
                ray.init(address=cluster.address, log_to_driver=False)
            alive = [n for n in ray.nodes() if n["Alive"]]
            if len(alive) >= nodes:
                return
        except Exception:
            if ray.is_initialized():
                ray.shutdown()
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray not ready after {timeout} s:\n{cluster.logs()}")
        time.sleep(1.0)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """Two Ray nodes (127.0.0.2 head, 127.0.0.3) and this process connected as a driver."""
    if not HAVE_DISTRIBUTED:
        pytest.skip("Daft and Ray are not installed: pip install 'arrowlog[distributed]'")
    temp_dir = Path(tempfile.mkdtemp(prefix="alray-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "ARROWLOG_"))}
    env.update(
        RAY_AUTH_MODE=os.environ["RAY_AUTH_MODE"],
        RAY_AUTH_TOKEN=os.environ["RAY_AUTH_TOKEN"],
        RAY_USAGE_STATS_ENABLED="0",
        DAFT_PROGRESS_BAR="0",
        DAFT_ANALYTICS_ENABLED="0",
    )
    port = _free_port("127.0.0.2")
    address = f"127.0.0.2:{port}"
    common = ["--num-cpus=1", "--object-store-memory=512000000", f"--temp-dir={temp_dir}"]

    def ports(host: str) -> list[str]:  # Ray's fixed defaults would collide with other Rays
        return [
            f"--dashboard-agent-listen-port={_free_port(host)}",
            f"--dashboard-agent-grpc-port={_free_port(host)}",
            f"--metrics-export-port={_free_port(host)}",
            f"--runtime-env-agent-port={_free_port(host)}",
        ]

    cluster = RayCluster(address, [], temp_dir, env)
    try:
        cluster.processes.append(
            _ray_start(
                [
                    "--head",
                    "--node-ip-address=127.0.0.2",
                    f"--port={port}",
                    "--include-dashboard=false",
                    f"--ray-client-server-port={_free_port('127.0.0.2')}",
                    f"--dashboard-port={_free_port('127.0.0.2')}",
                    *ports("127.0.0.2"),
                    *common,
                ],
                temp_dir,
                "head.log",
                env,
            )
        )
        _wait_for_nodes(cluster, 1)
        cluster.processes.append(
            _ray_start(
                [
                    f"--address={address}",
                    "--node-ip-address=127.0.0.3",
                    *ports("127.0.0.3"),
                    *common,
                ],
                temp_dir,
                "worker.log",
                env,
            )
        )
        _wait_for_nodes(cluster, 2)
        yield cluster
    finally:
        from arrowlog.distributed import shutdown_ray

        shutdown_ray()
        cluster.stop()


@pytest.fixture(scope="session")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A Log holding ROWS demo records, all flushed to its Delta table (read-only for tests)."""
    import arrowlog
    from arrowlog.demo import DEMO_STREAM, generate_web_logs

    log = arrowlog.open(tmp_path_factory.mktemp("demo-log"))
    for table in generate_web_logs(ROWS, seed=7, start=START):
        log.append(DEMO_STREAM, table)
    log.flush()
    yield log
    log.close()
