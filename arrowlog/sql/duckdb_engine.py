"""SQL on DuckDB: each referenced stream a view over its buffer and its live files.

The buffer (in the full schema, even when empty) is unioned by name with the live files,
read by DuckDB's own Parquet reader (through a pyarrow dataset when they lie in an
object store: DuckDB's httpfs extension would be a download); columns a file predates
come back as NULL. Read-only as ``arrowlog/sql/policy.py`` says: one SELECT, and only the
referenced streams' live files readable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pyarrow as pa

from arrowlog.errors import InvalidInput, StreamNotFound
from arrowlog.snapshot import TableSnapshot, buffer_table, build_dataset, empty_batch
from arrowlog.sql.catalog import StreamTables, TableShape
from arrowlog.sql.datafusion_engine import cast_batch, plain_schema
from arrowlog.sql.limits import Budget, Interrupter, Limits
from arrowlog.sql.policy import (
    Params,
    check_duckdb_statement,
    lock_duckdb,
    sql_identifier,
    sql_string,
)
from arrowlog.sql.result import QueryResult

__all__ = ["DuckDBEngine"]

_BATCH_ROWS = 64 * 1024


class DuckDBEngine:
    """Plans and runs SQL with DuckDB over the streams ``tables`` hands out.

    Args:
        tables: the streams (names, shapes, snapshots).
        limits: the query guards (``memory_limit`` becomes DuckDB's own).
        on_connect: told each connection a query opens (a query worker interrupts it on
            cancel).
        on_plan: told ``"schema"`` or ``"execute"`` for each plan made (metrics).
    """

    def __init__(
        self,
        tables: StreamTables,
        limits: Limits,
        *,
        on_connect: Callable[[Any], None] | None = None,
        on_plan: Callable[[str], None] | None = None,
    ) -> None:
        self._tables = tables
        self._limits = limits
        self._on_connect = on_connect
        self._on_plan = on_plan or (lambda kind: None)

    def schema(self, query: str, params: Params = None) -> pa.Schema:
        """The result schema of ``query``, planned over empty tables (no snapshot, no file)."""
        import duckdb

        con = self._connect(query)
        try:
            self._register(con, query, data=False)
            self._on_plan("schema")
            try:
                rel = con.sql(query, params=params) if params is not None else con.sql(query)
                return plain_schema(rel.limit(0).to_arrow_table().schema)
            except duckdb.Error as e:
                raise self._translate(e) from e
        finally:
            con.close()

    def sql(self, query: str, params: Params = None, budget: Budget | None = None) -> QueryResult:
        """Plan ``query`` now (taking the snapshots); its streamed result, readable once."""
        import duckdb

        con = self._connect(query)
        try:
            self._register(con, query, data=True)
            self._on_plan("execute")
            # interrupt() stops the query wherever it is: armed only while DuckDB works.
            guard = Interrupter(con, budget)
            try:
                with guard:
                    rel = con.sql(query, params=params) if params is not None else con.sql(query)
                    reader = rel.to_arrow_reader(_BATCH_ROWS)
            except duckdb.Error as e:
                raise self._translate(e, timed_out=guard.fired) from e
        except BaseException:
            con.close()
            raise
        plain = plain_schema(reader.schema)
        limits = self._limits
        consumed = False

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal consumed
            if consumed:
                raise InvalidInput("a DuckDB result can be read once")
            consumed = True
            try:
                while True:
                    with guard:
                        batch = reader.read_next_batch()
                    yield cast_batch(batch, plain)
            except StopIteration:
                return
            except duckdb.Error as e:
                raise limits.translate(e, timed_out=guard.fired) from e
            finally:
                con.close()

        return QueryResult(plain, batches)

    def _connect(self, query: str) -> Any:
        import duckdb

        con = duckdb.connect(":memory:")
        if self._on_connect is not None:
            self._on_connect(con)
        try:
            if self._limits.memory_limit:
                con.execute(f"SET memory_limit = '{int(self._limits.memory_limit)}B'")
            check_duckdb_statement(con, query)
        except BaseException:
            con.close()
            raise
        return con

    def _register(self, con: Any, query: str, *, data: bool) -> None:
        """A view per stream the query names: its data (a snapshot) or an empty table."""
        import duckdb

        try:
            names = duckdb.get_table_names(query)
        except duckdb.Error:
            # Queries with parameters cannot be bound without values: offer every stream.
            names = set(self._tables.names())
        allowed: list[str] = []
        for index, name in enumerate(sorted(names)):
            real = self._tables.resolve_name(name)
            if real is None:
                continue
            if data:
                snap = self._tables.snapshot(real)
                if snap is None:
                    continue
                allowed += _register_snapshot(con, index, name, snap)
            else:
                shape = self._tables.shape(real)
                if shape is not None:
                    _register_shape(con, index, name, shape)
        lock_duckdb(con, allowed)

    def _translate(self, e: Exception, *, timed_out: bool = False) -> Exception:
        import duckdb

        if isinstance(e, duckdb.CatalogException):
            if "Table with name" not in str(e):  # e.g. an unknown function
                return InvalidInput(str(e))
            return StreamNotFound(str(e))
        return self._limits.translate(e, timed_out=timed_out)


def _register_snapshot(con: Any, index: int, name: str, snap: TableSnapshot) -> list[str]:
    """The view ``name`` over the snapshot; the files it reads (which stay readable)."""
    con.register(f"__buffer_{index}", buffer_table(snap))
    files = [seg.path for seg in snap.segments]
    select = f'SELECT * FROM "__buffer_{index}"'
    if files and snap.storage is not None and not snap.storage.is_local:
        # Without the httpfs extension (a download), DuckDB reads S3 files through
        # pyarrow: a dataset scan, with DuckDB's projections and filters pushed in.
        con.register(f"__segments_{index}", build_dataset(replace(snap, buffer=[])))
        select += f' UNION ALL BY NAME SELECT * FROM "__segments_{index}"'
        files = []
    elif files:
        listed = ", ".join(sql_string(f) for f in files)
        select += f" UNION ALL BY NAME SELECT * FROM read_parquet([{listed}], union_by_name = true)"
    con.execute(f"CREATE TEMP VIEW {sql_identifier(name)} AS {select}")
    return files


def _register_shape(con: Any, index: int, name: str, shape: TableShape) -> None:
    empty = pa.Table.from_batches([empty_batch(shape.schema)])
    con.register(f"__buffer_{index}", empty)
    con.execute(f'CREATE TEMP VIEW {sql_identifier(name)} AS SELECT * FROM "__buffer_{index}"')
