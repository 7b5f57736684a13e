"""The Flight SQL messages (package ``arrow.flight.protocol.sql``), built at import time.

Field numbers and types follow ``format/FlightSql.proto`` of Apache Arrow, including the
later additions ``CommandStatementIngest``, ``DoPutPreparedStatementResult`` and
``ActionCreatePreparedStatementResult.is_update`` (field 4). ``descriptors.py`` turns the
declarations below into classes; ``envelope.py`` packs and unpacks them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from google.protobuf.message import Message

from flight_server.sql_protocol.descriptors import Field, Msg, build_messages

__all__ = [
    "ACTION_BEGIN_SAVEPOINT",
    "ACTION_BEGIN_TRANSACTION",
    "ACTION_CANCEL_QUERY",
    "ACTION_CLOSE_PREPARED_STATEMENT",
    "ACTION_CREATE_PREPARED_STATEMENT",
    "ACTION_CREATE_PREPARED_SUBSTRAIT_PLAN",
    "ACTION_END_SAVEPOINT",
    "ACTION_END_TRANSACTION",
    "MESSAGE_CLASSES",
    "PACKAGE",
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
    "SubstraitPlan",
    "TableExistsOption",
    "TableNotExistOption",
    "TicketStatementQuery",
]

PACKAGE = "arrow.flight.protocol.sql"

# DoAction ``type`` strings: the message name without "Action" and "Request".
ACTION_CREATE_PREPARED_STATEMENT = "CreatePreparedStatement"
ACTION_CREATE_PREPARED_SUBSTRAIT_PLAN = "CreatePreparedSubstraitPlan"
ACTION_CLOSE_PREPARED_STATEMENT = "ClosePreparedStatement"
ACTION_BEGIN_TRANSACTION = "BeginTransaction"
ACTION_END_TRANSACTION = "EndTransaction"
ACTION_BEGIN_SAVEPOINT = "BeginSavepoint"
ACTION_END_SAVEPOINT = "EndSavepoint"
ACTION_CANCEL_QUERY = "CancelQuery"

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
_MESSAGES: tuple[Msg, ...] = (
    Msg("CommandGetSqlInfo", (Field("info", 1, "uint32", "repeated"),)),
    Msg("CommandGetXdbcTypeInfo", (Field("data_type", 1, "int32", "optional"),)),
    Msg("CommandGetCatalogs"),
    Msg(
        "CommandGetDbSchemas",
        (
            Field("catalog", 1, "string", "optional"),
            Field("db_schema_filter_pattern", 2, "string", "optional"),
        ),
    ),
    Msg(
        "CommandGetTables",
        (
            Field("catalog", 1, "string", "optional"),
            Field("db_schema_filter_pattern", 2, "string", "optional"),
            Field("table_name_filter_pattern", 3, "string", "optional"),
            Field("table_types", 4, "string", "repeated"),
            Field("include_schema", 5, "bool"),
        ),
    ),
    Msg("CommandGetTableTypes"),
    *(
        Msg(
            name,
            (
                Field("catalog", 1, "string", "optional"),
                Field("db_schema", 2, "string", "optional"),
                Field("table", 3, "string"),
            ),
        )
        for name in ("CommandGetPrimaryKeys", "CommandGetExportedKeys", "CommandGetImportedKeys")
    ),
    Msg(
        "CommandGetCrossReference",
        (
            Field("pk_catalog", 1, "string", "optional"),
            Field("pk_db_schema", 2, "string", "optional"),
            Field("pk_table", 3, "string"),
            Field("fk_catalog", 4, "string", "optional"),
            Field("fk_db_schema", 5, "string", "optional"),
            Field("fk_table", 6, "string"),
        ),
    ),
    Msg(
        "ActionCreatePreparedStatementRequest",
        (Field("query", 1, "string"), Field("transaction_id", 2, "bytes", "optional")),
    ),
    Msg("SubstraitPlan", (Field("plan", 1, "bytes"), Field("version", 2, "string"))),
    Msg(
        "ActionCreatePreparedSubstraitPlanRequest",
        (
            Field("plan", 1, "msg:SubstraitPlan"),
            Field("transaction_id", 2, "bytes", "optional"),
        ),
    ),
    Msg(
        "ActionCreatePreparedStatementResult",
        (
            Field("prepared_statement_handle", 1, "bytes"),
            Field("dataset_schema", 2, "bytes"),
            Field("parameter_schema", 3, "bytes"),
            Field("is_update", 4, "bool", "optional"),
        ),
    ),
    Msg("ActionClosePreparedStatementRequest", (Field("prepared_statement_handle", 1, "bytes"),)),
    Msg("ActionBeginTransactionRequest"),
    Msg(
        "ActionBeginSavepointRequest",
        (Field("transaction_id", 1, "bytes"), Field("name", 2, "string")),
    ),
    Msg("ActionBeginTransactionResult", (Field("transaction_id", 1, "bytes"),)),
    Msg("ActionBeginSavepointResult", (Field("savepoint_id", 1, "bytes"),)),
    Msg(
        "ActionEndTransactionRequest",
        (
            Field("transaction_id", 1, "bytes"),
            Field("action", 2, "enum:ActionEndTransactionRequest.EndTransaction"),
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
    Msg(
        "ActionEndSavepointRequest",
        (
            Field("savepoint_id", 1, "bytes"),
            Field("action", 2, "enum:ActionEndSavepointRequest.EndSavepoint"),
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
    Msg(
        "CommandStatementQuery",
        (Field("query", 1, "string"), Field("transaction_id", 2, "bytes", "optional")),
    ),
    Msg(
        "CommandStatementSubstraitPlan",
        (
            Field("plan", 1, "msg:SubstraitPlan"),
            Field("transaction_id", 2, "bytes", "optional"),
        ),
    ),
    Msg("TicketStatementQuery", (Field("statement_handle", 1, "bytes"),)),
    Msg("CommandPreparedStatementQuery", (Field("prepared_statement_handle", 1, "bytes"),)),
    Msg(
        "CommandStatementUpdate",
        (Field("query", 1, "string"), Field("transaction_id", 2, "bytes", "optional")),
    ),
    Msg("CommandPreparedStatementUpdate", (Field("prepared_statement_handle", 1, "bytes"),)),
    Msg(
        "CommandStatementIngest",
        (
            Field(
                "table_definition_options",
                1,
                "msg:CommandStatementIngest.TableDefinitionOptions",
            ),
            Field("table", 2, "string"),
            Field("schema", 3, "string", "optional"),
            Field("catalog", 4, "string", "optional"),
            Field("temporary", 5, "bool"),
            Field("transaction_id", 6, "bytes", "optional"),
            Field("options", 1000, "string", "map"),
        ),
        nested=(
            Msg(
                "TableDefinitionOptions",
                (
                    Field(
                        "if_not_exist",
                        1,
                        "enum:CommandStatementIngest.TableDefinitionOptions.TableNotExistOption",
                    ),
                    Field(
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
    Msg("DoPutUpdateResult", (Field("record_count", 1, "int64"),)),
    Msg(
        "DoPutPreparedStatementResult",
        (Field("prepared_statement_handle", 1, "bytes", "optional"),),
    ),
    Msg("ActionCancelQueryRequest", (Field("info", 1, "bytes"),)),
    Msg(
        "ActionCancelQueryResult",
        (Field("result", 1, "enum:ActionCancelQueryResult.CancelResult"),),
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


_CLASSES = build_messages("arrowlog/flight_sql.proto", PACKAGE, _MESSAGES)

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
MESSAGE_CLASSES: Mapping[str, type[Message]] = dict(_CLASSES)


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
