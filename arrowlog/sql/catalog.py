"""The streams as DataFusion sees them: the ``arrowlog.public`` schema of every plan.

Every stream is a table of ``arrowlog.public``, under its own name. Which table it is
depends on the plan (``arrowlog/sql/datafusion_engine.py``):

- planning for the result schema: an empty table of the stream's current shape (schema
  and time column). No snapshot is taken and no file is opened, yet DataFusion pushes
  filters into the scan as it would into the real one, and reports the result schema;
- planning for execution: the tables the query reads hold their snapshot's data; every
  other stream stays an empty table of its shape, which is all ``information_schema``
  reads of it.

DataFusion's own ``information_schema`` lists this schema's tables and columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from datafusion import catalog as df_catalog

from arrowlog.snapshot import TableSnapshot, empty_batch

__all__ = ["CATALOG", "SCHEMA", "ArrowlogCatalog", "StreamSchema", "StreamTables", "TableShape"]

CATALOG = "arrowlog"
SCHEMA = "public"


@dataclass(frozen=True)
class TableShape:
    """What planning needs of a stream: its schema (system columns included), time column."""

    name: str
    schema: pa.Schema
    time_column: str

    @classmethod
    def of(cls, snap: TableSnapshot) -> TableShape:
        return cls(snap.name, snap.schema, snap.time_column)


@dataclass(frozen=True)
class StreamTables:
    """What the SQL engines read of the streams; the ``Log`` hands its own (log.py).

    Args:
        names: the current stream names.
        shape: stream name → its current shape, or None. Takes no snapshot.
        snapshot: stream name → a snapshot (live segments and durable buffer), or None.
    """

    names: Callable[[], list[str]]
    shape: Callable[[str], TableShape | None]
    snapshot: Callable[[str], TableSnapshot | None]

    def resolve_name(self, identifier: str) -> str | None:
        """The stream a (possibly case-folded) SQL identifier refers to."""
        names = self.names()
        if identifier in names:
            return identifier
        matches = [n for n in names if n.lower() == identifier.lower()]
        return matches[0] if len(matches) == 1 else None


def empty_table(schema: pa.Schema) -> df_catalog.Table:
    """A table of ``schema`` without rows (one empty batch: never a scan of no partitions)."""
    return df_catalog.Table(ds.dataset(pa.Table.from_batches([empty_batch(schema)])))


class StreamSchema(df_catalog.SchemaProvider):
    """``arrowlog.public``: resolves identifiers to streams, once each, as DataFusion asks.

    Args:
        tables: the streams.
        shapes: identifier → the shape to plan with (others are looked up when asked).

    Tables are empty unless ``hold`` gave one its data. ``resolved`` collects, per
    identifier DataFusion asked for, the shape it got.
    """

    def __init__(
        self, tables: StreamTables, shapes: Mapping[str, TableShape] | None = None
    ) -> None:
        self._tables = tables
        self._shapes = dict(shapes or {})
        self._data: dict[str, df_catalog.Table] = {}
        self._registered: dict[str, Any] = {}  # what DataFusion registers itself (from_arrow)
        self.resolved: dict[str, TableShape] = {}

    @property
    def table_names(self) -> list[str]:  # type: ignore[override]
        # datafusion-python 55 reads this as an attribute holding a sequence, not as the
        # method the ABC declares (information_schema.tables would be empty otherwise).
        return list(self._tables.names())

    def table(self, name: str) -> df_catalog.Table | None:
        if name in self._registered:
            return self._registered[name]
        shape = self.shape(name)
        if shape is None:
            return None
        self.resolved[name] = shape
        data = self._data.get(name)
        return data if data is not None else empty_table(shape.schema)

    def hold(self, identifier: str, table: df_catalog.Table) -> None:
        """``identifier`` is ``table`` from now on (a stream's data)."""
        self._data[identifier] = table

    def shape(self, name: str) -> TableShape | None:
        """The shape identifier ``name`` plans with (looked up once)."""
        shape = self._shapes.get(name)
        if shape is None:
            real = self._tables.resolve_name(name)
            shape = None if real is None else self._tables.shape(real)
            if shape is not None:
                self._shapes[name] = shape
        return shape

    def table_exist(self, name: str) -> bool:
        return name in self._registered or self._tables.resolve_name(name) is not None

    def register_table(self, name: str, table: Any) -> None:
        self._registered[name] = table

    def deregister_table(self, name: str, cascade: bool = True) -> None:
        self._registered.pop(name, None)


class ArrowlogCatalog(df_catalog.CatalogProvider):
    """The ``arrowlog`` catalog: one schema, ``public``."""

    def __init__(self, schema: StreamSchema) -> None:
        self._schema = schema

    def schema_names(self) -> set[str]:
        return {SCHEMA}

    def schema(self, name: str) -> df_catalog.Schema | None:
        return self._schema if name == SCHEMA else None  # type: ignore[return-value]
