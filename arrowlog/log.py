"""The Log: streams, durable appends, flushes, recovery, SQL and replay over one directory.

This is the single service layer. The Flight and HTTP front ends decode a request, call one
``Log`` method and encode the answer; ingest, offsets and query logic live only here and in
the rooms it calls (schema → wal → buffer → segments → catalog → query).

Directory layout::

    <data_dir>/LOCK                 held (flock) by the one process that owns the directory
    <data_dir>/wal/*.wal            the write-ahead log, shared by all streams
    <data_dir>/streams/<name>/      the stream's Delta table (its _delta_log is the catalog)

Concurrency: one state lock (``_lock``) orders offset assignment, the WAL write and the
buffer insert, so WAL order is offset order; it also makes a flush's "segments added,
buffer trimmed" swap atomic for readers. The expensive parts of an append (conversion,
coercion, IPC encoding, fsync) and of a flush (Parquet writing, the Delta commit) run
outside it, so appends never wait for a flush.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from arrowlog.buffer import BufferedBatch, StreamBuffer
from arrowlog.catalog import SegmentInfo, StreamCatalog, stored_schema
from arrowlog.cluster import ClusterNode
from arrowlog.compaction import expired_partitions, partitions_to_compact, read_partition
from arrowlog.config import Settings
from arrowlog.errors import (
    BatchTooLarge,
    InvalidInput,
    StorageError,
    StreamNotFound,
    TooManyTails,
    Unavailable,
)
from arrowlog.metrics import LogGauges, Metrics, StreamGauges
from arrowlog.results import AppendResult, CompactionResult, RetentionResult, StreamInfo
from arrowlog.schema import (
    INGESTED_AT,
    OFFSET,
    STREAM_PARTITION,
    TIME_TYPE,
    choose_time_column,
    coerce,
    conform,
    merge_schemas,
    normalize,
    system_schema,
    to_table,
    validate_stream_name,
    with_offsets,
)
from arrowlog.segments import SegmentFile, prepare_segment, write_segment_files
from arrowlog.snapshot import TableSnapshot, build_dataset
from arrowlog.sql.catalog import StreamTables, TableShape
from arrowlog.sql.daft_engine import DaftEngine, VersionedSnapshot
from arrowlog.sql.engine import Engine, SqlEngine
from arrowlog.sql.policy import Params
from arrowlog.sql.result import QueryResult
from arrowlog.storage import Storage
from arrowlog.tails import (
    CHUNK_ROWS,
    BacklogChunks,
    TailRegistry,
    TailSlot,
    check_offset,
)
from arrowlog.wal import WriteAheadLog, encode_batch

__all__ = ["IOHooks", "Log", "Tail"]

logger = logging.getLogger(__name__)

# Segment files a flush or compaction encodes at once (Parquet encoding frees the GIL).
_WRITE_THREADS = min(os.cpu_count() or 1, 4)
# Threads doing the reading (and encoding) of every tail (see ``Tail.next``).
_TAIL_WORKERS = min(os.cpu_count() or 1, 2)


@dataclass(frozen=True, slots=True)
class IOHooks:
    """Test seam (fault injection): the system calls that make data durable.

    Production uses the defaults. ``tests/reliability/test_faults.py`` replaces one with a
    function that raises ``OSError(errno.ENOSPC)`` or ``OSError(errno.EIO)`` for a while,
    to check that the write is refused with ``StorageError``, nothing acknowledged is lost,
    reads keep working and writes resume once the fault clears.

    Example: ``Log(Settings(data_dir=d), io_hooks=IOHooks(wal_fsync=failing_fsync))``
    """

    wal_write: Callable[[int, Sequence[bytes | pa.Buffer]], int] = os.writev
    wal_fsync: Callable[[int], None] = os.fdatasync
    segment_fsync: Callable[[int], None] = os.fsync


class _Stream:
    def __init__(self, name: str, catalog: StreamCatalog) -> None:
        self.name = name
        self.catalog = catalog
        self.schema = (
            catalog.user_schema
        )  # user columns only; replaced (never mutated) on evolution
        self.time_column = catalog.time_column
        self.next_offset = catalog.watermark + 1
        self.buffer = StreamBuffer()
        self.flush_lock = threading.Lock()
        # One compaction of the stream at a time: each vacuums at its end, which may
        # delete the files another compaction of the stream is still reading.
        self.compact_lock = threading.Lock()
        # Set when a commit failed: it may still have reached the Delta log (the error
        # came after the write), so the index is re-read before the next flush/compaction.
        self.catalog_unsure = False


class Log:
    """An arrowlog data directory, opened for reading and writing by this process.

    Not constructed directly: use ``arrowlog.open(path)``. Thread-safe. Also a context
    manager; ``close()`` flushes every buffer. ``metrics`` (a fresh ``Metrics`` unless one
    is passed) counts what the log does; servers export it at ``/metrics``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        io_hooks: IOHooks | None = None,
    ) -> None:
        # Query settings left unset take the embedded defaults (arrowlog serve sets its own
        # first, arrowlog._serve.serve_settings): queries in this process, no time limit.
        if settings.query_workers is None or settings.query_timeout is None:
            settings = replace(
                settings,
                query_workers=settings.query_workers or 0,
                query_timeout=settings.query_timeout or 0.0,
            )
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self._io = io_hooks or IOHooks()
        self.path = Path(settings.data_dir)
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._closed = False
        self.storage = Storage.from_settings(settings)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create data directory {self.path}: {e}") from e
        self._lock_fd = _lock_directory(self.path)
        try:
            self._wal = WriteAheadLog(
                self.path / "wal",
                segment_bytes=settings.wal_segment_bytes,
                fsync=settings.wal_fsync,
                fsync_hook=self._io.wal_fsync,
                write_hook=self._io.wal_write,
                on_fsync=self.metrics.wal_fsync_seconds.observe,
            )
            self._recover()
        except BaseException:
            os.close(self._lock_fd)
            raise
        # Every SQL engine, in this process or in query workers (query_workers).
        self._sql = SqlEngine(
            settings,
            StreamTables(names=self._names, shape=self._shape, snapshot=self._snapshot_or_none),
            daft=DaftEngine(
                self._daft,
                storage_options=self.storage.delta_options,
                address=settings.ray_address,
            ),
            on_plan=self.metrics.query_planned,
            on_snapshot=self.metrics.query_snapshot,
        )
        self.metrics.watch(self._gauges)
        # Every tail's slot and wake-ups: an acknowledged append publishes to it, O(1).
        self.tails = TailRegistry(
            max_tails=settings.max_tails,
            max_per_client=settings.max_tails_per_client,
            on_change=self.metrics.tail_changed,
        )
        self._backlog = BacklogChunks()
        # Every tail's reads (and an HTTP tail's JSON encoding) run on these few threads,
        # not on the tail's own: hundreds of tails then cost appends no more CPU (and GIL)
        # than two busy threads, and Arrow's allocator keeps two thread heaps, not hundreds.
        self._tail_workers = ThreadPoolExecutor(
            max_workers=_TAIL_WORKERS, thread_name_prefix="arrowlog-tail-worker"
        )
        self._drained = threading.Condition()  # notified after every flush (backpressure)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flusher = threading.Thread(
            target=self._run_flusher, name="arrowlog-flusher", daemon=True
        )
        self._flusher.start()
        self._maintainer = threading.Thread(
            target=self._run_maintenance, name="arrowlog-maintenance", daemon=True
        )
        self._maintainer.start()
        # Cluster mode (node_id set): leases decide which partitions this node writes.
        self.cluster: ClusterNode | None = None
        if settings.node_id is not None:
            self.cluster = ClusterNode(self)
            try:
                self.cluster.start()
            except BaseException:
                self.close()
                raise

    # -- recovery --------------------------------------------------------------------------

    def _recover(self) -> None:
        started = time.perf_counter()
        for name in self.storage.list_tables():
            if StreamCatalog.exists(self.storage, name):
                self._streams[name] = _Stream(name, StreamCatalog.open(self.storage, name))
        replayed = skipped = 0
        for entry in self._wal.replay():
            s = self._streams.get(entry.stream)
            if s is None:
                # The catalog is created before a stream's first WAL entry; it can only be
                # missing if someone deleted it. Recreate it so acknowledged data survives.
                user = entry.table.drop_columns([INGESTED_AT])
                tc = choose_time_column(user)
                s = _Stream(
                    entry.stream,
                    StreamCatalog.create(self.storage, entry.stream, user.schema, tc),
                )
                self._streams[entry.stream] = s
            last = entry.first_offset + entry.table.num_rows - 1
            if last <= s.catalog.watermark:
                skipped += 1  # already committed to a segment by a flush before the crash
                continue
            if entry.first_offset != s.next_offset:
                raise StorageError(
                    f"WAL entry {entry.seq} of stream {s.name!r} starts at offset {entry.first_offset}, "
                    f"expected {s.next_offset}"
                )
            entry_schema = pa.schema([f for f in entry.table.schema if f.name != INGESTED_AT])
            s.schema = merge_schemas(s.schema, entry_schema)
            s.buffer.add(
                BufferedBatch(
                    entry.seq, entry.first_offset, with_offsets(entry.table, entry.first_offset)
                )
            )
            s.next_offset = last + 1
            replayed += 1
        self._release_wal()
        logger.info(
            "opened %s: %d streams, %d WAL entries replayed, %d already in segments (%.3f s)",
            self.path,
            len(self._streams),
            replayed,
            skipped,
            time.perf_counter() - started,
        )

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        stream: str,
        data: Any,
        *,
        time_column: str | None = None,
        partition: int | None = None,
    ) -> AppendResult:
        """Append records to ``stream`` durably; the stream is created on first write.

        Args:
            stream: the stream name (``[A-Za-z_][A-Za-z0-9_]{0,127}``).
            data: a list of dicts, a dict of lists, a pyarrow Table/RecordBatch/reader,
                a pandas or polars DataFrame, or any Arrow stream (``__arrow_c_stream__``).
            time_column: for a new stream, its time column (default: the first of
                ``timestamp``, ``ts``, ``time``, ``@timestamp``, ``date`` holding times,
                else ``_ingested_at``).
            partition: cluster mode: the partition to write (default: one this node holds).
                A partition another node writes raises ``NotPartitionOwner`` naming it.

        Returns:
            the offsets the records got. Returned only after the WAL fsync.

        Raises:
            InvalidInput: bad name, empty batch, a type conflicting with the stream's schema
                (the whole batch is rejected; nothing is written).
            BatchTooLarge: the batch is over ``max_batch_bytes``.
            StorageError: the WAL could not be written; the records are not acknowledged.

        Example: ``log.append("http_logs", [{"ts": "2026-11-23T10:00:00Z", "level": "INFO"}])``
        """
        self._check_open()
        name = validate_stream_name(stream)
        table = to_table(data)
        if table.nbytes > self.settings.max_batch_bytes:
            raise BatchTooLarge(
                f"batch of {table.nbytes} bytes is over the limit of "
                f"{self.settings.max_batch_bytes} bytes (max_batch_bytes)"
            )
        table = normalize(table, max_string_bytes=self.settings.max_string_bytes)
        s = self._streams.get(name) or self._create(name, table, time_column)
        if time_column is not None and time_column != s.time_column:
            raise InvalidInput(
                f"stream {name!r} already uses time column {s.time_column!r}, not {time_column!r}"
            )
        now = pa.scalar(datetime.now(UTC), TIME_TYPE)
        if self.cluster is not None:
            return self._append_to_cluster(s, table, now, partition)
        s.catalog.check_partition(partition)  # bad input is refused before any wait
        self._wait_for_buffer_room()
        while True:
            schema = s.schema
            coerced, new_schema = coerce(table, schema, s.time_column, now, stream=name)
            try:
                encoded = encode_batch(coerced)
            except pa.ArrowInvalid as e:  # e.g. a type Arrow IPC cannot frame
                raise InvalidInput(f"the batch cannot be written to the WAL: {e}") from e
            with self._lock:
                self._check_open()
                if s.schema is not schema:
                    continue  # a concurrent append evolved the schema: coerce again
                _check_widening(s, schema, new_schema)
                if self._wal.broken:
                    self._repair_wal_locked()  # StorageError while the disk still fails
                first = s.next_offset
                seq = self._wal.write(name, first, encoded)
                s.next_offset = first + coerced.num_rows
                if not new_schema.equals(schema):
                    s.schema = new_schema
                s.buffer.add(BufferedBatch(seq, first, with_offsets(coerced, first)))
                due = self._flush_due(s)
            break
        self._wal.sync(seq)
        self.metrics.ingested(name, coerced.num_rows, encoded.ipc.size)
        self.tails.publish(name, first + coerced.num_rows)
        if due:
            self._wake.set()
        return AppendResult(name, coerced.num_rows, first, first + coerced.num_rows - 1)

    def _buffered_bytes(self) -> int:
        return sum(s.buffer.nbytes for s in list(self._streams.values()))

    def _wait_for_buffer_room(self) -> None:
        """Backpressure: hold an append while the buffers are over ``max_buffer_bytes``.

        Without it a burst faster than Parquet encoding grows the buffers (and the WAL)
        until the process runs out of memory. Waiting here slows each client to the rate
        flushes sustain; past ``backpressure_timeout`` the append is refused whole.
        """
        limit = self.settings.max_buffer_bytes
        if self._buffered_bytes() <= limit:
            return
        deadline = time.monotonic() + self.settings.backpressure_timeout
        self.metrics.backpressure()
        with self._drained:
            while self._buffered_bytes() > limit:
                self._check_open()
                self._wake.set()  # the flusher flushes everything when over the limit
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Unavailable(
                        f"ingest is faster than flushes can write: {self._buffered_bytes()} "
                        f"bytes buffered, over max_buffer_bytes={limit}; retry later"
                    )
                self._drained.wait(min(remaining, 0.5))

    def _append_to_cluster(
        self, s: _Stream, table: pa.Table, now: pa.Scalar, partition: int | None
    ) -> AppendResult:
        """Cluster mode: acknowledged once committed to the shared table (``cluster.py``)."""
        assert self.cluster is not None
        while True:
            schema = s.schema
            coerced, new_schema = coerce(table, schema, s.time_column, now, stream=s.name)
            with self._lock:
                if s.schema is not schema:
                    continue  # a concurrent append evolved the schema: coerce again
                if _widened(schema, new_schema):
                    raise InvalidInput(
                        f"stream {s.name!r}: {_widened(schema, new_schema)[0]} would widen "
                        "the column's type, which cluster mode does not do (every node "
                        "writes the table): send values of the column's type"
                    )
                if not new_schema.equals(schema):
                    s.schema = new_schema
            break
        result = self.cluster.append(s.name, coerced, partition)
        self.metrics.ingested(s.name, coerced.num_rows, coerced.nbytes)
        self.tails.publish(s.name, -1)  # cluster tails re-read the watermark when woken
        return result

    def _take_partition(self, stream: str, partition: int) -> int:
        """Cluster mode: this node now writes ``partition``; its next offset, from the log."""
        s = self._get(stream)
        with s.flush_lock:
            self._reload_stream(s)
            return s.catalog.watermark_of(partition) + 1

    def _reload_stream(self, s: _Stream) -> None:
        """Apply other writers' commits to the index (call with ``s.flush_lock`` held)."""
        removed, added = s.catalog.reload()
        if removed or added:
            with self._lock:
                s.catalog.remove_segments(removed)
                s.catalog.add_segments(added)
        stored = s.catalog.user_schema
        if not all(name in s.schema.names for name in stored.names):
            with self._lock:
                s.schema = merge_schemas(s.schema, stored)

    def _refresh_from_storage(self) -> None:
        """Cluster mode: pick up streams other nodes created and commits they made."""
        for name in self.storage.list_tables():
            if name not in self._streams and StreamCatalog.exists(self.storage, name):
                with self._create_lock:
                    if name not in self._streams:
                        s = _Stream(name, StreamCatalog.open(self.storage, name))
                        with self._lock:
                            self._streams[name] = s
        for s in list(self._streams.values()):
            with s.flush_lock:
                self._reload_stream(s)

    def _repair_wal_locked(self) -> None:
        """Resume writing after a failed WAL write or fsync (the fault has cleared).

        The entries the failure took back were never acknowledged: they leave the buffers
        and their offsets are handed out again, so offsets stay gap-free. A
        column such an entry added stays in the schema (nullable, no values).
        Called with the state lock held, so no append runs meanwhile.
        """
        first_lost = self._wal.repair()
        dropped = 0
        for s in self._streams.values():
            taken = s.buffer.take_back(first_lost)
            if taken:
                s.next_offset = taken[0].first_offset
                dropped += sum(b.table.num_rows for b in taken)
        logger.warning(
            "writes resume after a WAL failure; %d unacknowledged records were dropped", dropped
        )

    def create_stream(
        self, stream: str, schema: pa.Schema | None = None, *, time_column: str | None = None
    ) -> StreamInfo:
        """Create a stream with a declared schema (and time column) before its first write.

        Raises:
            InvalidInput: the stream exists already, or the schema or time column is unusable.
        """
        self._check_open()
        name = validate_stream_name(stream)
        if name in self._streams:
            raise InvalidInput(f"stream {name!r} already exists")
        self._refuse_case_variant(name)
        empty = normalize(
            (schema or pa.schema([])).empty_table(), max_string_bytes=self.settings.max_string_bytes
        )
        self._create(name, empty, time_column)
        return self.describe(name)

    def _refuse_case_variant(self, name: str) -> None:
        """Stream names are case-insensitive (SQL folds them): one spelling per stream."""
        existing = self._find(name)
        if existing is not None and existing != name:
            raise InvalidInput(
                f"stream {name!r} differs only in case from the existing stream {existing!r}; "
                f"stream names are case-insensitive: use {existing!r}"
            )

    def _find(self, name: str) -> str | None:
        """The stream ``name`` refers to: the exact name, else its only case-insensitive match."""
        if name in self._streams:
            return name
        folded = [n for n in list(self._streams) if n.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def _create(self, name: str, table: pa.Table, time_column: str | None) -> _Stream:
        with self._create_lock:
            if name in self._streams:
                return self._streams[name]
            self._refuse_case_variant(name)
            tc = choose_time_column(table, time_column)
            now = pa.scalar(datetime.now(UTC), TIME_TYPE)
            _, user_schema = coerce(table, None, tc, now, stream=name)
            catalog = StreamCatalog.create(
                self.storage, name, user_schema, tc, partitions=self.settings.partitions
            )
            s = _Stream(name, catalog)
            with self._lock:
                self._streams[name] = s
            logger.info("created stream %r (time column %r)", name, tc)
        if self.cluster is not None:
            self.cluster.claim(name)
        return s

    # -- flushing --------------------------------------------------------------------------

    def flush(self, stream: str | None = None) -> None:
        """Write buffered records to Parquet segments now (one Delta commit per stream).

        Raises:
            StreamNotFound: ``stream`` does not exist.
            StorageError: the commit failed; the records stay buffered and in the WAL.
        """
        self._check_open()
        for s in self._select(stream):
            self._flush_stream(s)

    def _flush_due(self, s: _Stream) -> bool:
        st = self.settings
        return bool(s.buffer) and (
            s.buffer.rows >= st.flush_rows
            or s.buffer.nbytes >= st.flush_bytes
            or s.buffer.oldest_age >= st.flush_interval
        )

    def _reconcile(self, s: _Stream) -> None:
        """After a commit whose outcome is unknown: take the Delta log's word for it.

        If the commit did land, its records are in segments now: they leave the buffer
        (flushing them again would duplicate them), and the index gets its files.
        Called with the stream's flush lock held.
        """
        removed, added = s.catalog.reload()
        watermark = s.catalog.watermark
        with self._lock:
            s.catalog.remove_segments(removed)
            s.catalog.add_segments(added)
            s.buffer.drop_through(watermark)
            s.catalog_unsure = False
        if removed or added:
            logger.warning(
                "stream %r: a commit reported as failed had landed (%d files added, %d "
                "removed, offsets to %d committed); index updated",
                s.name,
                len(added),
                len(removed),
                watermark,
            )

    def _commit(self, s: _Stream, *args: Any, **kwargs: Any) -> tuple[list[str], list[Any]]:
        try:
            return s.catalog.commit(*args, **kwargs)
        except StorageError:
            s.catalog_unsure = True
            raise

    def _flush_stream(self, s: _Stream) -> int:
        with s.flush_lock:
            if s.catalog_unsure:
                self._reconcile(s)
            with self._lock:
                batches = s.buffer.durable(self._wal.synced_seq)
                schema = system_schema(s.schema)
            if not batches:
                return 0
            started = time.perf_counter()
            table = pa.concat_tables([conform(b.table, schema) for b in batches])
            last = batches[-1].last_offset
            files = write_segment_files(
                prepare_segment(table, s.time_column),
                s.catalog.uri,
                self.settings,
                self.storage,
                parallel=_WRITE_THREADS,
                fsync=self._io.segment_fsync,
            )
            old: list[SegmentInfo] = []
            widen = bool(s.catalog.widened(schema))
            if widen:
                rewritten, old = self._rewrite_segments(s, schema)
                files += rewritten
            removed, added = self._commit(
                s,
                files,
                schema=schema,
                remove=old,
                watermark=last,
                operation="flush",
                widen=widen,
            )
            with self._lock:
                s.catalog.remove_segments(removed)
                s.catalog.add_segments(added)
                s.buffer.drop_through(last)
            self._release_wal()
            seconds = time.perf_counter() - started
            self.metrics.flushed(s.name, table.num_rows, seconds)
            logger.info(
                "flushed %d rows of %r (offsets to %d) into %d segments in %.3f s",
                table.num_rows,
                s.name,
                last,
                len(added),
                seconds,
            )
            return table.num_rows

    def _rewrite_segments(
        self, s: _Stream, schema: pa.Schema
    ) -> tuple[list[SegmentFile], list[SegmentInfo]]:
        """Every live segment rewritten in ``schema``: (new files, the segments they replace).

        Run by the flush that first stores a widened column type (called with the flush
        lock held), so that every file of the table holds the type the Delta schema names:
        readers that do not cast (Polars ``scan_delta``, Spark) read the table as it is.
        It costs one rewrite of the stream per widening, like a compaction.
        """
        old = list(s.catalog.segments.values())
        snap = TableSnapshot(s.name, schema, s.time_column, old, storage=self.storage)
        files: list[SegmentFile] = []
        for day in sorted({seg.day for seg in old if seg.day is not None}):
            files += write_segment_files(
                prepare_segment(read_partition(snap, day), s.time_column),
                s.catalog.uri,
                self.settings,
                self.storage,
                parallel=_WRITE_THREADS,
                fsync=self._io.segment_fsync,
            )
        logger.info(
            "stream %r: widened %s; rewrote %d segments into %d",
            s.name,
            ", ".join(s.catalog.widened(schema)),
            len(old),
            len(files),
        )
        return files, old

    def _release_wal(self) -> None:
        with self._lock:
            needed = [s.buffer.oldest_seq for s in self._streams.values() if s.buffer]
            below = min((q for q in needed if q is not None), default=self._wal.next_seq)
        self._wal.release(below)

    def _run_flusher(self) -> None:
        tick = min(self.settings.flush_interval / 4, 0.5)
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            # Over the backpressure limit, every stream with records flushes, due or not.
            pressed = self._buffered_bytes() > self.settings.max_buffer_bytes // 2
            for s in list(self._streams.values()):
                with self._lock:
                    due = self._flush_due(s) or (pressed and bool(s.buffer))
                if not due:
                    continue
                try:
                    self._flush_stream(s)
                except Exception:
                    # The records stay in the buffer and the WAL; the next tick retries.
                    # Whatever one stream's flush raises, the others keep flushing.
                    logger.exception("background flush of stream %r failed", s.name)
                finally:
                    with self._drained:
                        self._drained.notify_all()

    # -- lifecycle: compaction and retention -------------------------------------------------

    def compact(self, stream: str | None = None) -> list[CompactionResult]:
        """Merge each day partition's small segments into time-sorted files of the target size.

        One Delta commit per partition swaps old files for new (remove + add); appends
        continue meanwhile, flushes of the stream wait. Files removed are deleted by vacuum
        only after ``vacuum_grace_hours``, so queries already running keep their files.

        Example: ``log.compact("http_logs")``
        """
        self._check_open()
        return [self._compact_stream(s) for s in self._select(stream)]

    def _compact_stream(self, s: _Stream) -> CompactionResult:
        with s.compact_lock:
            return self._compact_stream_locked(s)

    def _compact_stream_locked(self, s: _Stream) -> CompactionResult:
        """Merge each day's small segments of ``s``; the flush lock is held only to commit.

        Reading and rewriting a day can take seconds; holding the flush lock all along
        would stall flushes, then (through backpressure) ingest. Only small segments are
        merged: a file compaction already wrote is never rewritten again.
        """
        started = time.perf_counter()
        target = self.settings.compact_target_bytes
        removed_total = added_total = rows = 0
        if s.catalog.widened(system_schema(s.schema)):
            # A widened column is stored by the flush, which rewrites every segment:
            # compacting first would only rewrite the files that flush rewrites again.
            self._flush_stream(s)
        with s.flush_lock:
            if s.catalog_unsure:
                self._reconcile(s)
            snap = self._snapshot(s.name)
        work = [
            (day, [seg for seg in group if seg.day == day and seg.size < target // 2])
            for group in self._compactable(s, snap.segments)
            for day in partitions_to_compact(group, target)
        ]
        days = []
        for day, old in work:
            part = replace(snap, segments=old, segments_key=None)
            table = read_partition(part, day)
            rows_per_file = max(1, target * table.num_rows // max(1, sum(seg.size for seg in old)))
            files = write_segment_files(
                prepare_segment(table, s.time_column),
                s.catalog.uri,
                self.settings,
                self.storage,
                max_rows=rows_per_file,
                parallel=_WRITE_THREADS,
                fsync=self._io.segment_fsync,
            )
            ours = {self.storage.join(s.catalog.uri, f.relpath) for f in files}
            with s.flush_lock:
                if any(seg.path not in s.catalog.segments for seg in old):
                    # Retention (or a compaction elsewhere) removed some meanwhile: the
                    # rewrite is stale. Its files were never committed.
                    for uri in ours:
                        self.storage.delete(uri)
                    continue
                removed, added = self._commit(
                    s, files, schema=part.schema, remove=old, operation="compact"
                )
                # (In a cluster the reload may also bring other nodes' new files.)
                written = sum(a.rows for a in added if a.path in ours)
                if written != table.num_rows:
                    raise StorageError(
                        f"compaction of {s.name!r} partition {day} wrote {written} "
                        f"rows for {table.num_rows} read"
                    )
                with self._lock:
                    s.catalog.remove_segments(removed)
                    s.catalog.add_segments(added)
            days.append(day)
            removed_total += len(removed)
            added_total += len(added)
            rows += table.num_rows
        if days:
            with s.flush_lock:  # vacuum must not see a flush's files before their commit
                s.catalog.vacuum(self.settings.vacuum_grace_hours)
        result = CompactionResult(
            s.name, len(days), removed_total, added_total, rows, time.perf_counter() - started
        )
        if days:
            logger.info(
                "compacted %r: %d partitions, %d files into %d, %d rows in %.3f s",
                s.name,
                len(days),
                removed_total,
                added_total,
                rows,
                result.seconds,
            )
        return result

    def _compactable(self, s: _Stream, segments: list[SegmentInfo]) -> list[list[SegmentInfo]]:
        """Groups of segments compaction may merge: each partition's own, and in cluster mode
        only the partitions this node writes (another node's may be mid-commit)."""
        if self.cluster is None and s.catalog.partitions == 1:
            return [segments]
        held = self.cluster.held(s.name) if self.cluster is not None else [0]
        return [[seg for seg in segments if seg.partition == p] for p in held]

    def apply_retention(
        self, stream: str | None = None, *, now: datetime | None = None
    ) -> list[RetentionResult]:
        """Drop day partitions past ``retention_days`` / over ``retention_bytes`` (metadata-only).

        Example: ``arrowlog.open("./data", retention_days=7).apply_retention()``
        """
        self._check_open()
        now = now or datetime.now(UTC)
        results = []
        for s in self._select(stream):
            if self.cluster is not None and 0 not in self.cluster.held(s.name):
                continue  # in a cluster, the writer of partition 0 applies retention
            with s.flush_lock:
                snap = self._snapshot(s.name)
                days = expired_partitions(
                    snap.segments,
                    now=now,
                    retention_days=self.settings.retention_days,
                    retention_bytes=self.settings.retention_bytes,
                )
                if not days:
                    continue
                sizes = {seg.path: seg.size for seg in snap.segments}
                removed = s.catalog.drop_partitions(days)
                with self._lock:
                    s.catalog.remove_segments(removed)
                s.catalog.vacuum(self.settings.vacuum_grace_hours)
            result = RetentionResult(
                s.name, days, len(removed), sum(sizes.get(p, 0) for p in removed)
            )
            logger.info(
                "retention dropped %d partitions (%d files, %d bytes) of %r",
                len(days),
                result.files_removed,
                result.bytes_removed,
                s.name,
            )
            results.append(result)
        return results

    def _run_maintenance(self) -> None:
        while not self._stop.wait(self.settings.compact_interval):
            for s in list(self._streams.values()):
                if self._stop.is_set():
                    return
                try:
                    if self.settings.retention_days or self.settings.retention_bytes:
                        self.apply_retention(s.name)
                    self._compact_stream(s)
                except Exception:
                    # Whatever one stream's maintenance raises, the others' goes on.
                    logger.exception("background maintenance of stream %r failed", s.name)

    # -- reading ---------------------------------------------------------------------------

    def sql(
        self, query: str, *, engine: Engine = "datafusion", params: Params = None
    ) -> QueryResult:
        """Run a read-only SQL query; every stream is a table of the same name.

        Returns:
            a QueryResult: iterate it for RecordBatches, or call ``to_arrow()``,
            ``to_pandas()``, ``to_polars()``.

        Raises:
            ReadOnlyQuery: DDL, DML, COPY and anything else that would write or read files.
            StreamNotFound: the query names a table that is not a stream.
            InvalidInput: a syntax or planning error (the engine's message).

        Example: ``log.sql("SELECT level, count(*) FROM http_logs GROUP BY level").to_pandas()``
        """
        self._check_open()
        return self.metrics.track_query(
            engine, lambda: self._sql.sql(query, engine=engine, params=params)
        )

    def sql_schema(
        self, query: str, *, engine: Engine = "datafusion", params: Params = None
    ) -> pa.Schema:
        """The schema ``sql`` would return, planned without data: no snapshot, no file read.

        For protocols that describe a result before running it (Flight SQL's GetFlightInfo
        and CreatePreparedStatement). Raises what ``sql`` raises while planning; not
        counted as a query (``arrowlog_query_plans_total{kind="schema"}`` counts it).

        Example: ``log.sql_schema("SELECT level, count(*) AS n FROM http_logs GROUP BY level")``
        """
        self._check_open()
        return self._sql.schema(query, engine=engine, params=params)

    def _daft(self) -> dict[str, VersionedSnapshot]:
        """Every stream's snapshot with the Delta version its segments are (Daft reads those)."""
        found = {}
        for name in self._names():
            s = self._get(name)
            with s.flush_lock:  # no commit between reading the version and the buffer
                version = s.catalog.version
                snap = self._snapshot(name)
            found[name] = VersionedSnapshot(s.catalog.uri, version, snap)
        return found

    def read(
        self, stream: str, from_offset: int = 0, limit: int = 1000, *, partition: int | None = None
    ) -> pa.Table:
        """Records ``from_offset`` onwards, in offset order, at most ``limit`` of them.

        Identical to ``SELECT * FROM stream WHERE _offset >= from_offset ORDER BY _offset``:
        it reads the same snapshot of segments and buffer.

        A stream of several partitions (cluster mode) numbers each partition's records
        separately: ``partition`` says which one to read.

        Example: ``log.read("http_logs", from_offset=0, limit=1000).to_pandas()``
        """
        self._check_open()
        if from_offset < 0 or limit < 0:
            raise InvalidInput("from_offset and limit must be >= 0")
        snap = self._snapshot(stream)
        end = from_offset + limit
        wanted = (ds.field(OFFSET) >= from_offset) & (ds.field(OFFSET) < end)
        catalog = self._get(stream).catalog
        catalog.check_partition(partition, required=True)
        if catalog.partitions > 1:
            wanted &= ds.field(STREAM_PARTITION) == partition
        return build_dataset(snap).to_table(filter=wanted).sort_by(OFFSET)

    def iter_read(
        self,
        stream: str,
        from_offset: int = 0,
        batch_rows: int = 64 * 1024,
        *,
        partition: int | None = None,
    ) -> Iterator[pa.Table]:
        """Replay everything from ``from_offset`` up to the current end, ``batch_rows`` at a time."""
        end = self._last_durable_offset(stream, partition)
        offset = from_offset
        while offset <= end:
            chunk = self.read(
                stream, offset, min(batch_rows, end - offset + 1), partition=partition
            )
            if chunk.num_rows == 0:
                return
            yield chunk
            offset = chunk.column(OFFSET)[-1].as_py() + 1

    def tail(
        self,
        stream: str,
        from_offset: int = 0,
        *,
        batch_rows: int = 64 * 1024,
        poll: float = 1.0,
        stop: threading.Event | None = None,
        partition: int | None = None,
    ) -> Iterator[pa.Table]:
        """Follow a stream: yield records from ``from_offset`` on, then new ones as they are acked.

        Runs until ``stop`` is set or the log closes; each yielded table holds consecutive
        offsets. ``poll`` bounds how long a wait lasts before ``stop`` is checked again.
        Built on ``open_tail``, which servers use directly.

        Example: ``for table in log.tail("http_logs", from_offset=1000): ...``
        """
        tail = self.open_tail(stream, from_offset, batch_rows=batch_rows, partition=partition)
        try:
            while not (stop is not None and stop.is_set()):
                table = tail.next(poll)
                if table is not None:
                    yield table
                elif tail.ended:
                    return
        finally:
            tail.close()

    def open_tail(
        self,
        stream: str,
        from_offset: int = 0,
        *,
        partition: int | None = None,
        batch_rows: int = 64 * 1024,
        max_bytes: int | None = None,
        client: str | None = None,
        protocol: str = "embedded",
    ) -> Tail:
        """Start following ``stream`` from ``from_offset``; every check happens here, first.

        Args:
            stream, from_offset, partition: what to follow (``partition``: cluster mode).
            batch_rows: the most records one ``Tail.next`` returns.
            max_bytes: about the most bytes one ``Tail.next`` returns (at least one record).
            client: the client's address: the tail then takes a slot of ``max_tails`` and
                ``max_tails_per_client`` (servers pass it; embedded tails are not counted).
            protocol: the gauge's label for a counted tail (``http``, ``flight``).

        Raises:
            InvalidInput: from_offset out of range (0..2**53-1), a partition the stream
                does not have (or none for a stream of several).
            StreamNotFound: no such stream.
            TooManyTails: over ``max_tails`` or ``max_tails_per_client``.
            Unavailable: the log is closed.

        Example: ``with log.open_tail("http_logs", 0) as t: table = t.next(timeout=1.0)``
        """
        self._check_open()
        check_offset("from_offset", from_offset)
        s = self._get(stream)
        s.catalog.check_partition(partition, required=True)
        slot = None
        if client is not None:
            try:
                slot = self.tails.acquire(client, protocol)
            except TooManyTails as e:
                self.metrics.tails_refused.labels("client" if e.per_client else "all").inc()
                raise
        try:
            return Tail(self, s, from_offset, partition, batch_rows, max_bytes, slot)
        except BaseException:
            if slot is not None:
                slot.release()
            raise

    def _tail_read(
        self, s: _Stream, offset: int, rows: int, max_bytes: int | None, partition: int | None
    ) -> pa.Table:
        """At most ``rows`` records (about ``max_bytes``) from ``offset`` on, as ``read`` would.

        Records still in the buffer (where a caught-up tail's are) are sliced from it in
        O(log n): no dataset, no scan of the whole buffer. Older ones come from chunks
        shared by every tail (``BacklogChunks``). Either way the result is copied when it
        is a small part of a large buffer, so a slow tail pins no more than it holds.
        """
        if self.cluster is None:
            with self._lock:
                pieces = s.buffer.durable_from(offset, self._wal.synced_seq, rows)
                schema = stored_schema(s.schema, s.catalog.partitions)
            if pieces is not None:
                tables, n, size = [], 0, 0
                for b in pieces:
                    start = max(offset - b.first_offset, 0)
                    table = conform(b.table.slice(start, rows - n), schema)
                    tables.append(table)
                    n += table.num_rows
                    size += table.nbytes
                    if n >= rows or (max_bytes is not None and size >= max_bytes):
                        break
                if not tables:
                    return schema.empty_table()
                return _compact(_at_most_bytes(pa.concat_tables(tables), max_bytes))
        start = offset - offset % CHUNK_ROWS
        chunk = self._backlog.get(
            (s.name, partition, start),
            lambda: self.read(s.name, start, CHUNK_ROWS, partition=partition),
        )
        offsets = chunk.column(OFFSET).to_numpy()
        i = int(offsets.searchsorted(offset))
        if i == len(offsets):  # a partial chunk (the end, or a gap retention left)
            table = self.read(s.name, offset, rows, partition=partition)
        else:
            table = chunk.slice(i, rows)
        schema = stored_schema(s.schema, s.catalog.partitions)
        return conform(_compact(_at_most_bytes(table, max_bytes)), schema)

    def next_offset(self, stream: str, partition: int | None = None) -> int:
        """The offset the next acknowledged record of ``stream`` (``partition``) will get."""
        return self._last_durable_offset(stream, partition) + 1

    def _last_durable_offset(self, stream: str, partition: int | None = None) -> int:
        s = self._get(stream)
        if self.cluster is not None:
            return s.catalog.watermark_of(partition or 0)  # nothing is acked before its commit
        with self._lock:
            durable = s.buffer.durable(self._wal.synced_seq)
            return durable[-1].last_offset if durable else s.catalog.watermark

    def streams(self) -> list[StreamInfo]:
        """Every stream: name, schema, time column, row count, offset range, bytes."""
        self._check_open()
        return [self.describe(name) for name in self._names()]

    def describe(self, stream: str) -> StreamInfo:
        """One stream's StreamInfo. Raises StreamNotFound."""
        snap = self._snapshot(stream)
        rows = sum(seg.rows for seg in snap.segments) + sum(t.num_rows for t in snap.buffer)
        offsets = [
            x for seg in snap.segments for x in (seg.min_offset, seg.max_offset) if x is not None
        ]
        times = [x for seg in snap.segments for x in (seg.min_time, seg.max_time) if x is not None]
        for t in snap.buffer:
            offsets += [t.column(OFFSET)[0].as_py(), t.column(OFFSET)[-1].as_py()]
            lo, hi = pc.min_max(t.column(snap.time_column)).values()
            times += [x.as_py() for x in (lo, hi) if x.is_valid]  # null times do not count
        return StreamInfo(
            name=snap.name,
            schema=snap.schema,
            time_column=snap.time_column,
            rows=rows,
            first_offset=min(offsets, default=None),
            last_offset=max(offsets, default=None),
            bytes=sum(seg.size for seg in snap.segments),
            segments=len(snap.segments),
            buffered_rows=sum(t.num_rows for t in snap.buffer),
            min_time=min(times, default=None),
            max_time=max(times, default=None),
            partitions=self._get(stream).catalog.partitions,
        )

    def schema(self, stream: str) -> pa.Schema:
        """The stream's current schema, system columns included."""
        return self._snapshot(stream).schema

    def _names(self) -> list[str]:
        return sorted(self._streams)

    def _select(self, stream: str | None) -> list[_Stream]:
        if stream is None:
            return list(self._streams.values())
        return [self._get(stream)]

    def _get(self, stream: str) -> _Stream:
        found = self._find(stream) if isinstance(stream, str) else None
        s = None if found is None else self._streams.get(found)
        if s is None:
            validate_stream_name(stream)
            raise StreamNotFound(f"stream {stream!r} not found")
        return s

    def _snapshot(self, stream: str) -> TableSnapshot:
        s = self._get(stream)
        with self._lock:
            durable = s.buffer.durable(self._wal.synced_seq)
            return TableSnapshot(
                name=s.name,
                schema=stored_schema(s.schema, s.catalog.partitions),
                time_column=s.time_column,
                segments=list(s.catalog.segments.values()),
                buffer=[b.table for b in durable],
                segments_key=s.catalog.cache_key,
                storage=self.storage,
                buffer_ids=tuple(b.seq for b in durable),
            )

    def _snapshot_or_none(self, stream: str) -> TableSnapshot | None:
        return self._snapshot(stream) if stream in self._streams else None

    def _shape(self, stream: str) -> TableShape | None:
        """What a query plans with: the stream's schema and time column, no snapshot."""
        s = self._streams.get(stream)
        if s is None:
            return None
        with self._lock:
            schema = stored_schema(s.schema, s.catalog.partitions)
        return TableShape(s.name, schema, s.time_column)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run: every call but ``close`` then raises Unavailable."""
        return self._closed

    def _gauges(self) -> LogGauges:
        """State for the metrics' gauges, read at scrape time (not kept up to date)."""
        with self._lock:
            streams = [
                StreamGauges(
                    stream=s.name,
                    segments=len(s.catalog.segments),
                    segment_bytes=sum(seg.size for seg in s.catalog.segments.values()),
                    buffered_rows=s.buffer.rows,
                    buffered_bytes=s.buffer.nbytes,
                    next_offset=s.next_offset,
                )
                for s in self._streams.values()
            ]
        return LogGauges(streams=streams, wal_files=self._wal.file_count)

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the log is closed")

    def close(self) -> None:
        """Flush every buffer, make the WAL durable and release the directory."""
        if self._closed:
            return
        if self.cluster is not None:
            self.cluster.close()  # stop writing and hand the partitions over at once
        self._stop.set()
        self._wake.set()
        self._sql.close()
        self._flusher.join()
        self._maintainer.join()
        try:
            for s in list(self._streams.values()):
                self._flush_stream(s)
        finally:
            with self._lock:
                self._closed = True
            self.tails.close()  # wake tails so they see the log closed
            self._tail_workers.shutdown(wait=False, cancel_futures=True)
            self._wal.close()
            os.close(self._lock_fd)
            logger.info("closed %s", self.path)

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<arrowlog.Log {str(self.path)!r} streams={len(self._streams)}>"


class Tail:
    """One follower of a stream, from ``Log.open_tail``: ``next`` returns its new records.

    Thread-safe for one reader plus ``close`` from any thread. A waiting ``next`` sleeps on
    an Event of its own that the log's waker sets after an append of the stream (see
    ``arrowlog/tails.py``), so a waiting tail costs nothing and an append never waits for
    it. ``close`` (idempotent; also a context manager) wakes a waiting ``next`` at once,
    and gives back the tail's slot; a Tail dropped without ``close`` gives it back when it
    is garbage-collected.
    """

    def __init__(
        self,
        log: Log,
        stream: _Stream,
        from_offset: int,
        partition: int | None,
        batch_rows: int,
        max_bytes: int | None,
        slot: TailSlot | None,
    ) -> None:
        self.stream = stream.name
        self.offset = from_offset  # the next offset to return
        self.partition = partition
        self.slot = slot
        self._log = log
        self._s = stream
        self._rows = batch_rows
        self._max_bytes = max_bytes
        self._closed = False
        self._wake = threading.Event()
        self._known_end = log._last_durable_offset(stream.name, partition) + 1
        log.tails.subscribe(stream.name, self._wake)
        self._finalizer = weakref.finalize(
            self, _end_tail, log.tails, stream.name, self._wake, slot
        )

    @property
    def ended(self) -> bool:
        """True once closed, or once the log closed: ``next`` returns None from then on."""
        return self._closed or self._log.closed

    def next(
        self, timeout: float, transform: Callable[[pa.Table], Any] | None = None
    ) -> Any | None:
        """Records from ``offset`` on (consecutive offsets), or None.

        None when nothing was acknowledged within ``timeout`` seconds, or the tail ended
        (``ended``). The wait happens on the caller's thread; the read, and
        ``transform(table)`` if given (whose result is returned instead of the table),
        on the log's few tail workers. Raises what ``Log.read`` raises (StorageError).
        """
        deadline = time.monotonic() + timeout
        cluster = self._log.cluster is not None
        while not self.ended:
            self._wake.clear()  # before looking: an append after the look sets it again
            if self._behind(cluster):
                try:
                    work = self._log._tail_workers.submit(self._read, transform)
                except RuntimeError:  # the log closed: its workers take no more work
                    return None
                try:
                    got = work.result()
                except CancelledError:  # the log closed before the read ran
                    return None
                if got is not None:
                    table, result = got
                    self.offset = table.column(OFFSET)[-1].as_py() + 1
                    return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # Cluster mode: other nodes' commits arrive with refreshes, which wake nobody.
            self._wake.wait(min(remaining, 1.0) if cluster else remaining)
        return None

    def _read(self, transform: Callable[[pa.Table], Any] | None) -> tuple[pa.Table, Any] | None:
        if self.ended:
            return None
        table = self._log._tail_read(
            self._s, self.offset, self._rows, self._max_bytes, self.partition
        )
        if not table.num_rows:
            return None
        return table, (table if transform is None else transform(table))

    def _behind(self, cluster: bool) -> bool:
        if cluster:
            self._known_end = self._log._last_durable_offset(self.stream, self.partition) + 1
        else:
            acked = self._log.tails.acked_end(self.stream)
            if acked is not None and acked > self._known_end:
                self._known_end = acked
        return self.offset < self._known_end

    def close(self) -> None:
        """End the tail: a waiting ``next`` returns None now; the slot is given back."""
        self._closed = True
        self._wake.set()
        self._finalizer()

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _end_tail(
    registry: TailRegistry, stream: str, wake: threading.Event, slot: TailSlot | None
) -> None:
    registry.unsubscribe(stream, wake)
    if slot is not None:
        slot.release()


def _compact(table: pa.Table) -> pa.Table:
    """``table``, copied if it is a small slice of larger buffers (which it would pin)."""
    if table.get_total_buffer_size() <= 2 * table.nbytes + (64 << 10):
        return table
    return table.take(pa.array(range(table.num_rows), pa.int64()))


def _at_most_bytes(table: pa.Table, max_bytes: int | None) -> pa.Table:
    """The first rows of ``table`` that hold about ``max_bytes`` (at least one row)."""
    if max_bytes is None or table.num_rows <= 1 or table.nbytes <= max_bytes:
        return table
    return table.slice(0, max(table.num_rows * max_bytes // table.nbytes, 1))


def _widened(old: pa.Schema, new: pa.Schema) -> list[str]:
    """Messages naming the columns whose type ``new`` widens: ``column 'n' (int64 -> double)``."""
    return [
        f"column {f.name!r} ({old.field(f.name).type} -> {f.type})"
        for f in new
        if f.name in old.names and old.field(f.name).type != f.type
    ]


_EXACT_IN_DOUBLE = 2**53


def _check_widening(s: _Stream, old: pa.Schema, new: pa.Schema) -> None:
    """Refuse widening an int column to double when a stored value would change.

    A double holds every integer up to 2**53 exactly; beyond it, stored ids and counters
    would come back as other numbers. The stream's values are known from the segments'
    statistics and the buffer. Called with the log's lock held (no append in between).
    """
    for f in new:
        if f.name not in old.names or not pa.types.is_floating(f.type):
            continue
        before = old.field(f.name).type
        if not pa.types.is_integer(before):
            continue
        lo, hi = s.catalog.value_range(f.name)
        for b in s.buffer.batches():
            if f.name in b.table.column_names:
                bounds = pc.min_max(b.table.column(f.name))
                lo = _min(lo, bounds["min"].as_py())
                hi = _max(hi, bounds["max"].as_py())
        if (lo is not None and lo < -_EXACT_IN_DOUBLE) or (
            hi is not None and hi > _EXACT_IN_DOUBLE
        ):
            raise InvalidInput(
                f"column {f.name!r} of stream {s.name!r} holds integers up to "
                f"{hi if hi is not None and hi > _EXACT_IN_DOUBLE else lo}, which a double "
                f"cannot hold exactly: it cannot widen from {before} to {f.type}; send "
                "integers, or store the new values in another column"
            )


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _lock_directory(path: Path) -> int:
    fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(fd)
        raise Unavailable(f"data directory {path} is in use by another arrowlog process") from e
    return fd
