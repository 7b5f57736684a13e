"""The one dispatch by engine name: which engine runs a query, and where.

``SqlEngine`` is what the ``Log`` calls (``Log.sql``, ``Log.sql_schema``):

- ``daft-ray``: Daft on a Ray cluster (``daft_engine.py``);
- ``datafusion`` and ``duckdb``: in a query worker process when ``query_workers`` is set
  (``workers.py``; ``arrowlog serve`` sets it), else in this process (``LocalEngine``,
  which is also what a worker runs).

Two calls per engine: ``sql`` plans for execution (taking one snapshot of each stream
the query reads) and returns the streamed result; ``schema`` plans without data (no
snapshot, no file) and returns the result schema, for the protocol calls that only
describe a result (Flight SQL's GetFlightInfo, GetSchema, CreatePreparedStatement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import pyarrow as pa

from arrowlog.config import Settings
from arrowlog.errors import InvalidInput
from arrowlog.snapshot import TableSnapshot
from arrowlog.sql.catalog import StreamTables
from arrowlog.sql.daft_engine import DaftEngine
from arrowlog.sql.datafusion_engine import DataFusionEngine
from arrowlog.sql.duckdb_engine import DuckDBEngine
from arrowlog.sql.limits import Limits
from arrowlog.sql.policy import Params, check_operators
from arrowlog.sql.result import QueryResult
from arrowlog.sql.workers import QueryWorkers

__all__ = ["Engine", "LocalEngine", "SqlEngine"]

Engine = Literal["datafusion", "duckdb", "daft-ray"]
_WORKER_ENGINES = ("datafusion", "duckdb")


class LocalEngine:
    """DataFusion and DuckDB in this process.

    Args:
        tables: the streams (names, shapes, snapshots).
        limits: the query guards.
        target_partitions: DataFusion parallelism (None: one per core).
        on_plan: told ``"schema"`` or ``"execute"`` for each plan made.
        on_duckdb: told each DuckDB connection a query opens (a worker interrupts it).
    """

    def __init__(
        self,
        tables: StreamTables,
        limits: Limits,
        *,
        target_partitions: int | None = None,
        on_plan: Callable[[str], None] | None = None,
        on_duckdb: Callable[[Any], None] | None = None,
    ) -> None:
        self._limits = limits
        self._datafusion = DataFusionEngine(
            tables, limits, target_partitions=target_partitions, on_plan=on_plan
        )
        self._duckdb = DuckDBEngine(tables, limits, on_connect=on_duckdb, on_plan=on_plan)

    def sql(self, query: str, *, engine: str = "datafusion", params: Params = None) -> QueryResult:
        """Plan ``query`` now (taking the snapshots) and return its streamed result.

        Raises:
            ReadOnlyQuery: DDL, DML, COPY, SET and other statements.
            StreamNotFound: a table that is not a stream.
            QueryLimitExceeded: ``query_timeout`` or ``query_memory_limit``.
            InvalidInput: any other error the engine reports, with its message.
        """
        _check(query)
        budget = self._limits.budget()
        if engine == "datafusion":
            return self._datafusion.sql(query, params, budget)
        if engine == "duckdb":
            return self._duckdb.sql(query, params, budget)
        raise _unknown(engine)

    def schema(self, query: str, *, engine: str = "datafusion", params: Params = None) -> pa.Schema:
        """The schema ``sql`` would return, planned without data; raises what it raises."""
        _check(query)
        if engine == "datafusion":
            return self._datafusion.schema(query, params)
        if engine == "duckdb":
            return self._duckdb.schema(query, params)
        raise _unknown(engine)


class SqlEngine:
    """Every engine behind one dispatch, as the ``Log`` uses them.

    Args:
        settings: the log's settings (query guards, ``query_workers``).
        tables: the streams (names, shapes, snapshots).
        daft: the Daft engine, for ``engine="daft-ray"``.
        on_plan: told ``"schema"`` or ``"execute"`` for each plan made, here or in a worker.
        on_snapshot: told the stream name of each snapshot a query takes.
    """

    def __init__(
        self,
        settings: Settings,
        tables: StreamTables,
        *,
        daft: DaftEngine | None = None,
        on_plan: Callable[[str], None] | None = None,
        on_snapshot: Callable[[str], None] | None = None,
    ) -> None:
        if on_snapshot is not None:
            tables = replace(tables, snapshot=_counted(tables.snapshot, on_snapshot))
        limits = Limits(settings.query_timeout or 0.0, settings.query_memory_limit)
        self._local = LocalEngine(tables, limits, on_plan=on_plan)
        # Queries in worker processes (query_workers), or here (None).
        self._workers: QueryWorkers | None = None
        if settings.query_workers:
            self._workers = QueryWorkers(settings, tables, on_plan=on_plan)
        self._daft = daft

    def sql(self, query: str, *, engine: str = "datafusion", params: Params = None) -> QueryResult:
        """Plan ``query`` for execution now and return its streamed result."""
        if engine == "daft-ray":
            return self._daft_engine().sql(query, params)
        if self._workers is not None and engine in _WORKER_ENGINES:
            return self._workers.sql(query, engine=engine, params=params)
        return self._local.sql(query, engine=engine, params=params)

    def schema(self, query: str, *, engine: str = "datafusion", params: Params = None) -> pa.Schema:
        """The result schema of ``query``, planned without taking snapshots.

        Daft plans only by running: its schema is its result's.
        """
        if engine == "daft-ray":
            return self._daft_engine().sql(query, params).schema
        if self._workers is not None and engine in _WORKER_ENGINES:
            return self._workers.schema(query, engine=engine, params=params)
        return self._local.schema(query, engine=engine, params=params)

    def close(self) -> None:
        """Stop the query workers (queries still running end with an error)."""
        if self._workers is not None:
            self._workers.close()

    def _daft_engine(self) -> DaftEngine:
        if self._daft is None:
            raise InvalidInput("the daft-ray engine is not available here")
        return self._daft


def _check(query: str) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("empty SQL query")
    check_operators(query)


def _unknown(engine: str) -> InvalidInput:
    return InvalidInput(f"unknown engine {engine!r}: use 'datafusion' or 'duckdb'")


def _counted(
    snapshot: Callable[[str], TableSnapshot | None], on_snapshot: Callable[[str], None]
) -> Callable[[str], TableSnapshot | None]:
    def counted(name: str) -> TableSnapshot | None:
        snap = snapshot(name)
        if snap is not None:
            on_snapshot(name)
        return snap

    return counted
