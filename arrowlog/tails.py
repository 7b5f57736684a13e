"""Live tails of a Log: how many may be open, and how they learn of new records.

Every tail a server opens (HTTP ``GET /v1/streams/{stream}/tail``, a Flight ``{"tail": ...}``
ticket) takes a slot from the Log's one ``TailRegistry``: at most ``max_tails`` in all
and ``max_tails_per_client`` per client address, HTTP and Flight counted together. Over
either limit the tail is refused with ``TooManyTails`` (HTTP 429 for the per-client
limit, 503 for the overall one; Flight UNAVAILABLE), before anything is read.

How a tail learns of new records, at O(1) cost to the append::

    append (after the WAL fsync) ── publish(stream, next_offset) ──► records the stream's
                                                                      acked end, sets one
                                                                      Event
    waker thread ("arrowlog-tail-waker") ── wakes the tails of each stream that moved
    each tail, on its own thread ── reads from a snapshot (``Log._tail_read``) ──► its client

The append never iterates over the tails, never waits on them and holds no lock they
take; a tail that is slow, or that thousands of others wait beside, cannot slow it. A
caught-up tail costs nothing while nothing is appended: it sleeps on its own Event.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor
from typing import Any

import pyarrow as pa

from arrowlog.errors import InvalidInput, TooManyTails, Unavailable
from arrowlog.schema import OFFSET

__all__ = [
    "CHUNK_ROWS",
    "MAX_OFFSET",
    "BacklogChunks",
    "Tail",
    "TailRegistry",
    "TailSlot",
    "check_offset",
    "client_address",
]

logger = logging.getLogger(__name__)

# The largest from_offset a tail accepts: 2**53 - 1, the largest integer every JSON client
# (JavaScript's EventSource included) holds exactly; no stream gets near it.
MAX_OFFSET = 2**53 - 1


def check_offset(name: str, value: object) -> int:
    """``value`` as an offset a tail may start from, or InvalidInput naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_OFFSET:
        raise InvalidInput(f"{name} must be an integer from 0 to {MAX_OFFSET}, got {value!r}")
    return value


def client_address(host: str) -> str:
    """``host`` (an IP address) as the per-client limit counts it, the same for HTTP and
    Flight: normalized, an IPv4-mapped IPv6 address as its IPv4 one."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class TailSlot:
    """One open tail's place in the limits; ``release`` (idempotent) gives it back."""

    def __init__(self, registry: TailRegistry, client: str, protocol: str) -> None:
        self.client = client
        self.protocol = protocol
        self._registry = registry
        self._released = False

    def release(self) -> None:
        self._registry._release(self)

    @property
    def released(self) -> bool:
        return self._released


class TailRegistry:
    """The open tails of one Log: limits, the per-protocol gauge, and wake-ups.

    Args:
        max_tails: open tails allowed in all.
        max_per_client: open tails allowed per client address.
        on_change: called with (protocol, +1 or -1) as tails open and end (the gauges).
    """

    def __init__(
        self,
        *,
        max_tails: int,
        max_per_client: int,
        on_change: Callable[[str, int], None] = lambda protocol, delta: None,
    ) -> None:
        self.max_tails = max_tails
        self.max_per_client = max_per_client
        self._on_change = on_change
        self._lock = threading.Lock()
        self._open = 0
        self._per_client: Counter[str] = Counter()
        self._ends: dict[str, int] = {}  # stream -> the offset after its last acked record
        self._dirty: set[str] = set()
        # Replaced, never changed in place: the waker takes them without copying, so the
        # lock that publish() takes is never held for O(tails).
        self._waiters: dict[str, frozenset[threading.Event]] = {}
        self._kick = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- limits ----------------------------------------------------------------------------

    @property
    def open(self) -> int:
        """Tails holding a slot now."""
        return self._open

    def acquire(self, client: str, protocol: str) -> TailSlot:
        """A slot for one more tail of ``client`` (its address) over ``protocol``.

        Raises:
            TooManyTails: over ``max_tails`` or ``max_tails_per_client``.
            Unavailable: the log is closing.
        """
        with self._lock:
            if self._closed:
                raise Unavailable("the log is closed")
            if self._per_client[client] >= self.max_per_client:
                raise TooManyTails(
                    f"too many tails from {client}: {self._per_client[client]} open, at most "
                    f"{self.max_per_client} per client (max_tails_per_client); close one first",
                    per_client=True,
                )
            if self._open >= self.max_tails:
                raise TooManyTails(
                    f"too many tails: {self._open} open, at most {self.max_tails} "
                    "(max_tails); retry later",
                    per_client=False,
                )
            self._open += 1
            self._per_client[client] += 1
        self._on_change(protocol, 1)
        return TailSlot(self, client, protocol)

    def _release(self, slot: TailSlot) -> None:
        with self._lock:
            if slot._released:
                return
            slot._released = True
            self._open -= 1
            self._per_client[slot.client] -= 1
            if not self._per_client[slot.client]:
                del self._per_client[slot.client]
        self._on_change(slot.protocol, -1)

    # -- wake-ups --------------------------------------------------------------------------

    def publish(self, stream: str, next_offset: int) -> None:
        """An append of ``stream`` was acknowledged up to ``next_offset`` - 1. O(1)."""
        with self._lock:
            if next_offset > self._ends.get(stream, -1):
                self._ends[stream] = next_offset
            self._dirty.add(stream)
        self._kick.set()

    def acked_end(self, stream: str) -> int | None:
        """The offset after the last record acknowledged since the log opened, or None."""
        return self._ends.get(stream)

    def subscribe(self, stream: str, waiter: threading.Event) -> None:
        """Set ``waiter`` after every acknowledged append of ``stream`` until unsubscribed."""
        with self._lock:
            self._waiters[stream] = self._waiters.get(stream, frozenset()) | {waiter}
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="arrowlog-tail-waker", daemon=True
                )
                self._thread.start()

    def unsubscribe(self, stream: str, waiter: threading.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(stream, frozenset()) - {waiter}
            if waiters:
                self._waiters[stream] = waiters
            else:
                self._waiters.pop(stream, None)

    def close(self) -> None:
        """Wake every tail (they see the log closed) and stop the waker."""
        with self._lock:
            self._closed = True
            self._dirty.update(self._waiters)
        self._kick.set()

    def _run(self) -> None:
        while True:
            self._kick.wait()
            self._kick.clear()  # before reading _dirty: a publish after this kicks again
            with self._lock:
                dirty, self._dirty = self._dirty, set()
                groups = [self._waiters.get(s, frozenset()) for s in dirty]
                closed = self._closed
            for waiters in groups:
                for waiter in waiters:
                    waiter.set()
            if closed:
                return


# Records older than a stream's buffer are read for tails in chunks of this many
# consecutive offsets, aligned, and kept (while whole) in a cache all tails share.
CHUNK_ROWS = 16 * 1024


class BacklogChunks:
    """Chunks of segment records that tails catching up read, shared and bounded.

    A Parquet segment cannot be read a few hundred rows at a time: every read decodes
    whole row groups. Tails catching up would each decode the same row groups again for
    every slice they send, and hundreds of them at once would hold hundreds of decoded
    row groups. Here one decoded chunk serves every tail that reads it (a tail copies
    its slice out, so evicted chunks are not pinned), at most ``readers`` chunks are
    read at once, and the cache holds at most ``max_bytes``.
    """

    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024, readers: int = 2) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._chunks: OrderedDict[tuple[Any, ...], pa.Table] = OrderedDict()
        self._loading: dict[tuple[Any, ...], threading.Event] = {}
        self._bytes = 0
        self._readers = threading.BoundedSemaphore(readers)

    def get(self, key: tuple[Any, ...], load: Callable[[], pa.Table]) -> pa.Table:
        """The chunk ``key``, from the cache or ``load()`` (one load per key at a time).

        Only whole chunks (CHUNK_ROWS records) are kept: a partial one may still grow.
        """
        while True:
            with self._lock:
                table = self._chunks.get(key)
                if table is not None:
                    self._chunks.move_to_end(key)
                    return table
                loading = self._loading.get(key)
                if loading is None:
                    loading = self._loading[key] = threading.Event()
                    break
            loading.wait()  # another tail reads it: use its result (or read it after all)
        try:
            with self._readers:
                table = load()
            if table.num_rows == CHUNK_ROWS and table.nbytes <= self.max_bytes:
                with self._lock:
                    self._chunks[key] = table
                    self._bytes += table.nbytes
                    while self._bytes > self.max_bytes:
                        _, old = self._chunks.popitem(last=False)
                        self._bytes -= old.nbytes
            return table
        finally:
            with self._lock:
                del self._loading[key]
            loading.set()


class Tail:
    """One follower of a stream, from ``Log.open_tail``: ``next`` returns its new records.

    Thread-safe for one reader plus ``close`` from any thread. A waiting ``next`` sleeps on
    an Event of its own that the registry's waker sets after an append of the stream, so
    a waiting tail costs nothing and an append never waits for it. ``close`` (idempotent;
    also a context manager) wakes a waiting ``next`` at once, and gives back the tail's
    slot; a Tail dropped without ``close`` gives it back when it is garbage-collected.

    Args:
        stream, from_offset, shard: what it follows.
        read: the records from an offset on, at most one batch (``Log._tail_read``).
        last_offset: the stream's (shard's) last acknowledged offset.
        registry: the wake-ups and the acknowledged ends of appends.
        workers: the few threads every tail's reads run on.
        log_closed: whether the log has closed (the tail then ends).
        polls: cluster mode: other nodes' commits wake nobody, so a waiting tail looks
            again every second.
        slot: its place in the limits, given back when it ends.
    """

    def __init__(
        self,
        stream: str,
        from_offset: int,
        shard: int | None,
        *,
        read: Callable[[int], pa.Table],
        last_offset: Callable[[], int],
        registry: TailRegistry,
        workers: Executor,
        log_closed: Callable[[], bool],
        polls: bool,
        slot: TailSlot | None,
    ) -> None:
        self.stream = stream
        self.offset = from_offset  # the next offset to return
        self.shard = shard
        self.slot = slot
        self._read_from = read
        self._last_offset = last_offset
        self._registry = registry
        self._workers = workers
        self._log_closed = log_closed
        self._polls = polls
        self._closed = False
        self._wake = threading.Event()
        self._known_end = last_offset() + 1
        registry.subscribe(stream, self._wake)
        self._finalizer = weakref.finalize(self, _end_tail, registry, stream, self._wake, slot)

    @property
    def partition(self) -> int | None:
        """The former name of ``shard``."""
        return self.shard

    @property
    def ended(self) -> bool:
        """True once closed, or once the log closed: ``next`` returns None from then on."""
        return self._closed or self._log_closed()

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
        while not self.ended:
            self._wake.clear()  # before looking: an append after the look sets it again
            if self._behind():
                try:
                    work = self._workers.submit(self._read, transform)
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
            self._wake.wait(min(remaining, 1.0) if self._polls else remaining)
        return None

    def _read(self, transform: Callable[[pa.Table], Any] | None) -> tuple[pa.Table, Any] | None:
        if self.ended:
            return None
        table = self._read_from(self.offset)
        if not table.num_rows:
            return None
        return table, (table if transform is None else transform(table))

    def _behind(self) -> bool:
        if self._polls:
            self._known_end = self._last_offset() + 1
        else:
            acked = self._registry.acked_end(self.stream)
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
