"""The filters of GetDbSchemas and GetTables: SQL LIKE patterns, catalogs, table types."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

from google.protobuf.message import Message

from flight_server.sql_protocol.metadata_tables import TableRow

__all__ = [
    "catalog_matches",
    "filter_db_schemas",
    "filter_tables",
    "like_match",
    "table_type_matches",
]


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
