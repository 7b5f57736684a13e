"""A stream: the one owner of its catalog, buffer, schema, locks and offsets.

Every change to a stream's segments goes through ``Stream.write_and_commit``: write the
segment files (``segments.py``), commit them to the stream's Delta table (``catalog.py``),
then swap them into the in-memory index under the state lock, so a reader sees the files
before the commit or after it, never both or neither. Its three callers: the flush
(``Stream.flush``: buffer → segments), compaction (``compaction.py``) and a cluster
writer's group commit (``cluster.py``).

``Streams`` is the set of streams of one data directory, and holds the state lock they
share. The locks, outermost first:

- ``Stream.compact_lock``: one compaction or retention run of the stream at a time
  (``compaction.py``): either one vacuums files the other may be reading;
- ``Stream.flush_lock``: one commit of the stream at a time, and vacuum only between
  commits (it would delete a commit's files before they are listed). Re-entrant: the
  flush and the cluster commit hold it from choosing their records to the index swap;
  compaction takes it only to commit;
- ``Streams.lock``, the state lock: offsets, the WAL write order, the buffers, the schema
  and the live-file index of every stream. Held only for work in memory.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from arrowlog.buffer import BufferedBatch, StreamBuffer
from arrowlog.catalog import SegmentInfo, StreamCatalog, stored_schema
from arrowlog.config import Settings
from arrowlog.errors import InvalidInput, StorageError, StreamNotFound
from arrowlog.schema import (
    INGESTED_AT,
    TIME_TYPE,
    choose_time_column,
    coerce,
    conform,
    merge_schemas,
    system_schema,
    validate_stream_name,
    with_offsets,
)
from arrowlog.segments import prepare_segment, write_segment_files
from arrowlog.snapshot import TableSnapshot, build_dataset
from arrowlog.storage import Storage
from arrowlog.wal import WalEntry

__all__ = ["Commit", "Flushed", "Stream", "Streams", "read_partition", "widened"]

logger = logging.getLogger(__name__)

# Segment files one commit encodes at once (Parquet encoding frees the GIL).
WRITE_THREADS = min(os.cpu_count() or 1, 4)


@dataclass(frozen=True, slots=True)
class Commit:
    """What one ``write_and_commit`` changed in the stream's index."""

    removed: list[str]  # paths no longer live
    added: list[SegmentInfo]  # newly live (in a cluster also other nodes' files, reloaded)
    rows_written: int  # rows in the files this commit wrote


class Flushed(NamedTuple):
    """What one flush wrote (for the metrics)."""

    rows: int
    seconds: float


class Stream:
    """One stream's state, and the only path by which its segments change.

    Built by ``Streams``; the Log, compaction and the cluster reach a stream's catalog,
    buffer and locks through it. ``schema`` holds the user columns only, and is replaced
    (never mutated) when the stream evolves; it, ``next_offset`` and ``buffer`` change
    only under the state lock.
    """

    def __init__(
        self,
        name: str,
        catalog: StreamCatalog,
        *,
        lock: threading.Lock,
        storage: Storage,
        settings: Settings,
        durable_seq: Callable[[], int],
        segment_fsync: Callable[[int], None] = os.fsync,
    ) -> None:
        self.name = name
        self.catalog = catalog
        self.schema = catalog.user_schema
        self.time_column = catalog.time_column
        self.next_offset = catalog.watermark + 1
        self.buffer = StreamBuffer()
        self.flush_lock = threading.RLock()
        # One compaction of the stream at a time: each vacuums at its end, which may
        # delete the files another compaction of the stream is still reading.
        self.compact_lock = threading.Lock()
        # Set when a commit failed: it may still have reached the Delta log (the error
        # came after the write), so the index is re-read before the next flush/compaction.
        self.catalog_unsure = False
        self._lock = lock
        self._storage = storage
        self._settings = settings
        self._durable_seq = durable_seq  # the WAL's last fsynced seq
        self._fsync = segment_fsync

    @property
    def stored_schema(self) -> pa.Schema:
        """The columns the stream's files hold: system columns, and the shard if several."""
        return stored_schema(self.schema, self.catalog.shards)

    # -- reading -----------------------------------------------------------------------------

    def snapshot(self) -> TableSnapshot:
        """The live segments and the durable buffer, taken together under the state lock."""
        with self._lock:
            durable = self.buffer.durable(self._durable_seq())
            return TableSnapshot(
                name=self.name,
                schema=self.stored_schema,
                time_column=self.time_column,
                segments=list(self.catalog.segments.values()),
                buffer=[b.table for b in durable],
                segments_key=self.catalog.cache_key,
                storage=self._storage,
                buffer_ids=tuple(b.seq for b in durable),
            )

    def last_durable_offset(self) -> int:
        """The last offset acknowledged by this process's WAL, buffered or in segments."""
        with self._lock:
            durable = self.buffer.durable(self._durable_seq())
            return durable[-1].last_offset if durable else self.catalog.watermark

    def read_buffer(self, offset: int, rows: int, max_bytes: int | None) -> pa.Table | None:
        """About ``rows`` durable records (``max_bytes``) from ``offset`` on, sliced from the
        buffer in O(log n); None when ``offset`` is before it (those are in segments)."""
        with self._lock:
            pieces = self.buffer.durable_from(offset, self._durable_seq(), rows)
            schema = self.stored_schema
        if pieces is None:
            return None
        tables, n, size = [], 0, 0
        for b in pieces:
            start = max(offset - b.first_offset, 0)
            table = conform(b.table.slice(start, rows - n), schema)
            tables.append(table)
            n += table.num_rows
            size += table.nbytes
            if n >= rows or (max_bytes is not None and size >= max_bytes):
                break
        return pa.concat_tables(tables) if tables else schema.empty_table()

    # -- appending (callers hold the state lock) ----------------------------------------------

    def flush_due(self) -> bool:
        """Whether the buffer is over a flush threshold (rows, bytes or age)."""
        st = self._settings
        return bool(self.buffer) and (
            self.buffer.rows >= st.flush_rows
            or self.buffer.nbytes >= st.flush_bytes
            or self.buffer.oldest_age >= st.flush_interval
        )

    def check_widening(self, old: pa.Schema, new: pa.Schema) -> None:
        """Refuse widening an int column to double when a stored value would change.

        A double holds every integer up to 2**53 exactly; beyond it, stored ids and
        counters would come back as other numbers. The stream's values are known from the
        segments' statistics and the buffer. Called with the state lock held (no append
        in between).
        """
        for f in new:
            if f.name not in old.names or not pa.types.is_floating(f.type):
                continue
            before = old.field(f.name).type
            if not pa.types.is_integer(before):
                continue
            lo, hi = self.catalog.value_range(f.name)
            for b in self.buffer.batches():
                if f.name in b.table.column_names:
                    bounds = pc.min_max(b.table.column(f.name))
                    lo = _min(lo, bounds["min"].as_py())
                    hi = _max(hi, bounds["max"].as_py())
            if (lo is not None and lo < -_EXACT_IN_DOUBLE) or (
                hi is not None and hi > _EXACT_IN_DOUBLE
            ):
                raise InvalidInput(
                    f"column {f.name!r} of stream {self.name!r} holds integers up to "
                    f"{hi if hi is not None and hi > _EXACT_IN_DOUBLE else lo}, which a double "
                    f"cannot hold exactly: it cannot widen from {before} to {f.type}; send "
                    "integers, or store the new values in another column"
                )

    def replay(self, entry: WalEntry) -> bool:
        """Put a WAL entry back in the buffer at recovery; False if already in segments.

        Raises:
            StorageError: the entry does not continue the stream's offsets.
        """
        last = entry.first_offset + entry.table.num_rows - 1
        if last <= self.catalog.watermark:
            return False  # committed to a segment by a flush before the crash
        if entry.first_offset != self.next_offset:
            raise StorageError(
                f"WAL entry {entry.seq} of stream {self.name!r} starts at offset "
                f"{entry.first_offset}, expected {self.next_offset}"
            )
        entry_schema = pa.schema([f for f in entry.table.schema if f.name != INGESTED_AT])
        self.schema = merge_schemas(self.schema, entry_schema)
        self.buffer.add(
            BufferedBatch(
                entry.seq, entry.first_offset, with_offsets(entry.table, entry.first_offset)
            )
        )
        self.next_offset = last + 1
        return True

    # -- committing --------------------------------------------------------------------------

    def write_and_commit(
        self,
        tables: Iterable[pa.Table],
        *,
        operation: str,
        schema: pa.Schema,
        replacing: Sequence[SegmentInfo] = (),
        watermark: int | None = None,
        shard: int = 0,
        flushed_through: int | None = None,
        widen: bool = False,
        max_rows: int | None = None,
    ) -> Commit | None:
        """Write ``tables`` as segment files, commit them, and make them live in the index.

        The files are written before the flush lock is taken (unless the caller holds
        it); the commit and the index swap run under it.

        Args:
            tables: rows in ``schema``, read one at a time (each may be a day to rewrite).
            operation: recorded in the commit ("flush", "compact", "append").
            schema: the stream's full schema, as the files hold it.
            replacing: live segments the new files replace (they leave in the same
                commit). If one of them is no longer live when the commit would run
                (retention or another commit removed it), the rewrite is stale: its files,
                never committed, are deleted and None is returned.
            watermark, shard: the last offset of ``shard`` the commit makes durable.
            flushed_through: the buffer's records up to this offset are in the files:
                they leave the buffer in the same swap, so readers see them exactly once.
            widen: write the types ``schema`` widens into the table (``replacing`` is
                then every live file).
            max_rows: the most rows per file (compaction's target size).

        Raises:
            StorageError: a file or the commit failed. A failed commit may still have
                landed, so the index is reconciled with the Delta log before the next
                flush or compaction (``catalog_unsure``).
        """
        files = [
            f
            for table in tables
            for f in write_segment_files(
                prepare_segment(table, self.time_column),
                self.catalog.uri,
                self._settings,
                self._storage,
                max_rows=max_rows,
                parallel=WRITE_THREADS,
                fsync=self._fsync,
            )
        ]
        ours = {self._storage.join(self.catalog.uri, f.relpath) for f in files}
        with self.flush_lock:
            if any(seg.path not in self.catalog.segments for seg in replacing):
                for uri in ours:
                    self._storage.delete(uri)
                return None
            try:
                removed, added = self.catalog.commit(
                    files,
                    schema=schema,
                    remove=list(replacing),
                    watermark=watermark,
                    shard=shard,
                    operation=operation,
                    widen=widen,
                )
            except StorageError:
                self.catalog_unsure = True
                raise
            with self._lock:
                self.catalog.remove_segments(removed)
                self.catalog.add_segments(added)
                if flushed_through is not None:
                    self.buffer.drop_through(flushed_through)
        return Commit(removed, added, sum(seg.rows for seg in added if seg.path in ours))

    def flush(self) -> Flushed | None:
        """Write the durable buffer to segments in one commit; None if it was empty.

        The first flush that stores a widened column type also rewrites every live
        segment in it, so that every file of the table holds the type the Delta schema
        names: readers that do not cast (Polars ``scan_delta``, Spark) read the table as
        it is. It costs one rewrite of the stream per widening, like a compaction.

        Raises:
            StorageError: the commit failed; the records stay buffered and in the WAL.
        """
        with self.flush_lock:
            self.reconcile_if_unsure()
            with self._lock:
                batches = self.buffer.durable(self._durable_seq())
                schema = system_schema(self.schema)
            if not batches:
                return None
            started = time.perf_counter()
            table = pa.concat_tables([conform(b.table, schema) for b in batches])
            last = batches[-1].last_offset
            widened_columns = self.catalog.widened(schema)
            old = list(self.catalog.segments.values()) if widened_columns else []
            commit = self.write_and_commit(
                itertools.chain([table], self._days(old, schema)),
                operation="flush",
                schema=schema,
                replacing=old,
                watermark=last,
                flushed_through=last,
                widen=bool(widened_columns),
            )
            assert commit is not None  # the flush lock was held throughout: never stale
            if widened_columns:
                logger.info(
                    "stream %r: widened %s; rewrote its %d segments",
                    self.name,
                    ", ".join(widened_columns),
                    len(old),
                )
            seconds = time.perf_counter() - started
            logger.info(
                "flushed %d rows of %r (offsets to %d) into %d segments in %.3f s",
                table.num_rows,
                self.name,
                last,
                len(commit.added),
                seconds,
            )
            return Flushed(table.num_rows, seconds)

    def drop_partitions(self, days: list[date]) -> list[str]:
        """Retention: remove whole day partitions (a metadata-only Delta delete) from the
        table and the index. Returns the paths removed."""
        with self.flush_lock:
            removed = self.catalog.drop_partitions(days)
            with self._lock:
                self.catalog.remove_segments(removed)
        return removed

    def vacuum(self, grace_hours: int) -> None:
        """Delete files removed from the table more than ``grace_hours`` ago.

        Under the flush lock: vacuum also deletes files no commit lists, which is what a
        commit's files look like until it runs.
        """
        with self.flush_lock:
            self.catalog.vacuum(grace_hours)

    def _days(self, segments: list[SegmentInfo], schema: pa.Schema) -> Iterator[pa.Table]:
        """Every row of ``segments`` in ``schema``, one day partition at a time."""
        snap = TableSnapshot(self.name, schema, self.time_column, segments, storage=self._storage)
        for day in sorted({seg.day for seg in segments if seg.day is not None}):
            yield read_partition(snap, day)

    # -- agreeing with the Delta log (callers hold the flush lock) ----------------------------

    def reconcile_if_unsure(self) -> None:
        """After a commit whose outcome is unknown: take the Delta log's word for it.

        If the commit did land, its records are in segments now: they leave the buffer
        (flushing them again would duplicate them), and the index gets its files.
        """
        if not self.catalog_unsure:
            return
        removed, added = self.catalog.reload()
        watermark = self.catalog.watermark
        with self._lock:
            self.catalog.remove_segments(removed)
            self.catalog.add_segments(added)
            self.buffer.drop_through(watermark)
            self.catalog_unsure = False
        if removed or added:
            logger.warning(
                "stream %r: a commit reported as failed had landed (%d files added, %d "
                "removed, offsets to %d committed); index updated",
                self.name,
                len(added),
                len(removed),
                watermark,
            )

    def reload(self) -> None:
        """Apply other writers' commits (cluster mode) to the index and the schema."""
        removed, added = self.catalog.reload()
        if removed or added:
            with self._lock:
                self.catalog.remove_segments(removed)
                self.catalog.add_segments(added)
        stored = self.catalog.user_schema
        if not all(name in self.schema.names for name in stored.names):
            with self._lock:
                self.schema = merge_schemas(self.schema, stored)


class Streams:
    """The streams of one data directory, by name, and the state lock they share.

    Names are case-insensitive (SQL folds them): one spelling per stream, and a name in
    another case finds it when it is the only match.
    """

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        durable_seq: Callable[[], int],
        segment_fsync: Callable[[int], None] = os.fsync,
    ) -> None:
        self.lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._streams: dict[str, Stream] = {}
        self._storage = storage
        self._settings = settings
        self._durable_seq = durable_seq
        self._fsync = segment_fsync

    def _new(self, name: str, catalog: StreamCatalog) -> Stream:
        return Stream(
            name,
            catalog,
            lock=self.lock,
            storage=self._storage,
            settings=self._settings,
            durable_seq=self._durable_seq,
            segment_fsync=self._fsync,
        )

    # -- looking up --------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._streams

    def __getitem__(self, name: str) -> Stream:
        return self._streams[name]

    def __len__(self) -> int:
        return len(self._streams)

    def all(self) -> list[Stream]:
        return list(self._streams.values())

    def names(self) -> list[str]:
        return sorted(self._streams)

    def get(self, name: str) -> Stream:
        """The stream ``name`` refers to. Raises StreamNotFound (InvalidInput: a bad name)."""
        found = self.find(name) if isinstance(name, str) else None
        s = None if found is None else self._streams.get(found)
        if s is None:
            validate_stream_name(name)
            raise StreamNotFound(f"stream {name!r} not found")
        return s

    def find(self, name: str) -> str | None:
        """The stream ``name`` refers to: the exact name, else its only case-insensitive match."""
        if name in self._streams:
            return name
        folded = [n for n in list(self._streams) if n.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def refuse_case_variant(self, name: str) -> None:
        """Refuse a new name that differs only in case from an existing stream's."""
        existing = self.find(name)
        if existing is not None and existing != name:
            raise InvalidInput(
                f"stream {name!r} differs only in case from the existing stream {existing!r}; "
                f"stream names are case-insensitive: use {existing!r}"
            )

    def buffered_bytes(self) -> int:
        return sum(s.buffer.nbytes for s in self.all())

    # -- creating and loading ----------------------------------------------------------------

    def create(self, name: str, table: pa.Table, time_column: str | None) -> tuple[Stream, bool]:
        """The stream ``name``, its Delta table created from ``table``'s columns if new.

        Returns:
            (the stream, whether this call created it).
        """
        with self._create_lock:
            if name in self._streams:
                return self._streams[name], False
            self.refuse_case_variant(name)
            tc = choose_time_column(table, time_column)
            now = pa.scalar(datetime.now(UTC), TIME_TYPE)
            _, user_schema = coerce(table, None, tc, now, stream=name)
            catalog = StreamCatalog.create(
                self._storage, name, user_schema, tc, shards=self._settings.shards
            )
            s = self._new(name, catalog)
            with self.lock:
                self._streams[name] = s
            logger.info("created stream %r (time column %r)", name, tc)
        return s, True

    def load(self) -> None:
        """Open every stream the storage holds that is not open yet (other nodes' new ones)."""
        for name in self._storage.list_tables():
            if name not in self._streams and StreamCatalog.exists(self._storage, name):
                with self._create_lock:
                    if name not in self._streams:
                        s = self._new(name, StreamCatalog.open(self._storage, name))
                        with self.lock:
                            self._streams[name] = s

    def replay(self, entries: Iterable[WalEntry]) -> tuple[int, int]:
        """Recovery: put the WAL's entries back in the buffers. Returns (replayed, skipped)."""
        replayed = skipped = 0
        for entry in entries:
            s = self._streams.get(entry.stream)
            if s is None:
                # The catalog is created before a stream's first WAL entry; it can only be
                # missing if someone deleted it. Recreate it so acknowledged data survives.
                user = entry.table.drop_columns([INGESTED_AT])
                tc = choose_time_column(user)
                s = self._new(
                    entry.stream,
                    StreamCatalog.create(self._storage, entry.stream, user.schema, tc),
                )
                self._streams[entry.stream] = s
            if s.replay(entry):
                replayed += 1
            else:
                skipped += 1
        return replayed, skipped

    # -- cluster mode ------------------------------------------------------------------------

    def refresh_from_storage(self) -> None:
        """Pick up streams other nodes created and commits they made."""
        self.load()
        for s in self.all():
            with s.flush_lock:
                s.reload()

    def take_shard(self, stream: str, shard: int) -> int:
        """This node now writes ``shard`` of ``stream``: its next offset, from the Delta log."""
        s = self.get(stream)
        with s.flush_lock:
            s.reload()
            return s.catalog.watermark_of(shard) + 1


def read_partition(snap: TableSnapshot, day: date) -> pa.Table:
    """Every row of the snapshot's segments in day partition ``day``, in its schema."""
    files = [seg for seg in snap.segments if seg.day == day]
    only = replace(snap, segments=files, buffer=[], segments_key=None)
    return build_dataset(only).to_table()


def widened(old: pa.Schema, new: pa.Schema) -> list[str]:
    """Messages naming the columns whose type ``new`` widens: ``column 'n' (int64 -> double)``."""
    return [
        f"column {f.name!r} ({old.field(f.name).type} -> {f.type})"
        for f in new
        if f.name in old.names and old.field(f.name).type != f.type
    ]


_EXACT_IN_DOUBLE = 2**53


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
