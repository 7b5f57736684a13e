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
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from datafusion import SessionConfig, SessionContext, SQLOptions
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
        expr = (
            expr
            & (ds.field(snap.time_column) >= pa.scalar(seg.min_time, t))
            & (ds.field(snap.time_column) <= pa.scalar(seg.max_time, t))
        )
    return expr


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

    @property
    def table_names(self) -> list[str]:  # type: ignore[override]
        # datafusion-python 55 reads this as an attribute holding a sequence, not as the
        # method the ABC declares (information_schema.tables would be empty otherwise).
        return list(self._engine.names())

    def table(self, name: str) -> df_catalog.Table | None:
        snap = self._engine.resolve(name)
        if snap is None:
            return None
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

    def context(self) -> SessionContext:
        ctx = SessionContext(SessionConfig(self._config))
        ctx.register_catalog_provider("arrowlog", _Catalog(_Schema(self)))
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
        ctx = self.context()
        kwargs: dict[str, Any] = {}
        if params is not None:
            if isinstance(params, Mapping):
                kwargs["param_values"] = dict(params)
            else:
                kwargs["param_values"] = {str(i + 1): v for i, v in enumerate(params)}
        try:
            df = ctx.sql_with_options(query, _READ_ONLY, **kwargs)
            schema = df.schema()
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
        for name in tables:
            snap = self.resolve(name)
            if snap is not None:
                con.register(name, build_dataset(snap))
        # Registered datasets stay readable; files, URLs and extensions do not.
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
