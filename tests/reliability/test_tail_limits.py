"""Tails under attack, against a real ``arrowlog serve``: they never slow ingest, they are
bounded in number and memory, and gone clients are noticed within seconds.

Slow tails are raw sockets with a 4 KiB receive buffer that send the GET and never read.
Per-client limits count the client's address: tails from several addresses come from
127.0.0.2, 127.0.0.3, ... (Linux routes all of 127/8 to the loopback interface). Every
test ends by checking that each acknowledged record is present once, at its offset.

The figures behind the bounds (300 slow tails, 2-core machine) are in
docs/reliability.md, "Tails".
"""

from __future__ import annotations

import json
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.conftest import TEST_TOKEN
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve
from tests.reliability._support import wait_until

BEARER = flight.FlightCallOptions(
    headers=[(b"authorization", f"Bearer {TEST_TOKEN}".encode())], timeout=30
)
NDJSON = {"Content-Type": "application/x-ndjson"}
SLOW_TAILS = 300
MAX_TAILS, PER_CLIENT = 256, 16  # the defaults (arrowlog/config.py)


def _sockets_available(n: int) -> bool:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft == resource.RLIM_INFINITY or soft > n + 200


pytestmark = pytest.mark.skipif(
    not _sockets_available(SLOW_TAILS + MAX_TAILS), reason="needs ~800 file descriptors"
)


# -- helpers -------------------------------------------------------------------------------


class Records:
    """Appends numbered records to a stream over HTTP and remembers every ack."""

    def __init__(self, http: httpx.Client, stream: str) -> None:
        self.http = http
        self.stream = stream
        self.acked = 0  # records acknowledged, numbered n = 0, 1, ... at offsets 0, 1, ...

    def append(self, n: int, pad: int = 200) -> float:
        """Append ``n`` records; the seconds the acknowledgement took."""
        body = "".join(
            json.dumps({"ts": "2026-11-23T10:00:00Z", "n": k, "msg": "x" * pad}) + "\n"
            for k in range(self.acked, self.acked + n)
        )
        started = time.perf_counter()
        r = self.http.post(f"/v1/streams/{self.stream}/records", content=body, headers=NDJSON)
        took = time.perf_counter() - started
        assert r.status_code == 200, r.text
        assert r.json()["first_offset"] == self.acked
        self.acked += n
        return took

    def check_all_present(self) -> None:
        """Every acknowledged record once, at its offset (n = offset), nothing else."""
        sql = (
            "SELECT count(*), count(DISTINCT _offset), min(_offset), max(_offset), "
            f'sum(CASE WHEN n = _offset THEN 1 ELSE 0 END) FROM "{self.stream}"'
        )
        r = self.http.post("/v1/query", json={"sql": sql})
        assert r.status_code == 200, r.text
        n = self.acked
        assert r.json()["rows"] == [[n, n, 0, n - 1, n]]


def raw_tail(
    server: ArrowlogServe, stream: str, *, source: str = "127.0.0.1", query: str = "from_offset=0"
) -> socket.socket:
    """An SSE tail that never reads: connect from ``source``, send the GET, return the socket."""
    host, port = server.http_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect((host, int(port)))
    request = (
        f"GET /v1/streams/{stream}/tail?{query} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {TEST_TOKEN}\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def status_line(sock: socket.socket) -> str:
    """The response's status line (reads only as far as it)."""
    sock.settimeout(10)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, "the connection closed before a status line"
        data += chunk
    return data.decode().strip()


def dechunk(response: bytes) -> bytes:
    """The body of a chunked HTTP response (one cut short after any whole chunk too)."""
    head, _, rest = response.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body += rest[:size]
        rest = rest[size + 2 :]
    return body


def reset(sock: socket.socket) -> None:
    """Close abruptly: SO_LINGER 0 sends a RST, as a killed client's kernel may."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def metric(http: httpx.Client, name: str, labels: str = "") -> float:
    text = http.get("/metrics").text
    pattern = rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match[1]) if match else 0.0


def open_tails(http: httpx.Client) -> float:
    """Tails open: HTTP tail threads alive, plus Flight tails holding a slot."""
    return metric(http, "arrowlog_http_tails") + metric(http, "arrowlog_tails", 'protocol="flight"')


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024  # type: ignore[index]


def flight_tail(
    client: flight.FlightClient, stream: str, **ticket: object
) -> flight.FlightStreamReader:
    reader = client.do_get(flight.Ticket(json.dumps({"tail": stream, **ticket}).encode()), BEARER)
    reader.schema  # noqa: B018  # the server's answer (or its error) arrives with the schema
    return reader


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArrowlogServe]:
    """Default tail limits; a client that takes nothing is cut off after 2 s."""
    served = start_arrowlog_serve(
        tmp_path_factory.mktemp("tails"),
        token=TEST_TOKEN,
        env={"ARROWLOG_TAIL_SEND_TIMEOUT": "2"},
    )
    yield served
    assert served.stop() == 0, served.process.output()


@pytest.fixture
def http(server: ArrowlogServe) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def flight_client(server: ArrowlogServe) -> Iterator[flight.FlightClient]:
    with flight.FlightClient(server.flight_url) as client:
        yield client


# -- tests -------------------------------------------------------------------------------------


def test_300_slow_tails_slow_no_ingest_and_cost_bounded_memory(tmp_path: Path) -> None:
    # Limits raised so all 300 are admitted: the append path must not care how many wait.
    served = start_arrowlog_serve(
        tmp_path,
        token=TEST_TOKEN,
        env={"ARROWLOG_MAX_TAILS": "1000", "ARROWLOG_MAX_TAILS_PER_CLIENT": "1000"},
    )
    sockets: list[socket.socket] = []
    try:
        with served.client(timeout=60) as http, flight.FlightClient(served.flight_url) as fc:
            records = Records(http, "slow")
            for _ in range(4):
                records.append(5000)  # ~5 MB of backlog for every tail to catch up on
            list(fc.do_action(flight.Action("flush", b"slow"), BEARER))  # half in segments
            for _ in range(4):
                records.append(5000)
            wait_until(lambda: open_tails(http) == 0, 10, "no tails yet")
            baseline = rss_mb(served.process.pid)
            for _ in range(SLOW_TAILS):
                sockets.append(raw_tail(served, "slow"))
            wait_until(lambda: open_tails(http) == SLOW_TAILS, 30, "300 tails open")
            latencies, peak = [], baseline
            for _ in range(10):
                latencies.append(records.append(100))
                peak = max(peak, rss_mb(served.process.pid))
                time.sleep(0.3)
            growth = peak - baseline
            print(f"ingest with {SLOW_TAILS} slow tails: max {max(latencies):.3f} s, "
                  f"RSS {baseline:.0f} -> {peak:.0f} MB")  # fmt: skip
            assert max(latencies) < 2.0, latencies
            assert growth < 200, f"RSS grew {growth:.0f} MB with {SLOW_TAILS} slow tails"
            for sock in sockets:
                reset(sock)
            sockets.clear()
            left = time.monotonic()
            wait_until(lambda: open_tails(http) == 0, 5, "tails of reset clients ended")
            wait_until(lambda: metric(http, "arrowlog_http_tails") == 0, 5, "tail threads ended")
            print(f"tails gauge at 0 {time.monotonic() - left:.2f} s after the clients left")
            records.append(100)
            records.check_all_present()
    finally:
        for sock in sockets:
            sock.close()
        code = served.stop()
    assert code == 0, served.process.output()


def test_over_the_limits_tails_are_refused_429_503_and_unavailable(
    server: ArrowlogServe, http: httpx.Client, flight_client: flight.FlightClient
) -> None:
    records = Records(http, "limits")
    records.append(10)
    wait_until(lambda: open_tails(http) == 0, 10, "tails of earlier tests ended")
    sockets: list[socket.socket] = []
    readers = []
    try:
        # One client: HTTP and Flight tails share its max_tails_per_client.
        for _ in range(PER_CLIENT - 4):
            sockets.append(raw_tail(server, "limits"))
            assert status_line(sockets[-1]) == "HTTP/1.1 200 OK"
        for _ in range(4):
            readers.append(flight_tail(flight_client, "limits"))
        wait_until(lambda: open_tails(http) == PER_CLIENT, 5, "16 tails of one client")
        refused = raw_tail(server, "limits")
        assert status_line(refused) == "HTTP/1.1 429 Too Many Requests"
        refused.close()
        r = http.get("/v1/streams/limits/tail")
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "TooManyTails"
        assert "max_tails_per_client" in r.json()["message"]
        assert r.headers["retry-after"]
        with pytest.raises(flight.FlightUnavailableError, match="max_tails_per_client"):
            flight_tail(flight_client, "limits")
        # Other clients fill max_tails; one more anywhere is 503.
        for i in range((MAX_TAILS - PER_CLIENT) // PER_CLIENT):
            for _ in range(PER_CLIENT):
                sockets.append(raw_tail(server, "limits", source=f"127.0.0.{i + 2}"))
        for sock in sockets[PER_CLIENT - 4 :]:
            assert status_line(sock) == "HTTP/1.1 200 OK"
        wait_until(lambda: open_tails(http) == MAX_TAILS, 10, "max_tails open")
        refused = raw_tail(server, "limits", source="127.0.0.200")
        assert status_line(refused) == "HTTP/1.1 503 Service Unavailable"
        refused.close()
        assert metric(http, "arrowlog_tails_refused_total", 'limit="all"') >= 1
        assert metric(http, "arrowlog_tails_refused_total", 'limit="client"') >= 3
        # Ingest goes on meanwhile, and a slot freed is a slot taken again.
        assert records.append(100) < 2.0
        reset(sockets.pop())
        wait_until(lambda: open_tails(http) == MAX_TAILS - 1, 5, "a tail ended")
        sockets.append(raw_tail(server, "limits", source="127.0.0.200"))
        assert status_line(sockets[-1]) == "HTTP/1.1 200 OK"
    finally:
        for sock in sockets:
            reset(sock)
        for reader in readers:
            reader.cancel()
    wait_until(lambda: open_tails(http) == 0, 5, "every tail ended")
    records.check_all_present()


def test_clients_killed_abruptly_free_their_tails_within_seconds(
    server: ArrowlogServe, http: httpx.Client
) -> None:
    records = Records(http, "killed")
    records.append(10)
    wait_until(lambda: open_tails(http) == 0, 10, "tails of earlier tests ended")
    client = f"""
import json, socket, sys, time
import pyarrow.flight as flight
host, port = {server.http_url.removeprefix("http://")!r}.rsplit(":", 1)
socks = []
for _ in range(10):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /v1/streams/killed/tail?from_offset=0 HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n"
              b"Authorization: Bearer {TEST_TOKEN}\\r\\n\\r\\n")
    socks.append(s)
options = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer {TEST_TOKEN}")])
fc = flight.FlightClient({server.flight_url!r})
readers = [fc.do_get(flight.Ticket(json.dumps({{"tail": "killed"}}).encode()), options)
           for _ in range(4)]
for r in readers:
    r.read_chunk()
print("ready", flush=True)
time.sleep(60)
"""
    process = subprocess.Popen(
        [sys.executable, "-c", client], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n", (
            process.stderr.read() if process.stderr else ""
        )
        wait_until(lambda: open_tails(http) == 14, 10, "14 tails open")
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed = time.monotonic()
        wait_until(lambda: open_tails(http) == 0, 5, "the killed client's tails ended")
        wait_until(lambda: metric(http, "arrowlog_http_tails") == 0, 5, "tail threads ended")
        print(f"tails gauge at 0 {time.monotonic() - killed:.2f} s after kill -9")
    finally:
        process.kill()
        process.wait()
    records.append(10)
    records.check_all_present()


@pytest.fixture(scope="module")
def params_stream(server: ArrowlogServe) -> Iterator[Records]:
    with server.client() as client:
        records = Records(client, "params")
        records.append(5)
        yield records
        records.check_all_present()


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("from_offset=9223372036854775807", "from_offset"),
        ("from_offset=9007199254740992", "from_offset"),
        ("from_offset=-1", "from_offset"),
        ("from_offset=1e3", "from_offset"),
        ("shard=1", "shard"),
        ("shard=99999999999999999999", "shard"),
        ("shard=-1", "shard"),
        ("partition=1", "shard"),  # the former name of shard: the stream's refusal names shards
        ("partition=-1", "partition"),
        ("shard=0&partition=1", "disagree"),
        ("heartbeat=0", "heartbeat"),
        ("heartbeat=nan", "heartbeat"),
        ("limit=10", "limit"),
        ("from_offset=0&follow=1", "follow"),
    ],
)
def test_bad_tail_parameters_are_400_naming_the_parameter(
    http: httpx.Client, params_stream: Records, query: str, named: str
) -> None:
    r = http.get(f"/v1/streams/params/tail?{query}")
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "InvalidInput"
    assert named in r.json()["message"]
    assert open_tails(http) == 0


def test_bad_last_event_id_and_flight_offsets_are_refused_before_any_data(
    http: httpx.Client, flight_client: flight.FlightClient
) -> None:
    records = Records(http, "offsets")
    records.append(5)
    r = http.get("/v1/streams/offsets/tail", headers={"Last-Event-ID": str(2**63 - 1)})
    assert r.status_code == 400, r.text
    assert "Last-Event-ID" in r.json()["message"]
    with pytest.raises(pa.ArrowInvalid, match="from_offset"):
        flight_tail(flight_client, "offsets", from_offset=2**63 - 1)
    with pytest.raises(pa.ArrowInvalid, match="from_offset"):
        flight_tail(flight_client, "offsets", from_offset=2**70)
    with pytest.raises(pa.ArrowInvalid, match="shard"):
        flight_tail(flight_client, "offsets", shard=3)
    with pytest.raises(pa.ArrowInvalid, match="shard"):
        flight_tail(flight_client, "offsets", partition=3)  # the former name
    wait_until(lambda: open_tails(http) == 0, 5, "no tail left open by a refused one")
    records.check_all_present()


def test_a_client_that_takes_nothing_is_cut_off_with_an_error_event(
    server: ArrowlogServe, http: httpx.Client
) -> None:
    records = Records(http, "stalled")
    for _ in range(6):
        records.append(5000, pad=400)  # ~15 MB of JSON: more than the socket buffers hold
    wait_until(lambda: open_tails(http) == 0, 10, "tails of earlier tests ended")
    before = metric(http, "arrowlog_tails_cut_off_total")
    sock = raw_tail(server, "stalled")
    try:
        wait_until(lambda: open_tails(http) == 1, 5, "the tail opened")
        # tail_send_timeout is 2 s here: cut off, its slot freed, while the socket is unread.
        wait_until(
            lambda: metric(http, "arrowlog_tails_cut_off_total") == before + 1, 10, "cut off"
        )
        wait_until(lambda: open_tails(http) == 0, 5, "the cut-off tail ended")
        # What was sent ends with the error event, then the connection closes.
        sock.settimeout(10)
        received = b""
        while chunk := sock.recv(1 << 20):
            received += chunk
        events = dechunk(received).rstrip(b"\n").split(b"\n\n")
        assert events[-1].startswith(b"event: error\ndata: "), events[-1][:500]
        error = json.loads(events[-1].split(b"data: ", 1)[1])
        assert "tail_send_timeout" in error["reason"]
        assert 0 < error["next_offset"] <= records.acked
        records_sent = [e for e in events if b"event: records" in e]
        last = json.loads(records_sent[-1].split(b"data: ", 1)[1])
        assert last["last_offset"] + 1 == error["next_offset"]  # resume there: nothing lost
    finally:
        sock.close()
    records.append(10)
    records.check_all_present()
