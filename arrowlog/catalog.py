"""A stream's catalog: its Delta Lake table, and an in-memory index of the live segments.

The Delta commit log is the single source of truth for which segments exist:
arrowlog never lists a table directory to find data, since a directory also holds files
that a commit has removed or that a crashed flush never committed. Each flush is one
atomic Delta commit that also records the stream's flushed-offset watermark as a Delta
application transaction (``Transaction(app_id=<stream>, version=<last offset>)``); on
recovery, WAL entries at or below the watermark are already in segments and are skipped,
so a flush interrupted by a crash is neither lost nor duplicated.

The live-file index keeps each segment's offset and time min/max (from the add actions'
statistics) so queries can be handed exactly the files they need: deltalake's own
DataFusion provider does not prune files, so it is not used.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.schema import Field as DeltaField
from deltalake.schema import Schema as DeltaSchema
from deltalake.transaction import AddAction, RemoveAction

from arrowlog.errors import InvalidInput, StorageError
from arrowlog.schema import (
    INGESTED_AT,
    OFFSET,
    PARTITION,
    SHARD_COLUMN,
    system_schema,
    widens,
)
from arrowlog.segments import SegmentFile
from arrowlog.storage import Storage

__all__ = ["SegmentInfo", "StreamCatalog", "stored_schema"]

logger = logging.getLogger(__name__)

_SETTINGS_FILE = "_arrowlog_stream.json"
_SHARDS_KEY = "partitions"  # in the settings file; stored, so never renamed
_INSTANCES = itertools.count()


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One live Parquet file of a stream, with the ranges used to prune it."""

    path: str  # absolute local path, or s3://bucket/key
    size: int
    rows: int
    min_offset: int | None
    max_offset: int | None
    min_time: datetime | None  # Delta statistics: truncated to the millisecond
    max_time: datetime | None
    day: date | None = None  # the Hive-style day partition value
    shard: int | None = None  # the shard of every row (None: mixed/unknown)
    # Rows whose time is null (placed by their ingestion time); None: unknown.
    time_nulls: int | None = None


class StreamCatalog:
    """Owns one stream's Delta table. Not thread-safe: the Log serialises commits per stream."""

    def __init__(
        self, storage: Storage, name: str, table: DeltaTable, settings: dict[str, Any]
    ) -> None:
        self.storage = storage
        self.name = name
        self.uri = storage.table_uri(name)
        self.time_column: str = settings["time_column"]
        # Written once at creation; tables from before shards existed have one. The stored
        # key keeps its original name, "partitions".
        self.shards: int = int(settings.get(_SHARDS_KEY, 1))
        self._table = table
        self.segments: dict[str, SegmentInfo] = {}
        # Bumped whenever the live-file set changes: readers cache per-generation work.
        self.generation = 0
        self._instance = next(_INSTANCES)
        self.segments = self._live()

    # -- creation and opening --------------------------------------------------------------

    @classmethod
    def create(
        cls,
        storage: Storage,
        name: str,
        user_schema: pa.Schema,
        time_column: str,
        *,
        shards: int = 1,
    ) -> StreamCatalog:
        """Create the stream's (empty) Delta table and its settings file.

        The settings file is written first and never changed: a table without one was not
        created by arrowlog. If two nodes create the same stream at once, both write the
        same settings and delta-rs lets exactly one create the table (``mode="ignore"``).
        """
        uri = storage.table_uri(name)
        settings = {"time_column": time_column, _SHARDS_KEY: shards}
        schema = stored_schema(user_schema, shards).append(pa.field(PARTITION, pa.date32()))
        settings_uri = storage.join(uri, _SETTINGS_FILE)
        wrote_settings = False
        try:
            if storage.is_local:
                Path(uri).mkdir(parents=True, exist_ok=True)
            if storage.exists(settings_uri):
                settings = storage.read_json(settings_uri)
            else:
                storage.write_json(settings_uri, settings)
                wrote_settings = True
            table = DeltaTable.create(
                uri,
                _delta_schema(schema),
                storage_options=storage.delta_options,
                mode="ignore",
                partition_by=[PARTITION],
                # Statistics on every column, not only the first 32: the offset and time
                # columns must always have min/max for pruning, wherever they sit.
                configuration={"delta.dataSkippingNumIndexedCols": "-1"},
            )
        except Exception as e:  # delta-rs raises plain Exception for schema errors too
            if wrote_settings:
                _remove_new_table(storage, uri, settings_uri)  # a refusal leaves nothing
            raise StorageError(f"could not create the Delta table at {uri}: {e}") from e
        return cls(storage, name, table, settings)

    @classmethod
    def open(cls, storage: Storage, name: str) -> StreamCatalog:
        uri = storage.table_uri(name)
        try:
            settings = storage.read_json(storage.join(uri, _SETTINGS_FILE))
            table = DeltaTable(uri, storage_options=storage.delta_options)
        except (OSError, ValueError, KeyError, TableNotFoundError, DeltaError) as e:
            raise StorageError(f"could not open the stream catalog at {uri}: {e}") from e
        return cls(storage, name, table, settings)

    @staticmethod
    def exists(storage: Storage, name: str) -> bool:
        uri = storage.table_uri(name)
        return storage.exists(storage.join(uri, "_delta_log")) and storage.exists(
            storage.join(uri, _SETTINGS_FILE)
        )

    # -- reading ---------------------------------------------------------------------------

    @property
    def watermark(self) -> int:
        """The last offset committed to segments, or -1 when nothing has been flushed."""
        return self.watermark_of(0)

    def check_shard(self, shard: int | None, *, required: bool = False) -> None:
        """Refuse a shard this stream does not have, or none where offsets need one.

        Raises:
            InvalidInput: naming the stream's shards.
        """
        check_shard(self.name, self.shards, shard, required=required)

    def watermark_of(self, shard: int) -> int:
        """The last offset of ``shard`` committed to segments (-1: none yet)."""
        version = self._table.transaction_version(self._app_id(shard))
        return -1 if version is None else int(version)

    def _app_id(self, shard: int = 0) -> str:
        # One application transaction per shard: its version is that shard's
        # flushed-offset watermark. A stream of one shard keeps the plain name.
        if self.shards == 1:
            return f"arrowlog:{self.name}"
        return f"arrowlog:{self.name}:{shard}"

    @property
    def user_schema(self) -> pa.Schema:
        """The table's schema without the system columns (offset, ingestion time, day, shard)."""
        schema = _arrow_schema(pa.schema(self._table.schema().to_arrow()))
        drop = {OFFSET, INGESTED_AT, PARTITION, SHARD_COLUMN}
        return pa.schema([f for f in schema if f.name not in drop])

    def value_range(self, column: str) -> tuple[Any, Any]:
        """(min, max) of ``column`` over the live files, from their statistics (None: none)."""
        try:
            actions = pa.table(self._table.get_add_actions(flatten=True))
        except Exception as e:  # delta-rs raises plain Exception too
            raise StorageError(f"could not read the Delta log of {self.name!r}: {e}") from e
        lo = hi = None
        if f"min.{column}" in actions.column_names:
            lo = pc.min(actions.column(f"min.{column}")).as_py()
            hi = pc.max(actions.column(f"max.{column}")).as_py()
        return lo, hi

    def widened(self, schema: pa.Schema) -> list[str]:
        """The columns whose type ``schema`` widens from the table's (segments to rewrite)."""
        stored = _arrow_schema(pa.schema(self._table.schema().to_arrow()))
        return [
            f.name
            for f in schema
            if f.name in stored.names and widens(stored.field(f.name).type, f.type)
        ]

    @property
    def version(self) -> int:
        return self._table.version()

    # -- committing ------------------------------------------------------------------------

    def commit(
        self,
        files: list[SegmentFile],
        *,
        schema: pa.Schema,
        remove: list[SegmentInfo] = (),  # type: ignore[assignment]
        watermark: int | None = None,
        shard: int = 0,
        operation: str,
        widen: bool = False,
    ) -> tuple[list[str], list[SegmentInfo]]:
        """Make ``files`` live (and ``remove`` not live) in one atomic Delta commit.

        Args:
            files: written, fsynced segment files (``segments.write_segment_files``).
            schema: the stream's full schema; new columns are added to the table first.
            remove: segments this commit replaces (compaction): they leave in the same commit.
            watermark: for a flush, the last offset it commits, recorded as the stream's
                application transaction so recovery skips WAL entries up to it.
            shard: whose watermark ``watermark`` is (cluster mode; 0 otherwise).
            operation: recorded in the commit's metadata ("flush", "compact").
            widen: write the column types ``schema`` widens into the table's schema. The
                commit must then replace every live file (``remove``): it overwrites
                every day partition ``remove`` has files in.

        Returns:
            (removed paths, added segments), for the caller to swap into the index together
            with its buffer so readers never see both or neither.
        """
        before = set(self.segments)
        now = int(time.time() * 1000)
        data_change = not remove  # a compaction rearranges data, it does not change it
        actions: list[Any] = [
            AddAction(f.relpath, f.size, {PARTITION: f.day.isoformat()}, now, data_change, f.stats)
            for f in files
        ]
        actions += [
            RemoveAction(
                self.storage.relative(self.uri, seg.path),
                False,
                now,
                seg.size,
                {PARTITION: seg.day.isoformat() if seg.day else None},
            )
            for seg in remove
        ]
        txns = (
            []
            if watermark is None
            else [Transaction(app_id=self._app_id(shard), version=watermark)]
        )
        metadata = {"arrowlog.operation": operation}
        if watermark is not None:
            metadata["arrowlog.last_offset"] = str(watermark)
        try:
            self._evolve(_delta_schema(schema))
            table_schema = self._widen(schema) if widen else None
            replaced = None
            if table_schema is not None:
                # Only "overwrite" writes a changed column type into the log; it removes
                # the files of the partitions named, here every day of ``remove`` (the
                # caller replaces every file), and takes no RemoveActions.
                actions = [a for a in actions if isinstance(a, AddAction)]
                days = sorted({seg.day.isoformat() for seg in remove if seg.day is not None})
                replaced = [(PARTITION, "in", days)] if days else None
            self._table.create_write_transaction(
                actions,
                mode="append" if table_schema is None else "overwrite",
                schema=table_schema or self._table.schema(),
                partition_by=[PARTITION],
                partition_filters=replaced,
                commit_properties=CommitProperties(app_transactions=txns, custom_metadata=metadata),
            )
            live = self._live()
        except Exception as e:  # delta-rs raises plain Exception for schema errors too
            raise StorageError(f"{operation} of stream {self.name!r} failed: {e}") from e
        removed = [p for p in before if p not in live]
        added = [seg for p, seg in live.items() if p not in before]
        if replaced is not None and sorted(removed) != sorted(seg.path for seg in remove):
            raise StorageError(
                f"{operation} of stream {self.name!r} removed {len(removed)} files where "
                f"{len(remove)} were to be replaced; the index is reloaded before the next one"
            )
        return removed, added

    def refresh_version(self) -> None:
        """Bring the table to the newest commit without rebuilding the live-file index.

        Enough to read a shard's watermark (a writer's fencing check); ``reload``
        also diffs the live files, which costs a pass over every add action.
        """
        try:
            self._table.update_incremental()
        except (DeltaError, OSError) as e:
            raise StorageError(f"could not read the Delta log of {self.name!r}: {e}") from e

    def reload(self) -> tuple[list[str], list[SegmentInfo]]:
        """Re-read the Delta log: (paths no longer live, segments newly live) vs the index.

        For a caller that does not know whether its last commit landed (the error may
        have come after the commit was written): the log is the truth.
        """
        try:
            live = self._live()
        except (DeltaError, OSError) as e:
            raise StorageError(f"could not reload the catalog of {self.name!r}: {e}") from e
        removed = [p for p in self.segments if p not in live]
        added = [seg for p, seg in live.items() if p not in self.segments]
        return removed, added

    def _evolve(self, schema: pa.Schema) -> None:
        """Add to the Delta table the columns ``schema`` has and the table lacks (nullable)."""
        known = set(pa.schema(self._table.schema().to_arrow()).names)
        new = [DeltaField.from_arrow(f.with_nullable(True)) for f in schema if f.name not in known]
        if new:
            self._table.alter.add_columns(new)

    def _widen(self, schema: pa.Schema) -> DeltaSchema | None:
        """The table's schema with the column types ``schema`` widens, or None if none.

        The caller's commit must replace every file holding the narrower type
        (``Stream.flush`` rewrites them), so every reader sees one type per column.
        """
        widened = {f.name: f.type for f in schema if f.name in self.widened(schema)}
        if not widened:
            return None
        stored = pa.schema(self._table.schema().to_arrow())
        fields = [f.with_type(widened.get(f.name, f.type)) for f in stored]
        return DeltaSchema.from_arrow(pa.schema(fields))

    def add_segments(self, segments: list[SegmentInfo]) -> None:
        for s in segments:
            self.segments[s.path] = s
        self.generation += 1

    def remove_segments(self, paths: list[str]) -> None:
        for p in paths:
            self.segments.pop(p, None)
        self.generation += 1

    def _live(self) -> dict[str, SegmentInfo]:
        """The live files according to the newest version of the Delta log."""
        self._table.update_incremental()
        actions = pa.table(self._table.get_add_actions(flatten=True))
        return {s.path: s for s in _segments_from_actions(self.uri, actions, self.time_column)}

    def drop_partitions(self, days: list[date]) -> list[str]:
        """Remove whole day partitions as a metadata-only Delta delete. Returns removed paths."""
        if not days:
            return []
        before = set(self.segments)
        values = ", ".join(f"'{d.isoformat()}'" for d in days)
        for attempt in range(5):
            try:
                self._table.delete(
                    f"{PARTITION} IN ({values})",
                    commit_properties=CommitProperties(
                        custom_metadata={"arrowlog.operation": "retention"}
                    ),
                )
                break
            except CommitFailedError:
                # A concurrent commit conflicted: reload and retry.
                logger.warning(
                    "retention commit on %r conflicted; retrying (%d)", self.name, attempt + 1
                )
                self._table.update_incremental()
            except (DeltaError, OSError) as e:
                raise StorageError(f"retention on {self.name!r} failed: {e}") from e
        else:
            raise StorageError(f"retention on {self.name!r} kept conflicting; will retry later")
        try:
            live = self._live()
        except (DeltaError, OSError) as e:
            raise StorageError(f"could not reload the catalog of {self.name!r}: {e}") from e
        return [p for p in before if p not in live]

    def vacuum(self, retention_hours: int) -> int:
        """Delete files the log removed more than ``retention_hours`` ago. Returns the count.

        Only called with the stream's flush lock held: vacuum also deletes files no commit
        lists, which is what an in-progress flush's files look like until it commits.
        """
        try:
            deleted = self._table.vacuum(
                retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
            )
        except (DeltaError, OSError) as e:
            raise StorageError(f"vacuum of {self.name!r} failed: {e}") from e
        return len(deleted)

    @property
    def cache_key(self) -> tuple[str, int, int]:
        """Unique to this exact live-file set (a reopened catalog never reuses a key)."""
        return (self.uri, self._instance, self.generation)

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self.segments.values())

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.segments.values())


def _segments_from_actions(root: str, actions: pa.Table, time_column: str) -> list[SegmentInfo]:
    cols = actions.column_names

    def column(name: str) -> list[Any]:
        return actions.column(name).to_pylist() if name in cols else [None] * actions.num_rows

    paths = column("path")
    shards = [
        lo if lo == hi and lo is not None else (0 if lo is None and hi is None else None)
        for lo, hi in zip(column(f"min.{SHARD_COLUMN}"), column(f"max.{SHARD_COLUMN}"), strict=True)
    ]
    return [
        SegmentInfo(Storage.join(root, p), size, rows, mn_o, mx_o, mn_t, mx_t, day, shard, nulls)
        for p, size, rows, mn_o, mx_o, mn_t, mx_t, day, shard, nulls in zip(
            paths,
            column("size_bytes"),
            column("num_records"),
            column(f"min.{OFFSET}"),
            column(f"max.{OFFSET}"),
            column(f"min.{time_column}"),
            column(f"max.{time_column}"),
            column(f"partition.{PARTITION}"),
            shards,
            column(f"null_count.{time_column}"),
            strict=True,
        )
    ]


def _remove_new_table(storage: Storage, uri: str, settings_uri: str) -> None:
    """Undo a table creation that failed: its settings file, and its directory if empty."""
    try:
        storage.delete(settings_uri)
        if storage.is_local:
            Path(uri).rmdir()
    except OSError:
        logger.warning("could not remove the half-created stream table at %s", uri)


# Delta Lake's timestamp is microseconds; its nanosecond type needs the timestampNanos table
# feature, which Polars, deltalake's own reader and most engines refuse to read. So a
# nanosecond column is declared to Delta as a timestamp marked with this field metadata,
# its files hold INT64 TIMESTAMP(NANOS) (Parquet readers get every digit, Delta readers
# that cast to the table's type get microseconds), and arrowlog reads the unit back.
_UNIT_KEY = "arrowlog.unit"


def _delta_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` as declared to Delta: nanosecond timestamps as marked microsecond ones."""
    return pa.schema(
        pa.field(f.name, pa.timestamp("us", tz=f.type.tz), f.nullable, {_UNIT_KEY: "ns"})
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
        else f
        for f in schema
    )


def _arrow_schema(schema: pa.Schema) -> pa.Schema:
    """The inverse of ``_delta_schema``: the Delta table's schema in the stream's types."""
    return pa.schema(
        pa.field(f.name, pa.timestamp("ns", tz=f.type.tz), f.nullable)
        if pa.types.is_timestamp(f.type) and (f.metadata or {}).get(_UNIT_KEY.encode()) == b"ns"
        else f
        for f in schema
    )


def stored_schema(user_schema: pa.Schema, shards: int) -> pa.Schema:
    """The columns a stream's files hold: a stream of several shards adds ``_partition``."""
    schema = system_schema(user_schema)
    if shards > 1:
        schema = schema.insert(
            schema.get_field_index(OFFSET), pa.field(SHARD_COLUMN, pa.int32(), nullable=False)
        )
    return schema


def check_shard(stream: str, shards: int, shard: int | None, *, required: bool = False) -> None:
    """Refuse a shard a stream of ``shards`` shards does not have, or none where offsets
    need one; also for a stream not created yet, so a refused append creates nothing.

    Raises:
        InvalidInput: naming the stream's shards.
    """
    if shard is None:
        if required and shards > 1:
            raise InvalidInput(
                f"stream {stream!r} has {shards} shards, each with its own offsets: "
                f"pass a shard from 0 to {shards - 1}"
            )
    elif not 0 <= shard < shards:
        if shards == 1:
            raise InvalidInput(f"stream {stream!r} has one shard (0), not {shard}")
        raise InvalidInput(f"stream {stream!r} has shards 0..{shards - 1}, not {shard}")
