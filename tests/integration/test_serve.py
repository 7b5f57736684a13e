"""``arrowlog serve`` as a whole: one Log behind Flight and HTTP, settings, shutdown, CLI remote mode."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.flight as flight
import pytest

import arrowlog
from tests.conftest import REPO_ROOT, free_port, self_signed_cert, start_process
from tests.integration.conftest import SERVE_READY, ArrowlogServe, start_arrowlog_serve

NDJSON = {"Content-Type": "application/x-ndjson"}


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def cli(
    *args: str, env: dict[str, str] | None = None, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arrowlog", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=None if input is None else input.decode(),
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


@pytest.fixture(scope="module")
def serve_with_token(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_arrowlog_serve(tmp_path_factory.mktemp("serve-shared"), token="s3cret-token")
    yield server
    # SIGINT is as graceful as SIGTERM.
    assert server.stop(signal.SIGINT) == 0, server.process.output()


# -- one Log, one token, two protocols -----------------------------------------------------


def test_flight_and_http_share_one_log_and_one_token(serve_with_token: ArrowlogServe) -> None:
    s = serve_with_token
    with s.client() as http:
        r = http.post(
            "/v1/streams/shared/records",
            content=ndjson([{"n": i} for i in range(5)]),
            headers=NDJSON,
        )
        assert r.status_code == 200, r.text

    # Read over Flight what HTTP wrote, with the same token.
    options = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer s3cret-token")])
    reader = flight.FlightClient(s.flight_url).do_get(
        flight.Ticket(b"SELECT sum(n) AS t FROM shared"), options
    )
    assert reader.read_all().column("t")[0].as_py() == 10
    with pytest.raises(flight.FlightUnauthenticatedError):
        flight.FlightClient(s.flight_url).do_get(flight.Ticket(b"SELECT 1")).read_all()

    # Write over Flight, read over HTTP.
    with arrowlog.connect(s.flight_url, token="s3cret-token") as client:
        assert client.append("shared", [{"n": 100}]).first_offset == 5
    with s.client() as http:
        r = http.post("/v1/query", json={"sql": "SELECT count(*), max(n) FROM shared"})
        assert r.json()["rows"] == [[6, 100]]


def test_cli_remote_mode(serve_with_token: ArrowlogServe, tmp_path: Path) -> None:
    s = serve_with_token
    env = {"ARROWLOG_TOKEN": "s3cret-token"}
    data = tmp_path / "in.ndjson"
    data.write_bytes(ndjson([{"level": "INFO" if i % 3 else "ERROR", "n": i} for i in range(30)]))

    done = cli("ingest", str(data), "--stream", "remote", "--server", s.flight_url, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ingested 30 records into remote (offsets 0..29)"

    done = cli(
        "query", "SELECT level, count(*) AS n FROM remote GROUP BY level ORDER BY level",
        "--format", "json", "--server", s.flight_url, "--token", "s3cret-token",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"level": "ERROR", "n": 10},
        {"level": "INFO", "n": 20},
    ]

    done = cli("streams", "--json", "--server", s.flight_url, env=env)
    assert done.returncode == 0, done.stderr
    remote = next(i for i in json.loads(done.stdout) if i["name"] == "remote")
    assert (remote["rows"], remote["first_offset"], remote["last_offset"]) == (30, 0, 29)

    done = cli(
        "tail", "remote", "--from-offset", "25", "--limit", "3", "--server", s.flight_url, env=env
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["_offset"] for line in done.stdout.splitlines()] == [25, 26, 27]

    done = cli("query", "SELECT 1", "--server", s.flight_url)  # no token
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ")
    done = cli("query", "DROP TABLE remote", "--server", s.flight_url, env=env)
    assert done.returncode == 1 and "read-only" in done.stderr


def test_tail_follows_new_records(serve_with_token: ArrowlogServe) -> None:
    s = serve_with_token
    with s.client() as http:
        http.post("/v1/streams/followed/records", content=ndjson([{"n": 0}]), headers=NDJSON)
        tail = subprocess.Popen(
            [sys.executable, "-m", "arrowlog", "tail", "followed", "--server", s.flight_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"ARROWLOG_TOKEN": "s3cret-token", "PATH": "/usr/bin:/bin"},
            cwd=REPO_ROOT,
        )
        try:
            assert tail.stdout is not None
            assert json.loads(tail.stdout.readline())["n"] == 0
            http.post(
                "/v1/streams/followed/records", content=ndjson([{"n": 1}, {"n": 2}]), headers=NDJSON
            )
            assert [json.loads(tail.stdout.readline())["n"] for _ in range(2)] == [1, 2]
        finally:
            tail.send_signal(signal.SIGINT)  # Ctrl-C ends a tail cleanly
            assert tail.wait(timeout=30) == 0, tail.stderr.read() if tail.stderr else ""


# -- settings: toml < env < flags ----------------------------------------------------------


def test_serve_reads_toml_and_env(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('token = "toml-token"\nmax_body_bytes = 1000\n')
    server = start_arrowlog_serve(
        tmp_path, token="env-token", extra_args=["--config", str(config)]
    )  # ARROWLOG_TOKEN beats the file; the file's body limit stands
    try:
        with server.client(token="toml-token") as http:
            assert http.get("/v1/streams").status_code == 401
        with server.client(token="env-token") as http:
            assert http.get("/v1/streams").json() == {"streams": []}
            r = http.post("/v1/streams/s/records", content=b" " * 1001, headers=NDJSON)
            assert r.status_code == 413
            assert r.json()["message"] == (
                "request body of 1001 bytes is over the limit of 1000 bytes (max_body_bytes)"
            )
    finally:
        assert server.stop() == 0, server.process.output()


def test_a_taken_port_is_a_clear_error(serve_with_token: ArrowlogServe, tmp_path: Path) -> None:
    port = serve_with_token.http_url.rsplit(":", 1)[1]
    done = cli(
        "serve", "--data-dir", str(tmp_path / "d"), "--flight-port", "0", "--http-port", port
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: cannot listen for HTTP on 127.0.0.1:{port}: ")
    assert done.stdout == ""  # never announced


def test_tls_on_both_listeners(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path / "tls")
    server = start_arrowlog_serve(
        tmp_path, extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]
    )
    try:
        assert server.http_url.startswith("https://") and server.flight_url.startswith(
            "grpc+tls://"
        )
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=server.http_url, verify=trust) as http:
            assert http.get("/healthz").status_code == 200
        client = flight.FlightClient(server.flight_url, tls_root_certs=cert.read_bytes())
        assert client.do_get(flight.Ticket(b"SELECT 7 AS x")).read_all().column("x")[0].as_py() == 7
    finally:
        assert server.stop() == 0, server.process.output()


# -- SIGTERM while ingesting -----------------------------------------------------------------


def test_sigterm_while_ingesting_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    server = start_arrowlog_serve(tmp_path)
    acked: list[tuple[int, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    enough = threading.Event()

    def ship(worker: int) -> None:
        with httpx.Client(base_url=server.http_url, timeout=30) as http:
            chunk = 0
            while not stop.is_set():
                body = ndjson([{"worker": worker, "chunk": chunk, "i": i} for i in range(200)])
                try:
                    r = http.post("/v1/streams/busy/records", content=body, headers=NDJSON)
                except httpx.TransportError:
                    return  # the server stopped accepting: this request was not acknowledged
                if r.status_code != 200:
                    assert r.status_code == 503, r.text  # shutting down, not acknowledged
                    return
                with lock:
                    acked.append((r.json()["first_offset"], r.json()["last_offset"]))
                    if len(acked) >= 40:
                        enough.set()
                chunk += 1

    workers = [threading.Thread(target=ship, args=(w,)) for w in range(4)]
    for t in workers:
        t.start()
    try:
        assert enough.wait(60), server.process.output()
        server.process.process.send_signal(signal.SIGTERM)  # while the workers keep posting
        code = server.process.process.wait(timeout=60)
    finally:
        stop.set()
        for t in workers:
            t.join()
    assert code == 0, server.process.output()

    # Restart over the same directory: every acknowledged offset is there, exactly once.
    again = start_arrowlog_serve(tmp_path, data_dir=server.data_dir, log_name="logs-again")
    try:
        with again.client() as http:
            info = http.get("/v1/streams/busy").json()
            assert info["buffered_rows"] == 0  # shutdown flushed everything into segments
            r = http.post("/v1/query", json={"sql": "SELECT _offset FROM busy ORDER BY _offset"})
            offsets = [row[0] for row in r.json()["rows"]]
    finally:
        assert again.stop() == 0, again.process.output()
    assert offsets == list(range(len(offsets)))  # gap-free, no duplicate
    acknowledged = {o for first, last in acked for o in range(first, last + 1)}
    assert acknowledged <= set(offsets)
    assert len(acknowledged) == sum(last - first + 1 for first, last in acked)


def test_ready_lines_come_once_both_accept(tmp_path: Path) -> None:
    # The fixture's regex needs both lines; here, both ports must answer right away.
    port = free_port()
    process = start_process(
        ["-m", "arrowlog", "serve", "--data-dir", str(tmp_path / "d"), "--flight-port", "0",
         "--http-port", str(port)],
        SERVE_READY,
        log_dir=tmp_path / "logs",
    )  # fmt: skip
    try:
        assert process.match["http"] == f"http://127.0.0.1:{port}"
        started = time.monotonic()
        assert httpx.get(f"{process.match['http']}/healthz").status_code == 200
        client = flight.FlightClient(process.match["flight"])
        assert list(client.list_flights()) == []
        assert time.monotonic() - started < 5
    finally:
        assert process.stop() == 0, process.output()
