"""The Log: the facade both servers call, over one data directory.

The Flight and HTTP front ends decode a request, call one ``Log`` method and encode the
answer. ``Log`` holds no ingest, offset or query logic of its own: each method checks its
arguments and hands off, and the imports below follow the data one way::

    append ─► schema.py (to_table, normalize)
           ─► appends.py: one Appender, picked at open
                LocalAppender: wal.py (fsync: acknowledged) ─► the stream's buffer
                ClusterNode (cluster.py): acknowledged once committed to the shared table
           ─► stream.py: a Stream owns its buffer, catalog, schema, locks and offsets;
                its write_and_commit (segments.py ─► catalog.py) is the one way segments
                change: the Flusher's flushes, compaction.py, the cluster's commits
    sql, read ─► Stream.snapshot() (snapshot.py) ─► sql/ (engines, query workers, Daft)
    tail   ─► tails.py (limits, wake-ups, shared chunks)

Directory layout::

    <data_dir>/LOCK                 held (flock) by the one process that owns the directory
    <data_dir>/wal/*.wal            the write-ahead log, shared by all streams
    <data_dir>/streams/<name>/      the stream's Delta table (its _delta_log is the catalog)

Concurrency: see ``arrowlog/stream.py`` for the locks. The expensive parts of an append
(conversion, coercion, IPC encoding, fsync) and of a flush (Parquet writing, the Delta
commit) run outside the state lock, so appends never wait for a flush.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from arrowlog import compaction
from arrowlog.appends import Appender, Flusher, LocalAppender
from arrowlog.catalog import check_shard
from arrowlog.cluster import ClusterNode
from arrowlog.config import Settings
from arrowlog.errors import BatchTooLarge, InvalidInput, StorageError, Unavailable
from arrowlog.metrics import LogGauges, Metrics, StreamGauges
from arrowlog.results import AppendResult, CompactionResult, RetentionResult, StreamInfo
from arrowlog.schema import (
    OFFSET,
    SHARD_COLUMN,
    TIME_TYPE,
    conform,
    normalize,
    pick_shard,
    to_table,
    validate_stream_name,
)
from arrowlog.snapshot import TableSnapshot, build_dataset
from arrowlog.sql.catalog import StreamTables, TableShape
from arrowlog.sql.daft_engine import DaftEngine, VersionedSnapshot
from arrowlog.sql.engine import Engine, SqlEngine
from arrowlog.sql.policy import Params
from arrowlog.sql.result import QueryResult
from arrowlog.storage import Storage
from arrowlog.stream import Stream, Streams
from arrowlog.tails import (
    CHUNK_ROWS,
    BacklogChunks,
    Tail,
    TailRegistry,
    TooManyTails,
    check_offset,
)
from arrowlog.wal import WriteAheadLog

__all__ = ["IOHooks", "Log", "Tail"]

logger = logging.getLogger(__name__)

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
            wal = self._wal
            self._streams = Streams(
                self.storage,
                settings,
                durable_seq=lambda: wal.synced_seq,
                segment_fsync=self._io.segment_fsync,
            )
            self._lock = self._streams.lock  # the state lock (arrowlog/stream.py)
            self._flusher = Flusher(self._streams, self._wal, settings, self.metrics)
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
        # Cluster mode (node_id set): leases decide which shards this node writes, and
        # the node acknowledges appends; otherwise the local WAL does.
        self.cluster: ClusterNode | None = None
        self._appender: Appender
        if settings.node_id is None:
            self._appender = LocalAppender(
                self._streams,
                self._wal,
                self._flusher,
                metrics=self.metrics,
                tails=self.tails,
                check_open=self._check_open,
            )
        else:
            self.cluster = ClusterNode(
                self._streams, settings, self.storage, metrics=self.metrics, tails=self.tails
            )
            self._appender = self.cluster
        self._flusher.start()
        self._stop = threading.Event()
        self._maintainer = threading.Thread(
            target=self._run_maintenance, name="arrowlog-maintenance", daemon=True
        )
        self._maintainer.start()
        if self.cluster is not None:
            try:
                self.cluster.start()
            except BaseException:
                self.close()
                raise

    def _recover(self) -> None:
        started = time.perf_counter()
        self._streams.load()
        replayed, skipped = self._streams.replay(self._wal.replay())
        self._flusher.release_wal()
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
        shard: int | None = None,
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
            shard: cluster mode: the shard to write (default: one this node holds). A
                shard another node writes raises ``NotShardOwner`` naming that node.
            partition: the former name of ``shard``.

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
        shard = pick_shard(shard, partition)
        table = to_table(data)
        if table.nbytes > self.settings.max_batch_bytes:
            raise BatchTooLarge(
                f"batch of {table.nbytes} bytes is over the limit of "
                f"{self.settings.max_batch_bytes} bytes (max_batch_bytes)"
            )
        table = normalize(table, max_string_bytes=self.settings.max_string_bytes)
        if name in self._streams:
            s = self._streams[name]
        else:
            # A new stream gets ``shards`` shards: a shard it would not have is refused
            # before the stream is created (a refused append changes nothing).
            check_shard(name, self.settings.shards, shard)
            s = self._create(name, table, time_column)
        if time_column is not None and time_column != s.time_column:
            raise InvalidInput(
                f"stream {name!r} already uses time column {s.time_column!r}, not {time_column!r}"
            )
        now = pa.scalar(datetime.now(UTC), TIME_TYPE)
        return self._appender.append(s, table, now, shard)

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
        self._streams.refuse_case_variant(name)
        empty = normalize(
            (schema or pa.schema([])).empty_table(), max_string_bytes=self.settings.max_string_bytes
        )
        self._create(name, empty, time_column)
        return self.describe(name)

    def _create(self, name: str, table: pa.Table, time_column: str | None) -> Stream:
        s, created = self._streams.create(name, table, time_column)
        if created:
            self._appender.created(s)
        return s

    def flush(self, stream: str | None = None) -> None:
        """Write buffered records to Parquet segments now (one Delta commit per stream).

        Raises:
            StreamNotFound: ``stream`` does not exist.
            StorageError: the commit failed; the records stay buffered and in the WAL.
        """
        self._check_open()
        for s in self._select(stream):
            self._flusher.flush(s)

    # -- lifecycle: compaction and retention -------------------------------------------------

    def compact(self, stream: str | None = None) -> list[CompactionResult]:
        """Merge each day partition's small segments into time-sorted files of the target size.

        One Delta commit per partition swaps old files for new (remove + add); appends
        continue meanwhile, flushes of the stream wait. Files removed are deleted by vacuum
        only after ``vacuum_grace_hours``, so queries already running keep their files.

        Example: ``log.compact("http_logs")``
        """
        self._check_open()
        return [self._compact(s) for s in self._select(stream)]

    def _compact(self, s: Stream) -> CompactionResult:
        return compaction.compact(
            s, self.settings, shards=self._appender.shards_written(s), flush=self._flusher.flush
        )

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
            result = compaction.apply_retention(
                s, self.settings, now=now, shards=self._appender.shards_written(s)
            )
            if result is not None:
                results.append(result)
        return results

    def _run_maintenance(self) -> None:
        while not self._stop.wait(self.settings.compact_interval):
            for s in self._streams.all():
                if self._stop.is_set():
                    return
                try:
                    if self.settings.retention_days or self.settings.retention_bytes:
                        self.apply_retention(s.name)
                    self._compact(s)
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
        self,
        stream: str,
        from_offset: int = 0,
        limit: int = 1000,
        *,
        shard: int | None = None,
        partition: int | None = None,
    ) -> pa.Table:
        """Records ``from_offset`` onwards, in offset order, at most ``limit`` of them.

        Identical to ``SELECT * FROM stream WHERE _offset >= from_offset ORDER BY _offset``:
        it reads the same snapshot of segments and buffer.

        A stream of several shards (cluster mode) numbers each shard's records
        separately: ``shard`` says which one to read (``partition`` is its former name).

        Example: ``log.read("http_logs", from_offset=0, limit=1000).to_pandas()``
        """
        self._check_open()
        if from_offset < 0 or limit < 0:
            raise InvalidInput("from_offset and limit must be >= 0")
        shard = pick_shard(shard, partition)
        snap = self._snapshot(stream)
        end = from_offset + limit
        wanted = (ds.field(OFFSET) >= from_offset) & (ds.field(OFFSET) < end)
        catalog = self._get(stream).catalog
        catalog.check_shard(shard, required=True)
        if catalog.shards > 1:
            wanted &= ds.field(SHARD_COLUMN) == shard
        return build_dataset(snap).to_table(filter=wanted).sort_by(OFFSET)

    def iter_read(
        self,
        stream: str,
        from_offset: int = 0,
        batch_rows: int = 64 * 1024,
        *,
        shard: int | None = None,
        partition: int | None = None,
    ) -> Iterator[pa.Table]:
        """Replay everything from ``from_offset`` up to the current end, ``batch_rows`` at a time.

        ``partition`` is the former name of ``shard``.
        """
        shard = pick_shard(shard, partition)
        end = self._last_durable_offset(stream, shard)
        offset = from_offset
        while offset <= end:
            chunk = self.read(stream, offset, min(batch_rows, end - offset + 1), shard=shard)
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
        shard: int | None = None,
        partition: int | None = None,
    ) -> Iterator[pa.Table]:
        """Follow a stream: yield records from ``from_offset`` on, then new ones as they are acked.

        Runs until ``stop`` is set or the log closes; each yielded table holds consecutive
        offsets. ``poll`` bounds how long a wait lasts before ``stop`` is checked again.
        Built on ``open_tail``, which servers use directly. ``partition`` is the former
        name of ``shard``.

        Example: ``for table in log.tail("http_logs", from_offset=1000): ...``
        """
        tail = self.open_tail(
            stream, from_offset, batch_rows=batch_rows, shard=pick_shard(shard, partition)
        )
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
        shard: int | None = None,
        partition: int | None = None,
        batch_rows: int = 64 * 1024,
        max_bytes: int | None = None,
        client: str | None = None,
        protocol: str = "embedded",
    ) -> Tail:
        """Start following ``stream`` from ``from_offset``; every check happens here, first.

        Args:
            stream, from_offset, shard: what to follow (``shard``: cluster mode).
            partition: the former name of ``shard``.
            batch_rows: the most records one ``Tail.next`` returns.
            max_bytes: about the most bytes one ``Tail.next`` returns (at least one record).
            client: the client's address: the tail then takes a slot of ``max_tails`` and
                ``max_tails_per_client`` (servers pass it; embedded tails are not counted).
            protocol: the gauge's label for a counted tail (``http``, ``flight``).

        Raises:
            InvalidInput: from_offset out of range (0..2**53-1), a shard the stream
                does not have (or none for a stream of several).
            StreamNotFound: no such stream.
            TooManyTails: over ``max_tails`` or ``max_tails_per_client``.
            Unavailable: the log is closed.

        Example: ``with log.open_tail("http_logs", 0) as t: table = t.next(timeout=1.0)``
        """
        self._check_open()
        check_offset("from_offset", from_offset)
        s = self._get(stream)
        shard = pick_shard(shard, partition)
        s.catalog.check_shard(shard, required=True)
        slot = None
        if client is not None:
            try:
                slot = self.tails.acquire(client, protocol)
            except TooManyTails as e:
                self.metrics.tails_refused.labels("client" if e.per_client else "all").inc()
                raise
        try:
            return Tail(
                s.name,
                from_offset,
                shard,
                read=lambda offset: self._tail_read(s, offset, batch_rows, max_bytes, shard),
                last_offset=lambda: self._last_durable_offset(s.name, shard),
                registry=self.tails,
                workers=self._tail_workers,
                log_closed=lambda: self._closed,
                polls=self.cluster is not None,
                slot=slot,
            )
        except BaseException:
            if slot is not None:
                slot.release()
            raise

    def _tail_read(
        self, s: Stream, offset: int, rows: int, max_bytes: int | None, shard: int | None
    ) -> pa.Table:
        """At most ``rows`` records (about ``max_bytes``) from ``offset`` on, as ``read`` would.

        Records still in the buffer (where a caught-up tail's are) are sliced from it in
        O(log n): no dataset, no scan of the whole buffer. Older ones come from chunks
        shared by every tail (``BacklogChunks``). Either way the result is copied when it
        is a small part of a large buffer, so a slow tail pins no more than it holds.
        """
        if self.cluster is None:  # (a cluster node's acknowledged records are all committed)
            buffered = s.read_buffer(offset, rows, max_bytes)
            if buffered is not None:
                return _compact(_at_most_bytes(buffered, max_bytes))
        start = offset - offset % CHUNK_ROWS
        chunk = self._backlog.get(
            (s.name, shard, start),
            lambda: self.read(s.name, start, CHUNK_ROWS, shard=shard),
        )
        offsets = chunk.column(OFFSET).to_numpy()
        i = int(offsets.searchsorted(offset))
        if i == len(offsets):  # a partial chunk (the end, or a gap retention left)
            table = self.read(s.name, offset, rows, shard=shard)
        else:
            table = chunk.slice(i, rows)
        schema = s.stored_schema
        return conform(_compact(_at_most_bytes(table, max_bytes)), schema)

    def next_offset(
        self, stream: str, shard: int | None = None, *, partition: int | None = None
    ) -> int:
        """The offset the next acknowledged record of ``stream`` (``shard``) will get.

        ``partition`` is the former name of ``shard``.
        """
        return self._last_durable_offset(stream, pick_shard(shard, partition)) + 1

    def _last_durable_offset(self, stream: str, shard: int | None = None) -> int:
        return self._appender.last_durable_offset(self._get(stream), shard)

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
            shards=self._get(stream).catalog.shards,
        )

    def schema(self, stream: str) -> pa.Schema:
        """The stream's current schema, system columns included."""
        s = self._get(stream)
        with self._lock:
            return s.stored_schema

    def _names(self) -> list[str]:
        return self._streams.names()

    def _select(self, stream: str | None) -> list[Stream]:
        if stream is None:
            return self._streams.all()
        return [self._get(stream)]

    def _get(self, stream: str) -> Stream:
        return self._streams.get(stream)

    def _snapshot(self, stream: str) -> TableSnapshot:
        return self._get(stream).snapshot()

    def _snapshot_or_none(self, stream: str) -> TableSnapshot | None:
        return self._snapshot(stream) if stream in self._streams else None

    def _shape(self, stream: str) -> TableShape | None:
        """What a query plans with: the stream's schema and time column, no snapshot."""
        if stream not in self._streams:
            return None
        s = self._streams[stream]
        with self._lock:
            schema = s.stored_schema
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
                for s in self._streams.all()
            ]
        return LogGauges(streams=streams, wal_files=self._wal.file_count)

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the log is closed")

    def close(self) -> None:
        """Flush every buffer, make the WAL durable and release the directory."""
        if self._closed:
            return
        self._appender.close()  # a cluster node stops writing and hands its shards over
        self._stop.set()
        self._flusher.stop()
        self._sql.close()
        self._maintainer.join()
        try:
            for s in self._streams.all():
                self._flusher.flush(s)
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


def _lock_directory(path: Path) -> int:
    fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(fd)
        raise Unavailable(f"data directory {path} is in use by another arrowlog process") from e
    return fd
