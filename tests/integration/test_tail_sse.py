"""``GET /v1/streams/{stream}/tail``: Server-Sent Events from a real ``arrowlog serve``.

The module's server requires ``TEST_TOKEN`` (the ``arrowlog_serve`` fixture); every test
tails a stream of its own. Events are read with httpx's streaming API and a small parser
of the text/event-stream framing (blank line between events, ``:`` comments).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_TOKEN
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve

NDJSON = {"Content-Type": "application/x-ndjson"}
SSE_TIMEOUT = httpx.Timeout(10.0)  # heartbeats come every second: a read never waits long


@dataclass
class Event:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


class Events:
    """The events of one open SSE response, in order; comments too if asked for."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next(self, *, comments: bool = False) -> Event:
        name, data, event_id = "message", [], None
        for line in self._lines:
            if line == "":
                if data:
                    return Event(name, "\n".join(data), event_id)
                continue
            if line.startswith(":"):
                if comments:
                    return Event("comment", line[1:].strip(), None)
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                name = value
            elif field == "id":
                event_id = value
        raise AssertionError("the event stream ended")

    def expect(self, name: str) -> Event:
        event = self.next()
        assert event.event == name, event
        return event

    def records(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` records, from as many ``records`` events as it takes."""
        out: list[dict[str, Any]] = []
        while len(out) < n:
            event = self.expect("records")
            body = event.json()
            assert event.id == str(body["last_offset"])
            assert [r["_offset"] for r in body["records"]] == list(
                range(body["first_offset"], body["last_offset"] + 1)
            )
            out += body["records"]
        assert len(out) == n, out
        return out


@contextmanager
def tail(client: httpx.Client, stream: str, **params: Any) -> Iterator[Events]:
    headers = params.pop("headers", {})
    params.setdefault("heartbeat", 1)
    with client.stream(
        "GET", f"/v1/streams/{stream}/tail", params=params, headers=headers, timeout=SSE_TIMEOUT
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Events(response)


def append(client: httpx.Client, stream: str, start: int, n: int, **extra: Any) -> dict[str, Any]:
    body = "".join(
        json.dumps({"ts": f"2026-11-23T10:00:{i % 60:02d}Z", "level": "INFO", "n": i, **extra})
        + "\n"
        for i in range(start, start + n)
    )
    r = client.post(f"/v1/streams/{stream}/records", content=body, headers=NDJSON)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def open_tails(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    match = re.search(r"^arrowlog_http_tails (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match[1])


@pytest.fixture
def http(arrowlog_serve: ArrowlogServe) -> Iterator[httpx.Client]:
    with arrowlog_serve.client() as client:
        yield client


@pytest.fixture
def http2(arrowlog_serve: ArrowlogServe) -> Iterator[httpx.Client]:
    """A second connection, to append while the first one is busy tailing."""
    with arrowlog_serve.client() as client:
        yield client


def test_records_appended_after_subscribing_arrive_in_order(
    http: httpx.Client, http2: httpx.Client, stream_name: str
) -> None:
    append(http2, stream_name, 0, 3)  # before subscribing: not sent without from_offset
    with tail(http, stream_name) as events:
        assert events.expect("subscribed").json() == {"stream": stream_name, "from_offset": 3}
        for k in range(5):
            ack = append(http2, stream_name, 3 + 4 * k, 4)
            assert ack["first_offset"] == 3 + 4 * k
        records = events.records(20)
    assert [r["_offset"] for r in records] == list(range(3, 23))
    assert [r["n"] for r in records] == list(range(3, 23))
    assert records[0]["ts"] == "2026-11-23T10:00:03+00:00"  # spelled as the query API does
    assert set(records[0]) == {"ts", "level", "n", "_offset", "_ingested_at"}


def test_from_offset_replays_then_follows(
    http: httpx.Client, http2: httpx.Client, stream_name: str
) -> None:
    append(http2, stream_name, 0, 5)
    with tail(http, stream_name, from_offset=2) as events:
        assert events.expect("subscribed").json()["from_offset"] == 2
        assert [r["n"] for r in events.records(3)] == [2, 3, 4]
        append(http2, stream_name, 5, 2)
        assert [r["_offset"] for r in events.records(2)] == [5, 6]


def test_last_event_id_resumes_after_the_last_offset_seen(
    http: httpx.Client, http2: httpx.Client, stream_name: str
) -> None:
    append(http2, stream_name, 0, 4)
    with tail(http, stream_name, from_offset=0) as events:
        events.expect("subscribed")
        last_id = events.expect("records").id
    assert last_id == "3"
    append(http2, stream_name, 4, 1)
    with tail(http, stream_name, headers={"Last-Event-ID": last_id}) as events:
        assert events.expect("subscribed").json()["from_offset"] == 4
        assert [r["n"] for r in events.records(1)] == [4]


def test_a_large_backlog_arrives_in_bounded_events(
    http: httpx.Client, http2: httpx.Client, stream_name: str
) -> None:
    append(http2, stream_name, 0, 2500)
    with tail(http, stream_name, from_offset=0) as events:
        events.expect("subscribed")
        sizes = []
        while sum(sizes) < 2500:
            sizes.append(len(events.expect("records").json()["records"]))
    assert sizes == [1000, 1000, 500]


def test_heartbeat_comments_while_idle(http: httpx.Client, stream_name: str) -> None:
    append(http, stream_name, 0, 1)
    started = time.monotonic()
    with tail(http, stream_name, heartbeat=0.5) as events:
        events.expect("subscribed")
        assert events.next(comments=True) == Event("comment", "keepalive", None)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "missing bearer token: send the header 'Authorization: Bearer <token>'"),
        ("wrong-token", "invalid bearer token"),
    ],
)
def test_tail_requires_the_token(
    arrowlog_serve: ArrowlogServe, http: httpx.Client, stream_name: str, token: str | None,
    message: str,
) -> None:  # fmt: skip
    append(http, stream_name, 0, 1)
    with arrowlog_serve.client(token=token) as client:
        r = client.get(f"/v1/streams/{stream_name}/tail", timeout=SSE_TIMEOUT)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"error": "Unauthenticated", "message": message}
    assert TEST_TOKEN not in r.text


def test_bad_requests_are_answered_before_the_stream_starts(
    http: httpx.Client, stream_name: str
) -> None:
    r = http.get(f"/v1/streams/{stream_name}/tail")
    assert r.status_code == 404, r.text
    assert r.json() == {"error": "StreamNotFound", "message": f"stream {stream_name!r} not found"}
    append(http, stream_name, 0, 1)
    r = http.get(f"/v1/streams/{stream_name}/tail", params={"from_offset": -1})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "InvalidInput"
    assert "from_offset" in r.json()["message"]
    r = http.get("/v1/streams/no..dots/tail")
    assert r.status_code == 400, r.text
    r = http.get(f"/v1/streams/{stream_name}/tail", headers={"Last-Event-ID": "abc"})
    assert r.json() == {
        "error": "InvalidInput",
        "message": "Last-Event-ID must be an offset, not 'abc'",
    }


def test_disconnect_stops_the_server_side_tail_thread(
    http: httpx.Client, http2: httpx.Client, stream_name: str
) -> None:
    append(http2, stream_name, 0, 1)
    wait_for(lambda: open_tails(http2) == 0)  # tails of earlier tests have ended
    with tail(http, stream_name) as events:
        events.expect("subscribed")
        assert open_tails(http2) == 1
        append(http2, stream_name, 1, 1)
        events.records(1)
    # The client hung up: the server notices, sets the tail's stop event, its thread ends.
    wait_for(lambda: open_tails(http2) == 0, timeout=5)


def test_openapi_documents_the_tail(http: httpx.Client) -> None:
    operation = http.get("/openapi.json").json()["paths"]["/v1/streams/{stream}/tail"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} >= {"stream", "from_offset", "heartbeat"}
    assert operation["security"] == [{"HTTPBearer": []}]
    assert {"401", "404"} <= set(operation["responses"])


def test_shutdown_ends_open_tails_at_once(tmp_path: Path) -> None:
    """SIGTERM with a tail open: the tail gets an ``end`` event and serve exits 0 quickly.

    A tail never ends by itself; without ``TailHub.close`` uvicorn's graceful shutdown
    would wait for it until ``shutdown_timeout``.
    """
    server = start_arrowlog_serve(tmp_path, env={"ARROWLOG_SHUTDOWN_TIMEOUT": "30"})
    try:
        with server.client() as client:
            append(client, "events", 0, 1)
            with tail(client, "events") as events:
                events.expect("subscribed")
                server.process.process.send_signal(signal.SIGTERM)
                started = time.monotonic()
                end = events.expect("end").json()
        assert end == {"reason": "the server is shutting down", "next_offset": 1}
        assert server.process.process.wait(timeout=15) == 0, server.process.output()
        assert time.monotonic() - started < 10
    finally:
        server.stop()
