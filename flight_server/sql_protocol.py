"""Flight SQL wire layer: protobuf messages, fixed result schemas, stateless handles.

This module knows the Flight SQL protocol and nothing about arrowlog's engine. The server
(``flight_server/server.py``) decodes a request with :func:`unpack`, asks ``Log`` for data,
and encodes the answer with the builders here.

What it provides
----------------
* The Flight SQL messages of package ``arrow.flight.protocol.sql``, built from a
  ``FileDescriptorProto`` at import time (no ``protoc`` step, no generated file). Field
  numbers and types follow ``format/FlightSql.proto`` of Apache Arrow, including the
  later additions ``CommandStatementIngest``, ``DoPutPreparedStatementResult`` and
  ``ActionCreatePreparedStatementResult.is_update`` (field 4).
* :func:`pack` / :func:`unpack` for the ``google.protobuf.Any`` envelope every command,
  action body and action result travels in. Anything that is not one of our messages
  raises :class:`ProtocolError` (an ``InvalidInput`` and a ``ValueError``).
* The Arrow schemas the spec fixes for metadata results (``GET_*_SCHEMA``) and builders
  that return tables with exactly those schemas.
* :class:`SqlInfo` ids and :func:`sql_info_table` for ``CommandGetSqlInfo``.
* Plain Flight's session-option messages (``SessionOptionValue``, ``GetSessionOptionsResult``,
  ...; package ``arrow.flight.protocol``), sent raw, and their encoders.
* Stateless prepared-statement handles and statement tickets: the SQL text (and the IPC
  bytes of bound parameters) live inside the handle, so any server process can serve any
  handle and a DoGet can be retried.

Two envelopes, do not mix them up
---------------------------------
* ``FlightDescriptor.cmd``, ``Ticket.ticket``, ``Action.body`` and ``Result.body`` hold an
  Any-packed message: use :func:`pack` / :func:`unpack`.
* ``PutResult.app_metadata`` holds the *raw* message, not an Any: use
  :func:`encode_update_result` (``DoPutUpdateResult``) and
  :func:`encode_put_prepared_result` (``DoPutPreparedStatementResult``). The Go client
  parses these bytes directly as the message; an Any there would be misread (its
  type_url would become the new prepared-statement handle).

What real clients send (ADBC Flight SQL driver, Go, as shipped in adbc-driver-flightsql 1.13)
----------------------------------------------------------------------------------------------
Read from the driver and arrow-go ``flightsql.Client`` sources, then confirmed by running
the installed driver against a throwaway pyarrow.flight server built on this module.

Connect (``adbc_driver_flightsql.dbapi.connect(uri)``)
    GetFlightInfo(``CommandGetSqlInfo{info=[8]}``) then DoGet; an error is ignored. The
    driver takes union child number 3 of the ``value`` column and type-asserts it to an
    Int32 array *without checking*: a reply lacking it makes the driver panic. Every
    GetSqlInfo reply must carry all six union children in spec order with type codes
    0..5 (:func:`sql_info_table` always does).
    Transactions count as supported only if id 8 (FLIGHT_SQL_SERVER_TRANSACTION) is an
    ``int32_bitmask`` (type code 3) equal to 1 or 2. The dbapi then calls
    ``set_autocommit(False)`` (its default is autocommit=False): without transaction
    support the driver answers NotImplemented and the dbapi emits a ``Warning`` ("Cannot
    disable autocommit; conn will not be DB-API 2.0 compliant") and runs in autocommit.
    With support, it sends DoAction ``BeginTransaction`` right away, puts the returned
    ``transaction_id`` (must be non-empty) into every later command, and ``commit()`` /
    ``rollback()`` send ``EndTransaction`` followed by a new ``BeginTransaction``.
    ``conn.close()`` sends DoAction ``CloseSession`` (a plain Flight action); an error
    there is ignored.

``adbc_current_catalog`` / ``adbc_current_db_schema`` (``adbc.connection.catalog`` /
``adbc.connection.db_schema``)
    DoAction ``GetSessionOptions`` (plain Flight; body and result are the raw
    ``GetSessionOptionsRequest`` / ``GetSessionOptionsResult``, no Any); the driver reads
    the string options ``catalog`` and ``schema``. A reply without them, or INVALID_ARGUMENT
    or UNIMPLEMENTED, makes it answer NOT_FOUND "current catalog not supported". Setting
    them sends ``SetSessionOptions``; any entry in the result's ``errors`` map fails the
    call with INVALID_ARGUMENT naming the option ("'catalog' (invalid value)").

``cursor.execute(sql[, params])`` (also ``pandas.read_sql``, ``polars.read_database``)
    1. DoAction type ``CreatePreparedStatement``, body Any(``ActionCreatePreparedStatementRequest
       {query, transaction_id?}``). The client reads one Result, body
       Any(``ActionCreatePreparedStatementResult``), then expects end of stream.
       Non-empty ``dataset_schema`` / ``parameter_schema`` are parsed as IPC schema messages
       (``pa.Schema.serialize()``). ``dataset_schema`` is what ``execute_schema`` returns
       for a prepared statement. An UNIMPLEMENTED answer makes the dbapi fall back to an
       ad-hoc ``CommandStatementQuery``. The same SQL run again on the same cursor is not
       re-prepared.
    2. Only with parameters: DoPut, descriptor cmd Any(``CommandPreparedStatementQuery
       {handle}``), the parameter batches as the stream. The client reads one PutResult
       whose ``app_metadata`` is a raw ``DoPutPreparedStatementResult``; a handle in it
       replaces the old one for the next step. No PutResult at all is tolerated.
    3. GetFlightInfo, descriptor cmd Any(``CommandPreparedStatementQuery{handle}``), then
       DoGet on every endpoint's ticket, unchanged and opaque (an endpoint without a
       location is fetched on the same connection). ``cursor.rowcount`` is
       ``FlightInfo.total_records``.
    4. When the cursor is closed or prepares other SQL: DoAction ``ClosePreparedStatement``,
       body Any(``ActionClosePreparedStatementRequest``); no result expected.
    ``executemany`` prepares, then DoPut Any(``CommandPreparedStatementUpdate{handle}``)
    with the parameter stream (or one zero-row batch of an empty schema when there are no
    parameters) and reads a raw ``DoPutUpdateResult`` from the first PutResult.
    ``is_update`` is optional; the 1.13 ``ExecuteQuery`` path does not consult it.

``adbc_get_objects(depth)``
    GetCatalogs (always), then GetDbSchemas with only ``db_schema_filter_pattern`` set
    (never ``catalog``), then GetTables with ``db_schema_filter_pattern``,
    ``table_name_filter_pattern``, ``table_types`` and ``include_schema`` (true for
    depth "all"/"columns"); ``catalog`` is never set. Each reply schema is compared with
    arrow-go's reference schema by ``Schema.Equal``: names, types and nullability of every
    field must match and fields must carry no metadata (a nullable ``catalog_name`` or a
    field with metadata is rejected; schema-level metadata is ignored). Our
    ``GET_CATALOGS_SCHEMA``, ``GET_DB_SCHEMAS_SCHEMA``, ``GET_TABLES_SCHEMA`` and
    ``GET_TABLES_SCHEMA_WITH_SCHEMA`` are exactly those. No catalog rows at all makes the
    driver invent a catalog named "". Column-name filtering happens in the client, from the
    ``table_schema`` IPC bytes.

``adbc_get_table_schema(table, db_schema_filter=None, catalog_filter=None)``
    GetTables{``catalog`` (when given), ``db_schema_filter_pattern`` (when given),
    ``table_name_filter_pattern`` = the table name used as a pattern (so ``_`` is a
    wildcard), ``include_schema``=true}. The client reads only the *first record batch of
    the first endpoint* and picks the row whose ``table_name`` is exactly equal; no batch
    or a zero-row first batch means NOT_FOUND. No schema check on this path.

``adbc_get_table_types()``
    GetTableTypes, streamed straight back to the caller (no schema check).

``adbc_get_info()``
    GetSqlInfo with the ids among 0, 1, 2, 4, 5, 6, 7 that the caller asked for (by
    default only 0, 1, 2). Their
    values must be ``string_value`` or ``bool_value``; any other member is an error in the
    driver. UNIMPLEMENTED makes it return driver-side info only.

``adbc_ingest(table, data, mode, catalog_name=None, db_schema_name=None, temporary=False)``
    DoPut, descriptor cmd Any(``CommandStatementIngest{table_definition_options, table,
    schema?, catalog?, temporary}``) (no ``options``, and no ``transaction_id`` even when
    the connection has a transaction open), then the
    data batches. ``TableDefinitionOptions`` per mode (if_not_exist / if_exists):
    create = CREATE(1) / FAIL(1); append = FAIL(2) / APPEND(2); replace = CREATE(1) /
    REPLACE(3); create_append = CREATE(1) / APPEND(2). The client reads the first
    PutResult, whose ``app_metadata`` is a raw ``DoPutUpdateResult{record_count}``
    returned to the caller as the row count, then drains the stream to its end.

Example:
    >>> cmd = unpack(pack(CommandGetTables(include_schema=True)))
    >>> type(cmd) is CommandGetTables and cmd.include_schema
    True
"""

from __future__ import annotations

import enum
import functools
import logging
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, TypeVar

import pyarrow as pa
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from arrowlog.errors import ProtocolError

__all__ = [
    "ACTION_BEGIN_SAVEPOINT",
    "ACTION_BEGIN_TRANSACTION",
    "ACTION_CANCEL_QUERY",
    "ACTION_CLOSE_PREPARED_STATEMENT",
    "ACTION_CLOSE_SESSION",
    "ACTION_CREATE_PREPARED_STATEMENT",
    "ACTION_CREATE_PREPARED_SUBSTRAIT_PLAN",
    "ACTION_END_SAVEPOINT",
    "ACTION_END_TRANSACTION",
    "ACTION_GET_SESSION_OPTIONS",
    "ACTION_SET_SESSION_OPTIONS",
    "GET_CATALOGS_SCHEMA",
    "GET_CROSS_REFERENCE_SCHEMA",
    "GET_DB_SCHEMAS_SCHEMA",
    "GET_EXPORTED_KEYS_SCHEMA",
    "GET_IMPORTED_KEYS_SCHEMA",
    "GET_PRIMARY_KEYS_SCHEMA",
    "GET_SQL_INFO_SCHEMA",
    "GET_TABLES_SCHEMA",
    "GET_TABLES_SCHEMA_WITH_SCHEMA",
    "GET_TABLE_TYPES_SCHEMA",
    "GET_XDBC_TYPE_INFO_SCHEMA",
    "MESSAGE_CLASSES",
    "PACKAGE",
    "SESSION_MESSAGE_CLASSES",
    "SESSION_PACKAGE",
    "SQL_INFO_VALUE_TYPE",
    "TYPE_URL_PREFIX",
    "ActionBeginSavepointRequest",
    "ActionBeginSavepointResult",
    "ActionBeginTransactionRequest",
    "ActionBeginTransactionResult",
    "ActionCancelQueryRequest",
    "ActionCancelQueryResult",
    "ActionClosePreparedStatementRequest",
    "ActionCreatePreparedStatementRequest",
    "ActionCreatePreparedStatementResult",
    "ActionCreatePreparedSubstraitPlanRequest",
    "ActionEndSavepointRequest",
    "ActionEndTransactionRequest",
    "Bitmask",
    "BytesLike",
    "CloseSessionRequest",
    "CloseSessionResult",
    "CommandGetCatalogs",
    "CommandGetCrossReference",
    "CommandGetDbSchemas",
    "CommandGetExportedKeys",
    "CommandGetImportedKeys",
    "CommandGetPrimaryKeys",
    "CommandGetSqlInfo",
    "CommandGetTableTypes",
    "CommandGetTables",
    "CommandGetXdbcTypeInfo",
    "CommandPreparedStatementQuery",
    "CommandPreparedStatementUpdate",
    "CommandStatementIngest",
    "CommandStatementQuery",
    "CommandStatementSubstraitPlan",
    "CommandStatementUpdate",
    "DoPutPreparedStatementResult",
    "DoPutUpdateResult",
    "GetSessionOptionsRequest",
    "GetSessionOptionsResult",
    "SessionOption",
    "SessionOptionValue",
    "SetSessionOptionError",
    "SetSessionOptionsRequest",
    "SetSessionOptionsResult",
    "SqlInfo",
    "SqlNullOrdering",
    "SqlSupportedCaseSensitivity",
    "SqlSupportedTransaction",
    "SubstraitPlan",
    "TableExistsOption",
    "TableNotExistOption",
    "TableRow",
    "TicketStatementQuery",
    "catalog_matches",
    "catalogs_table",
    "db_schemas_table",
    "decode_prepared_handle",
    "decode_session_options",
    "decode_set_session_options",
    "decode_statement_ticket",
    "decode_update_result",
    "encode_prepared_handle",
    "encode_prepared_statement_result",
    "encode_put_prepared_result",
    "encode_session_options",
    "encode_set_session_options_result",
    "encode_statement_ticket",
    "encode_update_result",
    "filter_db_schemas",
    "filter_tables",
    "like_match",
    "metadata_schema",
    "pack",
    "sql_info_table",
    "table_type_matches",
    "table_types_table",
    "tables_table",
    "unpack",
]

logger = logging.getLogger(__name__)

#: What the decoders accept: Flight hands over ``bytes`` or a ``pyarrow.Buffer``.
BytesLike = bytes | bytearray | memoryview | pa.Buffer

PACKAGE = "arrow.flight.protocol.sql"
SESSION_PACKAGE = "arrow.flight.protocol"
TYPE_URL_PREFIX = "type.googleapis.com/"

# DoAction ``type`` strings: the message name without "Action" and "Request".
ACTION_CREATE_PREPARED_STATEMENT = "CreatePreparedStatement"
ACTION_CREATE_PREPARED_SUBSTRAIT_PLAN = "CreatePreparedSubstraitPlan"
ACTION_CLOSE_PREPARED_STATEMENT = "ClosePreparedStatement"
ACTION_BEGIN_TRANSACTION = "BeginTransaction"
ACTION_END_TRANSACTION = "EndTransaction"
ACTION_BEGIN_SAVEPOINT = "BeginSavepoint"
ACTION_END_SAVEPOINT = "EndSavepoint"
ACTION_CANCEL_QUERY = "CancelQuery"
# Plain Flight's session actions; their bodies are raw messages (no Any).
ACTION_GET_SESSION_OPTIONS = "GetSessionOptions"
ACTION_SET_SESSION_OPTIONS = "SetSessionOptions"
ACTION_CLOSE_SESSION = "CloseSession"


# ---------------------------------------------------------------------------------------
# Protobuf messages, described once as data and built at import time.

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _FDP.TYPE_STRING,
    "bytes": _FDP.TYPE_BYTES,
    "bool": _FDP.TYPE_BOOL,
    "int32": _FDP.TYPE_INT32,
    "int64": _FDP.TYPE_INT64,
    "uint32": _FDP.TYPE_UINT32,
    "sfixed64": _FDP.TYPE_SFIXED64,
    "double": _FDP.TYPE_DOUBLE,
}


class _Field(NamedTuple):
    name: str
    number: int
    kind: str  # a key of _SCALARS, "msg:<Name>" or "enum:<Name>" (names relative to the package)
    # "", "optional" (proto3 explicit presence), "repeated", "map" (string keys) or
    # "oneof:<name>" (a member of that oneof)
    label: str = ""


class _Msg(NamedTuple):
    name: str
    fields: tuple[_Field, ...] = ()
    enums: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    nested: tuple[_Msg, ...] = ()


_TABLE_NOT_EXIST_VALUES = (
    ("TABLE_NOT_EXIST_OPTION_UNSPECIFIED", 0),
    ("TABLE_NOT_EXIST_OPTION_CREATE", 1),
    ("TABLE_NOT_EXIST_OPTION_FAIL", 2),
)
_TABLE_EXISTS_VALUES = (
    ("TABLE_EXISTS_OPTION_UNSPECIFIED", 0),
    ("TABLE_EXISTS_OPTION_FAIL", 1),
    ("TABLE_EXISTS_OPTION_APPEND", 2),
    ("TABLE_EXISTS_OPTION_REPLACE", 3),
)

# Field numbers and types as in Apache Arrow's format/FlightSql.proto.
_MESSAGES: tuple[_Msg, ...] = (
    _Msg("CommandGetSqlInfo", (_Field("info", 1, "uint32", "repeated"),)),
    _Msg("CommandGetXdbcTypeInfo", (_Field("data_type", 1, "int32", "optional"),)),
    _Msg("CommandGetCatalogs"),
    _Msg(
        "CommandGetDbSchemas",
        (
            _Field("catalog", 1, "string", "optional"),
            _Field("db_schema_filter_pattern", 2, "string", "optional"),
        ),
    ),
    _Msg(
        "CommandGetTables",
        (
            _Field("catalog", 1, "string", "optional"),
            _Field("db_schema_filter_pattern", 2, "string", "optional"),
            _Field("table_name_filter_pattern", 3, "string", "optional"),
            _Field("table_types", 4, "string", "repeated"),
            _Field("include_schema", 5, "bool"),
        ),
    ),
    _Msg("CommandGetTableTypes"),
    *(
        _Msg(
            name,
            (
                _Field("catalog", 1, "string", "optional"),
                _Field("db_schema", 2, "string", "optional"),
                _Field("table", 3, "string"),
            ),
        )
        for name in ("CommandGetPrimaryKeys", "CommandGetExportedKeys", "CommandGetImportedKeys")
    ),
    _Msg(
        "CommandGetCrossReference",
        (
            _Field("pk_catalog", 1, "string", "optional"),
            _Field("pk_db_schema", 2, "string", "optional"),
            _Field("pk_table", 3, "string"),
            _Field("fk_catalog", 4, "string", "optional"),
            _Field("fk_db_schema", 5, "string", "optional"),
            _Field("fk_table", 6, "string"),
        ),
    ),
    _Msg(
        "ActionCreatePreparedStatementRequest",
        (_Field("query", 1, "string"), _Field("transaction_id", 2, "bytes", "optional")),
    ),
    _Msg("SubstraitPlan", (_Field("plan", 1, "bytes"), _Field("version", 2, "string"))),
    _Msg(
        "ActionCreatePreparedSubstraitPlanRequest",
        (
            _Field("plan", 1, "msg:SubstraitPlan"),
            _Field("transaction_id", 2, "bytes", "optional"),
        ),
    ),
    _Msg(
        "ActionCreatePreparedStatementResult",
        (
            _Field("prepared_statement_handle", 1, "bytes"),
            _Field("dataset_schema", 2, "bytes"),
            _Field("parameter_schema", 3, "bytes"),
            _Field("is_update", 4, "bool", "optional"),
        ),
    ),
    _Msg("ActionClosePreparedStatementRequest", (_Field("prepared_statement_handle", 1, "bytes"),)),
    _Msg("ActionBeginTransactionRequest"),
    _Msg(
        "ActionBeginSavepointRequest",
        (_Field("transaction_id", 1, "bytes"), _Field("name", 2, "string")),
    ),
    _Msg("ActionBeginTransactionResult", (_Field("transaction_id", 1, "bytes"),)),
    _Msg("ActionBeginSavepointResult", (_Field("savepoint_id", 1, "bytes"),)),
    _Msg(
        "ActionEndTransactionRequest",
        (
            _Field("transaction_id", 1, "bytes"),
            _Field("action", 2, "enum:ActionEndTransactionRequest.EndTransaction"),
        ),
        enums=(
            (
                "EndTransaction",
                (
                    ("END_TRANSACTION_UNSPECIFIED", 0),
                    ("END_TRANSACTION_COMMIT", 1),
                    ("END_TRANSACTION_ROLLBACK", 2),
                ),
            ),
        ),
    ),
    _Msg(
        "ActionEndSavepointRequest",
        (
            _Field("savepoint_id", 1, "bytes"),
            _Field("action", 2, "enum:ActionEndSavepointRequest.EndSavepoint"),
        ),
        enums=(
            (
                "EndSavepoint",
                (
                    ("END_SAVEPOINT_UNSPECIFIED", 0),
                    ("END_SAVEPOINT_RELEASE", 1),
                    ("END_SAVEPOINT_ROLLBACK", 2),
                ),
            ),
        ),
    ),
    _Msg(
        "CommandStatementQuery",
        (_Field("query", 1, "string"), _Field("transaction_id", 2, "bytes", "optional")),
    ),
    _Msg(
        "CommandStatementSubstraitPlan",
        (
            _Field("plan", 1, "msg:SubstraitPlan"),
            _Field("transaction_id", 2, "bytes", "optional"),
        ),
    ),
    _Msg("TicketStatementQuery", (_Field("statement_handle", 1, "bytes"),)),
    _Msg("CommandPreparedStatementQuery", (_Field("prepared_statement_handle", 1, "bytes"),)),
    _Msg(
        "CommandStatementUpdate",
        (_Field("query", 1, "string"), _Field("transaction_id", 2, "bytes", "optional")),
    ),
    _Msg("CommandPreparedStatementUpdate", (_Field("prepared_statement_handle", 1, "bytes"),)),
    _Msg(
        "CommandStatementIngest",
        (
            _Field(
                "table_definition_options",
                1,
                "msg:CommandStatementIngest.TableDefinitionOptions",
            ),
            _Field("table", 2, "string"),
            _Field("schema", 3, "string", "optional"),
            _Field("catalog", 4, "string", "optional"),
            _Field("temporary", 5, "bool"),
            _Field("transaction_id", 6, "bytes", "optional"),
            _Field("options", 1000, "string", "map"),
        ),
        nested=(
            _Msg(
                "TableDefinitionOptions",
                (
                    _Field(
                        "if_not_exist",
                        1,
                        "enum:CommandStatementIngest.TableDefinitionOptions.TableNotExistOption",
                    ),
                    _Field(
                        "if_exists",
                        2,
                        "enum:CommandStatementIngest.TableDefinitionOptions.TableExistsOption",
                    ),
                ),
                enums=(
                    ("TableNotExistOption", _TABLE_NOT_EXIST_VALUES),
                    ("TableExistsOption", _TABLE_EXISTS_VALUES),
                ),
            ),
        ),
    ),
    _Msg("DoPutUpdateResult", (_Field("record_count", 1, "int64"),)),
    _Msg(
        "DoPutPreparedStatementResult",
        (_Field("prepared_statement_handle", 1, "bytes", "optional"),),
    ),
    _Msg("ActionCancelQueryRequest", (_Field("info", 1, "bytes"),)),
    _Msg(
        "ActionCancelQueryResult",
        (_Field("result", 1, "enum:ActionCancelQueryResult.CancelResult"),),
        enums=(
            (
                "CancelResult",
                (
                    ("CANCEL_RESULT_UNSPECIFIED", 0),
                    ("CANCEL_RESULT_CANCELLED", 1),
                    ("CANCEL_RESULT_CANCELLING", 2),
                    ("CANCEL_RESULT_NOT_CANCELLABLE", 3),
                ),
            ),
        ),
    ),
)


# Session options of plain Flight (``format/Flight.proto``, package arrow.flight.protocol).
# They travel as the raw message in ``Action.body`` / ``Result.body``, not in an Any.
_SESSION_MESSAGES: tuple[_Msg, ...] = (
    _Msg(
        "SessionOptionValue",
        (
            _Field("string_value", 1, "string", "oneof:option_value"),
            _Field("bool_value", 2, "bool", "oneof:option_value"),
            _Field("int64_value", 3, "sfixed64", "oneof:option_value"),
            _Field("double_value", 4, "double", "oneof:option_value"),
            _Field(
                "string_list_value",
                5,
                "msg:SessionOptionValue.StringListValue",
                "oneof:option_value",
            ),
        ),
        nested=(_Msg("StringListValue", (_Field("values", 1, "string", "repeated"),)),),
    ),
    _Msg(
        "SetSessionOptionsRequest",
        (_Field("session_options", 1, "msg:SessionOptionValue", "map"),),
    ),
    _Msg(
        "SetSessionOptionsResult",
        (_Field("errors", 1, "msg:SetSessionOptionsResult.Error", "map"),),
        enums=(
            (
                "ErrorValue",
                (("UNSPECIFIED", 0), ("INVALID_NAME", 1), ("INVALID_VALUE", 2), ("ERROR", 3)),
            ),
        ),
        nested=(_Msg("Error", (_Field("value", 1, "enum:SetSessionOptionsResult.ErrorValue"),)),),
    ),
    _Msg("GetSessionOptionsRequest"),
    _Msg(
        "GetSessionOptionsResult",
        (_Field("session_options", 1, "msg:SessionOptionValue", "map"),),
    ),
    _Msg("CloseSessionRequest"),
    _Msg(
        "CloseSessionResult",
        (_Field("status", 1, "enum:CloseSessionResult.Status"),),
        enums=(
            (
                "Status",
                (("UNSPECIFIED", 0), ("CLOSED", 1), ("CLOSING", 2), ("NOT_CLOSEABLE", 3)),
            ),
        ),
    ),
)


def _describe(spec: _Msg, proto: descriptor_pb2.DescriptorProto, package: str = PACKAGE) -> None:
    """Fill ``proto`` from ``spec`` (proto3 rules: synthetic oneofs, map entry messages)."""
    proto.name = spec.name
    for enum_name, values in spec.enums:
        enum_proto = proto.enum_type.add(name=enum_name)
        for value_name, number in values:
            enum_proto.value.add(name=value_name, number=number)
    for nested in spec.nested:
        _describe(nested, proto.nested_type.add(), package)
    # Real oneofs are declared before the synthetic ones of proto3 `optional` fields.
    for field in spec.fields:
        if field.label.startswith("oneof:"):
            name = field.label.partition(":")[2]
            if name not in [o.name for o in proto.oneof_decl]:
                proto.oneof_decl.add(name=name)
    for field in spec.fields:
        fp = proto.field.add(name=field.name, number=field.number, label=_FDP.LABEL_OPTIONAL)
        if field.label == "map":
            # map<string, V> is a repeated nested "<Name>Entry" message flagged map_entry.
            entry_name = "".join(part.title() for part in field.name.split("_")) + "Entry"
            entry = proto.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, label=_FDP.LABEL_OPTIONAL, type=_FDP.TYPE_STRING)
            value = entry.field.add(name="value", number=2, label=_FDP.LABEL_OPTIONAL)
            _set_type(value, field.kind, package)
            fp.label = _FDP.LABEL_REPEATED
            fp.type = _FDP.TYPE_MESSAGE
            fp.type_name = f".{package}.{spec.name}.{entry_name}"
            continue
        _set_type(fp, field.kind, package)
        if field.label == "repeated":
            fp.label = _FDP.LABEL_REPEATED
        elif field.label.startswith("oneof:"):
            name = field.label.partition(":")[2]
            fp.oneof_index = [o.name for o in proto.oneof_decl].index(name)
        elif field.label == "optional":
            # proto3 `optional` = a synthetic one-field oneof named "_<field>".
            fp.proto3_optional = True
            fp.oneof_index = len(proto.oneof_decl)
            proto.oneof_decl.add(name=f"_{field.name}")


def _set_type(fp: descriptor_pb2.FieldDescriptorProto, kind: str, package: str) -> None:
    if kind.startswith("msg:"):
        fp.type = _FDP.TYPE_MESSAGE
        fp.type_name = f".{package}.{kind[4:]}"
    elif kind.startswith("enum:"):
        fp.type = _FDP.TYPE_ENUM
        fp.type_name = f".{package}.{kind[5:]}"
    else:
        fp.type = _SCALARS[kind]


def _build_classes() -> dict[str, type[Message]]:
    # A private pool: another library registering the same names cannot clash with ours.
    pool = descriptor_pool.DescriptorPool()
    classes: dict[str, type[Message]] = {}
    for file_name, package, specs in (
        ("arrowlog/flight_sql.proto", PACKAGE, _MESSAGES),
        ("arrowlog/flight_session.proto", SESSION_PACKAGE, _SESSION_MESSAGES),
    ):
        file_proto = descriptor_pb2.FileDescriptorProto(
            name=file_name, package=package, syntax="proto3"
        )
        for spec in specs:
            _describe(spec, file_proto.message_type.add(), package)
        pool.AddSerializedFile(file_proto.SerializeToString())
        for spec in specs:
            classes[spec.name] = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(f"{package}.{spec.name}")
            )
    return classes


_CLASSES = _build_classes()

CommandGetSqlInfo = _CLASSES["CommandGetSqlInfo"]
CommandGetXdbcTypeInfo = _CLASSES["CommandGetXdbcTypeInfo"]
CommandGetCatalogs = _CLASSES["CommandGetCatalogs"]
CommandGetDbSchemas = _CLASSES["CommandGetDbSchemas"]
CommandGetTables = _CLASSES["CommandGetTables"]
CommandGetTableTypes = _CLASSES["CommandGetTableTypes"]
CommandGetPrimaryKeys = _CLASSES["CommandGetPrimaryKeys"]
CommandGetExportedKeys = _CLASSES["CommandGetExportedKeys"]
CommandGetImportedKeys = _CLASSES["CommandGetImportedKeys"]
CommandGetCrossReference = _CLASSES["CommandGetCrossReference"]
ActionCreatePreparedStatementRequest = _CLASSES["ActionCreatePreparedStatementRequest"]
SubstraitPlan = _CLASSES["SubstraitPlan"]
ActionCreatePreparedSubstraitPlanRequest = _CLASSES["ActionCreatePreparedSubstraitPlanRequest"]
ActionCreatePreparedStatementResult = _CLASSES["ActionCreatePreparedStatementResult"]
ActionClosePreparedStatementRequest = _CLASSES["ActionClosePreparedStatementRequest"]
ActionBeginTransactionRequest = _CLASSES["ActionBeginTransactionRequest"]
ActionBeginSavepointRequest = _CLASSES["ActionBeginSavepointRequest"]
ActionBeginTransactionResult = _CLASSES["ActionBeginTransactionResult"]
ActionBeginSavepointResult = _CLASSES["ActionBeginSavepointResult"]
ActionEndTransactionRequest = _CLASSES["ActionEndTransactionRequest"]
ActionEndSavepointRequest = _CLASSES["ActionEndSavepointRequest"]
CommandStatementQuery = _CLASSES["CommandStatementQuery"]
CommandStatementSubstraitPlan = _CLASSES["CommandStatementSubstraitPlan"]
TicketStatementQuery = _CLASSES["TicketStatementQuery"]
CommandPreparedStatementQuery = _CLASSES["CommandPreparedStatementQuery"]
CommandStatementUpdate = _CLASSES["CommandStatementUpdate"]
CommandPreparedStatementUpdate = _CLASSES["CommandPreparedStatementUpdate"]
CommandStatementIngest = _CLASSES["CommandStatementIngest"]
DoPutUpdateResult = _CLASSES["DoPutUpdateResult"]
DoPutPreparedStatementResult = _CLASSES["DoPutPreparedStatementResult"]
ActionCancelQueryRequest = _CLASSES["ActionCancelQueryRequest"]
ActionCancelQueryResult = _CLASSES["ActionCancelQueryResult"]

#: Every message class, by short name (e.g. ``"CommandGetTables"``).
MESSAGE_CLASSES: Mapping[str, type[Message]] = {
    spec.name: _CLASSES[spec.name] for spec in _MESSAGES
}
_BY_FULL_NAME = {f"{PACKAGE}.{name}": cls for name, cls in MESSAGE_CLASSES.items()}

SessionOptionValue = _CLASSES["SessionOptionValue"]
SetSessionOptionsRequest = _CLASSES["SetSessionOptionsRequest"]
SetSessionOptionsResult = _CLASSES["SetSessionOptionsResult"]
GetSessionOptionsRequest = _CLASSES["GetSessionOptionsRequest"]
GetSessionOptionsResult = _CLASSES["GetSessionOptionsResult"]
CloseSessionRequest = _CLASSES["CloseSessionRequest"]
CloseSessionResult = _CLASSES["CloseSessionResult"]

#: Plain Flight's session messages, by short name. Sent raw, never in an Any.
SESSION_MESSAGE_CLASSES: Mapping[str, type[Message]] = {
    spec.name: _CLASSES[spec.name] for spec in _SESSION_MESSAGES
}


class TableNotExistOption(enum.IntEnum):
    """``CommandStatementIngest.TableDefinitionOptions.if_not_exist``."""

    UNSPECIFIED = 0  # servers should reject it
    CREATE = 1
    FAIL = 2


class TableExistsOption(enum.IntEnum):
    """``CommandStatementIngest.TableDefinitionOptions.if_exists``."""

    UNSPECIFIED = 0  # servers should reject it
    FAIL = 1
    APPEND = 2
    REPLACE = 3


# ---------------------------------------------------------------------------------------
# The Any envelope.

_M = TypeVar("_M", bound=Message)


def _preview(data: bytes, limit: int = 32) -> str:
    """A short, printable description of untrusted bytes for error messages."""
    shown = repr(bytes(data[:limit]))
    suffix = "..." if len(data) > limit else ""
    return f"{len(data)} bytes {shown}{suffix}"


def pack(message: Message) -> bytes:
    """Wrap a Flight SQL message in a ``google.protobuf.Any`` and serialize it.

    This is the form of ``FlightDescriptor.cmd``, ``Ticket.ticket``, ``Action.body`` and
    ``Result.body`` in Flight SQL. (``PutResult.app_metadata`` is *not* packed; see
    :func:`encode_update_result`.)

    Args:
        message: an instance of one of this module's message classes.

    Returns:
        The serialized Any, type_url ``type.googleapis.com/arrow.flight.protocol.sql.<Name>``.

    Raises:
        TypeError: ``message`` is not a Flight SQL message.

    Example: ``FlightDescriptor.for_command(pack(CommandStatementQuery(query="SELECT 1")))``
    """
    full_name = getattr(getattr(message, "DESCRIPTOR", None), "full_name", None)
    if full_name not in _BY_FULL_NAME:
        raise TypeError(f"not a Flight SQL message: {type(message).__name__}")
    envelope = any_pb2.Any(
        type_url=TYPE_URL_PREFIX + full_name,
        value=message.SerializeToString(deterministic=True),
    )
    return envelope.SerializeToString(deterministic=True)


def unpack(
    data: BytesLike,
    expect: type[_M] | tuple[type[Message], ...] | None = None,
) -> Message:
    """Parse an Any-wrapped Flight SQL message, dispatching on its type_url.

    Never raises anything but :class:`ProtocolError` for bad input: not an Any, a type_url
    that names no Flight SQL message, a body that does not decode, or (with ``expect``) a
    different message than expected. Plain-Flight tickets such as ``b"SELECT 1"`` land here
    too; callers that accept both catch ``ProtocolError`` and treat the bytes as SQL.

    Args:
        data: the serialized Any (a descriptor's ``cmd``, a ticket, an action body).
        expect: optional message class (or tuple of classes) the caller requires.

    Returns:
        A new instance of the matching message class.

    Raises:
        ProtocolError: the bytes are not the (expected) Flight SQL message.

    Example: ``cmd = unpack(descriptor.command)``; then ``isinstance(cmd, CommandGetTables)``.
    """
    raw = bytes(data)
    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(raw)
    except DecodeError as exc:
        raise ProtocolError(
            f"expected a Flight SQL command (a protobuf Any), got {_preview(raw)}"
        ) from exc
    type_url = envelope.type_url
    if not type_url:
        raise ProtocolError(
            f"expected a Flight SQL command (a protobuf Any with a type_url), got {_preview(raw)}"
        )
    # Any allows any URL prefix; the message name is what follows the last '/'.
    full_name = type_url.rpartition("/")[2]
    cls = _BY_FULL_NAME.get(full_name)
    if cls is None:
        raise ProtocolError(f"unsupported Flight SQL message type {type_url!r}")
    message = cls()
    try:
        message.ParseFromString(envelope.value)
    except DecodeError as exc:
        raise ProtocolError(
            f"could not decode {cls.DESCRIPTOR.name} from {_preview(envelope.value)}"
        ) from exc
    if expect is not None and not isinstance(message, expect):
        wanted = expect if isinstance(expect, tuple) else (expect,)
        names = " or ".join(c.DESCRIPTOR.name for c in wanted)
        raise ProtocolError(f"expected {names}, got {cls.DESCRIPTOR.name}")
    return message


def encode_update_result(record_count: int) -> bytes:
    """``PutResult.app_metadata`` for an update or ingest: a raw ``DoPutUpdateResult``.

    Args:
        record_count: rows written; -1 means unknown.

    Returns:
        The serialized message, *not* Any-wrapped (clients parse it directly).

    Example: ``writer.write(pa.py_buffer(encode_update_result(n)))``
    """
    return DoPutUpdateResult(record_count=record_count).SerializeToString()


def decode_update_result(data: BytesLike) -> int:
    """Read ``record_count`` from a raw ``DoPutUpdateResult`` (the client side of the above).

    Raises:
        ProtocolError: the bytes do not decode.
    """
    message = DoPutUpdateResult()
    try:
        message.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise ProtocolError(
            f"could not decode DoPutUpdateResult from {_preview(bytes(data))}"
        ) from exc
    return int(message.record_count)


def encode_put_prepared_result(handle: bytes) -> bytes:
    """``PutResult.app_metadata`` after binding parameters: a raw ``DoPutPreparedStatementResult``.

    The client replaces its prepared-statement handle with ``handle`` (the stateless
    handle that now carries the bound parameters, see :func:`encode_prepared_handle`).
    """
    return DoPutPreparedStatementResult(prepared_statement_handle=handle).SerializeToString()


def encode_prepared_statement_result(
    handle: bytes,
    dataset_schema: pa.Schema | None = None,
    parameter_schema: pa.Schema | None = None,
    *,
    is_update: bool | None = None,
) -> bytes:
    """The ``Result.body`` answering ``CreatePreparedStatement``: a packed ``ActionCreatePreparedStatementResult``.

    Args:
        handle: the prepared-statement handle (from :func:`encode_prepared_handle`).
        dataset_schema: the result schema, if known (ADBC's ``execute_schema`` returns it).
        parameter_schema: the bind-parameter schema, if known.
        is_update: the newer spec's hint; left unset when None.

    Returns:
        The Any-packed message.
    """
    result = ActionCreatePreparedStatementResult(prepared_statement_handle=handle)
    if dataset_schema is not None:
        result.dataset_schema = dataset_schema.serialize().to_pybytes()
    if parameter_schema is not None:
        result.parameter_schema = parameter_schema.serialize().to_pybytes()
    if is_update is not None:
        result.is_update = is_update
    return pack(result)


# ---------------------------------------------------------------------------------------
# Session options (plain Flight actions; ADBC reads the current catalog and schema here).

#: A session option's value as Python sees it; None is an option without a value.
SessionOption = str | bool | int | float | list[str] | None


class SetSessionOptionError(enum.IntEnum):
    """``SetSessionOptionsResult.ErrorValue``: why one option was not set."""

    UNSPECIFIED = 0
    INVALID_NAME = 1
    INVALID_VALUE = 2
    ERROR = 3


def _option_value(value: SessionOption) -> Message:
    message = SessionOptionValue()
    if value is None:
        pass
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int):
        message.int64_value = value
    elif isinstance(value, float):
        message.double_value = value
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        message.string_list_value.values.extend(value)
    else:
        raise TypeError(f"a session option cannot hold a {type(value).__name__}")
    return message


def _option_python(message: Message) -> SessionOption:
    which = message.WhichOneof("option_value")
    if which is None:
        return None
    if which == "string_list_value":
        return list(message.string_list_value.values)
    return getattr(message, which)


def encode_session_options(options: Mapping[str, SessionOption]) -> bytes:
    """The ``Result.body`` answering ``GetSessionOptions``: a raw ``GetSessionOptionsResult``.

    Example: ``encode_session_options({"catalog": "arrowlog", "schema": "public"})``
    """
    result = GetSessionOptionsResult()
    for name, value in options.items():
        result.session_options[name].CopyFrom(_option_value(value))
    return result.SerializeToString(deterministic=True)


def decode_session_options(data: BytesLike) -> dict[str, SessionOption]:
    """The options of a raw ``GetSessionOptionsResult`` (the client side of the above).

    Raises:
        ProtocolError: the bytes do not decode.
    """
    return _decode_options(data, GetSessionOptionsResult)


def decode_set_session_options(data: BytesLike) -> dict[str, SessionOption]:
    """The options a raw ``SetSessionOptionsRequest`` (a ``SetSessionOptions`` body) asks for.

    Raises:
        ProtocolError: the bytes do not decode.
    """
    return _decode_options(data, SetSessionOptionsRequest)


def _decode_options(data: BytesLike, cls: type[Message]) -> dict[str, SessionOption]:
    message = cls()
    try:
        message.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise ProtocolError(
            f"could not decode {cls.DESCRIPTOR.name} from {_preview(bytes(data))}"
        ) from exc
    return {name: _option_python(value) for name, value in message.session_options.items()}


def encode_set_session_options_result(errors: Mapping[str, SetSessionOptionError]) -> bytes:
    """The ``Result.body`` answering ``SetSessionOptions``: one error per option not set.

    Example: ``encode_set_session_options_result({"catalog": SetSessionOptionError.INVALID_VALUE})``
    """
    result = SetSessionOptionsResult()
    for name, error in errors.items():
        result.errors[name].value = int(error)
    return result.SerializeToString(deterministic=True)


# ---------------------------------------------------------------------------------------
# Stateless handles and tickets.
#
# Layout: b"AL" | version (1 byte) | u32 BE len | SQL UTF-8 | u32 BE len | params IPC stream
# A params length of 0 means "no parameters" (an IPC stream is never empty).

_HANDLE_MAGIC = b"AL"
_HANDLE_VERSION = 1
_U32 = struct.Struct(">I")
_HANDLE_HEADER = len(_HANDLE_MAGIC) + 1


def _params_to_ipc(params: pa.RecordBatch | pa.Table) -> bytes:
    if isinstance(params, pa.Table):
        batches = params.combine_chunks().to_batches()
        params = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=params.schema)
    if not isinstance(params, pa.RecordBatch):
        raise TypeError(f"parameters must be a pyarrow RecordBatch, got {type(params).__name__}")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, params.schema) as writer:
        writer.write_batch(params)
    return sink.getvalue().to_pybytes()


def _params_from_ipc(data: bytes) -> pa.RecordBatch:
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ProtocolError(f"prepared statement handle holds corrupt parameters: {exc}") from exc
    batches = table.combine_chunks().to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0]


def encode_prepared_handle(sql: str, params: pa.RecordBatch | pa.Table | None = None) -> bytes:
    """Encode a prepared statement (SQL and optional bound parameters) into its handle.

    The handle is the whole state: no server keeps a table of open statements, so any
    server can execute it and ClosePreparedStatement has nothing to free. Parameters
    travel as Arrow IPC bytes, so keep them small (they ride in gRPC messages).

    Args:
        sql: the statement text.
        params: bound parameters, one row per execution; a Table is combined into one batch.

    Returns:
        Opaque bytes for ``prepared_statement_handle`` / ``statement_handle``.

    Example: ``decode_prepared_handle(encode_prepared_handle("SELECT 1")) == ("SELECT 1", None)``
    """
    sql_bytes = sql.encode("utf-8")
    params_bytes = b"" if params is None else _params_to_ipc(params)
    return b"".join(
        (
            _HANDLE_MAGIC,
            bytes((_HANDLE_VERSION,)),
            _U32.pack(len(sql_bytes)),
            sql_bytes,
            _U32.pack(len(params_bytes)),
            params_bytes,
        )
    )


def decode_prepared_handle(
    handle: BytesLike,
) -> tuple[str, pa.RecordBatch | None]:
    """Decode a handle made by :func:`encode_prepared_handle`.

    Returns:
        ``(sql, params)``; ``params`` is None when none were bound.

    Raises:
        ProtocolError: the handle is truncated, has trailing bytes, is not ours, has an
            unknown version, or holds invalid UTF-8 or IPC data.
    """
    data = bytes(handle)
    if len(data) < _HANDLE_HEADER or not data.startswith(_HANDLE_MAGIC):
        raise ProtocolError(f"not an arrowlog prepared statement handle: {_preview(data)}")
    version = data[len(_HANDLE_MAGIC)]
    if version != _HANDLE_VERSION:
        raise ProtocolError(
            f"unsupported prepared statement handle version {version} "
            f"(this server reads version {_HANDLE_VERSION})"
        )
    pos = _HANDLE_HEADER
    sections: list[bytes] = []
    for what in ("SQL", "parameters"):
        if len(data) - pos < _U32.size:
            raise ProtocolError(
                f"prepared statement handle is truncated: the {what} length is missing "
                f"({len(data)} bytes in all)"
            )
        (length,) = _U32.unpack_from(data, pos)
        pos += _U32.size
        if len(data) - pos < length:
            raise ProtocolError(
                f"prepared statement handle is truncated: {length} bytes of {what} "
                f"expected, {len(data) - pos} remain"
            )
        sections.append(data[pos : pos + length])
        pos += length
    if pos != len(data):
        raise ProtocolError(
            f"prepared statement handle has {len(data) - pos} unexpected trailing bytes"
        )
    sql_bytes, params_bytes = sections
    try:
        sql = sql_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("prepared statement handle holds SQL that is not UTF-8") from exc
    params = _params_from_ipc(params_bytes) if params_bytes else None
    return sql, params


def encode_statement_ticket(sql: str, params: pa.RecordBatch | pa.Table | None = None) -> bytes:
    """A DoGet ticket for a statement: packed ``TicketStatementQuery`` with a stateless handle.

    The ticket can be redeemed any number of times, on any server (results are
    streamed; a retried DoGet simply runs the query again).

    Example: ``flight.Ticket(encode_statement_ticket("SELECT 1"))``
    """
    return pack(TicketStatementQuery(statement_handle=encode_prepared_handle(sql, params)))


def decode_statement_ticket(
    ticket: BytesLike,
) -> tuple[str, pa.RecordBatch | None]:
    """Decode a ticket made by :func:`encode_statement_ticket` into ``(sql, params)``.

    Raises:
        ProtocolError: not a packed ``TicketStatementQuery``, or its handle is invalid.
    """
    message = unpack(ticket, TicketStatementQuery)
    return decode_prepared_handle(message.statement_handle)


# ---------------------------------------------------------------------------------------
# Fixed result schemas. Nullability matters: ADBC compares reply schemas field by field
# (arrow-go schema_ref); these match it and Arrow C++'s SqlSchema.

_utf8 = pa.utf8()

GET_CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", _utf8, nullable=False)])

GET_DB_SCHEMAS_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", _utf8, nullable=True),
        pa.field("db_schema_name", _utf8, nullable=False),
    ]
)

GET_TABLES_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", _utf8, nullable=True),
        pa.field("db_schema_name", _utf8, nullable=True),
        pa.field("table_name", _utf8, nullable=False),
        pa.field("table_type", _utf8, nullable=False),
    ]
)

GET_TABLES_SCHEMA_WITH_SCHEMA = GET_TABLES_SCHEMA.append(
    pa.field("table_schema", pa.binary(), nullable=False)
)

GET_TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", _utf8, nullable=False)])

#: The dense union of GetSqlInfo values: members in this order, type codes 0..5, members
#: not nullable (as in arrow-go and Arrow C++). The list items are named "item" and are
#: nullable; the map is ``map<int32, list<int32>>`` with pyarrow's default naming.
SQL_INFO_VALUE_TYPE = pa.dense_union(
    [
        pa.field("string_value", _utf8, nullable=False),
        pa.field("bool_value", pa.bool_(), nullable=False),
        pa.field("bigint_value", pa.int64(), nullable=False),
        pa.field("int32_bitmask", pa.int32(), nullable=False),
        pa.field("string_list", pa.list_(_utf8), nullable=False),
        pa.field(
            "int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32())), nullable=False
        ),
    ],
    type_codes=[0, 1, 2, 3, 4, 5],
)

GET_SQL_INFO_SCHEMA = pa.schema(
    [
        pa.field("info_name", pa.uint32(), nullable=False),
        pa.field("value", SQL_INFO_VALUE_TYPE, nullable=False),
    ]
)

# The spec's comment lists key_name before key_sequence; every implementation (arrow-go
# schema_ref, Arrow C++, Java) puts key_sequence first. We follow the implementations.
GET_PRIMARY_KEYS_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", _utf8, nullable=True),
        pa.field("db_schema_name", _utf8, nullable=True),
        pa.field("table_name", _utf8, nullable=False),
        pa.field("column_name", _utf8, nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("key_name", _utf8, nullable=True),
    ]
)

_KEYS_SCHEMA = pa.schema(
    [
        pa.field("pk_catalog_name", _utf8, nullable=True),
        pa.field("pk_db_schema_name", _utf8, nullable=True),
        pa.field("pk_table_name", _utf8, nullable=False),
        pa.field("pk_column_name", _utf8, nullable=False),
        pa.field("fk_catalog_name", _utf8, nullable=True),
        pa.field("fk_db_schema_name", _utf8, nullable=True),
        pa.field("fk_table_name", _utf8, nullable=False),
        pa.field("fk_column_name", _utf8, nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("fk_key_name", _utf8, nullable=True),
        pa.field("pk_key_name", _utf8, nullable=True),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)
GET_EXPORTED_KEYS_SCHEMA = _KEYS_SCHEMA
GET_IMPORTED_KEYS_SCHEMA = _KEYS_SCHEMA
GET_CROSS_REFERENCE_SCHEMA = _KEYS_SCHEMA

GET_XDBC_TYPE_INFO_SCHEMA = pa.schema(
    [
        pa.field("type_name", _utf8, nullable=False),
        pa.field("data_type", pa.int32(), nullable=False),
        pa.field("column_size", pa.int32(), nullable=True),
        pa.field("literal_prefix", _utf8, nullable=True),
        pa.field("literal_suffix", _utf8, nullable=True),
        pa.field("create_params", pa.list_(pa.field("item", _utf8, nullable=False)), nullable=True),
        pa.field("nullable", pa.int32(), nullable=False),
        pa.field("case_sensitive", pa.bool_(), nullable=False),
        pa.field("searchable", pa.int32(), nullable=False),
        pa.field("unsigned_attribute", pa.bool_(), nullable=True),
        pa.field("fixed_prec_scale", pa.bool_(), nullable=False),
        pa.field("auto_increment", pa.bool_(), nullable=True),
        pa.field("local_type_name", _utf8, nullable=True),
        pa.field("minimum_scale", pa.int32(), nullable=True),
        pa.field("maximum_scale", pa.int32(), nullable=True),
        pa.field("sql_data_type", pa.int32(), nullable=False),
        pa.field("datetime_subcode", pa.int32(), nullable=True),
        pa.field("num_prec_radix", pa.int32(), nullable=True),
        pa.field("interval_precision", pa.int32(), nullable=True),
    ]
)

_FIXED_SCHEMAS: dict[str, pa.Schema] = {
    "CommandGetCatalogs": GET_CATALOGS_SCHEMA,
    "CommandGetDbSchemas": GET_DB_SCHEMAS_SCHEMA,
    "CommandGetTableTypes": GET_TABLE_TYPES_SCHEMA,
    "CommandGetSqlInfo": GET_SQL_INFO_SCHEMA,
    "CommandGetPrimaryKeys": GET_PRIMARY_KEYS_SCHEMA,
    "CommandGetExportedKeys": GET_EXPORTED_KEYS_SCHEMA,
    "CommandGetImportedKeys": GET_IMPORTED_KEYS_SCHEMA,
    "CommandGetCrossReference": GET_CROSS_REFERENCE_SCHEMA,
    "CommandGetXdbcTypeInfo": GET_XDBC_TYPE_INFO_SCHEMA,
}


def metadata_schema(command: Message) -> pa.Schema | None:
    """The fixed result schema of a metadata command, for GetSchema and FlightInfo.

    Returns:
        The spec schema (GetTables depends on ``include_schema``), or None when ``command``
        is not a metadata command (queries, updates, ...).
    """
    name = command.DESCRIPTOR.name
    if name == "CommandGetTables":
        return GET_TABLES_SCHEMA_WITH_SCHEMA if command.include_schema else GET_TABLES_SCHEMA
    return _FIXED_SCHEMAS.get(name)


# ---------------------------------------------------------------------------------------
# GetSqlInfo.


class SqlInfo(enum.IntEnum):
    """Info ids of ``CommandGetSqlInfo`` (the spec's ``SqlInfo`` enum)."""

    # Server information [0, 500)
    FLIGHT_SQL_SERVER_NAME = 0
    FLIGHT_SQL_SERVER_VERSION = 1
    FLIGHT_SQL_SERVER_ARROW_VERSION = 2
    FLIGHT_SQL_SERVER_READ_ONLY = 3
    FLIGHT_SQL_SERVER_SQL = 4
    FLIGHT_SQL_SERVER_SUBSTRAIT = 5
    FLIGHT_SQL_SERVER_SUBSTRAIT_MIN_VERSION = 6
    FLIGHT_SQL_SERVER_SUBSTRAIT_MAX_VERSION = 7
    FLIGHT_SQL_SERVER_TRANSACTION = 8
    FLIGHT_SQL_SERVER_CANCEL = 9
    FLIGHT_SQL_SERVER_BULK_INGESTION = 10
    FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED = 11
    FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT = 100
    FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT = 101
    # SQL syntax information [500, 1000)
    SQL_DDL_CATALOG = 500
    SQL_DDL_SCHEMA = 501
    SQL_DDL_TABLE = 502
    SQL_IDENTIFIER_CASE = 503
    SQL_IDENTIFIER_QUOTE_CHAR = 504
    SQL_QUOTED_IDENTIFIER_CASE = 505
    SQL_ALL_TABLES_ARE_SELECTABLE = 506
    SQL_NULL_ORDERING = 507
    SQL_KEYWORDS = 508
    SQL_NUMERIC_FUNCTIONS = 509
    SQL_STRING_FUNCTIONS = 510
    SQL_SYSTEM_FUNCTIONS = 511
    SQL_DATETIME_FUNCTIONS = 512
    SQL_SEARCH_STRING_ESCAPE = 513
    SQL_EXTRA_NAME_CHARACTERS = 514
    SQL_SUPPORTS_COLUMN_ALIASING = 515
    SQL_NULL_PLUS_NULL_IS_NULL = 516
    SQL_SUPPORTS_CONVERT = 517
    SQL_SUPPORTS_TABLE_CORRELATION_NAMES = 518
    SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES = 519
    SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY = 520
    SQL_SUPPORTS_ORDER_BY_UNRELATED = 521
    SQL_SUPPORTED_GROUP_BY = 522
    SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE = 523
    SQL_SUPPORTS_NON_NULLABLE_COLUMNS = 524
    SQL_SUPPORTED_GRAMMAR = 525
    SQL_ANSI92_SUPPORTED_LEVEL = 526
    SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY = 527
    SQL_OUTER_JOINS_SUPPORT_LEVEL = 528
    SQL_SCHEMA_TERM = 529
    SQL_PROCEDURE_TERM = 530
    SQL_CATALOG_TERM = 531
    SQL_CATALOG_AT_START = 532
    SQL_SCHEMAS_SUPPORTED_ACTIONS = 533
    SQL_CATALOGS_SUPPORTED_ACTIONS = 534
    SQL_SUPPORTED_POSITIONED_COMMANDS = 535
    SQL_SELECT_FOR_UPDATE_SUPPORTED = 536
    SQL_STORED_PROCEDURES_SUPPORTED = 537
    SQL_SUPPORTED_SUBQUERIES = 538
    SQL_CORRELATED_SUBQUERIES_SUPPORTED = 539
    SQL_SUPPORTED_UNIONS = 540
    SQL_MAX_BINARY_LITERAL_LENGTH = 541
    SQL_MAX_CHAR_LITERAL_LENGTH = 542
    SQL_MAX_COLUMN_NAME_LENGTH = 543
    SQL_MAX_COLUMNS_IN_GROUP_BY = 544
    SQL_MAX_COLUMNS_IN_INDEX = 545
    SQL_MAX_COLUMNS_IN_ORDER_BY = 546
    SQL_MAX_COLUMNS_IN_SELECT = 547
    SQL_MAX_COLUMNS_IN_TABLE = 548
    SQL_MAX_CONNECTIONS = 549
    SQL_MAX_CURSOR_NAME_LENGTH = 550
    SQL_MAX_INDEX_LENGTH = 551
    SQL_DB_SCHEMA_NAME_LENGTH = 552
    SQL_MAX_PROCEDURE_NAME_LENGTH = 553
    SQL_MAX_CATALOG_NAME_LENGTH = 554
    SQL_MAX_ROW_SIZE = 555
    SQL_MAX_ROW_SIZE_INCLUDES_BLOBS = 556
    SQL_MAX_STATEMENT_LENGTH = 557
    SQL_MAX_STATEMENTS = 558
    SQL_MAX_TABLE_NAME_LENGTH = 559
    SQL_MAX_TABLES_IN_SELECT = 560
    SQL_MAX_USERNAME_LENGTH = 561
    SQL_DEFAULT_TRANSACTION_ISOLATION = 562
    SQL_TRANSACTIONS_SUPPORTED = 563
    SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS = 564
    SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT = 565
    SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED = 566
    SQL_SUPPORTED_RESULT_SET_TYPES = 567
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_UNSPECIFIED = 568
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_FORWARD_ONLY = 569
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_SENSITIVE = 570
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_INSENSITIVE = 571
    SQL_BATCH_UPDATES_SUPPORTED = 572
    SQL_SAVEPOINTS_SUPPORTED = 573
    SQL_NAMED_PARAMETERS_SUPPORTED = 574
    SQL_LOCATORS_UPDATE_COPY = 575
    SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED = 576


class SqlSupportedTransaction(enum.IntEnum):
    """Values of ``FLIGHT_SQL_SERVER_TRANSACTION`` (sent as an int32)."""

    NONE = 0
    TRANSACTION = 1
    SAVEPOINT = 2


class SqlSupportedCaseSensitivity(enum.IntEnum):
    """Values of ``SQL_IDENTIFIER_CASE`` / ``SQL_QUOTED_IDENTIFIER_CASE`` (int32)."""

    UNKNOWN = 0
    CASE_INSENSITIVE = 1
    UPPERCASE = 2
    LOWERCASE = 3


class SqlNullOrdering(enum.IntEnum):
    """Values of ``SQL_NULL_ORDERING`` (int32)."""

    NULLS_SORTED_HIGH = 0
    NULLS_SORTED_LOW = 1
    NULLS_SORTED_AT_START = 2
    NULLS_SORTED_AT_END = 3


class Bitmask(int):
    """An int sent as the ``int32_bitmask`` union member of a GetSqlInfo value.

    Plain ints become ``bigint_value``, except for the ids the spec types as int32 (see
    ``_INT32_INFO_IDS``), which are sent as ``int32_bitmask`` either way.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Bitmask({int(self)})"


# Ids whose value the spec defines as an int32 (a bitmask or an ordinal). Clients look for
# them in the int32_bitmask member: ADBC reads FLIGHT_SQL_SERVER_TRANSACTION only there.
_INT32_INFO_IDS = frozenset(
    {
        SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION,
        SqlInfo.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT,
        SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT,
        SqlInfo.SQL_IDENTIFIER_CASE,
        SqlInfo.SQL_QUOTED_IDENTIFIER_CASE,
        SqlInfo.SQL_NULL_ORDERING,
        SqlInfo.SQL_SUPPORTED_GROUP_BY,
        SqlInfo.SQL_SUPPORTED_GRAMMAR,
        SqlInfo.SQL_ANSI92_SUPPORTED_LEVEL,
        SqlInfo.SQL_OUTER_JOINS_SUPPORT_LEVEL,
        SqlInfo.SQL_SCHEMAS_SUPPORTED_ACTIONS,
        SqlInfo.SQL_CATALOGS_SUPPORTED_ACTIONS,
        SqlInfo.SQL_SUPPORTED_POSITIONED_COMMANDS,
        SqlInfo.SQL_SUPPORTED_SUBQUERIES,
        SqlInfo.SQL_SUPPORTED_UNIONS,
        SqlInfo.SQL_DEFAULT_TRANSACTION_ISOLATION,
        SqlInfo.SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS,
        SqlInfo.SQL_SUPPORTED_RESULT_SET_TYPES,
        SqlInfo.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_UNSPECIFIED,
        SqlInfo.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_FORWARD_ONLY,
        SqlInfo.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_SENSITIVE,
        SqlInfo.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_INSENSITIVE,
    }
)

_STRING, _BOOL, _BIGINT, _INT32, _STRING_LIST, _INT_MAP = range(6)  # union type codes
# Compared as plain ints: `x in range(...)` scans linearly when x is an int subclass
# (Bitmask, IntEnum members).
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT32_MAX = 2**32 - 1


def _union_member(info_id: int, value: object) -> tuple[int, object]:
    """Pick the union member for one GetSqlInfo value (bool before int: bool is an int)."""
    if isinstance(value, str):
        return _STRING, value
    if isinstance(value, bool):
        return _BOOL, value
    if isinstance(value, int):
        code = _INT32 if isinstance(value, Bitmask) or info_id in _INT32_INFO_IDS else _BIGINT
        number = int(value)
        low, high = (_INT32_MIN, _INT32_MAX) if code == _INT32 else (_INT64_MIN, _INT64_MAX)
        if not low <= number <= high:
            width = "int32" if code == _INT32 else "int64"
            raise ValueError(f"SqlInfo {int(info_id)}: {number} does not fit in an {width}")
        return code, number
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return _STRING_LIST, list(value)
    if isinstance(value, Mapping) and all(
        isinstance(k, int)
        and isinstance(v, list | tuple)
        and all(isinstance(i, int) and not isinstance(i, bool) for i in v)
        for k, v in value.items()
    ):
        return _INT_MAP, [(int(k), [int(i) for i in v]) for k, v in value.items()]
    raise TypeError(
        f"SqlInfo {int(info_id)}: cannot send a {type(value).__name__} "
        "(use str, bool, int, Bitmask, list[str] or dict[int, list[int]])"
    )


def sql_info_table(
    values: Mapping[int, object], requested: Sequence[int] | None = None
) -> pa.Table:
    """Build the GetSqlInfo result: one row per id, the value in a dense union.

    The union member follows the Python type: ``str`` → string_value, ``bool`` →
    bool_value, ``int`` → bigint_value, :class:`Bitmask` → int32_bitmask,
    ``list[str]`` → string_list, ``dict[int, list[int]]`` → int32_to_int32_list_map.
    Ids the spec types as int32 (e.g. FLIGHT_SQL_SERVER_TRANSACTION, SQL_NULL_ORDERING)
    always go to int32_bitmask. All six union children are always present, even empty:
    the ADBC driver indexes child 3 unconditionally when it connects.

    Args:
        values: the server's info, id → value.
        requested: ids the client asked for (``CommandGetSqlInfo.info``); None or empty
            means all. Ids the server does not know are skipped; duplicates are dropped.

    Returns:
        A table with schema ``GET_SQL_INFO_SCHEMA``, rows in requested order (or id order).

    Raises:
        TypeError: a value of an unsupported type. ValueError: an int out of range.

    Example: ``sql_info_table({SqlInfo.FLIGHT_SQL_SERVER_NAME: "arrowlog"}, [0])``
    """
    ids = list(dict.fromkeys(requested)) if requested else sorted(values)
    names: list[int] = []
    type_ids: list[int] = []
    offsets: list[int] = []
    members: list[list[object]] = [[] for _ in range(6)]
    for info_id in ids:
        if info_id not in values:
            continue
        if not 0 <= int(info_id) <= _UINT32_MAX:
            raise ValueError(f"SqlInfo id {int(info_id)} is not a uint32")
        code, value = _union_member(info_id, values[info_id])
        names.append(int(info_id))
        type_ids.append(code)
        offsets.append(len(members[code]))
        members[code].append(value)
    children = [
        pa.array(member, type=field.type)
        for member, field in zip(members, SQL_INFO_VALUE_TYPE, strict=True)
    ]
    type_buf = pa.array(type_ids, pa.int8()).buffers()[1]
    offset_buf = pa.array(offsets, pa.int32()).buffers()[1]
    # Built from buffers so the array has exactly SQL_INFO_VALUE_TYPE (non-null members);
    # UnionArray.from_dense would declare the members nullable.
    union = pa.Array.from_buffers(
        SQL_INFO_VALUE_TYPE, len(type_ids), [None, type_buf, offset_buf], children=children
    )
    info_names = pa.array(names, pa.uint32())
    return pa.Table.from_arrays([info_names, union], schema=GET_SQL_INFO_SCHEMA)


# ---------------------------------------------------------------------------------------
# Metadata results from plain Python data.


class TableRow(NamedTuple):
    """One table for GetTables: where it lives, its type, and its Arrow schema."""

    catalog: str | None
    db_schema: str | None
    table_name: str
    table_type: str
    arrow_schema: pa.Schema | None = None


def _sort_key_none_first(value: str | None) -> tuple[bool, str]:
    return (value is not None, value or "")


def catalogs_table(names: Iterable[str]) -> pa.Table:
    """GetCatalogs result (schema ``GET_CATALOGS_SCHEMA``), sorted, duplicates dropped.

    Example: ``catalogs_table(["arrowlog"])``
    """
    return pa.Table.from_arrays([pa.array(sorted(set(names)), _utf8)], schema=GET_CATALOGS_SCHEMA)


def db_schemas_table(rows: Iterable[tuple[str | None, str]]) -> pa.Table:
    """GetDbSchemas result (schema ``GET_DB_SCHEMAS_SCHEMA``) from ``(catalog, db_schema)`` rows.

    Sorted by catalog then schema, as the spec asks.

    Example: ``db_schemas_table([("arrowlog", "main")])``
    """
    ordered = sorted(set(rows), key=lambda r: (_sort_key_none_first(r[0]), r[1]))
    return pa.Table.from_arrays(
        [pa.array([r[0] for r in ordered], _utf8), pa.array([r[1] for r in ordered], _utf8)],
        schema=GET_DB_SCHEMAS_SCHEMA,
    )


def tables_table(rows: Iterable[TableRow | tuple], include_schema: bool) -> pa.Table:
    """GetTables result from :class:`TableRow` rows (or plain 4/5-tuples).

    Args:
        rows: the tables, already filtered (see :func:`filter_tables`).
        include_schema: ``CommandGetTables.include_schema``; adds ``table_schema``, the
            table's Arrow schema serialized as an IPC message (``pa.Schema.serialize()``).

    Returns:
        One record batch's worth of rows with schema ``GET_TABLES_SCHEMA`` or
        ``GET_TABLES_SCHEMA_WITH_SCHEMA``, sorted by catalog, schema, name, type. (ADBC's
        ``adbc_get_table_schema`` reads only the first batch: send this table as one.)

    Raises:
        ValueError: ``include_schema`` is true and a row has no schema.

    Example: ``tables_table([TableRow("arrowlog", "main", "logs", "TABLE", schema)], True)``
    """
    table_rows = sorted(
        (TableRow(*row) for row in rows),
        key=lambda r: (
            _sort_key_none_first(r.catalog),
            _sort_key_none_first(r.db_schema),
            r.table_name,
            r.table_type,
        ),
    )
    columns = [
        pa.array([r.catalog for r in table_rows], _utf8),
        pa.array([r.db_schema for r in table_rows], _utf8),
        pa.array([r.table_name for r in table_rows], _utf8),
        pa.array([r.table_type for r in table_rows], _utf8),
    ]
    if not include_schema:
        return pa.Table.from_arrays(columns, schema=GET_TABLES_SCHEMA)
    serialized = []
    for r in table_rows:
        if r.arrow_schema is None:
            raise ValueError(f"table {r.table_name!r} has no Arrow schema to include")
        serialized.append(r.arrow_schema.serialize().to_pybytes())
    columns.append(pa.array(serialized, pa.binary()))
    return pa.Table.from_arrays(columns, schema=GET_TABLES_SCHEMA_WITH_SCHEMA)


def table_types_table(types: Iterable[str]) -> pa.Table:
    """GetTableTypes result (schema ``GET_TABLE_TYPES_SCHEMA``), sorted, duplicates dropped.

    Example: ``table_types_table(["TABLE"])``
    """
    return pa.Table.from_arrays(
        [pa.array(sorted(set(types)), _utf8)], schema=GET_TABLE_TYPES_SCHEMA
    )


# ---------------------------------------------------------------------------------------
# Filters for GetDbSchemas / GetTables.


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    parts: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if escape is not None and ch == escape:
            # An escaped char is literal; a trailing lone escape char matches itself.
            parts.append(re.escape(next(chars, ch)))
        elif ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def like_match(pattern: str | None, value: str | None, *, escape: str | None = "\\") -> bool:
    """Match ``value`` against a Flight SQL filter pattern (SQL LIKE, case-sensitive).

    ``%`` matches any run of characters (also none), ``_`` exactly one; ``escape``
    followed by any character matches that character literally (advertise the same
    escape as ``SQL_SEARCH_STRING_ESCAPE``). A None pattern is "no filter". A None value
    (e.g. a table without a db_schema) is matched as the empty string.

    Example: ``like_match("http\\_%", "http_logs")`` is True; ``like_match("h_", "http")`` is False.
    """
    if pattern is None:
        return True
    if escape is not None and len(escape) != 1:
        raise ValueError(f"the LIKE escape must be one character, got {escape!r}")
    # A missing name (None) behaves as the empty string: only "%"-only patterns match it.
    return _like_regex(pattern, escape).fullmatch(value or "") is not None


def catalog_matches(wanted: str | None, catalog: str | None) -> bool:
    """Apply a ``catalog`` field of a metadata command (an exact name, not a pattern).

    None (field unset) matches everything; ``""`` matches only rows without a catalog.
    """
    if wanted is None:
        return True
    if wanted == "":
        return not catalog
    return catalog == wanted


def table_type_matches(table_types: Sequence[str], table_type: str) -> bool:
    """Apply ``CommandGetTables.table_types``: empty means all; otherwise a case-insensitive match."""
    if not table_types:
        return True
    return table_type.casefold() in {t.casefold() for t in table_types}


def _optional(message: Message, field: str) -> str | None:
    return getattr(message, field) if message.HasField(field) else None


def filter_db_schemas(
    rows: Iterable[tuple[str | None, str]], command: Message
) -> list[tuple[str | None, str]]:
    """Keep the ``(catalog, db_schema)`` rows a ``CommandGetDbSchemas`` asks for."""
    catalog = _optional(command, "catalog")
    pattern = _optional(command, "db_schema_filter_pattern")
    return [r for r in rows if catalog_matches(catalog, r[0]) and like_match(pattern, r[1])]


def filter_tables(rows: Iterable[TableRow | tuple], command: Message) -> list[TableRow]:
    """Keep the tables a ``CommandGetTables`` asks for (catalog, both patterns, table types).

    Example: ``tables_table(filter_tables(rows, cmd), cmd.include_schema)``
    """
    catalog = _optional(command, "catalog")
    schema_pattern = _optional(command, "db_schema_filter_pattern")
    table_pattern = _optional(command, "table_name_filter_pattern")
    types = list(command.table_types)

    def keep(row: TableRow) -> bool:
        return (
            catalog_matches(catalog, row.catalog)
            and like_match(schema_pattern, row.db_schema)
            and like_match(table_pattern, row.table_name)
            and table_type_matches(types, row.table_type)
        )

    return [row for row in (TableRow(*r) for r in rows) if keep(row)]
