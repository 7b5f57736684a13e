"""Plain Arrow Flight against a real server process, with pyarrow.flight as the client.

SQL tickets, DoPut with offset acknowledgements, list_flights, flight info and schema for a
stream, actions, tail, bad requests (status class, gRPC code and message), token auth,
TLS, and a graceful SIGTERM shutdown.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from google.protobuf import any_pb2

import arrowlog
from arrowlog.errors import (
    ArrowlogError,
    BatchTooLarge,
    InvalidInput,
    ReadOnlyQuery,
    StorageError,
    StreamNotFound,
    Unauthenticated,
    Unavailable,
)
from flight_server import sql_protocol as sp
from flight_server.errors import (
    GENERIC_INTERNAL_MESSAGE,
    InvalidArgument,
    NotFound,
    to_flight_error,
)
from tests.conftest import TEST_TOKEN, FlightServer, self_signed_cert, start_flight_server

BEARER = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {TEST_TOKEN}".encode())])


@pytest.fixture
def client(flight_server: FlightServer) -> Iterator[flight.FlightClient]:
    c = flight.connect(flight_server.url)
    yield c
    c.close()


def _put(
    client: flight.FlightClient,
    stream: str,
    tables: list[pa.Table],
    options: flight.FlightCallOptions | None = None,
) -> list[dict[str, object]]:
    """DoPut each table as one batch; return the acknowledgements (PutResult JSON)."""
    writer, reader = client.do_put(
        flight.FlightDescriptor.for_path(stream),
        tables[0].schema,
        options or flight.FlightCallOptions(),
    )
    acks = []
    with writer:
        for table in tables:
            writer.write_batch(table.combine_chunks().to_batches()[0])
            acks.append(json.loads(reader.read().to_pybytes()))
        writer.done_writing()
    return acks


def _logs(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "ts": pa.array(range(start, start + n), pa.timestamp("s", tz="UTC")),
            "level": pa.array((["INFO", "ERROR"] * n)[:n]),
            "n": pa.array(range(start, start + n), pa.int64()),
        }
    )


def _sql(client: flight.FlightClient, sql: str) -> pa.Table:
    return client.do_get(flight.Ticket(sql.encode())).read_all()


# -- queries and ingest ----------------------------------------------------------------------


def test_seed_example_do_get_sql_ticket(client: flight.FlightClient, stream_name: str) -> None:
    _put(client, stream_name, [_logs(10)])
    reader = client.do_get(flight.Ticket(f"SELECT * FROM {stream_name}".encode()))
    frames = [chunk.data.to_pandas() for chunk in reader]
    df = frames[0]
    assert len(df) == 10
    assert sorted(df["n"]) == list(range(10))
    assert list(df.columns) == ["ts", "level", "n", "_offset", "_ingested_at"]


def test_do_put_acknowledges_offsets(client: flight.FlightClient, stream_name: str) -> None:
    acks = _put(client, stream_name, [_logs(3), _logs(5, 3), _logs(2, 8)])
    same = {"stream": stream_name, "shard": 0, "partition": 0}  # partition: the former name
    assert acks == [
        {**same, "accepted": 3, "first_offset": 0, "last_offset": 2},
        {**same, "accepted": 5, "first_offset": 3, "last_offset": 7},
        {**same, "accepted": 2, "first_offset": 8, "last_offset": 9},
    ]
    table = _sql(client, f"SELECT n, _offset FROM {stream_name} ORDER BY _offset")
    assert table.column("n").to_pylist() == list(range(10))
    assert table.column("_offset").to_pylist() == list(range(10))


def test_results_stream_in_coalesced_batches(client: flight.FlightClient) -> None:
    reader = client.do_get(flight.Ticket(b"SELECT value AS n FROM range(300000)"))
    sizes = [chunk.data.num_rows for chunk in reader]
    assert sum(sizes) == 300_000
    assert len(sizes) >= 4  # streamed, not one materialised batch
    assert max(sizes) > 8192  # DataFusion's 8192-row batches were coalesced


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _ready_workers(server: FlightServer) -> list[int]:
    """The server's query workers (its child processes), once each has said it is ready."""
    deadline = time.monotonic() + 60
    while True:
        pids = {
            int(child)
            for task in Path(f"/proc/{server.process.pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        }
        ready = {
            int(pid) for pid in re.findall(r"query worker (\d+) ready", server.process.output())
        }
        if pids and pids <= ready:
            return sorted(pids)
        assert time.monotonic() < deadline, server.process.output()[-3000:]
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_server_memory_bounded_while_streaming(
    client: flight.FlightClient, flight_server: FlightServer
) -> None:
    # The server relays batches from a query worker, which runs the engine: neither holds
    # the whole result. Once all workers are up, queries in a row run in the same one (the
    # pool hands out the worker freed last), so the warm-up warms the one measured.
    server = flight_server.process.pid
    pids = [server, *_ready_workers(flight_server)]
    query = "SELECT value AS a, value * 2 AS b, 'row number ' || CAST(value AS VARCHAR) AS s FROM range({})"
    _sql(client, query.format(200_000))  # warm up thread pools and allocator arenas
    before = {pid: _status_kb(pid, "VmRSS") * 1024 for pid in pids}
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := current RSS
    received = 0
    for chunk in client.do_get(flight.Ticket(query.format(4_000_000).encode())):
        received += chunk.data.nbytes
    growth = {pid: _status_kb(pid, "VmHWM") * 1024 - before[pid] for pid in pids}
    assert received > 100_000_000
    for pid in pids:  # streamed, never held whole
        assert growth[pid] < received / 4, (pid == server, growth, received)


def test_statement_query_via_flight_sql_messages(
    client: flight.FlightClient, stream_name: str
) -> None:
    _put(client, stream_name, [_logs(4)])
    command = sp.pack(sp.CommandStatementQuery(query=f"SELECT count(*) AS c FROM {stream_name}"))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command))
    assert info.schema.names == ["c"]
    ticket = info.endpoints[0].ticket
    # Stateless ticket: it can be redeemed twice, and sees appends made in between.
    assert client.do_get(ticket).read_all().column("c").to_pylist() == [4]
    _put(client, stream_name, [_logs(2, 4)])
    assert client.do_get(ticket).read_all().column("c").to_pylist() == [6]


def test_ingest_command_without_rows_creates_stream(
    client: flight.FlightClient, stream_name: str
) -> None:
    schema = pa.schema([("level", pa.string()), ("n", pa.int64())])
    create = sp.CommandStatementIngest(table=stream_name)
    create.table_definition_options.if_not_exist = sp.TableNotExistOption.CREATE
    create.table_definition_options.if_exists = sp.TableExistsOption.FAIL
    writer, reader = client.do_put(flight.FlightDescriptor.for_command(sp.pack(create)), schema)
    with writer:
        writer.done_writing()
        assert sp.decode_update_result(reader.read()) == 0
    assert client.get_schema(flight.FlightDescriptor.for_path(stream_name)).schema.names[:2] == [
        "level",
        "n",
    ]


def test_sql_info(client: flight.FlightClient) -> None:
    command = sp.pack(sp.CommandGetSqlInfo())
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command))
    assert info.schema.equals(sp.GET_SQL_INFO_SCHEMA)
    table = client.do_get(info.endpoints[0].ticket).read_all()
    values = dict(zip(table["info_name"].to_pylist(), table["value"].to_pylist(), strict=True))
    assert values[sp.SqlInfo.FLIGHT_SQL_SERVER_NAME] == "arrowlog"
    assert values[sp.SqlInfo.FLIGHT_SQL_SERVER_VERSION] == arrowlog.__version__
    assert values[sp.SqlInfo.FLIGHT_SQL_SERVER_READ_ONLY] is True
    assert values[sp.SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION] == sp.SqlSupportedTransaction.NONE
    assert values[sp.SqlInfo.SQL_TRANSACTIONS_SUPPORTED] is False
    assert values[sp.SqlInfo.SQL_IDENTIFIER_QUOTE_CHAR] == '"'


# -- streams: list_flights, flight info, schema, actions ---------------------------------------


def test_list_flights(client: flight.FlightClient, stream_name: str) -> None:
    _put(client, stream_name, [_logs(7)])
    infos = {info.descriptor.path[0].decode(): info for info in client.list_flights()}
    info = infos[stream_name]
    assert info.total_records == 7
    assert info.schema.names == ["ts", "level", "n", "_offset", "_ingested_at"]
    filtered = list(client.list_flights(stream_name.encode()))
    assert [i.descriptor.path[0].decode() for i in filtered] == [stream_name]


def test_flight_info_and_schema_for_a_stream(client: flight.FlightClient, stream_name: str) -> None:
    _put(client, stream_name, [_logs(5), _logs(5, 5)])
    descriptor = flight.FlightDescriptor.for_path(stream_name)
    info = client.get_flight_info(descriptor)
    assert info.total_records == 10
    assert client.get_schema(descriptor).schema.equals(info.schema)
    replay = client.do_get(info.endpoints[0].ticket).read_all()
    assert replay.column("_offset").to_pylist() == list(range(10))  # offset order


def test_actions(client: flight.FlightClient, stream_name: str) -> None:
    _put(client, stream_name, [_logs(6)])
    names = {a.type for a in client.list_actions()}
    assert {"flush", "compact", "describe", "list_streams", "CreatePreparedStatement"} <= names

    def action(name: str, body: bytes = b"") -> object:
        (result,) = client.do_action(flight.Action(name, body))
        return json.loads(result.body.to_pybytes())

    described = action("describe", stream_name.encode())
    assert described["rows"] == 6 and described["last_offset"] == 5
    assert described["buffered_rows"] == 6
    assert action("flush", stream_name.encode()) == {"flushed": stream_name}
    flushed = action("describe", json.dumps({"stream": stream_name}).encode())
    assert flushed["buffered_rows"] == 0 and flushed["segments"] >= 1 and flushed["rows"] == 6
    assert stream_name in [s["name"] for s in action("list_streams")]
    assert _sql(client, f"SELECT count(*) AS c FROM {stream_name}").column("c").to_pylist() == [6]


# -- tail ------------------------------------------------------------------------------------


def test_tail_receives_new_records_in_order(
    client: flight.FlightClient, flight_server: FlightServer, stream_name: str
) -> None:
    _put(client, stream_name, [_logs(5)])
    ticket = json.dumps({"tail": stream_name, "from_offset": 3}).encode()
    reader = client.do_get(flight.Ticket(ticket))
    offsets: list[int] = []
    expected = list(range(3, 5 + 20 * 10))

    def produce() -> None:
        producer = flight.connect(flight_server.url)
        for i in range(20):
            _put(producer, stream_name, [_logs(10, 5 + i * 10)])
        producer.close()

    writer = threading.Thread(target=produce)
    writer.start()  # appends happen while the tail is already running
    try:
        deadline = time.monotonic() + 30
        while len(offsets) < len(expected) and time.monotonic() < deadline:
            offsets += reader.read_chunk().data.column("_offset").to_pylist()
    finally:
        reader.cancel()
        writer.join(30)
    assert offsets == expected  # in order, none missing, none twice


def test_tail_of_unknown_stream_is_not_found(client: flight.FlightClient) -> None:
    with pytest.raises(pa.ArrowKeyError, match="stream 'no_such_stream' not found"):
        client.do_get(flight.Ticket(b'{"tail": "no_such_stream"}')).read_all()


# -- bad requests ----------------------------------------------------------------------------


def _garbage_flight_sql_command(client: flight.FlightClient) -> None:
    command = any_pb2.Any(
        type_url="type.googleapis.com/arrow.flight.protocol.sql.Nope", value=b"x"
    ).SerializeToString()
    client.get_flight_info(flight.FlightDescriptor.for_command(command))


def _wrong_schema_put(client: flight.FlightClient) -> None:
    _put(client, "bad_requests", [pa.table({"n": ["not a number"]})])


BAD_REQUESTS: list[tuple[str, Callable[[flight.FlightClient], object], type, str, str]] = [
    ("syntax", lambda c: _sql(c, "SELEC 1"), pa.ArrowInvalid, "INVALID_ARGUMENT", "ParserError"),
    (
        "unknown table",
        lambda c: _sql(c, "SELECT * FROM no_such_stream"),
        pa.ArrowKeyError,
        "NOT_FOUND",
        "stream 'no_such_stream' not found",
    ),
    (
        "ddl",
        lambda c: _sql(c, "CREATE TABLE t (a INT)"),
        flight.FlightUnauthorizedError,
        "PERMISSION_DENIED",
        "CreateMemoryTable is not allowed: arrowlog is read-only through SQL",
    ),
    (
        "garbage ticket",
        lambda c: c.do_get(flight.Ticket(b"\x00\xff\xfe garbage")).read_all(),
        pa.ArrowInvalid,
        "INVALID_ARGUMENT",
        "unreadable ticket",
    ),
    (
        "garbage Flight SQL command",
        _garbage_flight_sql_command,
        pa.ArrowInvalid,
        "INVALID_ARGUMENT",
        "unsupported Flight SQL message type 'type.googleapis.com/arrow.flight.protocol.sql.Nope'",
    ),
    (
        "wrong schema on do_put",
        _wrong_schema_put,
        pa.ArrowInvalid,
        "INVALID_ARGUMENT",
        "column 'n' has type string, but stream 'bad_requests' has int64",
    ),
    (
        "bad JSON ticket",
        lambda c: c.do_get(flight.Ticket(b'{"tail": "x", "from_offset": -1}')).read_all(),
        pa.ArrowInvalid,
        "INVALID_ARGUMENT",
        "tail ticket: field 'from_offset' must be an integer from 0 to",
    ),
    (
        "bad stream name",
        lambda c: c.get_flight_info(flight.FlightDescriptor.for_path("../etc")),
        pa.ArrowInvalid,
        "INVALID_ARGUMENT",
        "invalid stream name '../etc'",
    ),
    (
        "update",
        lambda c: c.do_put(
            flight.FlightDescriptor.for_command(
                sp.pack(sp.CommandStatementUpdate(query="DELETE FROM bad_requests"))
            ),
            pa.schema([]),
        )[0].close(),
        flight.FlightUnauthorizedError,
        "PERMISSION_DENIED",
        "arrowlog is read-only through SQL",
    ),
    (
        "transaction",
        lambda c: list(c.do_action(flight.Action(sp.ACTION_BEGIN_TRANSACTION, b""))),
        pa.ArrowNotImplementedError,
        "UNIMPLEMENTED",
        "transactions are not supported",
    ),
    (
        "runtime error mid-query",
        lambda c: _sql(c, "SELECT 1 / (value - 5) FROM range(10)"),
        pa.ArrowInvalid,
        "INVALID_ARGUMENT",
        "Divide by zero",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "code", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests(
    client: flight.FlightClient,
    call: Callable[[flight.FlightClient], object],
    error: type,
    code: str,
    message: str,
) -> None:
    _put(client, "bad_requests", [pa.table({"n": [1]})])
    with pytest.raises(error) as info:
        call(client)
    text = str(info.value)
    assert text.startswith(message) or message in text.split(". Detail:")[0]
    if "gRPC client debug context" in text:  # streamed calls: pyarrow shows the gRPC code
        assert f"{code}:" in text
    # The server keeps serving after every bad request.
    assert _sql(client, "SELECT 41 + 1 AS x").column("x").to_pylist() == [42]


def test_error_mapping_is_most_specific_class_first() -> None:
    cases = {
        InvalidInput("bad"): InvalidArgument,
        BatchTooLarge("big"): InvalidArgument,
        ReadOnlyQuery("ro"): flight.FlightUnauthorizedError,
        StreamNotFound("stream 'x' not found"): NotFound,
        Unauthenticated("who"): flight.FlightUnauthenticatedError,
        Unavailable("busy"): flight.FlightUnavailableError,
        StorageError("disk full"): flight.FlightInternalError,
        ArrowlogError("other"): flight.FlightInternalError,
        NotImplementedError("nope"): NotImplementedError,
    }
    for exc, expected in cases.items():
        mapped = to_flight_error(exc)
        assert isinstance(mapped, expected), (exc, mapped)
        assert str(mapped) == str(exc)  # the message, unchanged
    unexpected = to_flight_error(RuntimeError("secret internals"))
    assert isinstance(unexpected, flight.FlightInternalError)
    assert str(unexpected) == GENERIC_INTERNAL_MESSAGE
    cancelled = flight.FlightCancelledError("gone")
    assert to_flight_error(cancelled) is cancelled


# -- auth and TLS ----------------------------------------------------------------------------


def test_token_required(flight_server_with_token: FlightServer) -> None:
    c = flight.connect(flight_server_with_token.url)
    try:
        with pytest.raises(flight.FlightUnauthenticatedError, match="missing credentials") as info:
            _sql(c, "SELECT 1")
        assert "UNAUTHENTICATED:" in str(info.value)
        wrong = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer wrong")])
        with pytest.raises(flight.FlightUnauthenticatedError, match="invalid bearer token") as info:
            c.do_get(flight.Ticket(b"SELECT 1"), wrong).read_all()
        assert TEST_TOKEN not in str(info.value)
        assert c.do_get(flight.Ticket(b"SELECT 1 AS x"), BEARER).read_all().num_rows == 1
        assert _put(c, "secured_plain", [_logs(2)], BEARER)[0]["accepted"] == 2
        with pytest.raises(flight.FlightUnauthenticatedError):
            list(c.list_flights())
    finally:
        c.close()


def test_token_basic_auth_handshake(flight_server_with_token: FlightServer) -> None:
    c = flight.connect(flight_server_with_token.url)
    try:
        header, value = c.authenticate_basic_token(b"anyone", TEST_TOKEN.encode())
        assert header.lower() == b"authorization" and value == f"Bearer {TEST_TOKEN}".encode()
        options = flight.FlightCallOptions(headers=[(header, value)])
        assert c.do_get(flight.Ticket(b"SELECT 1 AS x"), options).read_all().num_rows == 1
        with pytest.raises(flight.FlightUnauthenticatedError, match="invalid password"):
            c.authenticate_basic_token(b"anyone", b"wrong")
    finally:
        c.close()


def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path / "tls")
    server = start_flight_server(tmp_path, tls=(cert, key))
    try:
        assert server.url.startswith("grpc+tls://127.0.0.1:")
        trusted = flight.connect(server.url, tls_root_certs=cert.read_bytes())
        assert _put(trusted, "secure", [_logs(3)])[0]["accepted"] == 3
        assert _sql(trusted, "SELECT count(*) AS c FROM secure").column("c").to_pylist() == [3]
        trusted.close()
        untrusted = flight.connect(server.url)  # system roots do not know the certificate
        with pytest.raises(flight.FlightUnavailableError):
            _sql(untrusted, "SELECT 1")
        untrusted.close()
    finally:
        assert server.process.stop() == 0


# -- lifecycle -------------------------------------------------------------------------------


def test_graceful_shutdown_with_active_tail(tmp_path: Path) -> None:
    server = start_flight_server(tmp_path)
    c = flight.connect(server.url)
    _put(c, "kept", [_logs(100)])
    tail = c.do_get(flight.Ticket(b'{"tail": "kept", "from_offset": 0}'))
    assert tail.read_chunk().data.num_rows == 100
    started = time.monotonic()
    code = server.process.stop(signal.SIGTERM)
    assert code == 0, server.process.output()
    assert time.monotonic() - started < 10  # the open tail did not hold shutdown up
    with pytest.raises(StopIteration):
        tail.read_chunk()  # the tail ended cleanly with the server
    c.close()
    lines = server.process.stdout_path.read_text().splitlines()
    assert lines[0] == f"flight listening on {server.url}"
    assert len(lines) == 2 and lines[1].startswith("http listening on ")  # `arrowlog serve`
    with arrowlog.open(server.data_dir) as log:  # close() flushed: nothing left buffered
        info = log.describe("kept")
        assert (info.rows, info.buffered_rows) == (100, 0)


def test_client_deadline_on_a_long_do_put_is_a_disconnect_not_a_server_error(
    flight_server: FlightServer, stream_name: str
) -> None:
    # A DoPut stream kept open past the client's call deadline: gRPC cancels it, and the
    # server's next acknowledgement finds the stream gone. That is the client leaving,
    # not an internal error: no traceback, and the server keeps serving.
    client = flight.FlightClient(flight_server.url)
    options = flight.FlightCallOptions(timeout=0.5)
    schema = pa.schema([("n", pa.int64())])
    writer, reader = client.do_put(flight.FlightDescriptor.for_path(stream_name), schema, options)
    acked = 0
    with pytest.raises(flight.FlightTimedOutError):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            writer.write_batch(pa.record_batch([pa.array([acked], pa.int64())], schema=schema))
            if reader.read() is None:
                break
            acked += 1
        writer.close()  # the deadline surfaces here when the stream ended quietly
    assert acked > 0
    deadline = time.monotonic() + 15
    # However the race goes (the ack write fails, or the read just ends), the handler
    # logs one line when the stream is over.
    while f"do_put to '{stream_name}' ended" not in flight_server.process.output():
        assert time.monotonic() < deadline, flight_server.process.output()[-3000:]
        time.sleep(0.05)
    assert "failed unexpectedly" not in flight_server.process.output()
    # The server still answers, and every acknowledged record is there.
    ticket = flight.Ticket(f"SELECT count(*) AS c FROM {stream_name}".encode())
    assert client.do_get(ticket).read_all().column("c")[0].as_py() >= acked
