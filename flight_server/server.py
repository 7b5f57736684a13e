"""arrowlog over Arrow Flight: Flight SQL for SQL clients, plain Flight verbs for the rest.

One :class:`ArrowlogFlightServer` serves one :class:`arrowlog.Log`. Each RPC looks the
decoded command up in its own handler table, keyed by the command's type (SQL text, the
kind of JSON ticket, the Flight SQL message class); every handler decodes the request,
calls one ``Log`` method and encodes the answer. Flight SQL messages come from
:mod:`flight_server.sql_protocol`, JSON tickets and action bodies are checked by
:mod:`flight_server.json_requests`, errors go through the one mapping in
:mod:`flight_server.errors`, credentials through :mod:`flight_server.auth`.

What a ticket (``Ticket.ticket``, also a descriptor's ``cmd``) may hold
----------------------------------------------------------------------
* a packed Flight SQL message (``google.protobuf.Any``): ``TicketStatementQuery`` (the
  stateless handle: SQL plus bound parameters), a metadata command, ...;
* a JSON object, for replay and tail (these are arrowlog's own, for any Flight client):

  - ``{"read": STREAM, "from_offset": N, "limit": M}``: records N.. in offset order, at
    most M (without ``limit``: everything up to the stream's end when the call starts,
    streamed in chunks of 64k rows);
  - ``{"tail": STREAM, "from_offset": N}``: records N.. in offset order, then every newly
    acknowledged record as it arrives, until the client cancels or disconnects. A tail
    ends normally when the stream's schema evolves (a Flight stream has one schema) or
    the server shuts down: resubscribe from the next offset (``arrowlog.Client.tail``
    does);
  - both take ``"shard": P`` for a stream of several shards (cluster mode), whose
    offsets count per shard (``"partition"``, its former name, is accepted too);
  - each is checked against its schema (``ReadTicket``, ``TailTicket`` in
    :mod:`flight_server.json_requests`): ``from_offset``
    0 to 2**63-1 for a read (its limit added stays in int64), 0 to 2**53-1 for a tail,
    ``limit`` 1 to ``MAX_READ_LIMIT``,
    ``shard`` 0 to 2**31-1, integers only (not ``true``, not ``1.0``), ``null`` the
    same as leaving an optional field out, unknown or repeated keys refused; anything
    else is INVALID_ARGUMENT naming the field and what it takes;
* anything else is SQL text, UTF-8: ``client.do_get(flight.Ticket(b"SELECT ..."))``.

Plain Flight verbs
------------------
* ``do_put`` with descriptor path ``[stream]``: each record batch of the upload is one
  durable ``Log.append``; after its WAL fsync the server writes one PutResult whose
  ``app_metadata`` is ``AppendResult.to_dict()``: ``{"stream", "accepted", "first_offset",
  "last_offset", "shard"}`` and ``"partition"`` (the former name of ``shard``), as JSON.
  Zero-row batches are skipped. Batches are acknowledged one by one, never held back
  waiting for the next one, so a client may wait for each ack before sending more. To
  give many records contiguous offsets, send them as one batch.
* ``list_flights`` (criteria: an optional SQL LIKE pattern on stream names),
  ``get_flight_info`` / ``get_schema`` for path ``[stream]`` (rows and bytes in the info;
  its ticket replays the stream).
* actions: ``flush`` and ``compact`` (body: a stream name, or empty for all; ``compact``
  answers a JSON list of ``CompactionResult``), ``describe`` (body: a stream name;
  result: JSON of ``StreamInfo.to_dict(arrow_schema=True)``: the schema also as base64
  Arrow IPC, which ``StreamInfo.from_dict`` reads back exactly), ``list_streams`` (no
  body; result: a JSON list of those). A stream name may also be sent as JSON
  ``{"stream": NAME}`` (``StreamBody``), checked like a ticket.

Flight SQL
----------
As docs/flight-sql-clients.md describes what the ADBC driver sends: prepared statements
(stateless handles; DataFusion ``$1``-style placeholders, bound positionally as Arrow
scalars so their types survive; several parameter rows run the statement once per row and
return the results one after another, under one schema where nullable wins; the
read-only guard runs when the handle is executed), statement queries, GetCatalogs /
GetDbSchemas / GetTables / GetTableTypes / GetSqlInfo (transactions: none), the session
options ``catalog`` and ``schema`` (ADBC's current catalog and db schema), and
``CommandStatementIngest`` (``adbc_ingest`` modes create, append, create_append; replace
is refused, arrowlog never deletes acknowledged records). Updates are refused: the SQL
interface is read-only. A query sent as an update (ADBC ``executemany``, which returns no
rows) is refused with INVALID_ARGUMENT naming the alternative: ``cursor.execute(sql, table)``
runs it once per parameter row.

Results stream batch by batch from the engine (never materialised), coalesced to about
``batch_rows`` rows per Flight message: DataFusion's 8192-row batches cost per-message
overhead (``benchmarks/flight_transfer.py``, 10M rows: 0.70 GB/s coalesced to 64k rows,
0.58 GB/s as they come).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from arrowlog import __version__
from arrowlog.arrow_input import DECODE_ERRORS, checked, checked_schema
from arrowlog.errors import InvalidInput, ReadOnlyQuery, StreamNotFound, Unavailable
from arrowlog.log import Log, Tail
from arrowlog.schema import OFFSET, pick_shard, validate_stream_name
from arrowlog.sql.result import QueryResult
from arrowlog.sql.workers import planning_stop
from arrowlog.tails import client_address
from flight_server import sql_protocol as sp
from flight_server.auth import BearerTokenMiddlewareFactory, NoOpAuthHandler
from flight_server.errors import Unimplemented, map_errors
from flight_server.json_requests import (
    ReadTicket,
    TailTicket,
    no_body,
    parse_ticket,
    stream_from_body,
)

__all__ = [
    "CATALOG",
    "DB_SCHEMA",
    "DEFAULT_BATCH_ROWS",
    "TABLE_TYPE",
    "ArrowlogFlightServer",
    "serve",
]

logger = logging.getLogger(__name__)

# As QueryEngine registers them: SQL sees every stream as arrowlog.public.<stream>.
CATALOG = "arrowlog"
DB_SCHEMA = "public"
TABLE_TYPE = "TABLE"

DEFAULT_BATCH_ROWS = 64 * 1024
_TAIL_POLL = 0.2  # seconds between checks for a cancelled call while a tail waits
_CANCEL_POLL = 0.05  # seconds between checks for a cancelled call while a result streams
_INGEST_GROUP_BYTES = 16 * 1024 * 1024  # one Log.append (one fsync) per this much ingest

#: A decoded ticket or descriptor command: SQL text, a JSON ticket, a Flight SQL message.
Command = str | dict[str, Any] | Message
# The handlers of each RPC's table (see ArrowlogFlightServer.__init__).
_InfoHandler = Callable[[Any], tuple[pa.Schema, bytes]]
_GetHandler = Callable[[flight.ServerCallContext, Any], flight.FlightDataStream]
_PutHandler = Callable[[Any, flight.MetadataRecordBatchReader, flight.FlightMetadataWriter], None]
_ActionHandler = Callable[[bytes], list[Any]]

_NO_TRANSACTIONS = (
    "transactions are not supported: arrowlog is an append-only log, every acknowledged "
    "append is durable on its own"
)
_READ_ONLY = (
    "arrowlog is read-only through SQL: updates and DDL are refused; append records with "
    "adbc_ingest or a Flight DoPut to the stream"
)

# The first keyword of a statement that reads (comments and parentheses skipped).
_QUERY_START = re.compile(
    r"(?:\s|--[^\n]*\n?|/\*.*?\*/|\()*(?:SELECT|WITH|VALUES|EXPLAIN|SHOW|DESCRIBE|TABLE)\b",
    re.IGNORECASE | re.DOTALL,
)
_QUERY_AS_UPDATE = (
    "this query was sent as an update (ADBC executemany), and executemany returns no rows; "
    "to run a query once per parameter row, bind all the rows to one execute: "
    "cursor.execute(sql, pyarrow_table) returns the rows' results one after another"
)

# GetSqlInfo: what is true of arrowlog's SQL (DataFusion dialect, read-only, no
# transactions). ADBC reads FLIGHT_SQL_SERVER_TRANSACTION to decide on autocommit.
_SQL_INFO: dict[int, object] = {
    sp.SqlInfo.FLIGHT_SQL_SERVER_NAME: "arrowlog",
    sp.SqlInfo.FLIGHT_SQL_SERVER_VERSION: __version__,
    sp.SqlInfo.FLIGHT_SQL_SERVER_ARROW_VERSION: pa.__version__,
    sp.SqlInfo.FLIGHT_SQL_SERVER_READ_ONLY: True,
    sp.SqlInfo.FLIGHT_SQL_SERVER_SQL: True,
    sp.SqlInfo.FLIGHT_SQL_SERVER_SUBSTRAIT: False,
    sp.SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION: sp.SqlSupportedTransaction.NONE,
    sp.SqlInfo.FLIGHT_SQL_SERVER_CANCEL: False,
    sp.SqlInfo.FLIGHT_SQL_SERVER_BULK_INGESTION: True,
    sp.SqlInfo.FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED: False,
    sp.SqlInfo.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT: 0,
    sp.SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT: 0,
    sp.SqlInfo.SQL_DDL_CATALOG: False,
    sp.SqlInfo.SQL_DDL_SCHEMA: False,
    sp.SqlInfo.SQL_DDL_TABLE: False,
    sp.SqlInfo.SQL_IDENTIFIER_CASE: sp.SqlSupportedCaseSensitivity.LOWERCASE,
    sp.SqlInfo.SQL_IDENTIFIER_QUOTE_CHAR: '"',
    sp.SqlInfo.SQL_ALL_TABLES_ARE_SELECTABLE: True,
    sp.SqlInfo.SQL_NULL_ORDERING: sp.SqlNullOrdering.NULLS_SORTED_HIGH,
    sp.SqlInfo.SQL_SEARCH_STRING_ESCAPE: "\\",
    sp.SqlInfo.SQL_SUPPORTS_COLUMN_ALIASING: True,
    sp.SqlInfo.SQL_NULL_PLUS_NULL_IS_NULL: True,
    sp.SqlInfo.SQL_SUPPORTS_TABLE_CORRELATION_NAMES: True,
    sp.SqlInfo.SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY: True,
    sp.SqlInfo.SQL_SUPPORTS_ORDER_BY_UNRELATED: True,
    sp.SqlInfo.SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE: True,
    sp.SqlInfo.SQL_SCHEMA_TERM: "schema",
    sp.SqlInfo.SQL_CATALOG_TERM: "catalog",
    sp.SqlInfo.SQL_CATALOG_AT_START: True,
    sp.SqlInfo.SQL_SELECT_FOR_UPDATE_SUPPORTED: False,
    sp.SqlInfo.SQL_STORED_PROCEDURES_SUPPORTED: False,
    sp.SqlInfo.SQL_CORRELATED_SUBQUERIES_SUPPORTED: True,
    sp.SqlInfo.SQL_TRANSACTIONS_SUPPORTED: False,
    sp.SqlInfo.SQL_BATCH_UPDATES_SUPPORTED: False,
    sp.SqlInfo.SQL_SAVEPOINTS_SUPPORTED: False,
    sp.SqlInfo.SQL_NAMED_PARAMETERS_SUPPORTED: False,
}

# What GetSessionOptions reports: where unqualified table names resolve (ADBC's current
# catalog and db schema). They are the only ones, so SetSessionOptions can only confirm them.
_SESSION_OPTIONS: dict[str, sp.SessionOption] = {"catalog": CATALOG, "schema": DB_SCHEMA}

_ACTIONS = {
    sp.ACTION_CREATE_PREPARED_STATEMENT: "Flight SQL: prepare a statement (stateless handle)",
    sp.ACTION_CLOSE_PREPARED_STATEMENT: "Flight SQL: close a prepared statement (no-op)",
    sp.ACTION_GET_SESSION_OPTIONS: "Session options: the current catalog and schema",
    sp.ACTION_SET_SESSION_OPTIONS: "Session options: only the current catalog and schema",
    sp.ACTION_CLOSE_SESSION: "Close the session (no-op: sessions hold no state)",
    "flush": "Write buffered records to Parquet now. Body: a stream name, or empty for all.",
    "compact": "Merge small segments now. Body: a stream name, or empty for all.",
    "describe": "One stream's schema, rows, offsets and bytes as JSON. Body: the stream name.",
    "list_streams": "Every stream's description as a JSON list.",
}


class _CallStop(threading.Event):
    """Set when this call should end: asked to, server stopping, or client gone.

    ``Log.tail`` checks ``stop.is_set()`` between its short waits, so a cancelled tail
    ends within ``_TAIL_POLL`` seconds without a watcher thread.
    """

    def __init__(self, context: flight.ServerCallContext, stopping: threading.Event) -> None:
        super().__init__()
        self._context = context
        self._stopping = stopping

    def is_set(self) -> bool:
        return super().is_set() or self._stopping.is_set() or self._context.is_cancelled()


class ArrowlogFlightServer(flight.FlightServerBase):
    """A Flight and Flight SQL server over one open :class:`arrowlog.Log`.

    Not usually constructed directly: use :func:`serve`. The server accepts calls as soon
    as it is constructed; ``shutdown()`` ends tails and running results, then stops. It
    never closes the log (its owner does).

    Args:
        log: the log to serve.
        location: where to listen, e.g. ``"grpc://127.0.0.1:0"`` (0 picks a free port).
        token: if set, every call must present it (see :mod:`flight_server.auth`).
        tls_certificates: ``[(cert_pem, key_pem)]`` to serve TLS (location ``grpc+tls://``).
        batch_rows: rows per Flight message when streaming query results.
    """

    def __init__(
        self,
        log: Log,
        location: str = "grpc://127.0.0.1:0",
        *,
        token: str | None = None,
        tls_certificates: list[tuple[bytes, bytes]] | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        # Set before super().__init__(): the server accepts calls as soon as it is built.
        self._log = log
        self._batch_rows = batch_rows
        self._stopping = threading.Event()
        self._location = location
        # One handler per command type and RPC, keyed as _command_type says. A command
        # missing from an RPC's table is refused there by name (_unsupported_here; an
        # action by the list of those offered); supporting another Flight SQL command is
        # one entry in each table of the RPCs it goes through.
        # GetFlightInfo and GetSchema: the result schema and the ticket that runs it.
        self._info_handlers: dict[type, _InfoHandler] = {
            str: self._plan_sql,
            ReadTicket: self._plan_ticket,
            TailTicket: self._plan_ticket,
            sp.CommandStatementQuery: self._plan_statement,
            sp.CommandPreparedStatementQuery: self._plan_prepared,
            sp.TicketStatementQuery: self._plan_prepared,
            sp.CommandGetSqlInfo: self._plan_metadata,
            sp.CommandGetCatalogs: self._plan_metadata,
            sp.CommandGetDbSchemas: self._plan_metadata,
            sp.CommandGetTables: self._plan_metadata,
            sp.CommandGetTableTypes: self._plan_metadata,
            sp.CommandGetPrimaryKeys: self._plan_metadata,
            sp.CommandGetExportedKeys: self._plan_metadata,
            sp.CommandGetImportedKeys: self._plan_metadata,
            sp.CommandGetCrossReference: self._plan_metadata,
            sp.CommandGetXdbcTypeInfo: self._plan_metadata,
        }
        # DoGet: the result stream.
        self._get_handlers: dict[type, _GetHandler] = {
            str: self._get_sql,
            ReadTicket: self._get_read,
            TailTicket: self._get_tail,
            sp.CommandStatementQuery: self._get_statement,
            sp.TicketStatementQuery: self._get_prepared,
            sp.CommandPreparedStatementQuery: self._get_prepared,
            sp.CommandGetSqlInfo: self._get_sql_info,
            sp.CommandGetCatalogs: self._get_catalogs,
            sp.CommandGetDbSchemas: self._get_db_schemas,
            sp.CommandGetTables: self._get_tables,
            sp.CommandGetTableTypes: self._get_table_types,
            # Primary/foreign keys and XDBC type info: arrowlog has none to report.
            sp.CommandGetPrimaryKeys: self._get_nothing,
            sp.CommandGetExportedKeys: self._get_nothing,
            sp.CommandGetImportedKeys: self._get_nothing,
            sp.CommandGetCrossReference: self._get_nothing,
            sp.CommandGetXdbcTypeInfo: self._get_nothing,
        }
        # DoPut with a command descriptor (a path descriptor appends to the stream).
        self._put_handlers: dict[type, _PutHandler] = {
            sp.CommandStatementIngest: self._ingest,
            sp.CommandPreparedStatementQuery: self._bind,
            sp.CommandStatementUpdate: self._refuse_update,
            sp.CommandPreparedStatementUpdate: self._refuse_update,
        }
        # DoAction, keyed by the action type (list_actions shows those in _ACTIONS).
        self._action_handlers: dict[str, _ActionHandler] = {
            sp.ACTION_CREATE_PREPARED_STATEMENT: self._create_prepared,
            sp.ACTION_CLOSE_PREPARED_STATEMENT: _close_prepared,
            sp.ACTION_GET_SESSION_OPTIONS: _get_session_options,
            sp.ACTION_SET_SESSION_OPTIONS: _set_session_options,
            sp.ACTION_CLOSE_SESSION: _close_session,
            sp.ACTION_BEGIN_TRANSACTION: _refuse_transactions,
            sp.ACTION_END_TRANSACTION: _refuse_transactions,
            sp.ACTION_BEGIN_SAVEPOINT: _refuse_transactions,
            sp.ACTION_END_SAVEPOINT: _refuse_transactions,
            "flush": self._flush,
            "compact": self._compact,
            "describe": self._describe,
            "list_streams": self._list_streams,
        }
        middleware = {"auth": BearerTokenMiddlewareFactory(token)} if token else None
        super().__init__(
            location,
            auth_handler=NoOpAuthHandler(),
            tls_certificates=tls_certificates or None,
            middleware=middleware,
        )

    @property
    def url(self) -> str:
        """The address clients connect to, with the actual port (also when asked for 0)."""
        scheme, _, rest = self._location.partition("://")
        host = rest.rpartition(":")[0]
        return f"{scheme}://{host}:{self.port}"

    def shutdown(self) -> None:
        """Stop: end tails and results being streamed, then wait for calls to finish."""
        self._stopping.set()
        super().shutdown()

    def __repr__(self) -> str:
        return f"<ArrowlogFlightServer {self._location} log={self._log!r}>"

    # -- metadata RPCs -------------------------------------------------------------------

    @map_errors
    def list_flights(
        self, context: flight.ServerCallContext, criteria: bytes
    ) -> Iterator[flight.FlightInfo]:
        pattern = bytes(criteria).decode("utf-8", "replace") if criteria else None
        infos = [
            self._stream_info(name) for name in self._stream_names() if sp.like_match(pattern, name)
        ]
        yield from infos

    @map_errors
    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            return self._stream_info(_path_stream(descriptor))
        schema, ticket = self._plan_command(_decode(descriptor.command))
        endpoint = flight.FlightEndpoint(ticket, [])
        return flight.FlightInfo(schema, descriptor, [endpoint], -1, -1)

    @map_errors
    def get_schema(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.SchemaResult:
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            return flight.SchemaResult(self._log.schema(_path_stream(descriptor)))
        schema, _ticket = self._plan_command(_decode(descriptor.command))
        return flight.SchemaResult(schema)

    def _stream_info(self, stream: str) -> flight.FlightInfo:
        info = self._log.describe(stream)
        ticket = json.dumps({"read": info.name, "from_offset": 0}).encode()
        return flight.FlightInfo(
            info.schema,
            flight.FlightDescriptor.for_path(info.name),
            [flight.FlightEndpoint(ticket, [])],
            info.rows,
            info.bytes,
            ordered=True,
        )

    def _plan_command(self, command: Command) -> tuple[pa.Schema, bytes]:
        """The result schema of a command and the (stateless) ticket that runs it.

        Queries are planned for their schema only (``Log.sql_schema``): no snapshot is
        taken and no file read until DoGet runs the ticket.
        """
        handler = self._info_handlers.get(_command_type(command))
        if handler is None:
            assert isinstance(command, Message)  # SQL text and JSON tickets always have one
            raise _unsupported_here(command, "GetFlightInfo")
        return handler(command)

    def _plan_sql(self, command: str) -> tuple[pa.Schema, bytes]:
        return self._plan_schema(command, None), command.encode()

    def _plan_ticket(self, command: dict[str, Any]) -> tuple[pa.Schema, bytes]:
        return self._ticket_schema(command), json.dumps(command).encode()

    def _plan_statement(self, command: Message) -> tuple[pa.Schema, bytes]:
        _refuse_transaction(command)
        return (
            self._plan_schema(command.query, None),
            sp.encode_statement_ticket(command.query),
        )

    def _plan_prepared(self, command: Message) -> tuple[pa.Schema, bytes]:
        sql, params = _statement(command)
        schemas = [self._plan_schema(sql, params, row) for row in _param_rows(params)]
        return _unified_schema(schemas), sp.encode_statement_ticket(sql, params)

    def _plan_metadata(self, command: Message) -> tuple[pa.Schema, bytes]:
        schema = sp.metadata_schema(command)
        assert schema is not None  # the table lists metadata commands only
        return schema, sp.pack(command)

    def _ticket_schema(self, ticket: dict[str, Any]) -> pa.Schema:
        return self._log.schema(ticket.get("read") or ticket["tail"])

    # -- DoGet ---------------------------------------------------------------------------

    @map_errors
    def do_get(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> flight.FlightDataStream:
        command = _decode(ticket.ticket)
        handler = self._get_handlers.get(_command_type(command))
        if handler is None:
            assert isinstance(command, Message)  # SQL text and JSON tickets always have one
            raise _unsupported_here(command, "DoGet")
        return handler(context, command)

    def _get_sql(self, context: flight.ServerCallContext, command: str) -> flight.FlightDataStream:
        return self._query_stream(context, command, None)

    def _get_statement(
        self, context: flight.ServerCallContext, command: Message
    ) -> flight.FlightDataStream:
        _refuse_transaction(command)
        return self._query_stream(context, command.query, None)

    def _get_prepared(
        self, context: flight.ServerCallContext, command: Message
    ) -> flight.FlightDataStream:
        return self._query_stream(context, *_statement(command))

    def _get_read(
        self, context: flight.ServerCallContext, command: dict[str, Any]
    ) -> flight.FlightDataStream:
        return self._read_stream(
            context,
            command["read"],
            command["from_offset"],
            command.get("limit"),
            _shard(command),
        )

    def _get_tail(
        self, context: flight.ServerCallContext, command: dict[str, Any]
    ) -> flight.FlightDataStream:
        return self._tail_stream(context, command["tail"], command["from_offset"], _shard(command))

    def _query_stream(
        self, context: flight.ServerCallContext, sql: str, params: pa.RecordBatch | None
    ) -> flight.FlightDataStream:
        """Plan now (errors surface before any data), then stream batch by batch."""
        # A query waiting for a query worker, or being planned, stops if the client leaves.
        token = planning_stop.set(lambda: self._stopping.is_set() or context.is_cancelled())
        try:
            schema, results = self._plan_rows(sql, params)
        finally:
            planning_stop.reset(token)
        batches: Iterator[pa.RecordBatch | pa.Table] = self._result_batches(
            context, results, schema
        )
        if any(_has_dictionary(field.type) for field in schema):
            # GeneratorStream sends a RecordBatch without its dictionaries (pyarrow 26: the
            # client fails with "did not have the expected number of dictionaries"); a
            # Table goes through the IPC writer, which sends them before the batch.
            batches = (pa.Table.from_batches([batch]) for batch in batches)
        return flight.GeneratorStream(schema, batches)

    def _plan(self, sql: str, params: pa.RecordBatch | None, row: int = 0) -> QueryResult:
        """Plan ``sql`` for execution with one row of bound parameters (``$1``, ``$2``, ...).

        Parameters are bound as Arrow scalars, never as Python objects: their types survive
        (int8, float32, timestamp[ns], uint64, struct, map, ...) and no value is lost to
        Python's range (a year-1 timestamp with a time zone, nanoseconds).
        """
        return self._log.sql(sql, params=_row_values(params, row))

    def _plan_schema(self, sql: str, params: pa.RecordBatch | None, row: int = 0) -> pa.Schema:
        """The result schema of ``sql`` with one row of bound parameters, planned without data."""
        return self._log.sql_schema(sql, params=_row_values(params, row))

    def _plan_rows(
        self, sql: str, params: pa.RecordBatch | None
    ) -> tuple[pa.Schema, list[QueryResult]]:
        """Plan ``sql`` once per parameter row; the results' unified schema and the plans.

        The rows' results are sent as one stream, one after another, so they need one
        schema: a row whose value is NULL gives a nullable column where a value gives a
        NOT NULL one, and the nullable one wins. All rows are planned before any data is
        sent, so an error in any row is the call's error, not a broken stream.
        """
        results = [self._plan(sql, params, row) for row in _param_rows(params)]
        return _unified_schema([r.schema for r in results]), results

    @map_errors
    def _result_batches(
        self,
        context: flight.ServerCallContext,
        results: list[QueryResult],
        schema: pa.Schema,
    ) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._coalesced(context, results, schema)
        except Unavailable:
            if context.is_cancelled():
                return  # the client cancelled: the query was stopped, nobody to tell
            raise
        finally:
            for result in results:  # plans never run (the client left early) are dropped
                result.close()

    def _coalesced(
        self,
        context: flight.ServerCallContext,
        results: list[QueryResult],
        schema: pa.Schema,
    ) -> Iterator[pa.RecordBatch]:
        pending: list[pa.RecordBatch] = []
        rows = 0
        next_check = 0.0
        for result in results:
            same = result.schema.equals(schema)
            # A query in a worker is stopped while it computes (no batch to check between).
            result.stop_when(lambda: self._stopping.is_set() or context.is_cancelled())
            for batch in result:
                if not same:
                    batch = _conform_batch(batch, schema)
                # is_cancelled() is a gRPC completion-queue poll that can block on gRPC's
                # locks (py-spy: ~20% of this thread per 8k-row batch on SELECT *); a
                # client that leaves also fails the next write, so poll it sparingly.
                self._check_stopping()
                now = time.monotonic()
                if now >= next_check:
                    if context.is_cancelled():
                        return
                    next_check = now + _CANCEL_POLL
                if not batch.num_rows:
                    continue
                if not pending and batch.num_rows >= self._batch_rows:
                    yield batch
                    continue
                pending.append(batch)
                rows += batch.num_rows
                if rows >= self._batch_rows:
                    yield pa.concat_batches(pending)
                    pending, rows = [], 0
        if pending:
            yield pa.concat_batches(pending)

    def _read_stream(
        self,
        context: flight.ServerCallContext,
        stream: str,
        from_offset: int,
        limit: int | None,
        shard: int | None = None,
    ) -> flight.FlightDataStream:
        if limit is not None:
            table = self._log.read(stream, from_offset, limit, shard=shard)
            return flight.RecordBatchStream(table)
        schema = self._log.schema(stream)
        return flight.GeneratorStream(
            schema, self._replay_batches(context, stream, from_offset, schema, shard)
        )

    @map_errors
    def _replay_batches(
        self,
        context: flight.ServerCallContext,
        stream: str,
        from_offset: int,
        schema: pa.Schema,
        shard: int | None = None,
    ) -> Iterator[pa.RecordBatch]:
        for table in self._log.iter_read(stream, from_offset, self._batch_rows, shard=shard):
            self._check_stopping()
            if context.is_cancelled():
                return
            if not table.schema.equals(schema):
                first = table.column(OFFSET)[0].as_py()
                raise InvalidInput(
                    f"the schema of stream {stream!r} changed during the read, at offset "
                    f"{first}: read again from offset {first}"
                )
            yield from table.to_batches()

    def _tail_stream(
        self,
        context: flight.ServerCallContext,
        stream: str,
        from_offset: int,
        shard: int | None = None,
    ) -> flight.FlightDataStream:
        """Open the tail before answering: a bad offset or shard, an unknown stream and
        the tail limits are the call's error (INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE)."""
        schema = self._log.schema(stream)
        tail = self._log.open_tail(
            stream,
            from_offset,
            shard=shard,
            batch_rows=self._batch_rows,
            # gRPC holds one message per call at a time: this bounds a slow reader's cost.
            max_bytes=self._log.settings.tail_buffer_bytes,
            client=client_address(_peer_host(context.peer())),
            protocol="flight",
        )
        return flight.GeneratorStream(schema, self._tail_batches(context, tail, schema))

    @map_errors
    def _tail_batches(
        self, context: flight.ServerCallContext, tail: Tail, schema: pa.Schema
    ) -> Iterator[pa.RecordBatch]:
        # Ends when the call is cancelled (checked every _TAIL_POLL seconds while idle; a
        # write to a gone client fails and closes this generator), the server stops or
        # the log closes. The tail's slot is given back at once either way.
        stop = _CallStop(context, self._stopping)
        logger.debug("tail of %r from offset %d started", tail.stream, tail.offset)
        try:
            while not stop.is_set():
                table = tail.next(_TAIL_POLL)
                if table is None:
                    if tail.ended:
                        break
                    continue
                if not table.schema.equals(schema):
                    logger.info("tail of %r ends: the stream's schema evolved", tail.stream)
                    return
                yield from table.to_batches()
            logger.debug("tail of %r ended (cancelled or server stopping)", tail.stream)
        finally:
            tail.close()

    def _check_stopping(self) -> None:
        if self._stopping.is_set():
            raise Unavailable("the server is shutting down; retry on another server or later")

    # -- Flight SQL metadata -------------------------------------------------------------

    def _get_sql_info(
        self, context: flight.ServerCallContext, command: Message
    ) -> flight.FlightDataStream:
        return _one_batch(sp.sql_info_table(_SQL_INFO, list(command.info)))

    def _get_catalogs(
        self, context: flight.ServerCallContext, command: Message
    ) -> flight.FlightDataStream:
        return _one_batch(sp.catalogs_table([CATALOG]))

    def _get_db_schemas(
        self, context: flight.ServerCallContext, command: Message
    ) -> flight.FlightDataStream:
        return _one_batch(
            sp.db_schemas_table(sp.filter_db_schemas([(CATALOG, DB_SCHEMA)], command))
        )

    def _get_tables(
        self, context: flight.ServerCallContext, command: Message
    ) -> flight.FlightDataStream:
        return _one_batch(self._tables_table(command))

    def _get_table_types(
        self, context: flight.ServerCallContext, command: Message
    ) -> flight.FlightDataStream:
        return _one_batch(sp.table_types_table([TABLE_TYPE]))

    def _get_nothing(
        self, context: flight.ServerCallContext, command: Message
    ) -> flight.FlightDataStream:
        schema = sp.metadata_schema(command)
        assert schema is not None  # the table lists metadata commands only
        return _one_batch(schema.empty_table())

    def _tables_table(self, command: Message) -> pa.Table:
        rows = sp.filter_tables(
            (sp.TableRow(CATALOG, DB_SCHEMA, name, TABLE_TYPE) for name in self._stream_names()),
            command,
        )
        if command.include_schema:
            rows = [row._replace(arrow_schema=self._log.schema(row.table_name)) for row in rows]
        return sp.tables_table(rows, command.include_schema)

    def _stream_names(self) -> list[str]:
        return [info.name for info in self._log.streams()]

    def _exists(self, stream: str) -> bool:
        try:
            self._log.schema(stream)  # InvalidInput for a name that cannot be a stream
        except StreamNotFound:
            return False
        return True

    # -- DoPut ---------------------------------------------------------------------------

    @map_errors
    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            self._append_batches(context, _path_stream(descriptor), reader, writer)
            return
        command = _decode(descriptor.command)
        handler = self._put_handlers.get(_command_type(command))
        if handler is not None:
            handler(command, reader, writer)
        elif isinstance(command, Message):
            raise _unsupported_here(command, "DoPut")
        else:
            raise InvalidInput(
                "DoPut needs a descriptor path [stream] or a Flight SQL command "
                "(CommandStatementIngest, CommandPreparedStatementQuery)"
            )

    def _append_batches(
        self,
        context: flight.ServerCallContext,
        stream: str,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        appended = 0
        for batch in _batches(reader):
            if not batch.num_rows:
                continue
            result = self._log.append(stream, batch)
            appended += 1
            # Acknowledged only now, after the WAL fsync.
            try:
                writer.write(pa.py_buffer(json.dumps(result.to_dict()).encode()))
            except OSError:
                if not context.is_cancelled():
                    raise
                # The client left (e.g. its call deadline ended a long-lived stream): the
                # records are durable, only their acknowledgement could not be delivered.
                logger.info(
                    "do_put to %r ended by the client after %d batches; offsets %d..%d are "
                    "durable but their acknowledgement was not delivered",
                    stream,
                    appended,
                    result.first_offset,
                    result.last_offset,
                )
                return
        logger.info("do_put to %r ended after %d batches", stream, appended)

    def _ingest(
        self,
        command: Message,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        stream = command.table
        if command.temporary:
            raise InvalidInput("temporary tables are not supported: every stream is durable")
        if command.HasField("catalog") and command.catalog not in ("", CATALOG):
            raise InvalidInput(f"unknown catalog {command.catalog!r}: arrowlog has {CATALOG!r}")
        if command.HasField("schema") and command.schema not in ("", DB_SCHEMA):
            raise InvalidInput(f"unknown schema {command.schema!r}: arrowlog has {DB_SCHEMA!r}")
        options = command.table_definition_options
        if_exists = sp.TableExistsOption(options.if_exists)
        if_not_exist = sp.TableNotExistOption(options.if_not_exist)
        # create_append (ADBC's usual mode, one call per batch) accepts the stream either
        # way: Log.append creates it, so no per-call lookup (a snapshot under the log's
        # lock) is needed before the upload is read.
        create_append = (
            if_exists == sp.TableExistsOption.APPEND
            and if_not_exist == sp.TableNotExistOption.CREATE
        )
        exists = None if create_append else self._exists(stream)
        if create_append:
            validate_stream_name(stream)  # refused before the upload is read, as before
        if exists and if_exists == sp.TableExistsOption.REPLACE:
            raise InvalidInput(
                f"ingest mode 'replace' is not supported: arrowlog never deletes acknowledged "
                f"records; use mode 'append' to add records to stream {stream!r}"
            )
        if exists and if_exists != sp.TableExistsOption.APPEND:
            raise InvalidInput(
                f"stream {stream!r} already exists (ingest mode 'create'); use mode 'append' "
                "or 'create_append' to add records to it"
            )
        if exists is False and if_not_exist != sp.TableNotExistOption.CREATE:
            raise StreamNotFound(
                f"stream {stream!r} not found (ingest mode 'append'); use mode 'create' or "
                "'create_append' to create it"
            )
        total = 0
        group: list[pa.RecordBatch] = []
        group_bytes = 0
        limit = min(_INGEST_GROUP_BYTES, self._log.settings.max_batch_bytes)
        for batch in _batches(reader):
            if not batch.num_rows:
                continue
            if group and group_bytes + batch.nbytes > limit:
                total += self._log.append(stream, pa.Table.from_batches(group)).accepted
                group, group_bytes = [], 0
            group.append(batch)
            group_bytes += batch.nbytes
        if group:
            total += self._log.append(stream, pa.Table.from_batches(group)).accepted
        elif not (self._exists(stream) if exists is None else exists):
            # Nothing to infer a schema from: create the stream with the declared one.
            try:
                self._log.create_stream(stream, reader.schema)
            except InvalidInput:
                if not self._exists(stream):
                    raise
        writer.write(pa.py_buffer(sp.encode_update_result(total)))

    def _refuse_update(
        self,
        command: Message,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        """Refuse an update; a query sent as one (``executemany``) learns what runs it.

        The statement is planned with its first parameter row to tell the two apart: the
        engine refuses DDL/DML itself. A query that does not plan reports its own error;
        anything else that does not plan (DML on a missing table) is refused as an update.
        """
        if isinstance(command, sp.CommandStatementUpdate):
            sql, params = command.query, None
        else:
            sql, _old = sp.decode_prepared_handle(command.prepared_statement_handle)
            params = _params(reader)
        try:
            self._plan(sql, params)
        except ReadOnlyQuery:
            raise ReadOnlyQuery(_READ_ONLY) from None
        except (InvalidInput, StreamNotFound):
            if _QUERY_START.match(sql):
                raise
            raise ReadOnlyQuery(_READ_ONLY) from None
        raise InvalidInput(_QUERY_AS_UPDATE)

    def _bind(
        self,
        command: Message,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        sql, _old = sp.decode_prepared_handle(command.prepared_statement_handle)
        handle = sp.encode_prepared_handle(sql, _params(reader))
        writer.write(pa.py_buffer(sp.encode_put_prepared_result(handle)))

    # -- DoAction ------------------------------------------------------------------------

    @map_errors
    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        return list(_ACTIONS.items())

    @map_errors
    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> list[Any]:
        handler = self._action_handlers.get(action.type)
        if handler is None:
            raise Unimplemented(
                f"unknown action {action.type!r}; this server offers {', '.join(_ACTIONS)}"
            )
        body = action.body.to_pybytes() if action.body is not None else b""
        return handler(body)

    def _create_prepared(self, body: bytes) -> list[Any]:
        request = sp.unpack(body, sp.ActionCreatePreparedStatementRequest)
        _refuse_transaction(request)
        schema = None
        try:
            schema = self._plan_schema(request.query, None)
        except (InvalidInput, StreamNotFound) as e:
            # Checked again, with the same message, when the handle is executed; a query
            # with placeholders cannot always be planned before its parameters are bound.
            logger.debug("prepared statement not planned yet: %s", e)
        handle = sp.encode_prepared_handle(request.query)
        return [flight.Result(sp.encode_prepared_statement_result(handle, schema))]

    def _flush(self, body: bytes) -> list[Any]:
        stream = stream_from_body(body, required=False, action="flush")
        self._log.flush(stream)
        return [_json_result({"flushed": stream if stream is not None else "all"})]

    def _compact(self, body: bytes) -> list[Any]:
        stream = stream_from_body(body, required=False, action="compact")
        results = self._log.compact(stream)
        return [_json_result([dataclasses.asdict(r) for r in results])]

    def _describe(self, body: bytes) -> list[Any]:
        stream = stream_from_body(body, required=True, action="describe")
        return [_json_result(self._log.describe(stream).to_dict(arrow_schema=True))]

    def _list_streams(self, body: bytes) -> list[Any]:
        no_body(body, "list_streams")
        return [_json_result([info.to_dict(arrow_schema=True) for info in self._log.streams()])]


# ---------------------------------------------------------------------------------------
# Decoding requests.


def _decode(raw: sp.BytesLike) -> Command:
    """A ticket or descriptor command: a Flight SQL message, a JSON ticket or SQL text."""
    data = bytes(raw)
    if data[:1] == b"{":
        return parse_ticket(data)
    if _is_any(data):
        return sp.unpack(data)  # a clear ProtocolError for foreign or corrupt messages
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"unreadable ticket ({len(data)} bytes): expected a Flight SQL command, a JSON "
            'ticket such as {"tail": "stream"} or UTF-8 SQL text'
        ) from None
    if not text.strip():
        raise InvalidInput("empty ticket: send SQL text, a Flight SQL command or a JSON ticket")
    return text


def _is_any(data: bytes) -> bool:
    # SQL text never parses as a protobuf Any whose type_url is a URL.
    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(data)
    except DecodeError:
        return False
    url = envelope.type_url
    return "/" in url and not any(c.isspace() for c in url)


def _path_stream(descriptor: flight.FlightDescriptor) -> str:
    path = descriptor.path or []
    if len(path) != 1:
        raise InvalidInput(f"a descriptor path must be [stream], got {len(path)} elements")
    element = path[0]
    try:
        return element.decode("utf-8") if isinstance(element, bytes) else str(element)
    except UnicodeDecodeError:
        raise InvalidInput("the stream name in the descriptor path is not UTF-8") from None


def _statement(command: Message) -> tuple[str, pa.RecordBatch | None]:
    if isinstance(command, sp.TicketStatementQuery):
        return sp.decode_prepared_handle(command.statement_handle)
    return sp.decode_prepared_handle(command.prepared_statement_handle)


def _param_rows(params: pa.RecordBatch | None) -> range:
    """The parameter rows a statement runs for (one, without parameters)."""
    rows = params.num_rows if params is not None and params.num_columns else 1
    return range(max(rows, 1))


def _row_values(params: pa.RecordBatch | None, row: int) -> list[pa.Scalar] | None:
    """Row ``row`` of the bound parameters, as Arrow scalars (None: no parameters)."""
    if params is not None and params.num_columns and params.num_rows:
        return [column[row] for column in params.columns]
    return None


def _unified_schema(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for the results of several parameter rows (nullable wins)."""
    first = schemas[0]
    if all(s.equals(first) for s in schemas[1:]):
        return first
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInput(
            f"the parameter rows give results of different types, which cannot be sent as "
            f"one result: {e}; run the statement once per parameter row instead"
        ) from None


def _has_dictionary(type_: pa.DataType) -> bool:
    """Whether ``type_`` is, or holds at any depth, a dictionary."""
    return pa.types.is_dictionary(type_) or any(
        _has_dictionary(type_.field(i).type) for i in range(type_.num_fields)
    )


def _conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` (one parameter row's result) cast to the unified schema of all rows."""
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise InvalidInput(
            f"a parameter row's result does not fit the result schema {schema}: {e}"
        ) from None


def _peer_host(peer: str) -> str:
    """The address of a gRPC peer (``ipv4:10.0.0.5:50012``, ``ipv6:[::1]:50012``)."""
    kind, _, rest = urllib.parse.unquote(peer).partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rpartition(":")[0].strip("[]")
    return peer or "unknown"


def _shard(command: dict[str, Any]) -> int | None:
    """The ``shard`` (or ``partition``) of a read or tail ticket (``parse_ticket`` checked it)."""
    return pick_shard(command.get("shard"), command.get("partition"))


def _command_type(command: Command) -> type:
    """What the handler tables are keyed by: ``str`` for SQL text, the schema of a JSON
    ticket (``ReadTicket`` or ``TailTicket``), the message class of a Flight SQL command."""
    if isinstance(command, dict):
        return TailTicket if "tail" in command else ReadTicket
    return type(command)


def _one_batch(table: pa.Table) -> flight.FlightDataStream:
    # One batch: ADBC's get_table_schema reads only the first batch of the reply.
    return flight.RecordBatchStream(table.combine_chunks())


def _refuse_transaction(message: Message) -> None:
    if message.HasField("transaction_id"):
        raise Unimplemented(_NO_TRANSACTIONS)


def _refuse_transactions(body: bytes) -> list[Any]:
    raise Unimplemented(_NO_TRANSACTIONS)


def _unsupported_here(command: Message, rpc: str) -> Exception:
    name = command.DESCRIPTOR.name
    if isinstance(command, sp.CommandStatementUpdate | sp.CommandPreparedStatementUpdate):
        return ReadOnlyQuery(_READ_ONLY)
    if isinstance(command, sp.CommandStatementIngest):
        return InvalidInput("CommandStatementIngest goes through DoPut, not " + rpc)
    return Unimplemented(f"{name} is not supported by {rpc} on this server")


def _batches(reader: flight.MetadataRecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The uploaded batches; a malformed upload is the client's error, not ours.

    The reader decodes only what the client sent, so whatever it fails with is the
    upload's fault (a corrupt IPC message is an ``IOError`` status: "Invalid flatbuffers
    message", a failed LZ4 block); only the call's own end (cancelled, unavailable: a
    ``FlightError``) passes through as it is. The reader does not check values (an offset
    past its buffer), so each batch is validated before anything reads them.
    """
    try:
        checked_schema(reader.schema, "the upload's schema")
    except flight.FlightError:
        raise
    except DECODE_ERRORS as e:
        raise InvalidInput(f"could not read the uploaded Arrow stream: {e}") from e
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            return
        except flight.FlightError:
            raise
        except DECODE_ERRORS as e:
            raise InvalidInput(f"could not read the uploaded Arrow stream: {e}") from e
        if chunk.data is not None:
            yield checked(chunk.data, "an uploaded batch")


def _params(reader: flight.MetadataRecordBatchReader) -> pa.RecordBatch | None:
    """The parameter rows of a DoPut as one batch, or None when none were sent."""
    batches = [b for b in _batches(reader) if b.num_rows]
    if not batches or not reader.schema.names:
        return None
    return pa.concat_batches(batches)


def _close_prepared(body: bytes) -> list[Any]:
    sp.unpack(body, sp.ActionClosePreparedStatementRequest)
    return []  # handles are stateless: nothing to free


def _get_session_options(body: bytes) -> list[Any]:
    return [flight.Result(sp.encode_session_options(_SESSION_OPTIONS))]


def _set_session_options(body: bytes) -> list[Any]:
    """Accept the options that already hold; report every other one as not set."""
    errors = {}
    for name, value in sp.decode_set_session_options(body).items():
        if name not in _SESSION_OPTIONS:
            errors[name] = sp.SetSessionOptionError.INVALID_NAME
        elif value != _SESSION_OPTIONS[name]:
            errors[name] = sp.SetSessionOptionError.INVALID_VALUE
    if errors:
        logger.debug("session options not set: %s", sorted(errors))
    return [flight.Result(sp.encode_set_session_options_result(errors))]


def _close_session(body: bytes) -> list[Any]:
    closed = sp.CloseSessionResult(status=sp.CloseSessionResult.Status.Value("CLOSED"))
    return [flight.Result(closed.SerializeToString())]


def _json_result(value: object) -> flight.Result:
    return flight.Result(json.dumps(value, default=str).encode())


# ---------------------------------------------------------------------------------------
# The factory.


def serve(
    log: Log,
    *,
    host: str = "127.0.0.1",
    port: int = 8815,
    token: str | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> ArrowlogFlightServer:
    """Start serving ``log`` over Flight; returns once the server accepts calls.

    Args:
        log: an open log; the caller keeps owning it (close it after ``shutdown()``).
        host: the interface to listen on.
        port: the port; 0 picks a free one (read it back from ``server.url``).
        token: require this bearer token on every call.
        tls_cert: PEM certificate file; with ``tls_key``, serve ``grpc+tls``.
        tls_key: PEM private key file.
        batch_rows: rows per Flight message when streaming results.

    Returns:
        The running server; ``server.url`` is its address, ``server.shutdown()`` stops it.

    Raises:
        InvalidInput: only one of ``tls_cert``/``tls_key``, or an unreadable file.
        Unavailable: the address cannot be bound (e.g. the port is in use).

    Example: ``server = serve(arrowlog.open("./data"), port=0); print(server.url)``
    """
    if (tls_cert is None) != (tls_key is None):
        raise InvalidInput("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
    certificates = None
    if tls_cert is not None and tls_key is not None:
        try:
            certificates = [(Path(tls_cert).read_bytes(), Path(tls_key).read_bytes())]
        except OSError as e:
            raise InvalidInput(f"cannot read the TLS certificate or key: {e}") from e
    scheme = "grpc+tls" if certificates else "grpc"
    bracketed = f"[{host}]" if ":" in host else host
    location = f"{scheme}://{bracketed}:{port}"
    try:
        server = ArrowlogFlightServer(
            log, location, token=token, tls_certificates=certificates, batch_rows=batch_rows
        )
    except (OSError, pa.ArrowException) as e:
        raise Unavailable(f"cannot listen on {location}: {e}") from e
    logger.info("flight server listening on %s%s", server.url, " (token required)" if token else "")
    return server
