"""Cluster mode: several arrowlog nodes writing one set of streams on shared S3 storage.

Each stream is split into ``partitions`` (like Kafka partitions), each with its own
gap-free offsets (``_partition``, ``_offset``). A partition has exactly one writer node at
a time: the holder of its lease (``arrowlog.lease``: a JSON object in the bucket changed
only by conditional writes, renewed every ``lease_seconds / 3``, taken over by another
node once it expires). Nodes find each other through heartbeat records in the same bucket;
there is no coordinator and no node-to-node protocol.

Why writes are acknowledged only once committed to the shared Delta table: the WAL is on
the node's local disk, and a node that dies takes its disk with it. If an acknowledgement
waited only for the local WAL, the node taking over a partition could not know about the
records the dead node had acknowledged, and would give their offsets to other records.
So a partition's writer group-commits: appends queue up while the previous commit runs,
then go out together as one Parquet segment and one Delta commit carrying the partition's
offset watermark (an application transaction), and every append in the group is answered
after that commit. A node that dies loses only unacknowledged appends, which its clients
retry; the successor continues at the committed watermark + 1.

Fencing: before each commit the writer re-reads the Delta log and checks that its
partition's watermark is still the one it last committed. A writer paused past its lease
(whose successor has committed since) finds it moved and stops; two commits racing for
the same version are settled by delta-rs's conditional put of the commit file.

Reads: every node answers SQL over every partition, reading the Delta log; it re-reads it
every ``refresh_interval`` seconds, which bounds how stale a node's view of other nodes'
writes can be. A node sees its own acknowledged writes at once (read-your-writes).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from arrowlog.catalog import stored_schema
from arrowlog.errors import ArrowlogError, LeaseLost, NotPartitionOwner, StorageError, Unavailable
from arrowlog.lease import (
    LeaseRecord,
    Leases,
    NodeRegistry,
    plan_claims,
    plan_releases,
)
from arrowlog.results import AppendResult
from arrowlog.schema import OFFSET, STREAM_PARTITION, conform, with_offsets
from arrowlog.segments import prepare_segment, write_segment_files

if TYPE_CHECKING:
    from arrowlog.log import Log, _Stream

__all__ = ["ClusterNode"]

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    table: pa.Table  # coerced: user columns + _ingested_at
    done: threading.Event = field(default_factory=threading.Event)
    result: AppendResult | None = None
    error: BaseException | None = None


class _Writer:
    """The single writer of one held partition: group-commits queued appends."""

    def __init__(
        self, node: ClusterNode, stream: str, partition: int, lease: LeaseRecord, next_offset: int
    ) -> None:
        self.node = node
        self.stream = stream
        self.partition = partition
        self.lease = lease
        self.next_offset = next_offset
        self.uncertain_last: int | None = None  # a commit whose outcome is unknown
        self._queue: list[_Pending] = []
        self._cond = threading.Condition()
        self._stopped: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"arrowlog-writer-{stream}-{partition}", daemon=True
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
    """This process's membership of the cluster: leases, writers, heartbeat, refresh."""

    def __init__(self, log: Log, *, clock: Callable[[], float] = time.time) -> None:
        settings = log.settings
        assert settings.node_id is not None
        self.log = log
        self.node_id = settings.node_id
        self.ttl = settings.lease_seconds
        self.refresh_interval = settings.refresh_interval
        store = log.storage.object_store()
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
                self.log._refresh_from_storage()
                if self.clock() - self._last_claims >= self.ttl / 3:
                    self._claim_all()
            except ArrowlogError:
                logger.exception("cluster maintenance of node %s failed", self.node_id)

    # -- ownership ---------------------------------------------------------------------------

    def held(self, stream: str) -> list[int]:
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
        for name in self.log._names():
            self.claim(name)

    def claim(self, stream: str) -> None:
        """Acquire the partitions of ``stream`` this node should write (``plan_claims``)."""
        partitions = self.log._get(stream).catalog.partitions
        records = {}
        for r in self.leases.read_all(f"{stream}/"):
            try:
                records[int(r.key.rsplit("/", 1)[1])] = r
            except ValueError:
                continue
        live = [n.node_id for n in self.registry.live_nodes()]
        wanted = plan_claims(
            self.node_id, partitions, records, live, self.held(stream), self.clock()
        )
        # Hand back what is above the fair share (e.g. a node joined after this one took
        # every partition): the node below its share picks it up on its next round.
        for p in plan_releases(self.node_id, partitions, self.held(stream), live):
            with self._lock:
                w = self._writers.pop((stream, p), None)
            if w is not None:
                w.stop(Unavailable(f"partition {p} of {stream!r} is moving to another node"))
                self.leases.release(w.lease)
                logger.info("node %s handed %s partition %d back", self.node_id, stream, p)
        for p in wanted:
            lease = self.leases.acquire(f"{stream}/{p}", self.info)
            if lease is None:
                continue
            try:
                next_offset = self.log._take_partition(stream, p)
            except ArrowlogError:
                self.leases.release(lease)
                raise
            with self._lock:
                self._writers[(stream, p)] = _Writer(self, stream, p, lease, next_offset)
            logger.info(
                "node %s now writes %s partition %d from offset %d (lease epoch %d)",
                self.node_id,
                stream,
                p,
                next_offset,
                lease.epoch,
            )

    def _drop_writer(self, w: _Writer, error: BaseException) -> None:
        with self._lock:
            if self._writers.get((w.stream, w.partition)) is w:
                del self._writers[(w.stream, w.partition)]
        logger.warning(
            "node %s stopped writing %s partition %d: %s",
            self.node_id,
            w.stream,
            w.partition,
            error,
        )
        w.stop(LeaseLost(f"partition {w.partition} of {w.stream!r} moved to another node"))

    def owner(self, stream: str, partition: int) -> dict[str, str]:
        """The advertised URLs of the node writing ``partition`` now ({} if none)."""
        record = self.leases.read(f"{stream}/{partition}")
        if record is None or record.expired(self.clock()):
            return {}
        return dict(record.info, node=record.holder)

    # -- writing -----------------------------------------------------------------------------

    def append(self, stream: str, table: pa.Table, partition: int | None) -> AppendResult:
        """Queue ``table`` on a held partition's writer; return once it is committed."""
        held = self.held(stream)
        catalog = self.log._get(stream).catalog
        catalog.check_partition(partition)
        partitions = catalog.partitions
        if partition is None:
            if not held:
                partition = next(self._round_robin) % partitions
            else:
                partition = held[next(self._round_robin) % len(held)]
        with self._lock:
            writer = self._writers.get((stream, partition))
        if writer is None:
            owner = self.owner(stream, partition)
            if owner.get("node") == self.node_id:  # acquired, its writer not started yet
                raise Unavailable(
                    f"partition {partition} of stream {stream!r} is being taken over by this "
                    "node: retry shortly"
                )
            if owner:
                urls = " and ".join(owner[k] for k in ("flight", "http") if owner.get(k))
                where = f"node {owner['node']!r}" + (f" at {urls}" if urls else "")
            else:
                where = "no node right now (retry shortly)"
            raise NotPartitionOwner(
                f"partition {partition} of stream {stream!r} is written by {where}",
                stream=stream,
                partition=partition,
                owner=owner,
            )
        return writer.submit(table)

    def _commit(self, w: _Writer, tables: list[pa.Table]) -> list[AppendResult]:

        log = self.log
        s: _Stream = log._get(w.stream)
        with s.flush_lock:
            if self.clock() >= w.lease.expires_at:
                raise LeaseLost(f"lease {w.lease.key} expired before it could be renewed")
            s.catalog.refresh_version()  # other nodes' files come with the periodic refresh
            watermark = s.catalog.watermark_of(w.partition)
            if w.uncertain_last is not None and watermark == w.uncertain_last:
                w.next_offset = watermark + 1  # the commit reported failed had landed
            w.uncertain_last = None
            if watermark != w.next_offset - 1:
                raise LeaseLost(
                    f"partition {w.partition} of {w.stream!r} was written by another node "
                    f"(watermark {watermark}, expected {w.next_offset - 1})"
                )
            with log._lock:
                schema = stored_schema(s.schema, s.catalog.partitions)
            first = w.next_offset
            pieces, results, offset = [], [], first
            for t in tables:
                numbered = with_offsets(t, offset)
                if s.catalog.partitions > 1:
                    numbered = numbered.add_column(
                        numbered.schema.get_field_index(OFFSET),
                        pa.field(STREAM_PARTITION, pa.int32(), nullable=False),
                        pa.array([w.partition] * t.num_rows, pa.int32()),
                    )
                pieces.append(conform(numbered, schema))
                results.append(
                    AppendResult(w.stream, t.num_rows, offset, offset + t.num_rows - 1, w.partition)
                )
                offset += t.num_rows
            last = offset - 1
            table = pa.concat_tables(pieces)
            files = write_segment_files(
                prepare_segment(table, s.time_column),
                s.catalog.uri,
                log.settings,
                log.storage,
            )
            try:
                _, added = s.catalog.commit(
                    files, schema=schema, watermark=last, partition=w.partition, operation="append"
                )
            except StorageError:
                w.uncertain_last = last
                raise
            with log._lock:
                s.catalog.add_segments(added)
            w.next_offset = last + 1
        return results

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Nodes, and per stream which node writes each partition (for /v1/cluster)."""
        now = self.clock()
        nodes = [
            {"node": n.node_id, **n.info, "expires_in": round(n.expires_at - now, 3)}
            for n in self.registry.live_nodes()
        ]
        streams = {}
        for name in self.log._names():
            parts = self.log._get(name).catalog.partitions
            records = {r.key: r for r in self.leases.read_all(f"{name}/")}
            streams[name] = [
                {
                    "partition": p,
                    "node": r.holder if r and not r.expired(now) else None,
                    "epoch": r.epoch if r else None,
                }
                for p in range(parts)
                for r in [records.get(f"{name}/{p}")]
            ]
        return {"node": self.node_id, "nodes": nodes, "streams": streams}
