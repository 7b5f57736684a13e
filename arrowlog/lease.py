"""Shard leases and the node registry: several arrowlog nodes over one object store.

A stream is split into shards; each shard has exactly one writer node at a time.
Who that is lives in the object store itself, so nodes need no coordinator and no network
path to each other: any number of ``arrowlog serve`` processes over one bucket agree on
ownership through the store's conditional writes.

Layout (relative to the store given to :class:`Leases` / :class:`NodeRegistry`)::

    _cluster/leases/<key>.json      one lease: holder, epoch, expires_at, info
    _cluster/nodes/<node_id>.json   one node's heartbeat: expires_at, info (its URLs)

Why conditional writes: a lease changes hands only through ``If-None-Match: *`` (create
when absent) or ``If-Match: <etag read>`` (replace exactly the version we judged). Two
nodes racing for one lease therefore cannot both win: the store accepts one write and
answers the other with a precondition failure, which this module turns into "not acquired"
(``None``) or :class:`LeaseLost` — never a generic error for ordinary contention.

Why an epoch: it grows by one at every change of holder (and at every re-acquisition by a
restarted node), so it is a fencing token. A lease only stops a *well-behaved* holder; a
holder paused past its expiry (GC, a stalled disk) may wake up and write after its
successor started. Writers should stamp their commits with the epoch so a stale writer's
late commit can be recognised and refused.

Clocks: ``expires_at`` is written as the writer's ``clock() + ttl`` and judged expired by
the *reader's* clock. This is safe as long as clock skew between nodes is much smaller
than ``ttl`` (NTP keeps skew to milliseconds; ttl is seconds). A holder should renew well
before expiry (every ``ttl / 3`` or so) and stop writing once its own clock passes
``expires_at`` without a successful renewal: the successor may then take over.

Node ids must be stable across restarts (so a restarted node can take back its own leases
at once instead of waiting for them to expire) and unique among running processes (two
processes sharing an id would take each other's leases).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import obstore
from obstore.exceptions import AlreadyExistsError, NotFoundError, PreconditionError

from arrowlog.errors import InvalidInput, LeaseLost, StorageError

__all__ = [
    "DEFAULT_LEASE_PREFIX",
    "DEFAULT_NODE_PREFIX",
    "LeaseRecord",
    "Leases",
    "NodeRecord",
    "NodeRegistry",
    "decode_lease",
    "decode_node",
    "encode_lease",
    "encode_node",
    "fair_share",
    "plan_claims",
    "plan_releases",
]

logger = logging.getLogger(__name__)

DEFAULT_LEASE_PREFIX = "_cluster/leases/"
DEFAULT_NODE_PREFIX = "_cluster/nodes/"

_LEASE_FORMAT = "arrowlog-lease/1"
_NODE_FORMAT = "arrowlog-node/1"
_SUFFIX = ".json"
_NOT_FOUND = (NotFoundError, FileNotFoundError)  # MemoryStore raises the builtin one
# Node ids become file names; keys may have "/" to group leases (e.g. "<stream>/<shard>").
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
_KEY_PART = re.compile(r"[A-Za-z0-9_.=@:-]+")

Clock = Callable[[], float]


@dataclass(frozen=True)
class LeaseRecord:
    """One lease as read from or written to the store.

    ``etag`` is the version this record was read or written with: the precondition of the
    next conditional write, so a write based on a stale view fails instead of clobbering.
    """

    key: str
    holder: str
    epoch: int
    expires_at: float
    info: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None

    def expired(self, now: float) -> bool:
        """True once ``now`` (the reader's clock) has reached ``expires_at``."""
        return now >= self.expires_at

    def remaining(self, now: float) -> float:
        """Seconds of validity left by ``now`` (negative once expired)."""
        return self.expires_at - now


@dataclass(frozen=True)
class NodeRecord:
    """One node's heartbeat: who is alive and where its servers listen (``info``)."""

    node_id: str
    expires_at: float
    info: Mapping[str, str] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        """True once ``now`` has reached ``expires_at``: the node stopped heart-beating."""
        return now >= self.expires_at


# -- validation and JSON ---------------------------------------------------------------------


def _check_node_id(node_id: str) -> str:
    if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
        raise InvalidInput(
            f"invalid node id {node_id!r}: use 1-128 letters, digits, '_', '.', ':', '@' "
            "or '-', starting with a letter or digit"
        )
    return node_id


def _check_key(key: str) -> str:
    parts = key.split("/") if isinstance(key, str) else [""]
    if not all(_KEY_PART.fullmatch(p) and p not in (".", "..") for p in parts):
        raise InvalidInput(
            f"invalid lease key {key!r}: use '/'-separated parts of letters, digits, "
            "'_', '.', '=', '@', ':' or '-'"
        )
    return key


def _check_prefix(prefix: str) -> str:
    if prefix and not prefix.endswith("/"):
        raise InvalidInput(f"a key prefix must end with '/', got {prefix!r}")
    return prefix


def _check_info(info: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(info, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in info.items()
    ):
        raise InvalidInput(f"info must map strings to strings, got {info!r}")
    return dict(info)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _decode_object(data: bytes, what: str, expected_format: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StorageError(f"malformed {what}: not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise StorageError(f"malformed {what}: expected a JSON object")
    if obj.get("format") != expected_format:
        raise StorageError(
            f"malformed {what}: format is {obj.get('format')!r}, expected {expected_format!r}"
        )
    info = obj.get("info", {})
    if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
        raise StorageError(f"malformed {what}: 'info' must map strings to strings")
    if not _is_number(obj.get("expires_at")):
        raise StorageError(f"malformed {what}: 'expires_at' must be a finite number")
    return obj


def encode_lease(record: LeaseRecord) -> bytes:
    """The JSON stored for a lease (the key is the file name; the etag is the store's)."""
    body = {
        "format": _LEASE_FORMAT,
        "holder": record.holder,
        "epoch": record.epoch,
        "expires_at": record.expires_at,
        "info": dict(record.info),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def decode_lease(key: str, data: bytes, etag: str | None = None) -> LeaseRecord:
    """Parse a stored lease; raise :class:`StorageError` naming the key if it is malformed.

    Malformed records are refused rather than guessed at: overwriting one would reset the
    epoch, the fencing token, so an operator must look at it.
    """
    what = f"lease record {key!r}"
    obj = _decode_object(data, what, _LEASE_FORMAT)
    holder, epoch = obj.get("holder"), obj.get("epoch")
    if not isinstance(holder, str) or not _NODE_ID.fullmatch(holder):
        raise StorageError(f"malformed {what}: 'holder' must be a node id, got {holder!r}")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise StorageError(f"malformed {what}: 'epoch' must be an integer >= 1, got {epoch!r}")
    return LeaseRecord(key, holder, epoch, float(obj["expires_at"]), obj.get("info", {}), etag)


def encode_node(record: NodeRecord) -> bytes:
    """The JSON stored for a node's heartbeat."""
    body = {
        "format": _NODE_FORMAT,
        "node_id": record.node_id,
        "expires_at": record.expires_at,
        "info": dict(record.info),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def decode_node(data: bytes, where: str = "node record") -> NodeRecord:
    """Parse a stored heartbeat; raise :class:`StorageError` if it is malformed."""
    obj = _decode_object(data, where, _NODE_FORMAT)
    node_id = obj.get("node_id")
    if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
        raise StorageError(f"malformed {where}: 'node_id' must be a node id, got {node_id!r}")
    return NodeRecord(node_id, float(obj["expires_at"]), obj.get("info", {}))


def _storage_error(action: str, path: str, exc: Exception) -> StorageError:
    return StorageError(f"could not {action} {path!r} in the object store: {exc}")


def _list_paths(store: Any, prefix: str) -> list[str]:
    try:
        return sorted(
            meta["path"] for chunk in obstore.list(store, prefix=prefix) for meta in chunk
        )
    except _NOT_FOUND:
        return []
    except Exception as exc:
        raise _storage_error("list", prefix, exc) from exc


# -- leases ----------------------------------------------------------------------------------


class Leases:
    """Acquire, renew, release and read leases under one prefix of an object store.

    Args:
        store: an obstore store supporting conditional puts (``S3Store``, ``MemoryStore``;
            not ``LocalStore``, which lacks ``If-Match``).
        prefix: where lease files live, ending in ``/``.
        node_id: this node's stable, unique id; written as the holder.
        ttl: seconds a lease stays valid without renewal.
        clock: returns unix seconds; injectable so tests can move time.

    Thread-safe as far as the store is: every method is one read and/or one conditional
    write, and correctness rests on the store, not on in-process locks.
    """

    def __init__(
        self,
        store: Any,
        prefix: str = DEFAULT_LEASE_PREFIX,
        *,
        node_id: str,
        ttl: float,
        clock: Clock = time.time,
    ) -> None:
        if not ttl > 0:
            raise InvalidInput(f"lease ttl must be positive, got {ttl!r}")
        self.store = store
        self.prefix = _check_prefix(prefix)
        self.node_id = _check_node_id(node_id)
        self.ttl = float(ttl)
        self.clock = clock

    def _path(self, key: str) -> str:
        return f"{self.prefix}{_check_key(key)}{_SUFFIX}"

    def read(self, key: str) -> LeaseRecord | None:
        """The lease stored under ``key`` with its etag, or None if there is none.

        Raises:
            StorageError: the record is malformed or the store failed.
        """
        path = self._path(key)
        try:
            result = obstore.get(self.store, path)
            data = bytes(result.bytes())
        except _NOT_FOUND:
            return None
        except Exception as exc:
            raise _storage_error("read", path, exc) from exc
        return decode_lease(key, data, result.meta.get("e_tag"))

    def read_all(self, prefix: str = "") -> list[LeaseRecord]:
        """Every lease whose key starts with ``prefix``, sorted by key.

        A malformed record is skipped with a warning rather than failing the whole listing:
        one bad file must not stop a node from planning every other shard. (A
        :meth:`read` or :meth:`acquire` of that key still raises.)
        """
        records = []
        for path in _list_paths(self.store, self.prefix + prefix):
            if not path.endswith(_SUFFIX):
                continue
            key = path[len(self.prefix) : -len(_SUFFIX)]
            try:
                record = self.read(key)
            except (StorageError, InvalidInput) as exc:
                logger.warning("skipping lease %r: %s", key, exc)
                continue
            if record is not None:  # deleted since the listing
                records.append(record)
        return records

    def acquire(self, key: str, info: Mapping[str, str] | None = None) -> LeaseRecord | None:
        """Try to become the holder of ``key``; return the new lease, or None if not now.

        Absent → created (epoch 1). Expired → taken over (epoch + 1). Held and unexpired
        by this node id — a previous process of this node, since a live process tracks its
        own leases and renews them — → taken back (epoch + 1: this process's state is new).
        Held by another live node, or a lost race → None.

        Raises:
            StorageError: the stored record is malformed or the store failed.
        """
        info = _check_info(info or {})
        path = self._path(key)
        now = self.clock()
        current = self.read(key)
        if current is None:
            record = LeaseRecord(key, self.node_id, 1, now + self.ttl, info)
            return self._put(path, record, mode="create")
        if current.holder != self.node_id and not current.expired(now):
            return None
        if current.etag is None:  # an unconditional write here could clobber a rival
            raise StorageError(f"the object store gave no etag for {path!r}: leases need one")
        record = LeaseRecord(key, self.node_id, current.epoch + 1, now + self.ttl, info)
        return self._put(path, record, mode={"e_tag": current.etag})

    def renew(self, record: LeaseRecord, info: Mapping[str, str] | None = None) -> LeaseRecord:
        """Extend a held lease to ``clock() + ttl`` (optionally with new ``info``).

        Succeeds even if the lease has expired meanwhile, provided nobody touched it: the
        etag proves no one took over, so no one else has written the shard.

        Raises:
            LeaseLost: the record changed since ``record`` (a takeover or a newer process).
            StorageError: the store failed.
        """
        self._check_own(record)
        new_info = record.info if info is None else _check_info(info)
        renewed = LeaseRecord(
            record.key, record.holder, record.epoch, self.clock() + self.ttl, new_info
        )
        result = self._put(self._path(record.key), renewed, mode={"e_tag": record.etag})
        if result is None:
            raise LeaseLost(
                f"lease {record.key!r} (epoch {record.epoch}) was lost by node {self.node_id!r}"
            )
        return result

    def release(self, record: LeaseRecord) -> None:
        """Give up a held lease so a successor may take over at once.

        The record is rewritten as already expired rather than deleted: deleting would
        restart the epoch at 1 and break fencing. Conditional on ``record.etag``, so a
        stale release never clobbers a newer holder; if the lease was already lost this
        does nothing.
        """
        self._check_own(record)
        expired = LeaseRecord(
            record.key, record.holder, record.epoch, min(record.expires_at, self.clock()), {}
        )
        self._put(self._path(record.key), expired, mode={"e_tag": record.etag})

    def _check_own(self, record: LeaseRecord) -> None:
        if record.holder != self.node_id or record.etag is None:
            raise InvalidInput(
                f"lease {record.key!r} is held by {record.holder!r}, not by this node "
                f"{self.node_id!r} (or was never written)"
            )

    def _put(self, path: str, record: LeaseRecord, mode: Any) -> LeaseRecord | None:
        """One conditional write; None if the precondition failed (someone else won)."""
        try:
            result = obstore.put(self.store, path, encode_lease(record), mode=mode)
        except (AlreadyExistsError, PreconditionError, *_NOT_FOUND):
            return None
        except Exception as exc:
            raise _storage_error("write", path, exc) from exc
        return LeaseRecord(
            record.key, record.holder, record.epoch, record.expires_at, record.info,
            result.get("e_tag"),
        )  # fmt: skip


# -- node registry ---------------------------------------------------------------------------


class NodeRegistry:
    """Heartbeat records of live nodes, so nodes can size fair shares and find each other.

    Each node writes only its own record, so plain (unconditional) puts suffice. A node is
    live while its record is unexpired by the reader's clock. Use a node ttl no longer
    than the lease ttl: shards of a dead node move freely (beyond fair shares) only
    once both its leases and its heartbeat have expired.
    """

    def __init__(
        self,
        store: Any,
        prefix: str = DEFAULT_NODE_PREFIX,
        *,
        node_id: str,
        ttl: float,
        clock: Clock = time.time,
    ) -> None:
        if not ttl > 0:
            raise InvalidInput(f"node ttl must be positive, got {ttl!r}")
        self.store = store
        self.prefix = _check_prefix(prefix)
        self.node_id = _check_node_id(node_id)
        self.ttl = float(ttl)
        self.clock = clock

    @property
    def path(self) -> str:
        """Where this node's heartbeat is stored."""
        return f"{self.prefix}{self.node_id}{_SUFFIX}"

    def heartbeat(self, info: Mapping[str, str] | None = None) -> NodeRecord:
        """Write (or refresh) this node's record, valid until ``clock() + ttl``."""
        record = NodeRecord(self.node_id, self.clock() + self.ttl, _check_info(info or {}))
        try:
            obstore.put(self.store, self.path, encode_node(record))
        except Exception as exc:
            raise _storage_error("write", self.path, exc) from exc
        return record

    def live_nodes(self) -> list[NodeRecord]:
        """Every node with an unexpired heartbeat, sorted by id (malformed ones skipped)."""
        now = self.clock()
        nodes = []
        for path in _list_paths(self.store, self.prefix):
            if not path.endswith(_SUFFIX):
                continue
            try:
                data = bytes(obstore.get(self.store, path).bytes())
                record = decode_node(data, f"node record {path!r}")
            except _NOT_FOUND:
                continue  # left since the listing
            except StorageError as exc:
                logger.warning("skipping node record %r: %s", path, exc)
                continue
            except Exception as exc:
                raise _storage_error("read", path, exc) from exc
            if not record.expired(now):
                nodes.append(record)
        return sorted(nodes, key=lambda n: n.node_id)

    def leave(self) -> None:
        """Delete this node's record, so others rebalance without waiting for it to expire."""
        try:
            obstore.delete(self.store, self.path)
        except _NOT_FOUND:
            pass
        except Exception as exc:
            raise _storage_error("delete", self.path, exc) from exc


# -- planning --------------------------------------------------------------------------------


def fair_share(shards: int, live_nodes: int) -> int:
    """How many shards one node should hold: ``ceil(shards / max(1, live_nodes))``."""
    return -(-shards // max(1, live_nodes))


def _rotation(node_id: str, shards: int) -> list[int]:
    """Shards in this node's preference order: ascending, starting at a stable offset.

    The offset comes from a hash of the node id (sha256, not ``hash()``, which differs per
    process), so two nodes starting together try different shards first instead of
    colliding on shard 0.
    """
    if shards <= 0:
        return []
    digest = hashlib.sha256(node_id.encode()).digest()
    start = int.from_bytes(digest[:8], "big") % shards
    return [(start + i) % shards for i in range(shards)]


def plan_claims(
    node_id: str,
    shards: int,
    leases: Mapping[int, LeaseRecord],
    live_nodes: Collection[str],
    held: Collection[int],
    now: float,
) -> list[int]:
    """Which shards this node should try to :meth:`Leases.acquire` now, in order.

    Pure: it only decides; the conditional writes settle races between nodes.

    Args:
        node_id: this node.
        shards: how many shards there are (numbered ``0 .. shards-1``).
        leases: the stored lease of each shard that has one.
        live_nodes: ids of nodes with a live heartbeat (this node counts as live anyway).
        held: shards this *process* holds (acquired and still renewing).
        now: the current time by this node's clock.

    Rules, in order:
        1. a lease still held under this node id but not by this process (a previous
           process of this node) is taken back;
        2. an expired lease whose holder is not a live node is taken over even beyond the
           fair share: a dead node's shards must move (availability first; the
           surplus can be shed later with :func:`plan_releases`);
        3. an absent lease, or an expired one of a live node (released, or its holder
           failed to renew), is claimed only while this node is below its fair share.
        Leases held by other nodes and unexpired are left alone.
    """
    held = set(held)
    live = set(live_nodes) | {node_id}
    share = fair_share(shards, len(live))
    must: list[int] = []
    free: list[int] = []
    for p in _rotation(node_id, shards):
        if p in held:
            continue
        record = leases.get(p)
        if record is None:
            free.append(p)
        elif not record.expired(now):
            if record.holder == node_id:
                must.append(p)
        elif record.holder in live:
            free.append(p)
        else:
            must.append(p)
    room = max(0, share - len(held) - len(must))
    return must + free[:room]


def plan_releases(
    node_id: str, shards: int, held: Collection[int], live_nodes: Collection[str]
) -> list[int]:
    """Shards this node holds beyond its fair share, the least preferred first.

    Releasing them (:meth:`Leases.release`) lets nodes below their share pick them up;
    only nodes below their share claim a released lease of a live node, so the releaser
    does not take it back and nothing ping-pongs. Whether to release at all (e.g. only
    when another node is known to be below its share) is the caller's decision.
    """
    live = set(live_nodes) | {node_id}
    held = set(held)
    surplus = len(held) - fair_share(shards, len(live))
    if surplus <= 0:
        return []
    order = [p for p in _rotation(node_id, shards) if p in held]
    extra = sorted(held.difference(order))  # out of range (shards shrank): shed first
    return (extra + order[::-1])[:surplus]
