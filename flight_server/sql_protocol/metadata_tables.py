"""Metadata results (GetCatalogs, GetDbSchemas, GetTables, GetTableTypes) from Python data.

Each builder returns a table with exactly the spec's schema (``result_schemas.py``),
sorted as the spec asks; ``filters.py`` picks the rows a command asks for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import pyarrow as pa

from flight_server.sql_protocol.result_schemas import (
    GET_CATALOGS_SCHEMA,
    GET_DB_SCHEMAS_SCHEMA,
    GET_TABLE_TYPES_SCHEMA,
    GET_TABLES_SCHEMA,
    GET_TABLES_SCHEMA_WITH_SCHEMA,
)

__all__ = [
    "TableRow",
    "catalogs_table",
    "db_schemas_table",
    "table_types_table",
    "tables_table",
]

_utf8 = pa.utf8()


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
