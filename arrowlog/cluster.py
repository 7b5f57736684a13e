"""Cluster mode: several arrowlog nodes writing one set of streams on shared S3 storage.

Each stream is split into ``shards`` (like Kafka partitions), each with its own gap-free
offsets (the ``_partition`` and ``_offset`` columns: the shard column keeps its original
name). A shard has exactly one writer node at a time: the holder of its lease
(``arrowlog.lease``: a JSON object in the bucket changed only by conditional writes,
renewed every ``lease_seconds / 3``, taken over by another node once it expires). Nodes
find each other through heartbeat records in the same bucket; there is no coordinator and
no node-to-node protocol.

Why writes are acknowledged only once committed to the shared Delta table: the WAL is on
the node's local disk, and a node that dies takes its disk with it. If an acknowledgement
waited only for the local WAL, the node taking over a shard could not know about the
records the dead node had acknowledged, and would give their offsets to other records.
So a shard's writer group-commits: appends queue up while the previous commit runs,
then go out together as one Parquet segment and one Delta commit carrying the shard's
offset watermark (an application transaction), and every append in the group is answered
after that commit (``Stream.write_and_commit``). A node that dies loses only
unacknowledged appends, which its clients retry; the successor continues at the committed
watermark + 1.

Fencing: before each commit the writer re-reads the Delta log and checks that its
shard's watermark is still the one it last committed. A writer paused past its lease
(whose successor has committed since) finds it moved and stops; two commits racing for
the same version are settled by delta-rs's conditional put of the commit file.

Reads: every node answers SQL over every shard, reading the Delta log; it re-reads it
every ``refresh_interval`` seconds, which bounds how stale a node's view of other nodes'
writes can be. A node sees its own acknowledged writes at once (read-your-writes).

``ClusterNode`` reaches the streams only through ``StreamRegistry`` (``stream.Streams``
is one), and is the ``Appender`` the Log uses in cluster mode (``arrowlog/appends.py``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from arrowlog.config import Settings
from arrowlog.errors import (
    ArrowlogError,
    InvalidInput,
    LeaseLost,
    NotShardOwner,
    StorageError,
    Unavailable,
)
from arrowlog.lease import (
    LeaseRecord,
    Leases,
    NodeRegistry,
    plan_claims,
    plan_releases,
)
from arrowlog.metrics import Metrics
from arrowlog.results import AppendResult
from arrowlog.schema import OFFSET, SHARD_COLUMN, coerce, conform, with_offsets
from arrowlog.storage import Storage
from arrowlog.stream import Stream, widened
from arrowlog.tails import TailRegistry

__all__ = ["ClusterNode", "StreamRegistry"]

logger = logging.getLogger(__name__)


class StreamRegistry(Protocol):
    """What the cluster needs of this process's streams (``arrowlog.stream.Streams``)."""

    lock: threading.Lock  # the state lock: stream schemas change only under it

    def names(self) -> list[str]: ...

    def get(self, name: str) -> Stream: ...

    def take_shard(self, stream: str, shard: int) -> int: ...

    def refresh_from_storage(self) -> None: ...


@dataclass
class _Pending:
    table: pa.Table  # coerced: user columns + _ingested_at
    done: threading.Event = field(default_factory=threading.Event)
    result: AppendResult | None = None
    error: BaseException | None = None


class _Writer:
    """The single writer of one held shard: group-commits queued appends."""

    def __init__(
        self, node: ClusterNode, stream: str, shard: int, lease: LeaseRecord, next_offset: int
    ) -> None:
        self.node = node
        self.stream = stream
        self.shard = shard
        self.lease = lease
        self.next_offset = next_offset
        self.uncertain_last: int | None = None  # a commit whose outcome is unknown
        self._queue: list[_Pending] = []
        self._cond = threading.Condition()
        self._stopped: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"arrowlog-writer-{stream}-{shard}", daemon=True
        )
        self._thread.start()

    def submit(self, table: pa.Table) -> AppendResult:
        pending = _Pending(table)
        with self._cond:
            if self._stopped is not None:
                raise self._stopped
            self._queue.append(pending)
            self._cond.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def stop(self, error: BaseException) -> None:
        """Refuse new appends, fail queued ones with ``error``, end the thread."""
        with self._cond:
            if self._stopped is None:
                self._stopped = error
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and self._stopped is None:
                    self._cond.wait()
                batch, self._queue = self._queue, []
                stopped = self._stopped
            if stopped is not None:
                for p in batch:
                    p.error = stopped
                    p.done.set()
                return
            try:
                results = self.node._commit(self, [p.table for p in batch])
            except LeaseLost as e:
                for p in batch:
                    p.error = e
                    p.done.set()
                self.node._drop_writer(self, e)
                continue
            except BaseException as e:  # not acknowledged; the client retries
                for p in batch:
                    p.error = e if isinstance(e, ArrowlogError) else StorageError(str(e))
                    p.done.set()
                continue
            for p, r in zip(batch, results, strict=True):
                p.result = r
                p.done.set()


class ClusterNode:
    """This process's membership of the cluster: leases, writers, heartbeat, refresh.

    Also the Log's appender in cluster mode: an append goes to the writer of a shard this
    node holds and is acknowledged once that writer has committed it.
    """

    def __init__(
        self,
        streams: StreamRegistry,
        settings: Settings,
        storage: Storage,
        *,
        metrics: Metrics,
        tails: TailRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert settings.node_id is not None
        self.streams = streams
        self.node_id = settings.node_id
        self.ttl = settings.lease_seconds
        self.refresh_interval = settings.refresh_interval
        self._metrics = metrics
        self._tails = tails
        store = storage.object_store()
        self.leases = Leases(store, node_id=self.node_id, ttl=self.ttl, clock=clock)
        self.registry = NodeRegistry(store, node_id=self.node_id, ttl=self.ttl, clock=clock)
        self.clock = clock
        self.info: dict[str, str] = {}
        self._writers: dict[tuple[str, int], _Writer] = {}
        self._lock = threading.Lock()
        self._round_robin = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arrowlog-cluster", daemon=True)
        self._last_claims = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.registry.heartbeat(self.info)
        self._claim_all()
        self._thread.start()

    def advertise(self, **urls: str) -> None:
        """Publish where this node serves (``flight=...``, ``http=...``) to the other nodes."""
        self.info.update(urls)
        self.registry.heartbeat(self.info)
        for w in self._held_writers():
            try:
                w.lease = self.leases.renew(w.lease, self.info)
            except LeaseLost as e:
                self._drop_writer(w, e)

    def close(self) -> None:
        """Stop writing and hand every held shard over at once."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        for w in self._held_writers():
            w.stop(Unavailable("the node is shutting down"))
            try:
                self.leases.release(w.lease)
            except ArrowlogError:
                logger.warning("could not release lease %s", w.lease.key)
        try:
            self.registry.leave()
        except ArrowlogError:
            logger.warning("could not remove node record of %s", self.node_id)

    def _run(self) -> None:
        tick = min(self.refresh_interval, self.ttl / 3)
        while not self._stop.wait(tick):
            try:
                self.registry.heartbeat(self.info)
                self._renew()
                self.streams.refresh_from_storage()
                if self.clock() - self._last_claims >= self.ttl / 3:
                    self._claim_all()
            except ArrowlogError:
                logger.exception("cluster maintenance of node %s failed", self.node_id)

    # -- ownership ---------------------------------------------------------------------------

    def held(self, stream: str) -> list[int]:
        """The shards of ``stream`` this node writes now."""
        with self._lock:
            return sorted(p for (s, p) in self._writers if s == stream)

    def _held_writers(self) -> list[_Writer]:
        with self._lock:
            return list(self._writers.values())

    def _renew(self) -> None:
        for w in self._held_writers():
            try:
                w.lease = self.leases.renew(w.lease, self.info)
            except LeaseLost as e:
                self._drop_writer(w, e)
            except ArrowlogError:
                # The store is unreachable: keep trying; the writer refuses to commit once
                # its lease has expired by its own clock (_commit).
                logger.warning("could not renew lease %s", w.lease.key)

    def _claim_all(self) -> None:
        self._last_claims = self.clock()
        for name in self.streams.names():
            self.claim(name)

    def claim(self, stream: str) -> None:
        """Acquire the shards of ``stream`` this node should write (``plan_claims``)."""
        shards = self.streams.get(stream).catalog.shards
        records = {}
        for r in self.leases.read_all(f"{stream}/"):
            try:
                records[int(r.key.rsplit("/", 1)[1])] = r
            except ValueError:
                continue
        live = [n.node_id for n in self.registry.live_nodes()]
        wanted = plan_claims(self.node_id, shards, records, live, self.held(stream), self.clock())
        # Hand back what is above the fair share (e.g. a node joined after this one took
        # every shard): the node below its share picks it up on its next round.
        for p in plan_releases(self.node_id, shards, self.held(stream), live):
            with self._lock:
                w = self._writers.pop((stream, p), None)
            if w is not None:
                w.stop(Unavailable(f"shard {p} of {stream!r} is moving to another node"))
                self.leases.release(w.lease)
                logger.info("node %s handed %s shard %d back", self.node_id, stream, p)
        for p in wanted:
            lease = self.leases.acquire(f"{stream}/{p}", self.info)
            if lease is None:
                continue
            try:
                next_offset = self.streams.take_shard(stream, p)
            except ArrowlogError:
                self.leases.release(lease)
                raise
            with self._lock:
                self._writers[(stream, p)] = _Writer(self, stream, p, lease, next_offset)
            logger.info(
                "node %s now writes %s shard %d from offset %d (lease epoch %d)",
                self.node_id,
                stream,
                p,
                next_offset,
                lease.epoch,
            )

    def _drop_writer(self, w: _Writer, error: BaseException) -> None:
        with self._lock:
            if self._writers.get((w.stream, w.shard)) is w:
                del self._writers[(w.stream, w.shard)]
        logger.warning(
            "node %s stopped writing %s shard %d: %s",
            self.node_id,
            w.stream,
            w.shard,
            error,
        )
        w.stop(LeaseLost(f"shard {w.shard} of {w.stream!r} moved to another node"))

    def owner(self, stream: str, shard: int) -> dict[str, str]:
        """The advertised URLs of the node writing ``shard`` now ({} if none)."""
        record = self.leases.read(f"{stream}/{shard}")
        if record is None or record.expired(self.clock()):
            return {}
        return dict(record.info, node=record.holder)

    # -- the Appender (arrowlog/appends.py) ---------------------------------------------------

    def append(self, s: Stream, table: pa.Table, now: pa.Scalar, shard: int | None) -> AppendResult:
        """Queue ``table`` on a held shard's writer; return once it is committed.

        Raises:
            NotShardOwner: another node (or none, right now) writes ``shard``.
            InvalidInput: a shard the stream does not have, or a type that would widen
                a column (every node writes the table: cluster mode does not widen).
        """
        s.catalog.check_shard(shard)
        while True:
            schema = s.schema
            coerced, new_schema = coerce(table, schema, s.time_column, now, stream=s.name)
            with self.streams.lock:
                if s.schema is not schema:
                    continue  # a concurrent append evolved the schema: coerce again
                if widened(schema, new_schema):
                    raise InvalidInput(
                        f"stream {s.name!r}: {widened(schema, new_schema)[0]} would widen "
                        "the column's type, which cluster mode does not do (every node "
                        "writes the table): send values of the column's type"
                    )
                if not new_schema.equals(schema):
                    s.schema = new_schema
            break
        result = self._writer_for(s, shard).submit(coerced)
        self._metrics.ingested(s.name, coerced.num_rows, coerced.nbytes)
        self._tails.publish(s.name, -1)  # cluster tails re-read the watermark when woken
        return result

    def last_durable_offset(self, s: Stream, shard: int | None) -> int:
        """The last committed offset of ``shard``: nothing is acknowledged before its commit."""
        return s.catalog.watermark_of(shard or 0)

    def shards_written(self, s: Stream) -> list[int]:
        """The shards of ``s`` this node writes: it compacts only those, and applies
        retention only while it writes shard 0 (another node's may be mid-commit)."""
        return self.held(s.name)

    def created(self, s: Stream) -> None:
        """A stream this node just created: take its share of the shards at once."""
        self.claim(s.name)

    def _writer_for(self, s: Stream, shard: int | None) -> _Writer:
        held = self.held(s.name)
        if shard is None:
            if not held:
                shard = next(self._round_robin) % s.catalog.shards
            else:
                shard = held[next(self._round_robin) % len(held)]
        with self._lock:
            writer = self._writers.get((s.name, shard))
        if writer is not None:
            return writer
        owner = self.owner(s.name, shard)
        if owner.get("node") == self.node_id:  # acquired, its writer not started yet
            raise Unavailable(
                f"shard {shard} of stream {s.name!r} is being taken over by this node: "
                "retry shortly"
            )
        if owner:
            urls = " and ".join(owner[k] for k in ("flight", "http") if owner.get(k))
            where = f"node {owner['node']!r}" + (f" at {urls}" if urls else "")
        else:
            where = "no node right now (retry shortly)"
        raise NotShardOwner(
            f"shard {shard} of stream {s.name!r} is written by {where}",
            stream=s.name,
            shard=shard,
            owner=owner,
        )

    def _commit(self, w: _Writer, tables: list[pa.Table]) -> list[AppendResult]:
        s = self.streams.get(w.stream)
        with s.flush_lock:
            if self.clock() >= w.lease.expires_at:
                raise LeaseLost(f"lease {w.lease.key} expired before it could be renewed")
            s.catalog.refresh_version()  # other nodes' files come with the periodic refresh
            watermark = s.catalog.watermark_of(w.shard)
            if w.uncertain_last is not None and watermark == w.uncertain_last:
                w.next_offset = watermark + 1  # the commit reported failed had landed
            w.uncertain_last = None
            if watermark != w.next_offset - 1:
                raise LeaseLost(
                    f"shard {w.shard} of {w.stream!r} was written by another node "
                    f"(watermark {watermark}, expected {w.next_offset - 1})"
                )
            schema = s.stored_schema
            first = w.next_offset
            pieces, results, offset = [], [], first
            for t in tables:
                numbered = with_offsets(t, offset)
                if s.catalog.shards > 1:
                    numbered = numbered.add_column(
                        numbered.schema.get_field_index(OFFSET),
                        pa.field(SHARD_COLUMN, pa.int32(), nullable=False),
                        pa.array([w.shard] * t.num_rows, pa.int32()),
                    )
                pieces.append(conform(numbered, schema))
                results.append(
                    AppendResult(w.stream, t.num_rows, offset, offset + t.num_rows - 1, w.shard)
                )
                offset += t.num_rows
            last = offset - 1
            try:
                s.write_and_commit(
                    [pa.concat_tables(pieces)],
                    operation="append",
                    schema=schema,
                    watermark=last,
                    shard=w.shard,
                )
            except StorageError:
                w.uncertain_last = last
                raise
            w.next_offset = last + 1
        return results

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Nodes, and per stream which node writes each shard (for /v1/cluster)."""
        now = self.clock()
        nodes = [
            {"node": n.node_id, **n.info, "expires_in": round(n.expires_at - now, 3)}
            for n in self.registry.live_nodes()
        ]
        streams = {}
        for name in self.streams.names():
            shards = self.streams.get(name).catalog.shards
            records = {r.key: r for r in self.leases.read_all(f"{name}/")}
            streams[name] = [
                {
                    "shard": p,
                    "partition": p,  # the former name, for existing clients
                    "node": r.holder if r and not r.expired(now) else None,
                    "epoch": r.epoch if r else None,
                }
                for p in range(shards)
                for r in [records.get(f"{name}/{p}")]
            ]
        return {"node": self.node_id, "nodes": nodes, "streams": streams}
