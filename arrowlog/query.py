"""SQL over streams: DataFusion (default) or DuckDB, read-only, streamed.

Each stream is a table whose rows are its live segments plus a snapshot of its durable
buffer, taken when the query is planned, so a query sees every record acknowledged before
it started (DESIGN §1, read-your-writes).

Segments are handed to the engine as a pyarrow dataset built from the catalog's live-file
index, never from a directory listing. Each file fragment carries its offset and time
min/max as its partition expression, so a predicate on the time column or ``_offset``
drops whole segments at planning time, before any file is opened (``EXPLAIN`` shows
``number_of_fragments``); row groups inside the remaining files are pruned by pyarrow
through Parquet statistics.

Read-only is enforced by the engines themselves: DataFusion's ``SQLOptions`` refuse DDL,
DML (including COPY) and SET-style statements, and no URL tables are enabled; DuckDB runs
with external access disabled and only SELECT statements.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from datafusion import DataFrame, SessionConfig, SessionContext, SQLOptions
from datafusion import catalog as df_catalog

from arrowlog.catalog import SegmentInfo
from arrowlog.errors import ArrowlogError, InvalidInput, ReadOnlyQuery, StreamNotFound
from arrowlog.schema import OFFSET

if TYPE_CHECKING:
    import pandas
    import polars

__all__ = ["Engine", "QueryEngine", "QueryResult", "TableSnapshot", "build_dataset"]

logger = logging.getLogger(__name__)

Engine = Literal["datafusion", "duckdb"]
Params = Sequence[Any] | Mapping[str, Any] | None

_LOCAL_FS = pafs.LocalFileSystem()
_PARQUET = ds.ParquetFileFormat(
    default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=True)
)


@dataclass(frozen=True)
class TableSnapshot:
    """What one query sees of a stream: its schema, live segments and durable buffer."""

    name: str
    schema: pa.Schema  # user columns + system columns
    time_column: str
    segments: list[SegmentInfo]
    buffer: list[pa.Table] = field(default_factory=list)
    # Identifies this exact segment list (StreamCatalog.cache_key) so the fragments built
    # for it can be reused by the next query; None disables caching.
    segments_key: tuple[str, int, int] | None = None


def build_dataset(snap: TableSnapshot) -> ds.Dataset:
    """A dataset over the snapshot: segment fragments (with pruning guarantees) plus buffer.

    It always holds one fragment that no filter can prune (an empty in-memory Parquet
    file): a scan whose fragments were all pruned would otherwise have no partitions, and
    DataFusion rejects such a plan under ORDER BY.
    """
    fragments = [_PARQUET.make_fragment(_EMPTY_PARQUET), *_segment_fragments(snap)]
    segments = ds.FileSystemDataset(fragments, snap.schema, _PARQUET, _LOCAL_FS)
    batches = [b for t in snap.buffer for b in conform(t, snap.schema).to_batches()]
    if not batches:
        return segments
    buffer = ds.InMemoryDataset(pa.Table.from_batches(batches, schema=snap.schema))
    return ds.UnionDataset(snap.schema, [segments, buffer])


def _empty_parquet() -> pa.Buffer:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({OFFSET: pa.array([], pa.int64())}), sink)
    return sink.getvalue()


_EMPTY_PARQUET = _empty_parquet()


_MS_TRUNCATION = timedelta(microseconds=999)
_FRAGMENTS: OrderedDict[tuple, list[ds.Fragment]] = OrderedDict()
_FRAGMENTS_LOCK = threading.Lock()
_FRAGMENT_CACHE_SIZE = 256


def _segment_fragments(snap: TableSnapshot) -> list[ds.Fragment]:
    """Fragments for the snapshot's segments, reused while the segment set is unchanged.

    Building a fragment and its guarantee costs tens of microseconds; with 10,000
    segments that would dominate planning if redone for every query.
    """
    if snap.segments_key is None:
        return [_fragment(seg, snap) for seg in snap.segments]
    key = (*snap.segments_key, snap.time_column)
    with _FRAGMENTS_LOCK:
        cached = _FRAGMENTS.get(key)
        if cached is not None:
            _FRAGMENTS.move_to_end(key)
            return cached
    built = [_fragment(seg, snap) for seg in snap.segments]
    with _FRAGMENTS_LOCK:
        _FRAGMENTS[key] = built
        while len(_FRAGMENTS) > _FRAGMENT_CACHE_SIZE:
            _FRAGMENTS.popitem(last=False)
    return built


def _fragment(seg: SegmentInfo, snap: TableSnapshot) -> ds.Fragment:
    return _PARQUET.make_fragment(seg.path, _LOCAL_FS, partition_expression=_guarantee(seg, snap))


def _guarantee(seg: SegmentInfo, snap: TableSnapshot) -> ds.Expression:
    """What is true of every row of a segment: the engine skips it when a filter contradicts."""
    expr = ds.scalar(True)
    if seg.min_offset is not None and seg.max_offset is not None:
        expr = expr & (ds.field(OFFSET) >= seg.min_offset) & (ds.field(OFFSET) <= seg.max_offset)
    if seg.min_time is not None and seg.max_time is not None:
        t = snap.schema.field(snap.time_column).type
        # Delta keeps timestamp statistics truncated to milliseconds: the true maximum can
        # lie up to 999 µs above the recorded one (the minimum is truncated down: safe).
        # Without widening, a filter like ts > x.9995 would skip a file with a matching row.
        expr = (
            expr
            & (ds.field(snap.time_column) >= pa.scalar(seg.min_time, t))
            & (ds.field(snap.time_column) <= pa.scalar(seg.max_time + _MS_TRUNCATION, t))
        )
    return expr


# Above this many files after pruning, one native scan per file plans too slowly; the
# pyarrow dataset (one scan node, cached fragments) is used instead.
_NATIVE_MAX_FILES = 256
_COMPARISONS = {"=": "__eq__", "<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}
_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def _prune(snap: TableSnapshot, expr: ds.Expression | None) -> list[str]:
    """Paths of the snapshot's segments whose guarantees do not contradict ``expr``."""
    fragments = _segment_fragments(snap)
    if expr is None:
        return [f.path for f in fragments]
    dataset = ds.FileSystemDataset(fragments, snap.schema, _PARQUET, _LOCAL_FS)
    return [f.path for f in dataset.get_fragments(filter=expr)]


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


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder ``table`` to ``schema``, adding null columns the table predates."""
    if table.schema.equals(schema):
        return table
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


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
    ) -> None:
        self.schema = schema
        self._batches = batches
        self._collect = collect

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self._batches()

    def to_reader(self) -> pa.RecordBatchReader:
        """A RecordBatchReader that pulls batches as it is read (nothing materialised)."""
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.to_reader().__arrow_c_stream__(requested_schema)

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
    """

    def __init__(
        self,
        resolve: Callable[[str], TableSnapshot | None],
        names: Callable[[], list[str]],
        *,
        target_partitions: int | None = None,
    ) -> None:
        self._resolve = resolve
        self.names = names
        self._config = {
            # Plain utf8 in results: many Flight SQL clients (JDBC, ODBC, older ADBC)
            # cannot read Utf8View.
            "datafusion.execution.parquet.schema_force_view_types": "false",
            "datafusion.catalog.information_schema": "true",
            "datafusion.catalog.default_catalog": "arrowlog",
            "datafusion.catalog.default_schema": "public",
            "datafusion.catalog.create_default_catalog_and_schema": "false",
        }
        if target_partitions:
            self._config["datafusion.execution.target_partitions"] = str(target_partitions)
        self._native_config = {
            **self._config,
            "datafusion.catalog.create_default_catalog_and_schema": "true",
            "datafusion.catalog.information_schema": "false",
            # Evaluate filters while decoding, cheapest first, then read the other columns
            # only for rows that pass (e.g. a user_id needle skips the message column).
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
        ctx = SessionContext(SessionConfig(self._config))
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
        if engine == "datafusion":
            return self._datafusion(query, params)
        if engine == "duckdb":
            return self._duckdb(query, params)
        raise InvalidInput(f"unknown engine {engine!r}: use 'datafusion' or 'duckdb'")

    # -- DataFusion ------------------------------------------------------------------------

    def _datafusion(self, query: str, params: Params) -> QueryResult:
        tables = _Schema(self)
        ctx = self.context(tables)
        kwargs: dict[str, Any] = {}
        if params is not None:
            if isinstance(params, Mapping):
                kwargs["param_values"] = dict(params)
            else:
                kwargs["param_values"] = {str(i + 1): v for i, v in enumerate(params)}
                query = number_placeholders(query)
        try:
            df = ctx.sql_with_options(query, _READ_ONLY, **kwargs)
            schema = df.schema()
            if tables.snapshots and "information_schema" not in query.lower():
                df = self._native(query, kwargs, tables.snapshots, df) or df
        except Exception as e:  # DataFusion raises plain Exception subclasses
            raise _translate(e) from e
        plain = _plain_schema(schema)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in df.execute_stream():
                    yield _cast_batch(batch.to_pyarrow(), plain)
            except ArrowlogError:
                raise
            except Exception as e:
                raise _translate(e) from e

        def collect() -> pa.Table:
            try:
                table = df.to_arrow_table()
            except Exception as e:
                raise _translate(e) from e
            return table if table.schema.equals(plain) else table.cast(plain)

        return QueryResult(plain, batches, collect)

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
        filters = _scan_filters(planned.optimized_logical_plan(), snapshots)
        ctx = SessionContext(SessionConfig(self._native_config))
        for name, snap in snapshots.items():
            files = _prune(snap, filters.get(name))
            if len(files) > _NATIVE_MAX_FILES:
                return None
            parts = [ctx.read_parquet(path, schema=snap.schema) for path in files]
            buffered = [b for t in snap.buffer for b in conform(t, snap.schema).to_batches()]
            if buffered or not parts:
                parts.append(
                    ctx.from_arrow(
                        pa.Table.from_batches(
                            buffered or [_empty_batch(snap.schema)], schema=snap.schema
                        )
                    )
                )
            table = parts[0]
            for part in parts[1:]:
                table = table.union(part)
            # Quoted: register exactly the identifier the query resolved (no case folding).
            ctx.register_view('"' + name.replace('"', '""') + '"', table)
        return ctx.sql_with_options(query, _READ_ONLY, **kwargs)

    # -- DuckDB ----------------------------------------------------------------------------

    def _duckdb(self, query: str, params: Params) -> QueryResult:
        import duckdb

        con = duckdb.connect(":memory:")
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
        for name in tables:
            snap = self.resolve(name)
            if snap is None:
                continue
            # The buffer (in the full schema, even when empty) unioned by name with the live
            # files read natively: columns a file predates come back as NULL.
            buffered = [b for t in snap.buffer for b in conform(t, snap.schema).to_batches()]
            con.register(
                f"__buffer_{len(allowed)}", pa.Table.from_batches(buffered, schema=snap.schema)
            )
            files = [seg.path for seg in snap.segments]
            select = f'SELECT * FROM "__buffer_{len(allowed)}"'
            if files:
                listed = ", ".join(_sql_string(f) for f in files)
                select += f" UNION ALL BY NAME SELECT * FROM read_parquet([{listed}], union_by_name = true)"
            con.execute(f"CREATE TEMP VIEW {_sql_identifier(name)} AS {select}")
            allowed += files
        # Only the live files of the referenced streams stay readable; every other file,
        # URL and extension does not, and the query cannot change that.
        con.execute(f"SET allowed_paths = [{', '.join(_sql_string(f) for f in allowed)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            rel = con.sql(query, params=params) if params is not None else con.sql(query)
            reader = rel.to_arrow_reader(64 * 1024)
        except duckdb.CatalogException as e:
            raise StreamNotFound(str(e)) from e
        except duckdb.Error as e:
            raise InvalidInput(str(e)) from e
        plain = _plain_schema(reader.schema)
        consumed = False

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal consumed
            if consumed:
                raise InvalidInput("a DuckDB result can be read once")
            consumed = True
            try:
                for batch in reader:
                    yield _cast_batch(batch, plain)
            except duckdb.Error as e:
                raise InvalidInput(str(e)) from e
            finally:
                con.close()

        return QueryResult(plain, batches)


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


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    fields = [f.with_type(_VIEW_TYPES.get(f.type, f.type)) for f in schema]
    return pa.schema(fields, metadata=schema.metadata)


def _cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    return batch if batch.schema.equals(schema) else batch.cast(schema)


def _translate(e: Exception) -> ArrowlogError:
    """Turn an engine error into ours, keeping the engine's message (DESIGN §7)."""
    message = str(e).strip()
    if m := _REFUSED.search(message):
        return ReadOnlyQuery(
            f"{m.group(2)} is not allowed: arrowlog is read-only through SQL "
            f"({m.group(1)} statements are refused)"
        )
    if m := _NOT_FOUND.search(message):
        return StreamNotFound(f"stream {m.group(1)!r} not found ({message})")
    return InvalidInput(message)
