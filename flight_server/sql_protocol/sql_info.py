"""GetSqlInfo: the info ids, their value enums, and the result table built from a dict.

What arrowlog reports is the server's (``_SQL_INFO`` in ``flight_server/server.py``);
this module only knows how the spec encodes it, and what the ADBC driver insists on
(docs/flight-sql-clients.md, "Connect").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

import pyarrow as pa

from flight_server.sql_protocol.result_schemas import GET_SQL_INFO_SCHEMA, SQL_INFO_VALUE_TYPE

__all__ = [
    "Bitmask",
    "SqlInfo",
    "SqlNullOrdering",
    "SqlSupportedCaseSensitivity",
    "SqlSupportedTransaction",
    "sql_info_table",
]


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
