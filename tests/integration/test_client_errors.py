"""arrowlog.connect() raises what arrowlog.open() raises: the same class, message and attributes.

An embedded Log and a real ``arrowlog serve`` with the same settings and data get the same
calls, and every error must match (``arrowlog/wire_errors.py`` says how the server names the
class). Errors no client can provoke from one server (a shard another node writes, a lost
lease, a failed disk) are planted in an in-process Flight server instead, for every class of
``arrowlog/errors.py``. Last, what an older server sends and what a client must not believe:
those fall back to the class of the status code. ADBC sees the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow.flight as flight
import pytest

import arrowlog
from arrowlog.errors import (
    ArrowlogError,
    BatchTooLarge,
    InvalidInput,
    LeaseLost,
    NotShardOwner,
    QueryLimitExceeded,
    ReadOnlyQuery,
    StreamNotFound,
    TooManyTails,
    Unauthenticated,
    Unavailable,
)
from arrowlog.testing import Server, serve
from arrowlog.wire_errors import ERRORS
from flight_server.errors import InvalidArgument, NotFound
from flight_server.server import serve as serve_in_process
from tests.conftest import TEST_TOKEN

STREAM = "base"
SETTINGS: dict[str, Any] = {
    "max_tails_per_client": 1,
    "max_batch_bytes": 100_000,
    "query_timeout": 2.0,
    "query_memory_limit": 20 << 20,
}
Target = arrowlog.Log | arrowlog.Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("client-errors")
    with serve(base / "data", log_dir=base / "logs", token=TEST_TOKEN, **SETTINGS) as s:
        yield s


@pytest.fixture(scope="module")
def remote(server: Server) -> Iterator[arrowlog.Client]:
    with server.connect() as client:
        client.append(STREAM, {"n": [1, 2, 3]})
        yield client


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[arrowlog.Log]:
    log = arrowlog.open(tmp_path_factory.mktemp("embedded") / "data", **SETTINGS)
    log.append(STREAM, {"n": [1, 2, 3]})
    yield log
    log.close()


def _error(call: Callable[[Target], object], target: Target) -> ArrowlogError:
    with pytest.raises(ArrowlogError) as info:
        call(target)
    return info.value


def _same(remote: ArrowlogError, embedded: ArrowlogError) -> None:
    assert type(remote) is type(embedded), (remote, embedded)
    assert str(remote) == str(embedded)
    assert vars(remote) == vars(embedded)  # TooManyTails.per_client, NotShardOwner.owner ...


# (case, call on a Log or a Client, the class both raise)
CASES: list[tuple[str, Callable[[Target], object], type[ArrowlogError]]] = [
    ("sql, missing stream", lambda t: t.sql("SELECT * FROM nope").to_arrow(), StreamNotFound),
    ("describe, missing stream", lambda t: t.describe("nope"), StreamNotFound),
    ("read, missing stream", lambda t: t.read("nope"), StreamNotFound),
    ("tail, missing stream", lambda t: next(iter(t.tail("nope", poll=0.1))), StreamNotFound),
    ("invalid SQL", lambda t: t.sql("SELEC 1").to_arrow(), InvalidInput),
    ("unknown column", lambda t: t.sql(f"SELECT nope FROM {STREAM}").to_arrow(), InvalidInput),
    (
        "failure mid-stream",
        lambda t: t.sql("SELECT 1 / (value - 2) FROM range(5)").to_arrow(),
        InvalidInput,
    ),
    ("type conflict", lambda t: t.append(STREAM, {"n": ["x"]}), InvalidInput),
    ("invalid stream name", lambda t: t.append("bad name", {"n": [1]}), InvalidInput),
    ("read, a shard it lacks", lambda t: t.read(STREAM, shard=3), InvalidInput),
    ("read-only DDL", lambda t: t.sql(f"DROP TABLE {STREAM}").to_arrow(), ReadOnlyQuery),
    ("read-only COPY", lambda t: t.sql(f"COPY {STREAM} TO 'x.csv'").to_arrow(), ReadOnlyQuery),
    (
        "query_timeout",
        lambda t: t.sql("SELECT count(*) FROM range(100000000000)").to_arrow(),
        QueryLimitExceeded,
    ),
    (
        "batch over max_batch_bytes",
        lambda t: t.append(STREAM, {"n": list(range(100_000))}),
        BatchTooLarge,
    ),
]


@pytest.mark.parametrize(("call", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_client_raises_what_the_log_raises(
    remote: arrowlog.Client,
    embedded: arrowlog.Log,
    call: Callable[[Target], object],
    error: type[ArrowlogError],
) -> None:
    expected = _error(call, embedded)
    assert type(expected) is error  # the case provokes what it says
    _same(_error(call, remote), expected)
    assert remote.read(STREAM).num_rows == 3  # the server keeps serving


def test_query_memory_limit(remote: arrowlog.Client, embedded: arrowlog.Log) -> None:
    query = "SELECT value FROM range(50000000) ORDER BY value DESC LIMIT 100000000"
    got, expected = (_error(lambda t: t.sql(query).to_arrow(), t) for t in (remote, embedded))
    assert type(got) is type(expected) is QueryLimitExceeded
    # The engine's own words after the colon count bytes that threads reserved meanwhile.
    prefix = "query exceeded the memory limit of 20971520 bytes (query_memory_limit): "
    assert str(got).startswith(prefix) and str(expected).startswith(prefix), (got, expected)


def test_too_many_tails_per_client(remote: arrowlog.Client, embedded: arrowlog.Log) -> None:
    # Embedded tails are not counted; a server counts them per client address, as here.
    with embedded.open_tail(STREAM, client="127.0.0.1", protocol="flight"):
        expected = _error(
            lambda log: log.open_tail(STREAM, client="127.0.0.1", protocol="flight"), embedded
        )
    held = remote.tail(STREAM, poll=0.1)
    try:
        assert next(held).num_rows == 3
        got = _error(lambda client: next(client.tail(STREAM, poll=0.1)), remote)
    finally:
        held.close()
    assert type(expected) is TooManyTails and expected.per_client
    _same(got, expected)


def test_unauthenticated(server: Server) -> None:
    for token, message in [
        (
            None,
            "missing credentials: send the header 'authorization: Bearer <token>' "
            "(or basic auth with the token as password)",
        ),
        ("wrong", "invalid bearer token"),
    ]:
        with arrowlog.connect(server.flight_url, token) as client:
            error = _error(lambda c: c.streams(), client)
        assert type(error) is Unauthenticated and str(error) == message


# -- every class, planted in an in-process server ---------------------------------------------


def _example(cls: type[ArrowlogError]) -> ArrowlogError:
    """An error of ``cls`` with every attribute set, as the code that raises it would."""
    if cls is TooManyTails:
        return cls("too many tails: 2 open, at most 2 (max_tails); retry later", per_client=False)
    if cls is NotShardOwner:
        owner = {"node": "node-b", "flight": "grpc://10.0.0.2:8815", "http": "http://10.0.0.2:8080"}
        return cls(
            "shard 1 of stream 'events' is written by node 'node-b'",
            stream="events",
            shard=1,
            owner=owner,
        )
    return cls(f"planted {cls.__name__}: a message with 'quotes', ü and a. Detail: inside")


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[tuple[str, arrowlog.Log]]:
    log = arrowlog.open(tmp_path / "data")
    log.append(STREAM, {"n": [1, 2, 3]})
    server = serve_in_process(log, port=0)
    yield server.url, log
    server.shutdown()
    log.close()


def _raiser(error: BaseException) -> Callable[..., Any]:
    def raise_it(*_args: object, **_kwargs: object) -> Any:
        raise error

    return raise_it


VERBS: dict[str, tuple[str, Callable[[arrowlog.Client], object]]] = {
    "DoAction": ("describe", lambda c: c.describe(STREAM)),
    "DoGet": ("read", lambda c: c.read(STREAM)),
    "DoPut": ("append", lambda c: c.append(STREAM, {"n": [4]})),
}


@pytest.mark.parametrize("rpc", VERBS)
@pytest.mark.parametrize("cls", ERRORS.values(), ids=list(ERRORS))
def test_every_class_arrives_as_itself(
    planted: tuple[str, arrowlog.Log],
    monkeypatch: pytest.MonkeyPatch,
    cls: type[ArrowlogError],
    rpc: str,
) -> None:
    url, log = planted
    method, call = VERBS[rpc]
    expected = _example(cls)
    monkeypatch.setattr(log, method, _raiser(expected))
    with arrowlog.connect(url) as client:
        _same(_error(call, client), expected)


def test_no_owner_right_now(planted: tuple[str, arrowlog.Log], monkeypatch) -> None:
    url, log = planted
    expected = NotShardOwner(
        "shard 0 of stream 'base' is written by no node right now (retry shortly)",
        stream=STREAM,
        shard=0,
        owner={},
    )
    monkeypatch.setattr(log, "append", _raiser(expected))
    with arrowlog.connect(url) as client:
        _same(_error(lambda c: c.append(STREAM, {"n": [4]}), client), expected)


def _adbc_sees(url: str) -> tuple[str, list[tuple[bytes, bytes]]]:
    with (
        flightsql.connect(url, autocommit=True) as conn,
        conn.cursor() as cur,
        pytest.raises(adbc_driver_manager.Error) as info,
    ):
        cur.execute(f"SELECT * FROM {STREAM}")
        cur.fetch_arrow_table()
    return str(info.value), sorted(getattr(info.value, "details", None) or [])  # any order


def test_adbc_sees_no_difference(planted: tuple[str, arrowlog.Log], monkeypatch) -> None:
    """A class and its attributes reach arrowlog.Client only: ADBC's text and details are
    those of the status code's class with the same message."""
    url, log = planted
    seen = []
    for error in (
        _example(NotShardOwner),
        Unavailable(str(_example(NotShardOwner))),
        LeaseLost(str(_example(NotShardOwner))),
    ):
        for method in ("sql", "sql_schema"):
            monkeypatch.setattr(log, method, _raiser(error))
        seen.append(_adbc_sees(url))
    assert seen[0] == seen[1] == seen[2], seen
    assert "node-b" in seen[0][0] and "owner" not in repr(seen[0])


# -- what an older server sends, and what a client must not believe --------------------------


class _Impostor(flight.FlightServerBase):
    """A Flight server that answers every action with the error it was given."""

    error: BaseException = RuntimeError("unset")

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Any:
        raise self.error


@pytest.fixture(scope="module")
def impostor() -> Iterator[_Impostor]:
    server = _Impostor("grpc://127.0.0.1:0")
    yield server
    server.shutdown()


def _not_found(message: str, name: str) -> NotFound:
    error = NotFound(message)
    error.arrowlog_error = name  # the status detail: "Python exception: <name>"
    return error


def _invalid(message: str, name: str) -> InvalidArgument:
    error = InvalidArgument(message)
    error.arrowlog_error = name
    return error


# (case, what the server raises, the class the client raises)
FOREIGN: list[tuple[str, BaseException, type[ArrowlogError]]] = [
    # An older server: a bare name, attributes not sent.
    ("old server, LeaseLost", flight.FlightUnavailableError("m", b"LeaseLost"), LeaseLost),
    ("old server, TooManyTails", flight.FlightUnavailableError("m", b"TooManyTails"), Unavailable),
    (
        "old server, NotShardOwner",
        flight.FlightUnavailableError("m", b"NotShardOwner"),
        Unavailable,
    ),
    ("read-only", flight.FlightUnauthorizedError("m", b"ReadOnlyQuery"), ReadOnlyQuery),
    ("no name", flight.FlightUnavailableError("m"), Unavailable),
    ("no name, PERMISSION_DENIED", flight.FlightUnauthorizedError("m"), ArrowlogError),
    ("detail name", _not_found("m", "StreamNotFound"), StreamNotFound),
    ("detail name, narrower", _invalid("m", "QueryLimitExceeded"), QueryLimitExceeded),
    # Names that are not arrowlog's, or contradict the status code.
    ("not arrowlog's", flight.FlightInternalError("m", b"ValueError"), ArrowlogError),
    ("a former name", flight.FlightUnavailableError("m", b"NotPartitionOwner"), Unavailable),
    ("code", flight.FlightUnavailableError("m", b"__import__('os').getcwd()"), Unavailable),
    ("bytes", flight.FlightUnavailableError("m", b"\xff\xfeLeaseLost"), Unavailable),
    ("contradicts", flight.FlightUnavailableError("m", b"StreamNotFound"), Unavailable),
    ("contradicts, detail", _not_found("m", "Unauthenticated"), StreamNotFound),
    ("detail, not a name", _invalid("m", "os.system"), InvalidInput),
    ("JSON, not an object", flight.FlightUnavailableError("m", b'["LeaseLost"]'), Unavailable),
    ("JSON, broken", flight.FlightUnavailableError("m", b'{"error": "LeaseLost"'), Unavailable),
    (
        "JSON, a wrong type",
        flight.FlightUnavailableError(
            "m", b'{"error": "NotShardOwner", "stream": "s", "shard": "1", "owner": {}}'
        ),
        Unavailable,
    ),
    (
        "JSON, a missing attribute",
        flight.FlightUnavailableError("m", b'{"error": "TooManyTails"}'),
        Unavailable,
    ),
]


@pytest.mark.parametrize(
    ("error", "expected"), [c[1:] for c in FOREIGN], ids=[c[0] for c in FOREIGN]
)
def test_an_unknown_or_doubtful_name_falls_back_to_the_status_code(
    impostor: _Impostor, error: BaseException, expected: type[ArrowlogError]
) -> None:
    impostor.error = error
    with arrowlog.connect(f"grpc://127.0.0.1:{impostor.port}") as client:
        got = _error(lambda c: c.describe(STREAM), client)
    assert type(got) is expected and str(got) == "m", got


def test_newer_attributes_are_ignored(impostor: _Impostor) -> None:
    impostor.error = flight.FlightUnavailableError(
        "m", b'{"error": "TooManyTails", "per_client": true, "retry_after": 3}'
    )
    with arrowlog.connect(f"grpc://127.0.0.1:{impostor.port}") as client:
        got = _error(lambda c: c.describe(STREAM), client)
    assert type(got) is TooManyTails and got.per_client and vars(got) == {"per_client": True}
