"""What a client sees of a Flight error: the message, never the server's traceback or paths.

pyarrow sends an exception raised by a Flight handler with a status detail; for anything but
a ``FlightError`` that detail was ``traceback.format_exception`` of the handler, file paths
and all (see ``flight_server.errors``). Here several kinds of error (not found, invalid
SQL, read-only refusal, bad ticket, bad action, unknown action, a failure mid-stream, an
injected internal error) go through ``pyarrow.flight`` and ADBC (the text a user sees,
and the gRPC trailers the driver hands over as details), and none may show a traceback,
a source file or a server path. The server logs expected refusals without a traceback
and an unexpected error at ERROR with its traceback.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest

import arrowlog
from arrowlog.errors import InvalidInput, StreamNotFound
from flight_server import sql_protocol as sp
from flight_server.errors import GENERIC_INTERNAL_MESSAGE, CleanDetail, to_flight_error
from flight_server.server import serve
from tests.conftest import REPO_ROOT, TEST_TOKEN
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve
from tests.reliability._support import put_table

STREAM = "base"
BEARER = flight.FlightCallOptions(
    headers=[(b"authorization", f"Bearer {TEST_TOKEN}".encode())], timeout=30
)


def _leaks(text: str, *paths: Path) -> list[str]:
    """What ``text`` shows that a client must not see."""
    marks = ["Traceback", 'File "', '.py"', ".py:", "site-packages", str(REPO_ROOT)]
    marks += [str(p) for p in paths]
    return [m for m in marks if m in text]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArrowlogServe]:
    s = start_arrowlog_serve(tmp_path_factory.mktemp("errors"), token=TEST_TOKEN)
    client = flight.FlightClient(s.flight_url)
    put_table(client, flight.FlightDescriptor.for_path(STREAM), pa.table({"n": [1, 2, 3]}), BEARER)
    client.close()
    yield s
    assert s.stop() == 0, s.process.output()
    # Every error here was the client's: none is logged as a server failure.
    log = s.process.stderr_path.read_text(errors="replace")
    assert "Traceback" not in log and "failed unexpectedly" not in log, log[-5000:]


@pytest.fixture(scope="module")
def client(server: ArrowlogServe) -> Iterator[flight.FlightClient]:
    c = flight.FlightClient(server.flight_url)
    yield c
    c.close()


def _sql(c: flight.FlightClient, sql: str) -> pa.Table:
    return c.do_get(flight.Ticket(sql.encode()), BEARER).read_all()


def _update(c: flight.FlightClient, sql: str) -> None:
    command = sp.pack(sp.CommandStatementUpdate(query=sql))
    writer, reader = c.do_put(flight.FlightDescriptor.for_command(command), pa.schema([]), BEARER)
    writer.done_writing()
    reader.read()
    writer.close()


def _wrong_type_put(c: flight.FlightClient) -> None:
    descriptor = flight.FlightDescriptor.for_path(STREAM)
    put_table(c, descriptor, pa.table({"n": ["not a number"]}), BEARER)


# (case, call, error class, a fragment of the message)
FLIGHT_CASES: list[tuple[str, Callable[[flight.FlightClient], object], type, str]] = [
    (
        "sql on a missing stream",
        lambda c: _sql(c, "SELECT * FROM nope"),
        pa.ArrowKeyError,
        "not found",
    ),
    (
        "read of a missing stream",
        lambda c: c.do_get(flight.Ticket(b'{"read": "nope"}'), BEARER).read_all(),
        pa.ArrowKeyError,
        "stream 'nope' not found",
    ),
    (
        "describe a missing stream",
        lambda c: list(c.do_action(flight.Action("describe", b"nope"), BEARER)),
        pa.ArrowKeyError,
        "stream 'nope' not found",
    ),
    (
        "flight info of a missing stream",
        lambda c: c.get_flight_info(flight.FlightDescriptor.for_path("nope"), BEARER),
        pa.ArrowKeyError,
        "not found",
    ),
    ("invalid SQL", lambda c: _sql(c, "SELEC 1"), pa.ArrowInvalid, "SQL error"),
    ("unknown column", lambda c: _sql(c, "SELECT nope FROM base"), pa.ArrowInvalid, "nope"),
    (
        "failure mid-stream",
        lambda c: _sql(c, "SELECT CAST(CAST(n AS VARCHAR) || 'x' AS INT) FROM base"),
        pa.ArrowInvalid,
        "Cannot cast",
    ),
    (
        "read-only DDL",
        lambda c: _sql(c, "CREATE TABLE t (a INT)"),
        flight.FlightUnauthorizedError,
        "read-only",
    ),
    (
        "read-only update",
        lambda c: _update(c, "DELETE FROM base"),
        flight.FlightUnauthorizedError,
        "read-only",
    ),
    (
        "garbage ticket",
        lambda c: c.do_get(flight.Ticket(b"\x00\xff\xfe"), BEARER).read_all(),
        pa.ArrowInvalid,
        "unreadable ticket",
    ),
    (
        "bad JSON ticket",
        lambda c: c.do_get(flight.Ticket(b'{"read": ["base"]}'), BEARER).read_all(),
        pa.ArrowInvalid,
        "field 'read'",
    ),
    (
        "bad action body",
        lambda c: list(c.do_action(flight.Action("flush", b'{"stream": 1}'), BEARER)),
        pa.ArrowInvalid,
        "field 'stream'",
    ),
    (
        "unknown action",
        lambda c: list(c.do_action(flight.Action("nope", b""), BEARER)),
        pa.ArrowNotImplementedError,
        "unknown action 'nope'",
    ),
    (
        "transaction",
        lambda c: list(c.do_action(flight.Action(sp.ACTION_BEGIN_TRANSACTION, b""), BEARER)),
        pa.ArrowNotImplementedError,
        "transactions are not supported",
    ),
    ("type conflict on DoPut", _wrong_type_put, pa.ArrowInvalid, "column 'n' has type string"),
]


@pytest.mark.parametrize(
    ("call", "error", "fragment"), [c[1:] for c in FLIGHT_CASES], ids=[c[0] for c in FLIGHT_CASES]
)
def test_pyarrow_flight_errors_carry_no_traceback(
    server: ArrowlogServe,
    client: flight.FlightClient,
    call: Callable[[flight.FlightClient], object],
    error: type,
    fragment: str,
) -> None:
    with pytest.raises(error) as info:
        call(client)
    message = str(info.value)
    assert fragment in message, message
    assert not _leaks(message, server.data_dir), message
    assert ". Detail: " in message  # pyarrow's; what follows is only a class name
    detail = message.split(". Detail: ", 1)[1].split(". gRPC client debug context", 1)[0]
    assert len(detail) < 60 and "\n" not in detail.strip(), detail


ADBC_CASES = [
    ("missing stream", "SELECT * FROM nope", adbc_driver_manager.ProgrammingError, "not found"),
    ("invalid SQL", "SELEC 1", adbc_driver_manager.ProgrammingError, "SQL error"),
    ("unknown function", "SELECT nope(n) FROM base", adbc_driver_manager.ProgrammingError, "nope"),
    ("read-only", "DROP TABLE base", adbc_driver_manager.ProgrammingError, "read-only"),
    (
        "failure mid-stream",
        "SELECT CAST(CAST(n AS VARCHAR) || 'x' AS INT) FROM base",
        adbc_driver_manager.ProgrammingError,
        "Cannot cast",
    ),
]


def _adbc(url: str, token: str | None = TEST_TOKEN) -> flightsql.Connection:
    kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {token}"} if token else {}
    return flightsql.connect(url, db_kwargs=kwargs, autocommit=True)


def _adbc_text(e: BaseException) -> str:
    """All the text ADBC hands a user for an error: the message and the details."""
    details = getattr(e, "details", None) or []
    return "\n".join([str(e), *(v.decode("utf-8", "replace") for _k, v in details)])


@pytest.mark.parametrize(
    ("sql", "error", "fragment"), [c[1:] for c in ADBC_CASES], ids=[c[0] for c in ADBC_CASES]
)
def test_adbc_errors_carry_no_traceback(
    server: ArrowlogServe, sql: str, error: type, fragment: str
) -> None:
    with _adbc(server.flight_url) as conn, conn.cursor() as cur, pytest.raises(error) as info:
        cur.execute(sql)
        cur.fetch_arrow_table()
    text = _adbc_text(info.value)
    assert fragment in text, text
    assert not _leaks(text, server.data_dir), text


def test_adbc_executemany_and_ingest_errors_carry_no_traceback(server: ArrowlogServe) -> None:
    with _adbc(server.flight_url) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.executemany("SELECT * FROM base WHERE n = ?", [(1,), (2,)])
        assert "executemany" in _adbc_text(info.value) and not _leaks(_adbc_text(info.value))
        with pytest.raises(adbc_driver_manager.Error) as info:
            cur.adbc_ingest("a/b", pa.table({"n": [1]}), mode="create_append")
        text = _adbc_text(info.value)
        assert "invalid stream name" in text and not _leaks(text, server.data_dir), text


# -- an injected internal error, in-process so the failure can be planted ---------------------


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[tuple[str, arrowlog.Log]]:
    log = arrowlog.open(tmp_path / "data")
    log.append(STREAM, pa.table({"n": [1, 2, 3]}))
    server = serve(log, port=0)
    yield server.url, log
    server.shutdown()
    log.close()


def _explode(*_args: object, **_kwargs: object) -> object:
    raise RuntimeError(f"planted failure in {__file__}, reading {REPO_ROOT}/secret")


def test_an_internal_error_reaches_clients_as_a_generic_message(
    planted: tuple[str, arrowlog.Log],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, log = planted
    caplog.set_level(logging.DEBUG, logger="flight_server")
    monkeypatch.setattr(log, "sql", _explode)
    monkeypatch.setattr(log, "describe", _explode)
    monkeypatch.setattr(
        log, "iter_read", lambda *a, **k: iter([log.read(STREAM, 0, 1), _explode()])
    )
    c = flight.FlightClient(url)
    calls = [
        lambda: c.do_get(flight.Ticket(b"SELECT 1")).read_all(),
        lambda: list(c.do_action(flight.Action("describe", b"base"))),
        lambda: c.do_get(flight.Ticket(json.dumps({"read": STREAM}).encode())).read_all(),
    ]
    for call in calls:
        with pytest.raises(flight.FlightInternalError) as info:
            call()
        assert GENERIC_INTERNAL_MESSAGE in str(info.value)
        assert not _leaks(str(info.value)) and "planted" not in str(info.value), info.value
    c.close()
    with _adbc(url, None) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as adbc_info:
            cur.execute("SELECT 1")
            cur.fetch_arrow_table()
        text = _adbc_text(adbc_info.value)
        assert GENERIC_INTERNAL_MESSAGE in text and "planted" not in text and not _leaks(text), text
    # The server log has it all, at ERROR, with the traceback.
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failures and all(r.exc_info for r in failures)
    assert any("planted failure" in caplog.text for _ in failures)


def test_refusals_are_logged_without_a_traceback(
    planted: tuple[str, arrowlog.Log], caplog: pytest.LogCaptureFixture
) -> None:
    url, _log = planted
    caplog.set_level(logging.DEBUG, logger="flight_server")
    c = flight.FlightClient(url)
    for raw in (b'{"read": ["base"]}', b"SELECT * FROM nope", b"SELEC 1"):
        with pytest.raises((pa.ArrowInvalid, pa.ArrowKeyError)):
            c.do_get(flight.Ticket(raw)).read_all()
    c.close()
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 3
    assert all(r.levelno <= logging.INFO and not r.exc_info for r in refused), refused
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_only_clean_detail_errors_are_formatted_without_a_traceback() -> None:
    try:
        raise ValueError("an ordinary error")
    except ValueError as e:
        ordinary = e
    lines = traceback.format_exception(type(ordinary), ordinary, ordinary.__traceback__)
    assert lines[0].startswith("Traceback") and lines == traceback.format_exception(ordinary)
    for exc, name in [
        (InvalidInput("bad"), "InvalidInput"),
        (StreamNotFound("stream 'x' not found"), "StreamNotFound"),
        (NotImplementedError("no"), "NotImplementedError"),
    ]:
        try:
            raise to_flight_error(exc)
        except CleanDetail as e:
            assert traceback.format_exception(type(e), e, e.__traceback__) == [name]
            assert traceback.format_exception(e) == [name]
