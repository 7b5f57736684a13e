"""The HTTP limits' I/O-free parts: Host and Origin policies, the body budget, read_body,
and the error shape of an unexpected exception (no server can be made to raise one)."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from arrowlog.config import Settings
from arrowlog.errors import BatchTooLarge, BodiesInFlight, UnsupportedMediaType
from arrowlog.http import create_app
from arrowlog.http.body import read_body
from arrowlog.http.errors import status_for, status_name
from arrowlog.http.limits import BodyBudget, HostPolicy, OriginPolicy
from arrowlog.http.query import json_media_type
from arrowlog.log import Log


def hosts(**settings: str) -> HostPolicy:
    return HostPolicy(Settings(**settings))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "host",
    [
        None,  # HTTP/1.0: no browser sends a request without Host
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]:8080",
        "[::1]",
        "10.1.2.3:8080",  # an IP address cannot be rebound
        "localhost",
        "LOCALHOST:8080",
        "app.localhost:8080",
        "localhost.:8080",
    ],
)
def test_hosts_allowed_by_default(host: str | None) -> None:
    assert hosts().allows(host)


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "attacker.example:8080",
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
        "",
        "::1",  # unbracketed IPv6 is not a valid Host
        "[::1",
        "a:b:c",
        "host:port",
    ],
)
def test_hosts_refused_by_default(host: str) -> None:
    assert not hosts().allows(host)


def test_allowed_hosts_setting() -> None:
    policy = hosts(allowed_hosts="logs.internal, *.corp.example", host="0.0.0.0")
    assert policy.allows("logs.internal:8080") and policy.allows("a.b.corp.example")
    assert not policy.allows("corp.example") and not policy.allows("xcorp.example")
    assert hosts(allowed_hosts="*").allows("anything.example")
    assert hosts(host="node-a.internal").allows("node-a.internal:8080")
    assert hosts(advertise_host="node-b.internal").allows("NODE-B.internal")


def origins(**settings: str) -> OriginPolicy:
    return OriginPolicy(Settings(**settings))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "127.0.0.1:8080", True),  # not a browser, or a same-origin GET
        ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("https://logs.example.com", "logs.example.com", True),  # default port 443
        ("http://logs.example.com", "logs.example.com:80", True),
        ("https://logs.example.com", "logs.example.com:8080", False),
        ("http://127.0.0.1:8081", "127.0.0.1:8080", False),
        ("http://attacker.example", "127.0.0.1:8080", False),
        ("http://localhost:8080", "127.0.0.1:8080", False),  # another origin, same machine
        ("null", "127.0.0.1:8080", False),
        ("file://", "127.0.0.1:8080", False),
        ("http://127.0.0.1:8080", None, False),
        ("not a url", "127.0.0.1:8080", False),
    ],
)
def test_origins(origin: str | None, host: str | None, allowed: bool) -> None:
    assert origins().allows(origin, host) is allowed


def test_allowed_origins_setting() -> None:
    policy = origins(allowed_origins="https://dash.example.com, http://localhost:3000/")
    assert policy.allows("https://dash.example.com", "127.0.0.1:8080")
    assert policy.allows("https://dash.example.com:443", "127.0.0.1:8080")
    assert policy.allows("http://localhost:3000", "127.0.0.1:8080")
    assert not policy.allows("http://dash.example.com", "127.0.0.1:8080")
    assert origins(allowed_origins="*").allows("null", "127.0.0.1:8080")


def test_body_budget() -> None:
    budget = BodyBudget(100)
    budget.take(60)
    with pytest.raises(BodiesInFlight, match="max_inflight_body_bytes"):
        budget.take(41)
    budget.take(40)
    budget.give_back(100)
    budget.take(100)
    assert status_for(BodiesInFlight("x")) == 503


def test_json_media_type() -> None:
    for ok in ["application/json", "Application/JSON; charset=utf-8", "application/ld+json"]:
        json_media_type(ok)
    for bad in [None, "", "text/plain", "application/x-www-form-urlencoded", "text/json"]:
        with pytest.raises(UnsupportedMediaType):
            json_media_type(bad)


def test_status_names() -> None:
    assert status_name(404) == "NotFound"
    assert status_name(405) == "MethodNotAllowed"
    assert status_name(431) == "RequestHeaderFieldsTooLarge"
    assert status_name(599) == "HTTP599"


def _request(chunks: list[bytes], content_length: int | None) -> Request:
    headers = [] if content_length is None else [(b"content-length", b"%d" % content_length)]
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict:
        return messages.pop(0)

    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


def test_read_body_never_allocates_what_is_only_declared() -> None:
    tracemalloc.start()
    try:
        body = asyncio.run(read_body(_request([b"x" * 1000], 60_000_000), 64 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert body == b"x" * 1000
    assert peak < 1 << 20, f"{peak} bytes allocated for a 1,000-byte body"


def test_read_body_limits() -> None:
    assert asyncio.run(read_body(_request([b"ab", b"cd"], None), 4)) == b"abcd"
    with pytest.raises(BatchTooLarge):
        asyncio.run(read_body(_request([b"ab", b"cde"], None), 4))
    with pytest.raises(BatchTooLarge):
        asyncio.run(read_body(_request([b""], 5), 4))  # refused from the declared length


def test_an_unexpected_exception_answers_500_in_the_error_shape(tmp_path: Path) -> None:
    log = Log(Settings(data_dir=tmp_path))
    try:
        app: FastAPI = create_app(log, log.settings)

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("secret internals /etc/passwd")

        async def get() -> httpx.Response:
            transport = httpx.ASGITransport(app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                return await c.get("/boom")

        r = asyncio.run(get())
        assert r.status_code == 500
        assert r.json() == {
            "error": "InternalError",
            "message": "internal server error: see the server's log",
        }
        assert "secret" not in r.text and "Traceback" not in r.text
    finally:
        log.close()
