"""The HTTP server's limits under attack: one real ``arrowlog serve`` with default settings.

Clients are raw sockets (to send what no HTTP library would: headers and no body, a body
a few bytes a second, headers that never end), httpx, and ``slowhttptest`` when installed.
The server's memory is read from ``/proc/<pid>/status`` (VmRSS) while it is attacked.
After every attack ``/healthz`` answers and every record acknowledged so far (the
ledger stream) is present at its offset and unchanged.

What the limits are and what happens past them: docs/reliability.md, "HTTP limits".
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from arrowlog.config import Settings
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve

DEFAULTS = Settings()
HEADER_TIMEOUT = DEFAULTS.http_header_timeout
BODY_TIMEOUT = DEFAULTS.http_body_timeout
SLACK = 3.0  # seconds a cut-off may come after its limit on a busy 2-core machine
LEDGER = "ledger"
NDJSON = "application/x-ndjson"


@dataclass
class Target:
    """The server under attack and the records it acknowledged (k -> offset)."""

    server: ArrowlogServe
    http: httpx.Client
    acked: dict[int, int] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.server.http_url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def append(self, n: int = 5) -> None:
        start = len(self.acked)
        body = b"".join(json.dumps({"k": k}).encode() + b"\n" for k in range(start, start + n))
        r = self.http.post(
            f"/v1/streams/{LEDGER}/records", content=body, headers={"Content-Type": NDJSON}
        )
        assert r.status_code == 200, r.text
        first = r.json()["first_offset"]
        for i in range(n):
            self.acked[start + i] = first + i

    def assert_unharmed(self) -> None:
        """The server answers, takes writes, and holds every acknowledged record unchanged."""
        assert self.http.get("/healthz").json()["status"] == "ok"
        self.append()
        r = self.http.post(
            "/v1/query", json={"sql": f"SELECT k, _offset FROM {LEDGER} ORDER BY _offset"}
        )
        assert r.status_code == 200, r.text
        stored = {k: offset for k, offset in r.json()["rows"]}
        assert stored == self.acked


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = start_arrowlog_serve(tmp_path_factory.mktemp("limits"))  # default settings
    http = server.client(timeout=30)
    t = Target(server, http)
    t.append(20)
    yield t
    http.close()
    code = server.stop()
    assert code == 0, server.process.output()
    stderr = server.process.stderr_path.read_text(errors="replace")
    assert "Traceback" not in stderr, stderr[-5000:]


# -- raw clients ---------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class RssWatch:
    """Samples a process's RSS every 50 ms until stopped; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss_mb(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak - self.start


def head(
    port: int,
    path: str,
    *,
    length: int | None = None,
    content_type: str = NDJSON,
    method: str = "POST",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if length is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Outcome:
    """What a raw connection got: the answer's status and body, and when it was closed."""

    status: int | None = None
    body: dict | None = None
    raw: bytes = b""
    closed_after: float | None = None  # seconds from the attack's start; None: still open


def wait_for_close(sock: socket.socket, started: float, deadline: float) -> Outcome:
    """Read until the server closes the connection (or the deadline passes)."""
    out = Outcome()
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset: closed without (or after) an answer
            data = b""
        if not data:
            out.closed_after = time.monotonic() - started
            break
        out.raw += data
    sock.close()
    if out.raw.startswith(b"HTTP/1.1 "):
        out.status = int(out.raw[9:12])
        payload = out.raw.partition(b"\r\n\r\n")[2]
        try:
            out.body = json.loads(payload)
        except ValueError:
            out.body = None
    return out


def assert_error_shape(out: Outcome, status: int, error: str) -> None:
    assert out.status == status, out.raw[:500]
    assert out.body is not None and set(out.body) == {"error", "message"}, out.raw[:500]
    assert out.body["error"] == error, out.body
    assert b"content-type: application/json" in out.raw.lower()


def drip(sock: socket.socket, pieces: Iterator[bytes], every: float, stop: threading.Event):
    """Send one piece every ``every`` seconds until the server closes or ``stop`` is set."""
    for piece in pieces:
        if stop.wait(every):
            return
        try:
            sock.sendall(piece)
        except OSError:
            return


# -- 1. memory held for bodies that never arrive -----------------------------------------------


def test_bodies_that_never_arrive_hold_no_memory_and_are_cut_off(target: Target) -> None:
    # 24 connections each declare a 60 MB body (under max_body_bytes) and send none of it.
    watch = RssWatch(target.pid)
    started = time.monotonic()
    socks = []
    for _ in range(24):
        s = socket.create_connection(("127.0.0.1", target.port))
        s.sendall(head(target.port, "/v1/streams/attack/records", length=60_000_000))
        socks.append(s)
    time.sleep(1.0)
    assert target.http.get("/healthz").status_code == 200  # answers during the attack
    deadline = started + BODY_TIMEOUT + SLACK + 5
    outcomes = [wait_for_close(s, started, deadline) for s in socks]
    grew = watch.stop()
    print(
        f"24 x Content-Length 60 MB, no body: RSS {watch.start:.0f} MB -> peak "
        f"{watch.peak:.0f} MB (+{grew:.0f}); closed after "
        f"{[round(o.closed_after or -1, 1) for o in outcomes]} s"
    )
    assert grew < 100, f"RSS grew by {grew:.0f} MB for bodies that never arrived"
    for out in outcomes:
        assert out.closed_after is not None, "a silent body was never cut off"
        assert out.closed_after < BODY_TIMEOUT + SLACK
        assert_error_shape(out, 408, "RequestTimeout")
        assert "http_body_timeout" in out.body["message"]  # type: ignore[index]
    target.assert_unharmed()


def test_slow_senders_are_cut_off(target: Target) -> None:
    port = target.port
    stop = threading.Event()
    started = time.monotonic()
    # Slow headers (slowloris): a header line a second, the head never ends.
    slow_head = socket.create_connection(("127.0.0.1", port))
    slow_head.sendall(f"POST /v1/query HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
    # Silent: connects and sends nothing at all.
    silent = socket.create_connection(("127.0.0.1", port))
    # Slow body: 10 bytes a second, never silent for long, far under http_min_body_rate.
    slow_body = socket.create_connection(("127.0.0.1", port))
    slow_body.sendall(head(port, "/v1/streams/attack/records", length=100_000))
    # A body that stops: 1,000 bytes at once, then nothing.
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(head(port, "/v1/streams/attack/records", length=100_000) + b" " * 1000)
    threads = [
        threading.Thread(
            target=drip, args=(slow_head, (b"X-Slow-%d: 1\r\n" % i for i in range(100)), 1, stop)
        ),
        threading.Thread(target=drip, args=(slow_body, (b" " * 10 for _ in range(100)), 1, stop)),
    ]
    for t in threads:
        t.start()
    deadline = started + max(HEADER_TIMEOUT, BODY_TIMEOUT) + SLACK + 5
    try:
        results = {
            name: wait_for_close(sock, started, deadline)
            for name, sock in [
                ("slow head", slow_head),
                ("silent", silent),
                ("slow body", slow_body),
                ("stalled body", stalled),
            ]
        }
    finally:
        stop.set()
        for t in threads:
            t.join()
    print({name: round(out.closed_after or -1, 1) for name, out in results.items()})
    for name, out in results.items():
        assert out.closed_after is not None, f"{name}: never cut off"
    assert results["slow head"].closed_after < HEADER_TIMEOUT + SLACK  # type: ignore[operator]
    assert_error_shape(results["slow head"], 408, "RequestTimeout")
    assert "http_header_timeout" in results["slow head"].body["message"]  # type: ignore[index]
    assert results["silent"].closed_after < HEADER_TIMEOUT + SLACK  # type: ignore[operator]
    assert results["silent"].raw == b""  # nothing asked, nothing answered
    # The slow body gets http_body_timeout plus 1 s per http_min_body_rate bytes (< 1 s).
    assert results["slow body"].closed_after < BODY_TIMEOUT + 1 + SLACK  # type: ignore[operator]
    assert_error_shape(results["slow body"], 408, "RequestTimeout")
    assert "http_min_body_rate" in results["slow body"].body["message"]  # type: ignore[index]
    assert results["stalled body"].closed_after < BODY_TIMEOUT + SLACK  # type: ignore[operator]
    assert_error_shape(results["stalled body"], 408, "RequestTimeout")
    target.assert_unharmed()


def test_endless_headers_are_refused(target: Target) -> None:
    sock = socket.create_connection(("127.0.0.1", target.port))
    started = time.monotonic()
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n".encode())
    try:
        for i in range(2000):  # up to ~8 MB of headers, as fast as the server takes them
            sock.sendall(b"X-Filler-%06d: %s\r\n" % (i, b"a" * 4000))
    except OSError:
        pass  # the server closed the connection: expected
    out = wait_for_close(sock, started, started + 10)
    assert_error_shape(out, 431, "RequestHeaderFieldsTooLarge")
    target.assert_unharmed()


def _scrape_503(http: httpx.Client) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for s in family.samples:
            if s.name == "arrowlog_http_requests_total" and s.labels.get("status") == "503":
                total += s.value
    return total


def test_request_bodies_in_memory_are_capped(target: Target) -> None:
    # 20 connections each declare 60 MB and send 20 MB of it quickly, then stall: 400 MB
    # arrive, more than max_inflight_body_bytes (256 MiB) may hold.
    cap_mb = DEFAULTS.max_inflight_body_bytes / 2**20
    refused_before = _scrape_503(target.http)
    watch = RssWatch(target.pid)
    started = time.monotonic()
    payload = b" " * (20 * 2**20)
    socks = [socket.create_connection(("127.0.0.1", target.port)) for _ in range(20)]

    def send(sock: socket.socket) -> None:
        sock.settimeout(30)
        try:
            sock.sendall(head(target.port, "/v1/streams/attack/records", length=60_000_000))
            sock.sendall(payload)
        except OSError:
            pass  # refused (503) and closed while sending: expected for some

    senders = [threading.Thread(target=send, args=(s,)) for s in socks]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    deadline = time.monotonic() + BODY_TIMEOUT + SLACK + 5
    outcomes = [wait_for_close(s, started, deadline) for s in socks]
    grew = watch.stop()
    refused = _scrape_503(target.http) - refused_before
    print(
        f"20 x 20 MB of a 60 MB body, then silence: RSS {watch.start:.0f} -> peak "
        f"{watch.peak:.0f} MB (+{grew:.0f}); 503: {refused:.0f}; statuses "
        f"{sorted(str(o.status) for o in outcomes)}"
    )
    assert refused >= 1, "no request was refused for max_inflight_body_bytes"
    assert grew < cap_mb + 150, f"RSS grew by {grew:.0f} MB with a {cap_mb:.0f} MB cap"
    for out in outcomes:
        assert out.closed_after is not None, "a stalled body was never cut off"
        if out.status is not None:
            assert out.status in (408, 503), out.raw[:300]
            assert out.body is not None and set(out.body) == {"error", "message"}
        if out.status == 503:
            assert b"retry-after: 1" in out.raw.lower()
    # The bytes taken were given back: a 10 MB body fits again.
    big = b'{"k": -1}\n' * (1 << 20)
    r = target.http.post(
        "/v1/streams/attack_ok/records", content=big, headers={"Content-Type": NDJSON}
    )
    assert r.status_code == 200, r.text
    target.assert_unharmed()


# -- slowhttptest --------------------------------------------------------------------------

SLOWHTTPTEST = shutil.which("slowhttptest")


@pytest.mark.skipif(
    SLOWHTTPTEST is None,
    reason="slowhttptest is not installed (apt-get install slowhttptest; .ci/run does as root)",
)
@pytest.mark.parametrize(
    ("mode", "path", "extra", "server_closes"),
    [
        ("-H", "/healthz", [], True),
        ("-B", "/v1/streams/attack/records", ["-s", "60000000", "-f", NDJSON], True),
        # A slow reader of a small answer holds only what the kernel buffers: the server has
        # handed the answer over, so this checks it stays available, not that it cuts off.
        ("-X", "/openapi.json", ["-k", "3", "-n", "1", "-w", "16", "-y", "64", "-z", "16"], False),
    ],
    ids=["slow-headers", "slow-body", "slow-read"],
)
def test_slowhttptest(
    target: Target, mode: str, path: str, extra: list[str], server_closes: bool
) -> None:
    # 300 connections at 100/s, follow-up data every 2 s (under every timeout: only the
    # header deadline and the minimum body rate can end them), for at most 20 s.
    args = [
        SLOWHTTPTEST, mode, "-c", "300", "-r", "100", "-i", "2", "-l", "20", "-p", "3",
        "-u", f"http://127.0.0.1:{target.port}{path}", *extra,
    ]  # fmt: skip
    watch = RssWatch(target.pid)
    attack = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    slowest = 0.0
    probes = 0
    try:
        while attack.poll() is None:
            t0 = time.monotonic()
            r = target.http.get("/healthz", timeout=10)
            slowest = max(slowest, time.monotonic() - t0)
            probes += 1
            assert r.status_code == 200, r.text
            time.sleep(0.5)
        output = re.sub(r"\x1b\[[0-9;]*m", "", attack.communicate(timeout=60)[0])
    finally:
        if attack.poll() is None:
            attack.kill()
            attack.wait()
    grew = watch.stop()
    ended = [ln for ln in output.splitlines() if ln.startswith(("Test ended", "Exit status"))]
    print(f"{mode}: {probes} probes, slowest {slowest:.2f} s, RSS +{grew:.0f} MB; {ended}")
    assert attack.returncode == 0, output[-3000:]
    assert slowest < 5, f"/healthz took {slowest:.1f} s under {mode}"
    assert "service available:   NO" not in output, output[-3000:]
    if server_closes:  # every connection cut off before the 20 s were up
        assert "Exit status: No open connections left" in output, output[-3000:]
    assert grew < 150
    target.assert_unharmed()


# -- 2. DNS rebinding and CSRF ---------------------------------------------------------------


def _count(target: Target, stream: str) -> int:
    r = target.http.post("/v1/query", json={"sql": f"SELECT count(*) FROM {stream}"})
    if r.status_code == 404:
        return 0
    assert r.status_code == 200, r.text
    return r.json()["rows"][0][0]


def test_a_foreign_host_is_refused(target: Target) -> None:
    # A page of attacker.example, its name rebound to 127.0.0.1: the browser sends its Host.
    port = target.port
    foreign = {"Host": f"attacker.example:{port}"}
    for method, path, kwargs in [
        ("POST", "/v1/query", {"json": {"sql": f"SELECT * FROM {LEDGER}"}}),
        ("GET", "/v1/streams", {}),
        ("POST", "/v1/streams/rebound/records", {"content": b'{"a": 1}\n'}),
        ("GET", "/", {}),
    ]:
        headers = {**foreign, "Content-Type": NDJSON} if "content" in kwargs else foreign
        r = target.http.request(method, path, headers=headers, **kwargs)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"] == "HostNotAllowed"
        assert "allowed_hosts" in r.json()["message"]
    assert _count(target, "rebound") == 0
    for host in [f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "app.localhost"]:
        assert target.http.get("/v1/streams", headers={"Host": host}).status_code == 200, host
    target.assert_unharmed()


def test_a_page_of_another_origin_is_refused(target: Target) -> None:
    port = target.port
    evil = {"Origin": "http://attacker.example"}
    # The classic CSRF read: a "simple" request (text/plain, no preflight).
    r = target.http.post(
        "/v1/query",
        content=json.dumps({"sql": f"SELECT * FROM {LEDGER}"}),
        headers={**evil, "Content-Type": "text/plain"},
    )
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "OriginNotAllowed"
    assert LEDGER not in r.text and "allowed_origins" in r.json()["message"]
    r = target.http.post(
        "/v1/streams/csrf/records",
        content=b'{"a": 1}\n',
        headers={**evil, "Content-Type": "text/plain"},
    )
    assert r.status_code == 403, r.text
    for origin in ["http://attacker.example", "null", f"http://127.0.0.1:{port + 1}"]:
        r = target.http.get("/v1/streams", headers={"Origin": origin})
        assert r.status_code == 403, (origin, r.text)
    assert _count(target, "csrf") == 0
    # The console's own calls: same origin, JSON.
    for own in [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]:
        host = own.removeprefix("http://")
        r = target.http.post(
            "/v1/query",
            json={"sql": "SELECT 1 AS one"},
            headers={"Origin": own, "Host": host},
        )
        assert r.status_code == 200, (own, r.text)
    target.assert_unharmed()


def test_query_takes_only_json(target: Target) -> None:
    body = json.dumps({"sql": "SELECT 1 AS one"})
    for content_type in ["text/plain", "application/x-www-form-urlencoded", None]:
        headers = {"Content-Type": content_type} if content_type else {}
        r = target.http.post("/v1/query", content=body, headers=headers)
        assert r.status_code == 415, (content_type, r.text)
        assert r.json()["error"] == "UnsupportedMediaType"
    for content_type in ["application/json", "application/json; charset=utf-8"]:
        r = target.http.post("/v1/query", content=body, headers={"Content-Type": content_type})
        assert r.status_code == 200, (content_type, r.text)


def test_log_shippers_still_post(target: Target) -> None:
    # What Vector's http sink (json codec, newline framing, gzip) and Fluent Bit's http
    # output (json_lines; before 3.0.x labelled application/json) send: a Host naming the
    # configured address, no Origin.
    port = target.port
    vector = {
        "Host": f"127.0.0.1:{port}",
        "Content-Type": "application/x-ndjson",
        "Content-Encoding": "gzip",
        "User-Agent": "Vector/0.43.0 (x86_64-unknown-linux-gnu)",
        "Accept-Encoding": "zstd,gzip,deflate,br",
    }
    body = b'{"timestamp": "2026-11-23T10:00:00Z", "message": "a"}\n'
    r = target.http.post("/v1/streams/shipped/records", content=gzip.compress(body), headers=vector)
    assert r.status_code == 200, r.text
    fluent_bit = {
        "Host": f"localhost:{port}",
        "Content-Type": "application/json",
        "User-Agent": "Fluent-Bit",
    }
    r = target.http.post("/v1/streams/shipped/records", content=body * 2, headers=fluent_bit)
    assert r.status_code == 200, r.text
    assert _count(target, "shipped") == 3


def test_allowed_hosts_and_origins(tmp_path: Path) -> None:
    server = start_arrowlog_serve(
        tmp_path,
        env={
            "ARROWLOG_ALLOWED_HOSTS": "logs.internal, *.corp.example",
            "ARROWLOG_ALLOWED_ORIGINS": "https://dash.example",
        },
    )
    try:
        with server.client() as http:
            for host, status in [
                ("logs.internal:8080", 200),
                ("a.corp.example", 200),
                ("corp.example.attacker.example", 400),
                ("attacker.example", 400),
            ]:
                assert http.get("/v1/streams", headers={"Host": host}).status_code == status, host
            for origin, status in [("https://dash.example", 200), ("https://evil.example", 403)]:
                r = http.post("/v1/query", json={"sql": "SELECT 1"}, headers={"Origin": origin})
                assert r.status_code == status, (origin, r.text)
    finally:
        assert server.stop() == 0


# -- 3. one error shape ---------------------------------------------------------------------


def raw_exchange(port: int, request: bytes) -> Outcome:
    """Send ``request`` on a new connection and read one answer (up to its Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.partition(b"\r\n\r\n")[2]) < _length(raw):
            data = sock.recv(65536)
            if not data:
                break
            raw += data
    out = Outcome(raw=raw)
    if raw.startswith(b"HTTP/1.1 "):
        out.status = int(raw[9:12])
        out.body = json.loads(raw.partition(b"\r\n\r\n")[2])
    return out


def _length(raw: bytes) -> int:
    for line in raw.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        ("GET", "/no/such/route", {}, 404, "NotFound"),
        ("DELETE", "/v1/query", {}, 405, "MethodNotAllowed"),
        ("GET", "/v1/query", {}, 405, "MethodNotAllowed"),
        ("POST", "/v1/query", {"json": {"sq": "SELECT 1"}}, 400, "InvalidInput"),
        ("GET", "/v1/streams/ledger/tail", {"params": {"from_offset": "x"}}, 400, "InvalidInput"),
        ("POST", "/v1/query", {"content": b"SELECT 1"}, 415, "UnsupportedMediaType"),
        ("GET", "/v1/query", {"headers": {"Host": "attacker.example"}}, 400, "HostNotAllowed"),
    ],
)
def test_every_error_has_one_shape(
    target: Target, method: str, path: str, kwargs: dict, status: int, error: str
) -> None:
    r = target.http.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error", "message"} and r.json()["error"] == error, r.json()
    assert "Traceback" not in r.text


def test_errors_before_the_app_have_the_shape_too(target: Target) -> None:
    port = target.port
    # 413 from the declared length, before a byte of the body.
    out = raw_exchange(port, head(port, "/v1/streams/big/records", length=100_000_000))
    assert_error_shape(out, 413, "BatchTooLarge")
    # Something httptools cannot parse: uvicorn answers 400 itself.
    out = raw_exchange(port, b"NOT HTTP AT ALL\x00\x01\r\n\r\n")
    assert_error_shape(out, 400, "BadRequest")
    target.assert_unharmed()
