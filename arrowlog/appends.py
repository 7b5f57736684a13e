"""How an append is acknowledged, and how buffered records reach the segments.

The Log picks one ``Appender`` when it opens:

- ``LocalAppender`` (a single node): the records are written to the WAL, acknowledged
  after its fsync, and kept in the stream's buffer until the ``Flusher`` writes them to
  segments (``Stream.flush``);
- ``ClusterNode`` (``cluster.py``, when ``node_id`` is set): the records go to the writer
  of a shard this node holds and are acknowledged once committed to the shared table.

The ``Flusher`` runs in both modes (in a cluster it flushes what the WAL replayed at
start). It also holds appends back while the buffers are over ``max_buffer_bytes``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import pyarrow as pa

from arrowlog.buffer import BufferedBatch
from arrowlog.config import Settings
from arrowlog.errors import InvalidInput, Unavailable
from arrowlog.metrics import Metrics
from arrowlog.results import AppendResult
from arrowlog.schema import coerce, with_offsets
from arrowlog.stream import Stream, Streams
from arrowlog.tails import TailRegistry
from arrowlog.wal import WriteAheadLog, encode_batch

__all__ = ["Appender", "Flusher", "LocalAppender"]

logger = logging.getLogger(__name__)


class Appender(Protocol):
    """What differs between a single node and a cluster node on the write path."""

    def append(self, s: Stream, table: pa.Table, now: pa.Scalar, shard: int | None) -> AppendResult:
        """Append ``table`` (normalized) to ``s``; return once it is acknowledged."""
        ...

    def last_durable_offset(self, s: Stream, shard: int | None) -> int:
        """The last acknowledged offset of ``s`` (of ``shard``), -1 if none."""
        ...

    def shards_written(self, s: Stream) -> list[int] | None:
        """The shards of ``s`` this process writes (compaction and retention touch only
        those); None: every segment of the stream."""
        ...

    def created(self, s: Stream) -> None:
        """``s`` was just created by this process."""
        ...

    def close(self) -> None:
        """Stop acknowledging appends (called first when the Log closes)."""
        ...


class Flusher:
    """The background flusher: it writes due buffers to segments, and releases the WAL.

    Wakes every ``flush_interval / 4`` (at most 0.5 s), or at once when an append finds
    its stream's buffer due. Over half of ``max_buffer_bytes`` every buffer with records
    flushes, due or not.
    """

    def __init__(
        self, streams: Streams, wal: WriteAheadLog, settings: Settings, metrics: Metrics
    ) -> None:
        self._streams = streams
        self._wal = wal
        self._settings = settings
        self._metrics = metrics
        self._drained = threading.Condition()  # notified after every flush (backpressure)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arrowlog-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """End the background thread (``flush`` still works)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def flush(self, s: Stream) -> int:
        """Flush ``s`` now; the number of records written. Raises StorageError."""
        flushed = s.flush()
        if flushed is None:
            return 0
        self.release_wal()
        self._metrics.flushed(s.name, flushed.rows, flushed.seconds)
        return flushed.rows

    def release_wal(self) -> None:
        """Delete the WAL files whose every entry is in segments."""
        with self._streams.lock:
            needed = [s.buffer.oldest_seq for s in self._streams.all() if s.buffer]
            below = min((q for q in needed if q is not None), default=self._wal.next_seq)
        self._wal.release(below)

    def wait_for_room(self, check_open: Callable[[], None]) -> None:
        """Backpressure: hold an append while the buffers are over ``max_buffer_bytes``.

        Without it a burst faster than Parquet encoding grows the buffers (and the WAL)
        until the process runs out of memory. Waiting here slows each client to the rate
        flushes sustain; past ``backpressure_timeout`` the append is refused whole.

        Raises:
            Unavailable: still over the limit after ``backpressure_timeout``, or the log
                closed (``check_open``).
        """
        limit = self._settings.max_buffer_bytes
        if self._streams.buffered_bytes() <= limit:
            return
        deadline = time.monotonic() + self._settings.backpressure_timeout
        self._metrics.backpressure()
        with self._drained:
            while self._streams.buffered_bytes() > limit:
                check_open()
                self._wake.set()  # the flusher flushes everything when over the limit
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Unavailable(
                        "ingest is faster than flushes can write: "
                        f"{self._streams.buffered_bytes()} bytes buffered, over "
                        f"max_buffer_bytes={limit}; retry later"
                    )
                self._drained.wait(min(remaining, 0.5))

    def _run(self) -> None:
        tick = min(self._settings.flush_interval / 4, 0.5)
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            # Over the backpressure limit, every stream with records flushes, due or not.
            pressed = self._streams.buffered_bytes() > self._settings.max_buffer_bytes // 2
            for s in self._streams.all():
                with self._streams.lock:
                    due = s.flush_due() or (pressed and bool(s.buffer))
                if not due:
                    continue
                try:
                    self.flush(s)
                except Exception:
                    # The records stay in the buffer and the WAL; the next tick retries.
                    # Whatever one stream's flush raises, the others keep flushing.
                    logger.exception("background flush of stream %r failed", s.name)
                finally:
                    with self._drained:
                        self._drained.notify_all()


class LocalAppender:
    """A single node's appends: acknowledged after the WAL fsync, then buffered.

    The state lock (``Streams.lock``) orders offset assignment, the WAL write and the
    buffer insert, so WAL order is offset order. The expensive parts (coercion, IPC
    encoding, the fsync) run outside it, so appends never wait for a flush.
    """

    def __init__(
        self,
        streams: Streams,
        wal: WriteAheadLog,
        flusher: Flusher,
        *,
        metrics: Metrics,
        tails: TailRegistry,
        check_open: Callable[[], None],
    ) -> None:
        self._streams = streams
        self._wal = wal
        self._flusher = flusher
        self._metrics = metrics
        self._tails = tails
        self._check_open = check_open  # raises Unavailable once the log is closed

    def append(self, s: Stream, table: pa.Table, now: pa.Scalar, shard: int | None) -> AppendResult:
        s.catalog.check_shard(shard)  # bad input is refused before any wait
        self._flusher.wait_for_room(self._check_open)
        while True:
            schema = s.schema
            coerced, new_schema = coerce(table, schema, s.time_column, now, stream=s.name)
            try:
                encoded = encode_batch(coerced)
            except pa.ArrowInvalid as e:  # e.g. a type Arrow IPC cannot frame
                raise InvalidInput(f"the batch cannot be written to the WAL: {e}") from e
            with self._streams.lock:
                self._check_open()
                if s.schema is not schema:
                    continue  # a concurrent append evolved the schema: coerce again
                s.check_widening(schema, new_schema)
                if self._wal.broken:
                    self._repair_wal_locked()  # StorageError while the disk still fails
                first = s.next_offset
                seq = self._wal.write(s.name, first, encoded)
                s.next_offset = first + coerced.num_rows
                if not new_schema.equals(schema):
                    s.schema = new_schema
                s.buffer.add(BufferedBatch(seq, first, with_offsets(coerced, first)))
                due = s.flush_due()
            break
        self._wal.sync(seq)
        self._metrics.ingested(s.name, coerced.num_rows, encoded.ipc.size)
        self._tails.publish(s.name, first + coerced.num_rows)
        if due:
            self._flusher.wake()
        return AppendResult(s.name, coerced.num_rows, first, first + coerced.num_rows - 1)

    def last_durable_offset(self, s: Stream, shard: int | None) -> int:
        return s.last_durable_offset()

    def shards_written(self, s: Stream) -> list[int] | None:
        # A stream a cluster created with several shards, opened by a single node: it
        # writes (and compacts) shard 0.
        return None if s.catalog.shards == 1 else [0]

    def created(self, s: Stream) -> None:
        pass

    def close(self) -> None:
        pass

    def _repair_wal_locked(self) -> None:
        """Resume writing after a failed WAL write or fsync (the fault has cleared).

        The entries the failure took back were never acknowledged: they leave the buffers
        and their offsets are handed out again, so offsets stay gap-free. A column such
        an entry added stays in the schema (nullable, no values). Called with the state
        lock held, so no append runs meanwhile.
        """
        first_lost = self._wal.repair()
        dropped = 0
        for s in self._streams.all():
            taken = s.buffer.take_back(first_lost)
            if taken:
                s.next_offset = taken[0].first_offset
                dropped += sum(b.table.num_rows for b in taken)
        logger.warning(
            "writes resume after a WAL failure; %d unacknowledged records were dropped", dropped
        )
