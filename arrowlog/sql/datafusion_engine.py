"""SQL on DataFusion: a schema-only plan, then at most one plan over the data.

**Schema-only planning** (``DataFusionEngine.schema``, and the first step of every
execution): DataFusion plans the query over ``arrowlog.public`` with each stream an empty
table of its current shape (``arrowlog/sql/catalog.py``). No snapshot is taken and no
file is opened. It gives the result schema, the tables the query reads and, once
optimized, the filters pushed into each scan (``arrowlog/sql/filters.py``).
GetFlightInfo, GetSchema and CreatePreparedStatement stop here.

**Execution** (``DataFusionEngine.sql``): the snapshot of each stream the query reads is
taken once, now (read-your-writes: the query sees every record acknowledged before it
was planned). The pushed filters prune its segments by their time and offset
statistics; the files left are read by DataFusion's own Parquet reader (row-group, page
index and late-materialisation pruning), unioned with the durable buffer, in one plan.
A stream with more than ``NATIVE_MAX_FILES`` files left is read as one pyarrow dataset
inside that same plan (one scan node, cached fragments: a scan per file plans too
slowly). A query that reads ``information_schema`` as well sees plain tables (pyarrow
datasets) so the catalog reports their types as clients read them.

Results are plain types: strings are scanned as Utf8View (DataFusion filters and groups
them about twice as fast) and cast back to utf8 for clients.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from datafusion import DataFrame, Expr, SessionConfig, SessionContext
from datafusion import catalog as df_catalog

from arrowlog.errors import ArrowlogError, StreamNotFound
from arrowlog.snapshot import (
    SegmentFilter,
    TableSnapshot,
    buffer_table,
    build_dataset,
    live_paths,
)
from arrowlog.sql.catalog import (
    CATALOG,
    SCHEMA,
    ArrowlogCatalog,
    StreamSchema,
    StreamTables,
    TableShape,
)
from arrowlog.sql.filters import scan_filters
from arrowlog.sql.limits import Budget, Limits, bounded
from arrowlog.sql.policy import READ_ONLY, Params, datafusion_params, sql_identifier
from arrowlog.sql.result import QueryResult

__all__ = ["NATIVE_MAX_FILES", "DataFusionEngine", "plain_schema"]

# Above this many files left after pruning, one native scan per file plans too slowly; the
# stream is read as a pyarrow dataset (one scan node, cached fragments) instead.
NATIVE_MAX_FILES = 256

_VIEW_TYPES = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}

_PLANNING = {
    # Plain utf8 in results: many Flight SQL clients (JDBC, ODBC, older ADBC) cannot
    # read Utf8View.
    "datafusion.execution.parquet.schema_force_view_types": "false",
    "datafusion.catalog.information_schema": "true",
    "datafusion.catalog.default_catalog": CATALOG,
    "datafusion.catalog.default_schema": SCHEMA,
    "datafusion.catalog.create_default_catalog_and_schema": "false",
    # DataFusion 55 pushes a running min/max into the scans as a filter; with two such
    # aggregates over several files it skips rows that hold the answer (min(a), min(b)
    # came back wrong in most runs; tests/unit/test_fidelity.py).
    "datafusion.optimizer.enable_aggregate_dynamic_filter_pushdown": "false",
}
_EXECUTION = {
    **_PLANNING,
    # Evaluate filters while decoding, cheapest first, then read the other columns only
    # for rows that pass (e.g. a user_id needle skips the message column).
    "datafusion.execution.parquet.schema_force_view_types": "true",
    "datafusion.execution.parquet.pushdown_filters": "true",
    "datafusion.execution.parquet.reorder_filters": "true",
}
# A plan that only reads and projects (e.g. SELECT *) computes nothing per row: big
# batches cut the per-batch costs of the scan, the hand-off to Python and Flight (not for
# every plan: aggregations and filters run 1.5-4x slower on 64k batches), and strings are
# decoded as plain utf8 at once: nothing gains from views there, and decoding views then
# casting them back cost 12% more CPU on SELECT * (benchmarks/flight_transfer.py).
_READING = {
    "datafusion.execution.batch_size": str(64 * 1024),
    "datafusion.execution.parquet.schema_force_view_types": "false",
}


# Plans remembered per query text (without bound parameters), checked against the
# streams' names and shapes before each use.
_PLAN_CACHE_SIZE = 256
# Longer texts are planned every time rather than kept: the cache holds its keys, and a
# client sending hundreds of huge queries (long IN lists) would otherwise fill memory.
# Dashboards' queries, the ones repeated every few seconds, are far shorter.
_REMEMBER_MAX_CHARS = 64 * 1024
# Functions whose value the optimizer folds into the plan at planning time: the pushed
# filters of a query that calls one hold for that moment only.
_VOLATILE = re.compile(
    r"\b(now|current_\w+|localtime\w*|today|random|uuid|statement_timestamp)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class _Facts:
    """What the execution plan needs from the schema plan, beyond the shapes."""

    filters: dict[str, SegmentFilter | None]
    catalog: bool  # reads information_schema
    projection_only: bool


@dataclass(frozen=True)
class _Remembered:
    """A schema plan's outcome, valid while the streams' names and these shapes hold."""

    names: tuple[str, ...]
    shapes: dict[str, TableShape]
    schema: pa.Schema  # the plain result schema
    facts: _Facts | None  # None: not known yet, or the query is volatile


class DataFusionEngine:
    """Plans and runs SQL over the streams ``tables`` hands out.

    Args:
        tables: the streams (names, shapes, snapshots).
        limits: the query guards.
        target_partitions: DataFusion parallelism (None: one per core).
        on_plan: told ``"schema"`` or ``"execute"`` for each plan made (metrics).
    """

    def __init__(
        self,
        tables: StreamTables,
        limits: Limits,
        *,
        target_partitions: int | None = None,
        on_plan: Callable[[str], None] | None = None,
    ) -> None:
        self._tables = tables
        self._limits = limits
        self._on_plan = on_plan or (lambda kind: None)
        self._planning = dict(_PLANNING)
        self._execution = dict(_EXECUTION)
        self._remembered: OrderedDict[str, _Remembered] = OrderedDict()
        self._remembered_lock = threading.Lock()
        if target_partitions:
            for config in (self._planning, self._execution):
                config["datafusion.execution.target_partitions"] = str(target_partitions)

    def schema(self, query: str, params: Params = None) -> pa.Schema:
        """The result schema of ``query``, planned without data (no snapshot, no file)."""
        query, kwargs = datafusion_params(query, params)
        try:
            known = self._recall(query, kwargs)
            if known is not None:
                return known.schema
            names = tuple(self._tables.names())
            planned, provider = self._plan_schema(query, kwargs)
            schema = plain_schema(planned.schema())
            self._remember(query, kwargs, _Remembered(names, provider.resolved, schema, None))
            return schema
        except ArrowlogError:
            raise
        except Exception as e:  # DataFusion raises plain Exception subclasses
            raise self._limits.translate(e) from e

    def sql(self, query: str, params: Params = None, budget: Budget | None = None) -> QueryResult:
        """Plan ``query`` for execution now (taking the snapshots); its streamed result."""
        query, kwargs = datafusion_params(query, params)
        started = time.monotonic()
        try:
            df, plain = self._plan_execution(query, kwargs)
        except ArrowlogError:
            raise
        except Exception as e:  # DataFusion raises plain Exception subclasses
            raise self._limits.translate(e) from e
        if budget is not None:
            budget.spend(time.monotonic() - started)  # planning counts
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
                        yield cast_batch(batch.to_pyarrow(), plain)
                else:
                    for batch in bounded(stream, budget):
                        yield cast_batch(batch.to_pyarrow(), plain)
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

    # -- the two plans ---------------------------------------------------------------------

    def _plan_schema(
        self,
        query: str,
        kwargs: dict[str, Any],
        shapes: Mapping[str, TableShape] | None = None,
        *,
        runnable: bool = False,
    ) -> tuple[DataFrame, StreamSchema]:
        """The logical plan over empty tables of the streams' shapes, and what it resolved.

        ``runnable``: in a context with the memory pool, so that a plan that reads no
        stream (``SELECT 1``, ``range()``) can run as it is.
        """
        self._on_plan("schema")
        provider = StreamSchema(self._tables, shapes)
        runtime = self._limits.runtime() if runnable else None
        ctx = SessionContext(SessionConfig(self._planning), runtime)
        ctx.register_catalog_provider(CATALOG, ArrowlogCatalog(provider))
        return ctx.sql_with_options(query, READ_ONLY, **kwargs), provider

    def _plan_execution(self, query: str, kwargs: dict[str, Any]) -> tuple[DataFrame, pa.Schema]:
        """The one plan over the data, and the plain result schema.

        The schema plan of a query already planned over the same streams' shapes is
        reused (``_recall``): only the execution plan is made.
        """
        # The shapes are checked against the snapshots below: no lookup of them first.
        known = self._recall(query, kwargs, shapes=False)
        if known is not None and known.facts is not None and known.shapes:
            shapes, facts, schema = known.shapes, known.facts, known.schema
            snapshots = self._snapshots(shapes)
        else:
            names = tuple(self._tables.names())
            planned, provider = self._plan_schema(query, kwargs, runnable=True)
            shapes = provider.resolved
            if not shapes and not _reads_catalog(planned.logical_plan()):
                self._on_plan("execute")  # no stream, no catalog: the plan has all it reads
                return planned, plain_schema(planned.schema())
            snapshots = self._snapshots(shapes)
            facts, schema = _facts(planned, shapes), plain_schema(planned.schema())
            if not _VOLATILE.search(query):
                self._remember(query, kwargs, _Remembered(names, shapes, schema, facts))
        taken = {i: TableShape.of(snapshots[s.name]) for i, s in shapes.items()}
        if taken != shapes:  # the schema evolved in between: plan with what was taken
            planned, provider = self._plan_schema(query, kwargs, taken)
            shapes = provider.resolved
            facts, schema = _facts(planned, shapes), plain_schema(planned.schema())
        config = self._execution
        if facts.projection_only:
            config = {**config, **_READING}
        ctx = SessionContext(SessionConfig(config), self._limits.runtime())
        provider = StreamSchema(self._tables, shapes)
        ctx.register_catalog_provider(CATALOG, ArrowlogCatalog(provider))
        registered: set[int] = set()
        for identifier, shape in shapes.items():
            snap = snapshots[shape.name]
            if snap.storage is not None and id(snap.storage) not in registered:
                snap.storage.register(ctx)
                registered.add(id(snap.storage))
            table = _data_table(
                ctx,
                snap,
                facts.filters.get(identifier),
                plain=facts.catalog,
                views=not facts.projection_only,
            )
            provider.hold(identifier, table)
        if facts.catalog:  # information_schema reads every stream's shape: look them up now
            for name in self._tables.names():
                provider.shape(name)
        self._on_plan("execute")
        df = ctx.sql_with_options(query, READ_ONLY, **kwargs)
        return df, schema

    def _snapshots(self, shapes: Mapping[str, TableShape]) -> dict[str, TableSnapshot]:
        """One snapshot of each stream the plan reads, taken now."""
        snapshots: dict[str, TableSnapshot] = {}
        for identifier, shape in shapes.items():
            if shape.name not in snapshots:
                snap = self._tables.snapshot(shape.name)
                if snap is None:
                    raise StreamNotFound(f"stream {identifier!r} not found")
                snapshots[shape.name] = snap
        return snapshots

    # -- remembered schema plans -------------------------------------------------------------

    def _recall(
        self, query: str, kwargs: dict[str, Any], *, shapes: bool = True
    ) -> _Remembered | None:
        """The remembered plan of ``query``, if the streams it read still look the same.

        A plan depends on the stream names (which identifiers resolve, and what
        ``information_schema`` lists) and on the shapes of the streams it read; nothing
        else of the data. ``shapes=False``: the caller compares the shapes itself.
        """
        if kwargs:
            return None
        with self._remembered_lock:
            known = self._remembered.get(query)
            if known is not None:
                self._remembered.move_to_end(query)
        if known is None or tuple(self._tables.names()) != known.names:
            return None
        for identifier, shape in known.shapes.items() if shapes else ():
            real = self._tables.resolve_name(identifier)
            if real is None or self._tables.shape(real) != shape:
                return None
        return known

    def _remember(self, query: str, kwargs: dict[str, Any], known: _Remembered) -> None:
        if kwargs or len(query) > _REMEMBER_MAX_CHARS:
            return
        with self._remembered_lock:
            previous = self._remembered.get(query)
            if (
                known.facts is None
                and previous is not None
                and previous.facts is not None
                and (previous.names, previous.shapes) == (known.names, known.shapes)
            ):
                return  # keep what the execution plan learnt
            self._remembered[query] = known
            self._remembered.move_to_end(query)
            while len(self._remembered) > _PLAN_CACHE_SIZE:
                self._remembered.popitem(last=False)


def _facts(planned: DataFrame, shapes: Mapping[str, TableShape]) -> _Facts:
    """What the execution plan needs of ``planned``, planned over ``shapes``."""
    plan = planned.optimized_logical_plan() if shapes else planned.logical_plan()
    return _Facts(
        scan_filters(plan, shapes) if shapes else {},
        _reads_catalog(plan),
        bool(shapes) and _projection_only(plan),
    )


def _data_table(
    ctx: SessionContext,
    snap: TableSnapshot,
    wanted: SegmentFilter | None,
    *,
    plain: bool,
    views: bool = True,
) -> df_catalog.Table:
    """The snapshot's data: its needed files read natively plus its buffer, or a dataset.

    ``views``: strings as Utf8View (faster to filter and group), else as plain utf8.
    """
    files = [] if plain else live_paths(snap, wanted)
    if plain or len(files) > NATIVE_MAX_FILES:
        # One pyarrow dataset: its fragments' guarantees prune by the pushed filters.
        return df_catalog.Table(build_dataset(snap))
    schema = _view_schema(snap.schema) if views else snap.schema
    parts = [ctx.read_parquet(path, schema=schema) for path in files]
    buffer = buffer_table(snap)
    if buffer.num_rows or not parts:
        parts.append(ctx.from_arrow(buffer.cast(schema)))
    table = parts[0]
    for part in parts[1:]:
        table = table.union(part)
    return df_catalog.Table(table)


# -- what a plan says ----------------------------------------------------------------------

_STREAMING_NODES = {"Projection", "TableScan", "SubqueryAlias", "Limit", "Union"}
# Nodes that pass their input's row order through unchanged.
_ORDER_KEEPING_NODES = {"Projection", "Limit", "SubqueryAlias"}


def _nodes(plan: Any) -> Iterator[Any]:
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.inputs())


def _reads_catalog(plan: Any) -> bool:
    """True when the plan scans a table of ``information_schema``."""
    for node in _nodes(plan):
        variant = node.to_variant()
        if type(variant).__name__ == "TableScan":
            parts = variant.table_name().split(".")
            if len(parts) >= 2 and parts[-2] == "information_schema":
                return True
    return False


def _projection_only(plan: Any) -> bool:
    """True when the plan only reads and projects: no filter, join, sort or aggregate."""
    for node in _nodes(plan):
        variant = node.to_variant()
        kind = type(variant).__name__
        if kind not in _STREAMING_NODES or (kind == "TableScan" and variant.filters()):
            return False
    return True


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


# -- plain types for clients ---------------------------------------------------------------


def _view_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with top-level strings as Utf8View, DataFusion's faster string layout."""
    return pa.schema(
        [f.with_type(pa.string_view()) if f.type == pa.string() else f for f in schema],
        metadata=schema.metadata,
    )


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with top-level view types as their plain types (what clients read)."""
    fields = [f.with_type(_VIEW_TYPES.get(f.type, f.type)) for f in schema]
    return pa.schema(fields, metadata=schema.metadata)


def cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    return batch if batch.schema.equals(schema) else batch.cast(schema)


def _plain_frame(df: DataFrame) -> DataFrame:
    """``df`` with its top-level view columns cast to plain types by DataFusion itself.

    The cast then runs in the engine's partition threads, beside the decode, instead of
    in the one thread reading the result: pyarrow's Utf8View -> utf8 cast of every batch
    cost about as much as the whole scan on ``SELECT *`` (measured with py-spy), DataFusion's
    costs little next to the decode. Returns ``df`` itself when a column cannot be named
    unambiguously (e.g. two ``x`` from a join); ``cast_batch`` casts those batches.
    """
    fields = list(df.schema())
    names = [f.name for f in fields]
    if not any(f.type in _VIEW_TYPES for f in fields) or len(set(names)) != len(names):
        return df
    exprs = []
    for f in fields:
        expr = Expr.column(sql_identifier(f.name))
        if f.type in _VIEW_TYPES:
            expr = expr.cast(_VIEW_TYPES[f.type]).alias(f.name)
        exprs.append(expr)
    try:
        plain = df.select(*exprs)
    except Exception:  # DataFusion raises plain Exception subclasses
        return df
    return plain if plain.schema().names == names else df
