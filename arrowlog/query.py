"""SQL over streams: DataFusion (default) or DuckDB, read-only, streamed.

Each stream is a table whose rows are its live segments plus a snapshot of its durable
buffer, taken when the query is planned, so a query sees every record acknowledged before
it started (read-your-writes).

Segments are handed to the engine as a pyarrow dataset built from the catalog's live-file
index, never from a directory listing. Each file fragment carries its offset and time
min/max as its partition expression, so a predicate on the time column or ``_offset``
drops whole segments at planning time, before any file is opened (``EXPLAIN`` shows
``number_of_fragments``); row groups inside the remaining files are pruned by pyarrow
through Parquet statistics.

Read-only is enforced by the engines themselves: DataFusion's ``SQLOptions`` refuse DDL,
DML (including COPY) and SET-style statements, and no URL tables are enabled; DuckDB runs
with external access disabled and only SELECT statements.

Guards (``query_timeout``, ``query_memory_limit``): memory through the engines' own pools
(DataFusion's greedy pool in the runtime of both contexts a query uses; DuckDB's
``memory_limit``), so an operator that cannot spill fails with ``QueryLimitExceeded``
instead of taking the server's memory. Time is the engine's: planning plus every wait
for the next result batch, not the time a slow client takes to read them, so a long
export to a slow reader is not cut off. Planning is not interruptible (DataFusion's
parser refuses nesting deeper than 50 levels, so it stays short); each wait for a batch
is bounded by the time left. DataFusion's wait is an ``asyncio.wait_for`` over the
stream's next batch, whose cancellation drops the engine's work at its next yield point;
DuckDB's is a timer calling ``interrupt()``.

With ``query_workers`` (``arrowlog serve``) this engine runs in worker processes
(``arrowlog/workers.py``, ``arrowlog/_query_worker.py``) without a time limit of its own:
the server measures the same engine time from outside and interrupts, or kills, the
worker, which also stops work this process could not (a partial aggregate between
batches, an allocation outside the memory pool that aborts).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.dataset as ds
from datafusion import DataFrame, RuntimeEnvBuilder, SessionConfig, SessionContext, SQLOptions
from datafusion import catalog as df_catalog

from arrowlog.errors import (
    ArrowlogError,
    InvalidInput,
    QueryLimitExceeded,
    ReadOnlyQuery,
    StreamNotFound,
)
from arrowlog.schema import OFFSET
from arrowlog.snapshot import TableSnapshot, buffer_table, build_dataset, live_paths

if TYPE_CHECKING:
    import pandas
    import polars

__all__ = ["Engine", "QueryEngine", "QueryResult"]

logger = logging.getLogger(__name__)

Engine = Literal["datafusion", "duckdb", "daft-ray"]
Params = Sequence[Any] | Mapping[str, Any] | None


# Above this many files after pruning, one native scan per file plans too slowly; the
# pyarrow dataset (one scan node, cached fragments) is used instead.
_NATIVE_MAX_FILES = 256
_COMPARISONS = {"=": "__eq__", "<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}
_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


_STREAMING_NODES = {"Projection", "TableScan", "SubqueryAlias", "Limit", "Union"}


def _projection_only(plan: Any) -> bool:
    """True when the plan only reads and projects: no filter, join, sort or aggregate."""
    stack = [plan]
    while stack:
        node = stack.pop()
        variant = node.to_variant()
        kind = type(variant).__name__
        if kind not in _STREAMING_NODES or (kind == "TableScan" and variant.filters()):
            return False
        stack.extend(node.inputs())
    return True


# Nodes that pass their input's row order through unchanged.
_ORDER_KEEPING_NODES = {"Projection", "Limit", "SubqueryAlias"}


def _ordered(plan: Any) -> bool:
    """True when the result's row order is a sort's (``ORDER BY`` at the top of the plan)."""
    node = plan
    while True:
        kind = type(node.to_variant()).__name__
        if kind == "Sort":
            return True
        inputs = node.inputs()
        if kind not in _ORDER_KEEPING_NODES or len(inputs) != 1:
            return False
        node = inputs[0]


def _scan_filters(
    plan: Any, snapshots: dict[str, TableSnapshot]
) -> dict[str, ds.Expression | None]:
    """Per table: what every row any scan of it needs satisfies (None: no constraint)."""
    found: dict[str, ds.Expression | None] = {}
    seen: set[str] = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        stack.extend(node.inputs())
        variant = node.to_variant()
        if type(variant).__name__ != "TableScan":
            continue
        name = variant.table_name().rsplit(".", 1)[-1]
        snap = snapshots.get(name)
        if snap is None:
            continue
        usable = {snap.time_column: snap.schema.field(snap.time_column).type, OFFSET: pa.int64()}
        conjunction: ds.Expression | None = None
        for f in variant.filters():
            e = _to_arrow(f, usable)
            if e is not None:
                conjunction = e if conjunction is None else conjunction & e
        if name in seen:  # another scan of the same table: a file is needed if either needs it
            previous = found[name]
            found[name] = (
                None if previous is None or conjunction is None else previous | conjunction
            )
        else:
            found[name] = conjunction
        seen.add(name)
    return found


def _to_arrow(expr: Any, usable: dict[str, pa.DataType]) -> ds.Expression | None:
    """A pyarrow expression implied by a DataFusion filter, or None if not understood.

    Only AND/OR of comparisons between a time/offset column and a literal are translated;
    anything else is "no constraint", which only ever keeps more files than needed.
    """
    v = expr.to_variant()
    if type(v).__name__ != "BinaryExpr":
        return None
    op = str(v.op()).upper()
    if op in ("AND", "OR"):
        left, right = _to_arrow(v.left(), usable), _to_arrow(v.right(), usable)
        if op == "AND":
            return left if right is None else right if left is None else left & right
        return None if left is None or right is None else left | right
    if op not in _COMPARISONS:
        return None
    lhs, rhs = v.left(), v.right()
    lk, rk = type(lhs.to_variant()).__name__, type(rhs.to_variant()).__name__
    if lk == "Literal" and rk == "Column":
        lhs, rhs, op = rhs, lhs, _FLIPPED[op]
    elif not (lk == "Column" and rk == "Literal"):
        return None
    column = lhs.to_variant().name()
    if column not in usable:
        return None
    value = rhs.python_value()
    if value is None:
        return None
    try:
        scalar = pa.scalar(value, usable[column])
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None
    return getattr(ds.field(column), _COMPARISONS[op])(scalar)


class QueryResult:
    """The answer to a query: a stream of RecordBatches, also convertible whole.

    Not constructed by users: ``Log.sql`` and ``Client.sql`` return it. Iterating streams
    batch by batch; ``to_arrow``/``to_pandas``/``to_polars`` collect.
    Example: ``for batch in log.sql("SELECT * FROM logs"): ...``
    """

    def __init__(
        self,
        schema: pa.Schema,
        batches: Callable[[], Iterator[pa.RecordBatch]],
        collect: Callable[[], pa.Table] | None = None,
        source: QueryResult | None = None,
    ) -> None:
        self.schema = schema
        self._batches = batches
        self._collect = collect
        self._source = source  # the result this one wraps: stop_when and close go to it

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self._batches()

    def to_reader(self) -> pa.RecordBatchReader:
        """A RecordBatchReader that pulls batches as it is read (nothing materialised)."""
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.to_reader().__arrow_c_stream__(requested_schema)

    def stop_when(self, condition: Callable[[], bool]) -> QueryResult:
        """Stop the query, wherever it is, once ``condition()`` is true (e.g. the client left).

        Checked while waiting for the next batch of a query running in a worker process
        (``query_workers``), where the iteration then raises ``Unavailable``; a query running
        in this process cannot be stopped from outside and ignores it.
        """
        if self._source is not None:
            self._source.stop_when(condition)
        return self

    def close(self) -> None:
        """Stop the query and free what it holds; safe from another thread, and twice."""
        if self._source is not None:
            self._source.close()

    def to_arrow(self) -> pa.Table:
        if self._collect is not None:
            return self._collect()
        return pa.Table.from_batches(list(self._batches()), schema=self.schema)

    def to_pandas(self) -> pandas.DataFrame:
        return self.to_arrow().to_pandas()

    def to_polars(self) -> polars.DataFrame:
        import polars

        return polars.from_arrow(self.to_arrow())

    def __repr__(self) -> str:
        return f"<QueryResult {self.schema.names}>"


class _Schema(df_catalog.SchemaProvider):
    """Resolves table names to snapshots lazily: only tables a query names are built."""

    def __init__(self, engine: QueryEngine) -> None:
        self._engine = engine
        self.snapshots: dict[str, TableSnapshot] = {}  # by the identifier the query used

    @property
    def table_names(self) -> list[str]:  # type: ignore[override]
        # datafusion-python 55 reads this as an attribute holding a sequence, not as the
        # method the ABC declares (information_schema.tables would be empty otherwise).
        return list(self._engine.names())

    def table(self, name: str) -> df_catalog.Table | None:
        snap = self._engine.resolve(name)
        if snap is None:
            return None
        self.snapshots[name] = snap
        return df_catalog.Table(build_dataset(snap))

    def table_exist(self, name: str) -> bool:
        return self._engine.resolve_name(name) is not None


class _Catalog(df_catalog.CatalogProvider):
    def __init__(self, schema: _Schema) -> None:
        self._schema = schema

    def schema_names(self) -> set[str]:
        return {"public"}

    def schema(self, name: str) -> df_catalog.Schema | None:
        return self._schema if name == "public" else None


_READ_ONLY = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)
_REFUSED = re.compile(r"(DDL|DML|Statement) not supported: (\w+)")
_NOT_FOUND = re.compile(r"table '(?:[^'.]+\.)*([^'.]+)' not found")
_VIEW_TYPES = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


class QueryEngine:
    """Plans and runs SQL over the streams a ``resolve`` callback hands it.

    Args:
        resolve: stream name → snapshot (or None). Called once per referenced table.
        names: the current stream names.
        target_partitions: DataFusion parallelism.
        timeout: seconds a query may run (0: no limit), the ``query_timeout`` setting.
        memory_limit: bytes a query's operators may hold (0: no limit),
            the ``query_memory_limit`` setting.
    """

    def __init__(
        self,
        resolve: Callable[[str], TableSnapshot | None],
        names: Callable[[], list[str]],
        *,
        target_partitions: int | None = None,
        timeout: float = 0.0,
        memory_limit: int = 0,
        on_duckdb: Callable[[Any], None] | None = None,
    ) -> None:
        self._resolve = resolve
        # Told each DuckDB connection a query opens (a query worker interrupts it on cancel).
        self._on_duckdb = on_duckdb
        self.names = names
        self._limits = _Limits(timeout, memory_limit)
        self._config = {
            # Plain utf8 in results: many Flight SQL clients (JDBC, ODBC, older ADBC)
            # cannot read Utf8View.
            "datafusion.execution.parquet.schema_force_view_types": "false",
            "datafusion.catalog.information_schema": "true",
            "datafusion.catalog.default_catalog": "arrowlog",
            "datafusion.catalog.default_schema": "public",
            "datafusion.catalog.create_default_catalog_and_schema": "false",
            # DataFusion 55 pushes a running min/max into the scans as a filter; with two
            # such aggregates over several files it skips rows that hold the answer
            # (min(a), min(b) came back wrong in most runs; tests/unit/test_fidelity.py).
            "datafusion.optimizer.enable_aggregate_dynamic_filter_pushdown": "false",
        }
        if target_partitions:
            self._config["datafusion.execution.target_partitions"] = str(target_partitions)
        self._native_config = {
            **self._config,
            "datafusion.catalog.create_default_catalog_and_schema": "true",
            "datafusion.catalog.information_schema": "false",
            # Evaluate filters while decoding, cheapest first, then read the other columns
            # only for rows that pass (e.g. a user_id needle skips the message column).
            "datafusion.execution.parquet.schema_force_view_types": "true",
            "datafusion.execution.parquet.pushdown_filters": "true",
            "datafusion.execution.parquet.reorder_filters": "true",
        }

    def resolve_name(self, name: str) -> str | None:
        """The stream a (possibly case-folded) SQL identifier refers to."""
        names = self.names()
        if name in names:
            return name
        matches = [n for n in names if n.lower() == name.lower()]
        return matches[0] if len(matches) == 1 else None

    def resolve(self, name: str) -> TableSnapshot | None:
        real = self.resolve_name(name)
        return None if real is None else self._resolve(real)

    def context(self, schema: _Schema | None = None) -> SessionContext:
        ctx = SessionContext(SessionConfig(self._config), self._limits.runtime())
        ctx.register_catalog_provider("arrowlog", _Catalog(schema or _Schema(self)))
        return ctx

    def sql(
        self, query: str, *, engine: Engine = "datafusion", params: Params = None
    ) -> QueryResult:
        """Plan ``query`` now (taking the snapshots) and return its streamed result.

        Raises:
            ReadOnlyQuery: DDL, DML, COPY, SET and other statements.
            StreamNotFound: a table that is not a stream.
            InvalidInput: any other error the engine reports, with its message.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("empty SQL query")
        _check_operators(query)
        budget = self._limits.budget()
        if engine == "datafusion":
            return self._datafusion(query, params, budget)
        if engine == "duckdb":
            return self._duckdb(query, params, budget)
        raise InvalidInput(f"unknown engine {engine!r}: use 'datafusion' or 'duckdb'")

    # -- DataFusion ------------------------------------------------------------------------

    def _datafusion(self, query: str, params: Params, budget: _Budget | None) -> QueryResult:
        tables = _Schema(self)
        ctx = self.context(tables)
        kwargs: dict[str, Any] = {}
        if params is not None:
            if isinstance(params, Mapping):
                kwargs["param_values"] = dict(params)
            else:
                kwargs["param_values"] = {str(i + 1): v for i, v in enumerate(params)}
                query = number_placeholders(query)
        started = time.monotonic()
        try:
            df = ctx.sql_with_options(query, _READ_ONLY, **kwargs)
            schema = df.schema()
            if tables.snapshots and "information_schema" not in query.lower():
                df = self._native(query, kwargs, tables.snapshots, df) or df
        except Exception as e:  # DataFusion raises plain Exception subclasses
            raise self._limits.translate(e) from e
        if budget is not None:
            budget.spend(time.monotonic() - started)  # planning counts
        plain = _plain_schema(schema)
        limits = self._limits
        # A sorted result is cast batch by batch here, never by a projection over the
        # engine's plan: DataFusion may spread such a projection over several partitions
        # (round-robin) above the sort-preserving merge, and reading them back interleaves
        # the rows out of order.
        frame = df if _ordered(df.logical_plan()) else _plain_frame(df)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                stream = frame.execute_stream()
                if budget is None:
                    for batch in stream:
                        yield _cast_batch(batch.to_pyarrow(), plain)
                else:
                    for batch in _bounded(stream, budget):
                        yield _cast_batch(batch.to_pyarrow(), plain)
            except ArrowlogError:
                raise
            except Exception as e:
                raise limits.translate(e) from e

        def collect() -> pa.Table:
            try:
                table = frame.to_arrow_table()
            except Exception as e:
                raise limits.translate(e) from e
            return table if table.schema.equals(plain) else table.cast(plain)

        # With a time limit, collecting goes through the bounded stream too.
        return QueryResult(plain, batches, collect if budget is None else None)

    def _native(
        self,
        query: str,
        kwargs: dict[str, Any],
        snapshots: dict[str, TableSnapshot],
        planned: DataFrame,
    ) -> DataFrame | None:
        """Re-plan ``query`` with DataFusion's own Parquet reader over the needed files only.

        The first planning (over pyarrow datasets) took the snapshots and tells, per table
        scan, which filters the engine pushed down. Comparisons of the time column and
        ``_offset`` with literals become a pyarrow expression that the segments'
        guarantees prune with, before any file is opened. The surviving files are then
        scanned natively, which brings DataFusion's row-group, page-index and late
        materialisation pruning. Returns None to keep the first plan (too many files).
        """
        optimized = planned.optimized_logical_plan()
        filters = _scan_filters(optimized, snapshots)
        config = self._native_config
        if _projection_only(optimized):
            # Nothing is computed per row (e.g. SELECT *): big batches cut the per-batch
            # costs of the scan, the hand-off to Python and Flight. Not for every plan:
            # aggregations and filters run 1.5-4x slower on 64k batches.
            config = {**config, "datafusion.execution.batch_size": str(64 * 1024)}
        ctx = SessionContext(SessionConfig(config), self._limits.runtime())
        registered: set[int] = set()
        for name, snap in snapshots.items():
            if snap.storage is not None and id(snap.storage) not in registered:
                snap.storage.register(ctx)
                registered.add(id(snap.storage))
            files = live_paths(snap, filters.get(name))
            if len(files) > _NATIVE_MAX_FILES:
                return None
            # Strings are scanned as Utf8View: DataFusion filters and groups them about twice
            # as fast; results are cast back to plain utf8 for clients (_cast_batch).
            schema = _view_schema(snap.schema)
            parts = [ctx.read_parquet(path, schema=schema) for path in files]
            buffer = buffer_table(snap)
            if buffer.num_rows or not parts:
                parts.append(ctx.from_arrow(buffer.cast(schema)))
            table = parts[0]
            for part in parts[1:]:
                table = table.union(part)
            # Quoted: register exactly the identifier the query resolved (no case folding).
            ctx.register_view('"' + name.replace('"', '""') + '"', table)
        return ctx.sql_with_options(query, _READ_ONLY, **kwargs)

    # -- DuckDB ----------------------------------------------------------------------------

    def _duckdb(self, query: str, params: Params, budget: _Budget | None) -> QueryResult:
        import duckdb

        con = duckdb.connect(":memory:")
        if self._on_duckdb is not None:
            self._on_duckdb(con)
        if self._limits.memory_limit:
            con.execute(f"SET memory_limit = '{int(self._limits.memory_limit)}B'")
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as e:
            raise InvalidInput(str(e)) from e
        if len(statements) != 1:
            raise InvalidInput("send exactly one SQL statement")
        if statements[0].type != duckdb.StatementType.SELECT:
            raise ReadOnlyQuery(
                f"only SELECT queries are allowed: arrowlog is read-only through SQL "
                f"(got {statements[0].type.name})"
            )
        try:
            tables = duckdb.get_table_names(query)
        except duckdb.Error:
            # Queries with parameters cannot be bound without values: offer every stream.
            tables = set(self.names())
        allowed: list[str] = []
        for index, name in enumerate(sorted(tables)):
            snap = self.resolve(name)
            if snap is None:
                continue
            # The buffer (in the full schema, even when empty) unioned by name with the live
            # files read natively: columns a file predates come back as NULL.
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
                listed = ", ".join(_sql_string(f) for f in files)
                select += f" UNION ALL BY NAME SELECT * FROM read_parquet([{listed}], union_by_name = true)"
            con.execute(f"CREATE TEMP VIEW {_sql_identifier(name)} AS {select}")
            allowed += files
        # Only the live files of the referenced streams stay readable; every other file,
        # URL and extension does not, and the query cannot change that.
        con.execute(f"SET allowed_paths = [{', '.join(_sql_string(f) for f in allowed)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        limits = self._limits
        # interrupt() stops the query wherever it is: armed only while DuckDB works.
        guard = _Interrupter(con, budget)
        try:
            with guard:
                rel = con.sql(query, params=params) if params is not None else con.sql(query)
                reader = rel.to_arrow_reader(64 * 1024)
        except duckdb.CatalogException as e:
            if "Table with name" not in str(e):  # e.g. an unknown function
                raise InvalidInput(str(e)) from e
            raise StreamNotFound(str(e)) from e
        except duckdb.Error as e:
            raise limits.translate(e, timed_out=guard.fired) from e
        plain = _plain_schema(reader.schema)
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
                    yield _cast_batch(batch, plain)
            except StopIteration:
                return
            except duckdb.Error as e:
                raise limits.translate(e, timed_out=guard.fired) from e
            finally:
                con.close()

        return QueryResult(plain, batches)


@dataclass(frozen=True)
class _Limits:
    """The query guards, and how their violations read (clear errors)."""

    timeout: float
    memory_limit: int

    def runtime(self) -> RuntimeEnvBuilder | None:
        if not self.memory_limit:
            return None
        return RuntimeEnvBuilder().with_greedy_memory_pool(int(self.memory_limit))

    def budget(self) -> _Budget | None:
        return _Budget(self) if self.timeout else None

    def timed_out(self) -> QueryLimitExceeded:
        return QueryLimitExceeded(
            f"query exceeded the time limit of {self.timeout:g} s (query_timeout)"
        )

    def translate(self, e: Exception, *, timed_out: bool = False) -> ArrowlogError:
        message = str(e).strip()
        if timed_out:
            return self.timed_out()
        if self.memory_limit and _OUT_OF_MEMORY.search(message):
            return QueryLimitExceeded(
                f"query exceeded the memory limit of {self.memory_limit} bytes "
                f"(query_memory_limit): {message}"
            )
        return _translate(e)


_OUT_OF_MEMORY = re.compile(r"Resources exhausted|Out of Memory Error|failed to allocate", re.I)


class _Budget:
    """The engine time one query has left (``query_timeout`` minus what it has used)."""

    def __init__(self, limits: _Limits) -> None:
        self.limits = limits
        self.left = limits.timeout

    def spend(self, seconds: float) -> None:
        self.left -= seconds
        if self.left <= 0:
            raise self.limits.timed_out()


def _bounded(stream: Any, budget: _Budget) -> Iterator[Any]:
    """The stream's batches, within the budget's time.

    The wait for the first batch, where aggregations, sorts and join builds do all their
    work, is an ``asyncio.wait_for`` over the stream's ``__anext__`` on one shared
    event-loop thread (so it works from any thread, also one whose own loop is running,
    as in Jupyter); on time-out the pending ``__anext__`` is cancelled. Later batches
    come from the plain iterator, the budget checked after each: a handoff per batch
    would halve the speed of large scans, and a scan returns batches steadily.
    """
    loop = _waiter_loop()
    try:
        started = time.monotonic()
        wait = asyncio.wait_for(_next_batch(stream), budget.left)
        future = asyncio.run_coroutine_threadsafe(wait, loop)
        try:
            batch = future.result()
        except TimeoutError:
            raise budget.limits.timed_out() from None
        if batch is None:
            return
        budget.spend(time.monotonic() - started)
        yield batch
        while True:
            started = time.monotonic()
            batch = next(stream, None)
            if batch is None:
                return
            budget.spend(time.monotonic() - started)
            yield batch
    finally:
        # The last reference to the engine's stream (a traceback keeps this frame alive):
        # dropping it stops the engine's work at its next yield point.
        del stream


async def _next_batch(stream: Any) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


_WAITER: asyncio.AbstractEventLoop | None = None
_WAITER_LOCK = threading.Lock()


def _waiter_loop() -> asyncio.AbstractEventLoop:
    """The event loop (in a daemon thread of its own) that bounded queries wait on."""
    global _WAITER
    with _WAITER_LOCK:
        if _WAITER is None:
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="arrowlog-query-waiter", daemon=True
            ).start()
            _WAITER = loop
        return _WAITER


class _Interrupter:
    """Interrupts a DuckDB connection when its budget runs out while the guard is entered."""

    def __init__(self, con: Any, budget: _Budget | None) -> None:
        self.fired = False
        self._con = con
        self._budget = budget
        self._timer: threading.Timer | None = None
        self._started = 0.0

    def __enter__(self) -> None:
        if self._budget is not None:
            self._started = time.monotonic()
            self._timer = threading.Timer(max(0.0, self._budget.left), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None and self._budget is not None:
            self._timer.cancel()
            self._timer = None
            if not self.fired:
                self._budget.spend(time.monotonic() - self._started)

    def _fire(self) -> None:
        self.fired = True
        self._con.interrupt()


# DataFusion plans an expression recursively, one level per operator of a chain such as
# ``1 + 1 + ...`` or ``a = 1 OR a = 2 OR ...`` (the parser's nesting limit does not see
# chains): around 10,000 operators overflow the stack and kill the process (measured in
# worker threads with datafusion 55). Queries over this many are refused before planning.
MAX_OPERATORS = 2000
_LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)
_OPERATORS = re.compile(r"(?i)\b(?:AND|OR|LIKE|ILIKE|IS|NOT)\b|\|\||<>|!=|<=|>=|[-+*/%=<>&|^]")


def _check_operators(query: str) -> None:
    """Refuse a query with more than ``MAX_OPERATORS`` operators outside its literals."""
    if len(query) < MAX_OPERATORS:
        return  # too short to hold that many
    count = len(_OPERATORS.findall(_LITERALS.sub(" ", query)))
    if count > MAX_OPERATORS:
        raise InvalidInput(
            f"the query has {count} operators; at most {MAX_OPERATORS} are accepted "
            "(longer chains overflow the planner): for long lists of values use IN (...)"
        )


def number_placeholders(query: str) -> str:
    """Rewrite positional ``?`` placeholders as ``$1``, ``$2``, ... for DataFusion.

    JDBC, ODBC and most ADBC users write ``?``; DataFusion binds only ``$n``. Question marks
    inside string literals, quoted identifiers and comments are left alone.
    """
    if "?" not in query:
        return query
    out: list[str] = []
    i, n, count = 0, len(query), 0
    while i < n:
        c = query[i]
        if c in "'\"":  # a string literal or quoted identifier; doubled quotes escape
            j = i + 1
            while j < n and not (query[j] == c and (j + 1 >= n or query[j + 1] != c)):
                j += 2 if query[j] == c else 1
            out.append(query[i : j + 1])
            i = j + 1
        elif query.startswith("--", i):
            j = query.find("\n", i)
            j = n if j < 0 else j
            out.append(query[i:j])
            i = j
        elif query.startswith("/*", i):
            j = query.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(query[i:j])
            i = j
        elif c == "?":
            count += 1
            out.append(f"${count}")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _view_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with top-level strings as Utf8View, DataFusion's faster string layout."""
    return pa.schema(
        [f.with_type(pa.string_view()) if f.type == pa.string() else f for f in schema],
        metadata=schema.metadata,
    )


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    fields = [f.with_type(_VIEW_TYPES.get(f.type, f.type)) for f in schema]
    return pa.schema(fields, metadata=schema.metadata)


def _cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    return batch if batch.schema.equals(schema) else batch.cast(schema)


def _plain_frame(df: DataFrame) -> DataFrame:
    """``df`` with its top-level view columns cast to plain types by DataFusion itself.

    The cast then runs in the engine's partition threads, beside the decode, instead of
    in the one thread reading the result: pyarrow's Utf8View -> utf8 cast of every batch
    cost about as much as the whole scan on ``SELECT *`` (measured with py-spy), DataFusion's
    costs little next to the decode. Returns ``df`` itself when a column cannot be named
    unambiguously (e.g. two ``x`` from a join); ``_cast_batch`` casts those batches.
    """
    from datafusion import Expr

    fields = list(df.schema())
    names = [f.name for f in fields]
    if not any(f.type in _VIEW_TYPES for f in fields) or len(set(names)) != len(names):
        return df
    exprs = []
    for f in fields:
        expr = Expr.column(_sql_identifier(f.name))
        if f.type in _VIEW_TYPES:
            expr = expr.cast(_VIEW_TYPES[f.type]).alias(f.name)
        exprs.append(expr)
    try:
        plain = df.select(*exprs)
    except Exception:  # DataFusion raises plain Exception subclasses
        return df
    return plain if plain.schema().names == names else df


def _translate(e: Exception) -> ArrowlogError:
    """Turn an engine error into ours, keeping the engine's message."""
    message = str(e).strip()
    if m := _REFUSED.search(message):
        return ReadOnlyQuery(
            f"{m.group(2)} is not allowed: arrowlog is read-only through SQL "
            f"({m.group(1)} statements are refused)"
        )
    if m := _NOT_FOUND.search(message):
        return StreamNotFound(f"stream {m.group(1)!r} not found ({message})")
    return InvalidInput(message)
