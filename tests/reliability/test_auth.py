"""With a token set, every HTTP route but ``/healthz`` and every Flight RPC refuse a missing
or wrong token; tokens are compared in constant time; no token reaches a log line.

``tests/integration`` checks the routes it knows by name; here the HTTP routes are
enumerated from the app itself (so a route added later is covered without editing this
file), and every Flight RPC is called, with the server logging at DEBUG with its access
log on, and the whole log searched for the token afterwards.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as dbapi
import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route, WebSocketRoute

import arrowlog.http.deps
import flight_server.auth
from arrowlog.config import Settings
from arrowlog.http import create_app
from arrowlog.log import Log
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve
from tests.reliability._support import put_table

TOKEN = "s3cr3t-token-XYZ-0123456789abcdef"
WRONG = "wr0ng-token-QRS-9876543210fedcba"
PUBLIC = {"/healthz"}


def _console_paths() -> set[str]:
    """The web console's static files: public by design (a browser cannot send a bearer
    header when it navigates; see ``arrowlog.http.console``). They must hold no data."""
    try:
        from arrowlog.http import console
    except ImportError:
        return set()
    return {r.path for r in _walk(console.router.routes) if hasattr(r, "path")}


# -- HTTP: every route, enumerated from the app ------------------------------------------------


def _walk(routes: list[Any]) -> Iterator[Any]:
    """Every route, also inside included routers (FastAPI >= 0.16x keeps them nested)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _walk(inner.routes)
        else:
            yield route


@pytest.fixture(scope="module")
def app_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, list[tuple[str, str]]]]:
    log = Log(Settings(data_dir=tmp_path_factory.mktemp("auth-app"), token=TOKEN))
    app = create_app(log, log.settings)
    routes: list[tuple[str, str]] = []
    for route in _walk(app.routes):
        path = re.sub(r"\{[^}]+\}", "auth_probe", getattr(route, "path", ""))
        if isinstance(route, APIRoute | Route):
            routes += [
                (m, path) for m in sorted(route.methods or ()) if m not in ("HEAD", "OPTIONS")
            ]
        elif isinstance(route, Mount):
            routes.append(("GET", path.rstrip("/") + "/auth_probe"))
        elif isinstance(route, WebSocketRoute):
            routes.append(("WEBSOCKET", path))
    # Host 127.0.0.1, not TestClient's "testserver": the app answers only its own names.
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, routes
    log.close()


def test_the_app_has_the_routes_we_expect_to_check(app_client) -> None:
    _, routes = app_client
    paths = {p for _, p in routes}
    assert {"/healthz", "/v1/query", "/v1/streams", "/metrics", "/docs", "/openapi.json"} <= paths


@pytest.mark.parametrize("token", [None, WRONG, "", TOKEN + "x", TOKEN[:-1]])
def test_every_http_route_but_healthz_refuses_a_missing_or_wrong_token(app_client, token) -> None:
    client, routes = app_client
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    checked = 0
    console = _console_paths()
    for method, path in routes:
        if path in PUBLIC:
            continue
        if path in console:
            # Static, and the same for everyone: no data can leak through it.
            anonymous = client.request(method, path)
            with_token = client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert anonymous.status_code == 200 and anonymous.content == with_token.content
            assert TOKEN.encode() not in anonymous.content
            continue
        if method == "WEBSOCKET":
            # Refused WebSocket handshakes surface as various exception types.
            with pytest.raises(Exception) as info, client.websocket_connect(path, headers=headers):
                pass
            text = str(info.value).lower()
            assert "401" in text or "403" in text or "close" in text, (path, text)
            continue
        r = client.request(method, path, headers=headers, content=b'{"sql": "SELECT 1"}')
        assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
        assert r.headers.get("www-authenticate") == "Bearer", (method, path)
        assert TOKEN not in r.text and (not token or token not in r.text)
        checked += 1
    assert checked >= 6
    assert client.get("/healthz", headers=headers).status_code == 200
    # A refused append wrote nothing.
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/v1/streams/auth_probe", headers=ok).status_code == 404


def test_other_schemes_are_not_the_token(app_client) -> None:
    client, _ = app_client
    basic = base64.b64encode(f"user:{TOKEN}".encode()).decode()
    for value in [f"Basic {basic}", TOKEN, f"Token {TOKEN}", f"Bearer  {TOKEN}x", "Bearer"]:
        r = client.get("/v1/streams", headers={"Authorization": value})
        assert r.status_code == 401, value


def test_tokens_are_compared_in_constant_time(app_client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both servers compare with ``hmac.compare_digest``, never with ``==``."""
    client, _ = app_client
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(arrowlog.http.deps.hmac, "compare_digest", spy)
    assert (
        client.get("/v1/streams", headers={"Authorization": f"Bearer {WRONG}"}).status_code == 401
    )
    assert (
        client.get("/v1/streams", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    )
    assert len(calls) == 2
    calls.clear()
    factory = flight_server.auth.BearerTokenMiddlewareFactory(TOKEN)
    monkeypatch.setattr(flight_server.auth.hmac, "compare_digest", spy)
    info = flight.CallInfo(flight.FlightMethod.DO_GET)
    with pytest.raises(flight.FlightUnauthenticatedError):
        factory.start_call(info, {"authorization": [f"Bearer {WRONG}"]})
    factory.start_call(info, {"authorization": [f"Bearer {TOKEN}"]})
    assert len(calls) == 2


# -- a real server: every Flight RPC, and the logs ---------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArrowlogServe]:
    """``arrowlog -vv serve --token ...``: DEBUG logs and the access log, token as a flag."""
    base = tmp_path_factory.mktemp("auth-serve")
    s = start_arrowlog_serve(base, verbose=2, extra_args=["--token", TOKEN])
    yield s
    s.stop()


def _assert_unauthenticated(name: str, call: Callable[[], object]) -> None:
    """The call fails with UNAUTHENTICATED (streamed calls, DoPut and DoExchange, report it
    when the stream closes, where pyarrow raises a plain OSError naming the code)."""
    try:
        call()
    except flight.FlightUnauthenticatedError as e:
        assert TOKEN not in str(e), name
        return
    except OSError as e:
        assert "Detail: Unauthenticated" in str(e), (name, e)
        assert TOKEN not in str(e), name
        return
    pytest.fail(f"{name} accepted the call")


def _options(value: str | None) -> flight.FlightCallOptions:
    headers = [(b"authorization", value.encode())] if value is not None else []
    return flight.FlightCallOptions(headers=headers, timeout=30)


def _flight_rpcs(
    client: flight.FlightClient, options: flight.FlightCallOptions
) -> dict[str, Callable[[], object]]:
    table = pa.table({"n": [1]})
    path = flight.FlightDescriptor.for_path("auth_probe")

    def do_put() -> object:
        return put_table(client, path, table, options)

    def do_exchange() -> object:
        writer, reader = client.do_exchange(flight.FlightDescriptor.for_command(b"x"), options)
        try:
            writer.begin(table.schema)
            writer.write_table(table)
            writer.done_writing()
            return reader.read_all()
        finally:
            writer.close()

    return {
        "ListFlights": lambda: list(client.list_flights(b"", options)),
        "GetFlightInfo": lambda: client.get_flight_info(path, options),
        "GetSchema": lambda: client.get_schema(path, options),
        "DoGet": lambda: client.do_get(flight.Ticket(b"SELECT 1"), options).read_all(),
        "DoPut": do_put,
        "DoExchange": do_exchange,
        "DoAction": lambda: list(client.do_action(flight.Action("list_streams", b""), options)),
        "ListActions": lambda: list(client.list_actions(options)),
    }


@pytest.mark.parametrize(
    "credentials",
    [
        None,
        f"Bearer {WRONG}",
        "Bearer ",
        f"Basic {base64.b64encode(f'u:{WRONG}'.encode()).decode()}",
        TOKEN,
    ],
    ids=["missing", "wrong", "empty", "basic-wrong", "no-scheme"],
)
def test_every_flight_rpc_refuses_a_missing_or_wrong_token(
    server: ArrowlogServe, credentials: str | None
) -> None:
    with flight.FlightClient(server.flight_url) as client:
        for name, call in _flight_rpcs(client, _options(credentials)).items():
            _assert_unauthenticated(name, call)
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token(b"user", WRONG.encode())
    with httpx.Client(
        base_url=server.http_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        assert http.get("/v1/streams/auth_probe").status_code == 404  # nothing was written


def test_the_right_token_opens_every_flight_rpc(server: ArrowlogServe) -> None:
    with flight.FlightClient(server.flight_url) as client:
        calls = _flight_rpcs(client, _options(f"Bearer {TOKEN}"))
        for name, call in calls.items():
            try:
                call()
            except flight.FlightUnauthenticatedError:
                pytest.fail(f"{name} refused the right token")
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowKeyError):
                pass  # e.g. DoExchange is not offered: the call got past the auth check


def test_the_token_never_appears_in_the_logs(server: ArrowlogServe) -> None:
    """Use the server every way there is, right and wrong, then search everything it logged."""
    good = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.http_url, headers=good, timeout=30) as http:
        body = b'{"ts": "2026-11-23T10:00:00Z", "n": 1}\n'
        ndjson = {"Content-Type": "application/x-ndjson"}
        assert (
            http.post("/v1/streams/tokens/records", content=body, headers=ndjson).status_code == 200
        )
        assert (
            http.post("/v1/query", json={"sql": "SELECT count(*) FROM tokens"}).status_code == 200
        )
        assert http.post("/v1/query", json={"sql": "SELECT x FROM nope"}).status_code == 404
        for path in [
            "/v1/streams",
            "/v1/streams/tokens",
            "/metrics",
            "/docs",
            "/openapi.json",
            "/healthz",
        ]:
            assert http.get(path).status_code == 200
        for headers in [{"Authorization": f"Bearer {WRONG}"}, {"Authorization": WRONG}, {}]:
            r = httpx.get(server.http_url + "/v1/streams", headers=headers)
            assert r.status_code == 401
    with flight.FlightClient(server.flight_url) as client:
        header, value = client.authenticate_basic_token(b"user", TOKEN.encode())
        options = flight.FlightCallOptions(headers=[(header, value)])
        assert (
            client.do_get(flight.Ticket(b"SELECT n FROM tokens"), options).read_all().num_rows == 1
        )
        for name, call in _flight_rpcs(client, _options(f"Bearer {WRONG}")).items():
            _assert_unauthenticated(name, call)
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token(b"user", WRONG.encode())
    header_option = adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value
    for kwargs in [{header_option: f"Bearer {TOKEN}"}, {"username": "u", "password": TOKEN}]:
        with dbapi.connect(server.flight_url, db_kwargs=kwargs) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tokens")
            assert cur.fetchone()[0] >= 1
            cur.adbc_ingest("tokens", pa.table({"n": [2]}), mode="append")
    with pytest.raises(dbapi.Error, match="UNAUTHENTICATED"):
        dbapi.connect(server.flight_url, db_kwargs={"username": "u", "password": WRONG})

    code = server.stop()
    assert code == 0
    logged = server.process.output()
    assert "token required" in logged or "flight" in logged  # the log is not empty
    assert len(logged.splitlines()) > 20, "expected DEBUG logs and the access log"
    secrets = {
        "the token": TOKEN,
        "a wrong token": WRONG,
        "the token in base64 basic credentials": base64.b64encode(
            f"user:{TOKEN}".encode()
        ).decode(),
        "part of the token": TOKEN[:12],
        "part of a wrong token": WRONG[:12],
    }
    for what, secret in secrets.items():
        assert secret not in logged, f"{what} appears in the server's log"
    assert json.dumps(TOKEN) not in logged
