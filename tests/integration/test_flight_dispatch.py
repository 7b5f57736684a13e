"""Each Flight RPC dispatches on the command's type, and refuses the others by name.

``flight_server/server.py`` keeps one handler table per RPC (GetFlightInfo and GetSchema,
DoGet, DoPut, DoAction). Here: every metadata command answers through both GetFlightInfo
and DoGet with the same schema, and a command outside an RPC's table gets the message
that names the command and the RPC (or the read-only refusal, or where it goes instead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from google.protobuf.message import Message

import arrowlog
from flight_server import sql_protocol as sp
from flight_server.server import serve

STREAM = "base"

METADATA_COMMANDS: list[Message] = [
    sp.CommandGetSqlInfo(info=[0]),
    sp.CommandGetCatalogs(),
    sp.CommandGetDbSchemas(),
    sp.CommandGetTables(include_schema=True),
    sp.CommandGetTables(),
    sp.CommandGetTableTypes(),
    sp.CommandGetPrimaryKeys(table=STREAM),
    sp.CommandGetExportedKeys(table=STREAM),
    sp.CommandGetImportedKeys(table=STREAM),
    sp.CommandGetCrossReference(pk_table=STREAM, fk_table=STREAM),
    sp.CommandGetXdbcTypeInfo(),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[flight.FlightClient]:
    base: Path = tmp_path_factory.mktemp("dispatch")
    log = arrowlog.open(base / "data")
    log.append(STREAM, pa.table({"n": [1, 2, 3]}))
    server = serve(log, port=0)
    c = flight.connect(server.url)
    yield c
    c.close()
    server.shutdown()
    log.close()


def _command(message: Message) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(sp.pack(message))


def _put(c: flight.FlightClient, descriptor: flight.FlightDescriptor) -> None:
    writer, reader = c.do_put(descriptor, pa.schema([]))
    writer.done_writing()
    reader.read()
    writer.close()


@pytest.mark.parametrize("command", METADATA_COMMANDS, ids=lambda m: m.DESCRIPTOR.name)
def test_every_metadata_command_has_an_info_and_a_result(
    client: flight.FlightClient, command: Message
) -> None:
    info = client.get_flight_info(_command(command))
    assert info.schema.equals(sp.metadata_schema(command))
    assert client.get_schema(_command(command)).schema.equals(info.schema)
    result = client.do_get(info.endpoints[0].ticket).read_all()
    assert result.schema.equals(info.schema)


# (case, call, error class, the whole message before pyarrow's detail)
REFUSALS: list[tuple[str, Callable[[flight.FlightClient], object], type, str]] = [
    (
        "GetFlightInfo of an action message",
        lambda c: c.get_flight_info(_command(sp.ActionBeginTransactionRequest())),
        pa.ArrowNotImplementedError,
        "ActionBeginTransactionRequest is not supported by GetFlightInfo on this server",
    ),
    (
        "GetSchema of an action message",
        lambda c: c.get_schema(_command(sp.ActionBeginTransactionRequest())),
        pa.ArrowNotImplementedError,
        "ActionBeginTransactionRequest is not supported by GetFlightInfo on this server",
    ),
    (
        "GetFlightInfo of an ingest",
        lambda c: c.get_flight_info(_command(sp.CommandStatementIngest(table=STREAM))),
        pa.ArrowInvalid,
        "CommandStatementIngest goes through DoPut, not GetFlightInfo",
    ),
    (
        "DoGet of a Substrait plan",
        lambda c: c.do_get(flight.Ticket(sp.pack(sp.CommandStatementSubstraitPlan()))).read_all(),
        pa.ArrowNotImplementedError,
        "CommandStatementSubstraitPlan is not supported by DoGet on this server",
    ),
    (
        "DoGet of an update",
        lambda c: c.do_get(
            flight.Ticket(sp.pack(sp.CommandStatementUpdate(query="DELETE FROM base")))
        ).read_all(),
        flight.FlightUnauthorizedError,
        "arrowlog is read-only through SQL",
    ),
    (
        "DoPut of a metadata command",
        lambda c: _put(c, _command(sp.CommandGetTables())),
        pa.ArrowNotImplementedError,
        "CommandGetTables is not supported by DoPut on this server",
    ),
    (
        "DoPut of SQL text",
        lambda c: _put(c, flight.FlightDescriptor.for_command(b"SELECT 1")),
        pa.ArrowInvalid,
        "DoPut needs a descriptor path [stream] or a Flight SQL command "
        "(CommandStatementIngest, CommandPreparedStatementQuery)",
    ),
    (
        "DoPut of a JSON ticket",
        lambda c: _put(c, flight.FlightDescriptor.for_command(b'{"read": "base"}')),
        pa.ArrowInvalid,
        "DoPut needs a descriptor path [stream] or a Flight SQL command",
    ),
    (
        "a savepoint action",
        lambda c: list(c.do_action(flight.Action(sp.ACTION_BEGIN_SAVEPOINT, b""))),
        pa.ArrowNotImplementedError,
        "transactions are not supported: arrowlog is an append-only log",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_a_command_outside_an_rpcs_table_is_refused_by_name(
    client: flight.FlightClient,
    call: Callable[[flight.FlightClient], object],
    error: type,
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        call(client)
    assert str(caught.value).startswith(message), str(caught.value)
