"""Partition leases and the node registry (arrowlog.lease).

Pure tests run on obstore's MemoryStore (it honours both create-only and If-Match puts)
with a fake clock; the ``s3`` tests repeat the races against a real SeaweedFS.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import obstore
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from obstore.store import MemoryStore, S3Store

from arrowlog.errors import InvalidInput, LeaseLost, StorageError, Unavailable
from arrowlog.lease import (
    LeaseRecord,
    Leases,
    NodeRecord,
    NodeRegistry,
    decode_lease,
    decode_node,
    encode_lease,
    encode_node,
    fair_share,
    plan_claims,
    plan_releases,
)

TTL = 10.0


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def leases_for(store: Any, node: str, clock: Any = time.time, ttl: float = TTL) -> Leases:
    return Leases(store, node_id=node, ttl=ttl, clock=clock)


# -- acquire / renew / release on MemoryStore ------------------------------------------------


def test_acquire_absent_creates_epoch_one(store: MemoryStore, clock: FakeClock) -> None:
    a = leases_for(store, "a", clock)
    record = a.acquire("s/0", {"flight": "grpc://a:1"})
    assert record is not None
    assert (record.key, record.holder, record.epoch) == ("s/0", "a", 1)
    assert record.expires_at == clock.now + TTL
    assert record.info == {"flight": "grpc://a:1"}
    assert record.etag
    assert a.read("s/0") == record


def test_live_lease_of_another_node_is_not_acquired(store: MemoryStore, clock: FakeClock) -> None:
    a, b = leases_for(store, "a", clock), leases_for(store, "b", clock)
    held = a.acquire("k")
    clock.advance(TTL - 0.1)
    assert b.acquire("k") is None
    assert a.read("k") == held


def test_expired_lease_is_taken_over_and_old_holder_loses_it(
    store: MemoryStore, clock: FakeClock
) -> None:
    a, b = leases_for(store, "a", clock), leases_for(store, "b", clock)
    old = a.acquire("k")
    assert old is not None
    clock.advance(TTL)
    new = b.acquire("k", {"http": "http://b"})
    assert new is not None and (new.holder, new.epoch) == ("b", 2)
    with pytest.raises(LeaseLost):
        a.renew(old)
    assert issubclass(LeaseLost, Unavailable)
    renewed = b.renew(new)
    assert renewed.epoch == 2 and renewed.info == {"http": "http://b"}


def test_renew_extends_and_old_etag_goes_stale(store: MemoryStore, clock: FakeClock) -> None:
    a = leases_for(store, "a", clock)
    first = a.acquire("k")
    assert first is not None
    clock.advance(3)
    second = a.renew(first, {"v": "2"})
    assert second.expires_at == clock.now + TTL and second.epoch == 1
    assert second.info == {"v": "2"} and second.etag != first.etag
    with pytest.raises(LeaseLost):
        a.renew(first)  # a stale copy of our own lease


def test_renew_of_an_expired_but_untouched_lease_succeeds(
    store: MemoryStore, clock: FakeClock
) -> None:
    a = leases_for(store, "a", clock)
    record = a.acquire("k")
    assert record is not None
    clock.advance(TTL * 3)
    assert a.renew(record).expires_at == clock.now + TTL


def test_release_lets_a_successor_take_over_at_once(store: MemoryStore, clock: FakeClock) -> None:
    a, b = leases_for(store, "a", clock), leases_for(store, "b", clock)
    record = a.acquire("k")
    assert record is not None
    a.release(record)
    stored = a.read("k")
    assert stored is not None and stored.expired(clock.now) and stored.epoch == 1
    new = b.acquire("k")
    assert new is not None and new.epoch == 2


def test_stale_release_does_not_clobber_new_holder(store: MemoryStore, clock: FakeClock) -> None:
    a, b = leases_for(store, "a", clock), leases_for(store, "b", clock)
    old = a.acquire("k")
    assert old is not None
    clock.advance(TTL + 1)
    new = b.acquire("k")
    a.release(old)  # silently nothing
    assert a.read("k") == new


def test_restarted_node_retakes_its_own_live_lease(store: MemoryStore, clock: FakeClock) -> None:
    before = leases_for(store, "a", clock)
    old = before.acquire("k")
    after = leases_for(store, "a", clock)  # a new process, same node id
    new = after.acquire("k")
    assert new is not None and new.epoch == 2
    with pytest.raises(LeaseLost):
        before.renew(old)  # type: ignore[arg-type]


def test_lost_create_race_returns_none(store: MemoryStore, clock: FakeClock) -> None:
    a, b = leases_for(store, "a", clock), leases_for(store, "b", clock)
    original_read = a.read

    def read_then_rival_creates(key: str) -> LeaseRecord | None:
        result = original_read(key)
        b.acquire(key)  # b wins between a's read and a's write
        return result

    a.read = read_then_rival_creates  # type: ignore[method-assign]
    assert a.acquire("k") is None
    assert b.read("k").holder == "b"  # type: ignore[union-attr]


def test_lost_takeover_race_returns_none(store: MemoryStore, clock: FakeClock) -> None:
    a, b, c = (leases_for(store, n, clock) for n in "abc")
    a.acquire("k")
    clock.advance(TTL)
    stale_view = b.read("k")
    assert c.acquire("k") is not None
    b.read = lambda key: stale_view  # type: ignore[method-assign]
    assert b.acquire("k") is None


def test_renew_or_release_of_someone_elses_record_is_refused(
    store: MemoryStore, clock: FakeClock
) -> None:
    a, b = leases_for(store, "a", clock), leases_for(store, "b", clock)
    record = a.acquire("k")
    assert record is not None
    with pytest.raises(InvalidInput):
        b.renew(record)
    with pytest.raises(InvalidInput):
        b.release(record)


def test_read_missing_and_read_all(store: MemoryStore, clock: FakeClock) -> None:
    a = leases_for(store, "a", clock)
    assert a.read("nothing") is None
    assert a.read_all() == []
    for key in ["s/1", "s/0", "t/0"]:
        a.acquire(key)
    assert [r.key for r in a.read_all()] == ["s/0", "s/1", "t/0"]
    assert [r.key for r in a.read_all("s/")] == ["s/0", "s/1"]


def test_malformed_record_is_refused_by_read_and_skipped_by_read_all(
    store: MemoryStore, clock: FakeClock
) -> None:
    a = leases_for(store, "a", clock)
    a.acquire("good")
    obstore.put(store, "_cluster/leases/bad.json", b"{not json")
    with pytest.raises(StorageError, match="'bad'"):
        a.read("bad")
    with pytest.raises(StorageError):
        a.acquire("bad")
    assert [r.key for r in a.read_all()] == ["good"]


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"format":"other","holder":"a","epoch":1,"expires_at":1,"info":{}}',
        b'{"format":"arrowlog-lease/1","holder":"","epoch":1,"expires_at":1,"info":{}}',
        b'{"format":"arrowlog-lease/1","holder":"a","epoch":0,"expires_at":1,"info":{}}',
        b'{"format":"arrowlog-lease/1","holder":"a","epoch":true,"expires_at":1,"info":{}}',
        b'{"format":"arrowlog-lease/1","holder":"a","epoch":1.5,"expires_at":1,"info":{}}',
        b'{"format":"arrowlog-lease/1","holder":"a","epoch":1,"expires_at":"1","info":{}}',
        b'{"format":"arrowlog-lease/1","holder":"a","epoch":1,"expires_at":NaN,"info":{}}',
        b'{"format":"arrowlog-lease/1","holder":"a","epoch":1,"expires_at":1,"info":{"x":1}}',
        b'{"format":"arrowlog-lease/1","holder":"a","epoch":1,"expires_at":1,"info":[]}',
        b"\xff\xfe",
    ],
)
def test_decode_lease_rejects_malformed(body: bytes) -> None:
    with pytest.raises(StorageError, match="malformed lease record 'k'"):
        decode_lease("k", body)


def test_encode_decode_round_trip() -> None:
    lease = LeaseRecord("s/3", "node-1", 7, 123.5, {"flight": "grpc://h:1"})
    assert decode_lease("s/3", encode_lease(lease)) == lease
    node = NodeRecord("node-1", 99.0, {"http": "http://h:2"})
    assert decode_node(encode_node(node)) == node
    with pytest.raises(StorageError, match="malformed node record"):
        decode_node(b'{"format":"arrowlog-node/1","node_id":"a/b","expires_at":1}')


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/../b", "..", "a b", "ü"])
def test_invalid_keys_are_refused(store: MemoryStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        leases_for(store, "a").acquire(key)


@pytest.mark.parametrize("node", ["", "a/b", "-a", "x" * 129, "a b"])
def test_invalid_node_ids_are_refused(store: MemoryStore, node: str) -> None:
    with pytest.raises(InvalidInput):
        leases_for(store, node)
    with pytest.raises(InvalidInput):
        NodeRegistry(store, node_id=node, ttl=1)


def test_invalid_settings_are_refused(store: MemoryStore) -> None:
    with pytest.raises(InvalidInput):
        Leases(store, node_id="a", ttl=0)
    with pytest.raises(InvalidInput):
        Leases(store, "no-slash", node_id="a", ttl=1)
    with pytest.raises(InvalidInput):
        leases_for(store, "a").acquire("k", {"port": 1})  # type: ignore[dict-item]


def test_a_store_without_if_match_is_a_storage_error(tmp_path: Any, clock: FakeClock) -> None:
    from obstore.store import LocalStore

    local = LocalStore(str(tmp_path))
    a, b = leases_for(local, "a", clock), leases_for(local, "b", clock)
    assert a.acquire("k") is not None  # create-only works on a local file system
    clock.advance(TTL)
    with pytest.raises(StorageError, match="could not write"):
        b.acquire("k")


# -- node registry ---------------------------------------------------------------------------


def test_node_registry_heartbeat_expiry_and_leave(store: MemoryStore, clock: FakeClock) -> None:
    a = NodeRegistry(store, node_id="a", ttl=5, clock=clock)
    b = NodeRegistry(store, node_id="b", ttl=5, clock=clock)
    assert a.live_nodes() == []
    a.heartbeat({"flight": "grpc://a:1"})
    b.heartbeat()
    assert [(n.node_id, dict(n.info)) for n in a.live_nodes()] == [
        ("a", {"flight": "grpc://a:1"}),
        ("b", {}),
    ]
    clock.advance(4)
    a.heartbeat({"flight": "grpc://a:1"})
    clock.advance(1)  # b's record expired, a's renewed
    assert [n.node_id for n in b.live_nodes()] == ["a"]
    a.leave()
    a.leave()  # idempotent
    assert b.live_nodes() == []


def test_node_registry_skips_malformed_records(store: MemoryStore, clock: FakeClock) -> None:
    a = NodeRegistry(store, node_id="a", ttl=5, clock=clock)
    a.heartbeat()
    obstore.put(store, "_cluster/nodes/bad.json", b"{}")
    assert [n.node_id for n in a.live_nodes()] == ["a"]


# -- planning --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partitions", "nodes", "share"),
    [(0, 3, 0), (1, 0, 1), (8, 1, 8), (8, 3, 3), (9, 3, 3), (10, 3, 4), (2, 5, 1)],
)
def test_fair_share(partitions: int, nodes: int, share: int) -> None:
    assert fair_share(partitions, nodes) == share


def lease(p: int, holder: str, expires_at: float, epoch: int = 1) -> LeaseRecord:
    return LeaseRecord(f"s/{p}", holder, epoch, expires_at, {}, "etag")


NOW = 100.0


def test_plan_claims_absent_partitions_up_to_fair_share() -> None:
    plan = plan_claims("a", 6, {}, ["a", "b"], held=[], now=NOW)
    assert len(plan) == 3 and len(set(plan)) == 3
    # consecutive from the node's offset, wrapping
    assert plan == [(plan[0] + i) % 6 for i in range(3)]
    assert plan_claims("a", 6, {}, ["a", "b"], held=plan, now=NOW) == []


def test_plan_claims_offsets_differ_between_nodes() -> None:
    firsts = {plan_claims(f"node-{i}", 64, {}, [], held=[], now=NOW)[0] for i in range(10)}
    assert len(firsts) > 5


def test_plan_claims_skips_live_leases_of_others() -> None:
    leases = {p: lease(p, "b", NOW + 5) for p in range(4)}
    assert plan_claims("a", 4, leases, ["a", "b"], held=[], now=NOW) == []


def test_plan_claims_takes_dead_nodes_expired_partitions_beyond_share() -> None:
    leases = {p: lease(p, "dead", NOW - 1) for p in range(4)}
    plan = plan_claims("a", 4, leases, ["a", "b"], held=[0, 1], now=NOW)
    assert sorted(plan) == [2, 3]  # share is 2 and a holds 2, yet orphans move


def test_plan_claims_expired_lease_of_live_node_only_below_share() -> None:
    leases = {2: lease(2, "b", NOW - 1), 3: lease(3, "b", NOW - 1)}
    assert plan_claims("a", 4, leases, ["a", "b"], held=[0, 1], now=NOW) == []
    assert plan_claims("a", 4, leases, ["a", "b"], held=[0], now=NOW) in ([2], [3])


def test_plan_claims_own_previous_process_leases_are_taken_back() -> None:
    leases = {p: lease(p, "a", NOW + 5) for p in range(4)}
    assert sorted(plan_claims("a", 4, leases, ["a", "b"], held=[], now=NOW)) == [0, 1, 2, 3]
    # an own lease that expired (e.g. released) is an ordinary free one
    leases = {p: lease(p, "a", NOW - 1) for p in range(4)}
    assert len(plan_claims("a", 4, leases, ["a", "b"], held=[], now=NOW)) == 2


def test_plan_claims_orphans_come_before_free_partitions() -> None:
    leases = {3: lease(3, "dead", NOW - 1)}
    plan = plan_claims("a", 4, leases, ["a", "b", "c", "d"], held=[], now=NOW)
    assert plan == [3]  # share is 1: the orphan uses it


def test_plan_releases() -> None:
    assert plan_releases("a", 4, [0, 1], ["a", "b"]) == []
    shed = plan_releases("a", 4, [0, 1, 2, 3], ["a", "b"])
    assert len(shed) == 2
    keep = [p for p in plan_claims("a", 4, {}, ["a", "b"], held=[], now=NOW)]
    assert set(shed).isdisjoint(keep)  # the node keeps the partitions it prefers
    assert plan_releases("a", 2, [0, 1, 5], ["a"]) == [5]


# -- property: plans applied through real conditional writes ---------------------------------


class Node:
    """A simulated node: heartbeat, renew held leases, then claim (and shed) per plan."""

    def __init__(self, store: Any, node_id: str, clock: FakeClock, partitions: int) -> None:
        self.id = node_id
        self.partitions = partitions
        self.leases = Leases(store, node_id=node_id, ttl=TTL, clock=clock)
        self.registry = NodeRegistry(store, node_id=node_id, ttl=TTL, clock=clock)
        self.held: dict[int, LeaseRecord] = {}
        self.alive = True

    def tick(self, shed: bool) -> None:
        self.registry.heartbeat()
        for p, record in list(self.held.items()):
            try:
                self.held[p] = self.leases.renew(record)
            except LeaseLost:
                del self.held[p]
        live = [n.node_id for n in self.registry.live_nodes()]
        records = {int(r.key.split("/")[1]): r for r in self.leases.read_all("s/")}
        plan = plan_claims(self.id, self.partitions, records, live, self.held, self.leases.clock())
        for p in plan:
            record = self.leases.acquire(f"s/{p}")
            if record is not None:
                self.held[p] = record
        if shed:
            for p in plan_releases(self.id, self.partitions, self.held, live):
                self.leases.release(self.held.pop(p))


def check_no_double_ownership(nodes: list[Node], now: float) -> None:
    for p in range(nodes[0].partitions):
        owners = [n.id for n in nodes if p in n.held and not n.held[p].expired(now)]
        assert len(owners) <= 1, f"partition {p} owned by {owners}"


def run_rounds(nodes: list[Node], clock: FakeClock, rounds: int, shed: bool) -> None:
    for _ in range(rounds):
        for node in nodes:
            if node.alive:
                node.tick(shed)
                check_no_double_ownership(nodes, clock.now)
        clock.advance(TTL / 4)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(0, 4), st.booleans()),
        st.tuples(st.just("advance"), st.floats(0, 2 * TTL), st.just(False)),
        st.tuples(st.just("kill"), st.integers(0, 4), st.just(False)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(partitions=st.integers(1, 12), n_nodes=st.integers(1, 5), script=steps)
def test_plans_never_double_own_and_converge(
    partitions: int, n_nodes: int, script: list[tuple[str, Any, bool]]
) -> None:
    clock = FakeClock()
    store = MemoryStore()
    nodes = [Node(store, f"n{i}", clock, partitions) for i in range(n_nodes)]
    for action, arg, shed in script:
        if action == "advance":
            clock.advance(arg)
        elif nodes[arg % n_nodes].alive:
            node = nodes[arg % n_nodes]
            if action == "kill" and sum(n.alive for n in nodes) > 1:
                node.alive = False  # crash: no release, no leave
            elif action == "tick":
                node.tick(shed)
        check_no_double_ownership(nodes, clock.now)

    # Liveness: once every surviving node keeps running, every partition has a live owner
    # (dead nodes' partitions moved) and, with shedding, nobody holds more than its share.
    clock.advance(TTL)  # every dead node's heartbeat and leases expire
    alive = [n for n in nodes if n.alive]
    run_rounds(nodes, clock, rounds=2 * partitions + 4, shed=True)
    owners = {p: n.id for n in alive for p, r in n.held.items() if not r.expired(clock.now)}
    assert sorted(owners) == list(range(partitions))
    share = fair_share(partitions, len(alive))
    assert all(len(n.held) <= share for n in alive)


def test_dead_node_partitions_move() -> None:
    clock, store = FakeClock(), MemoryStore()
    nodes = [Node(store, f"n{i}", clock, 9) for i in range(3)]
    run_rounds(nodes, clock, rounds=4, shed=True)
    assert sorted(len(n.held) for n in nodes) == [3, 3, 3]
    nodes[1].alive = False
    moved = {p: r.epoch for p, r in nodes[1].held.items()}
    clock.advance(TTL)
    run_rounds(nodes, clock, rounds=4, shed=True)
    survivors = nodes[0].held.keys() | nodes[2].held.keys()
    assert moved.keys() <= survivors and len(survivors) == 9
    for p, epoch in moved.items():
        # taken over (epoch + 1), perhaps shed once more to even out the shares
        assert nodes[0].leases.read(f"s/{p}").epoch in (epoch + 1, epoch + 2)  # type: ignore[union-attr]
    assert sorted([len(nodes[0].held), len(nodes[2].held)]) == [4, 5]


# -- real S3 (SeaweedFS) ---------------------------------------------------------------------


def s3_store(s3_server: Any, s3_url: str) -> S3Store:
    """The store for one test's ``s3://bucket/prefix`` (lower-case ``aws_*`` config keys;
    ``allow_http`` is a client option)."""
    return S3Store.from_url(
        s3_url,
        config={
            "aws_access_key_id": s3_server.access_key,
            "aws_secret_access_key": s3_server.secret_key,
            "aws_region": s3_server.region,
            "aws_endpoint": s3_server.endpoint,
        },
        client_options={"allow_http": True},
    )


@pytest.mark.parametrize("round_", range(2))
def test_s3_racing_nodes_each_key_has_one_winner(s3_server: Any, s3_url: str, round_: int) -> None:
    store = s3_store(s3_server, s3_url)
    keys = [f"s/{i}" for i in range(12)]
    nodes = [leases_for(store, f"node-{i}") for i in range(3)]
    wins: dict[str, list[str]] = {k: [] for k in keys}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(nodes))

    def race(leases: Leases) -> None:
        barrier.wait()
        try:
            for key in keys:
                if leases.acquire(key) is not None:
                    wins[key].append(leases.node_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert all(len(w) == 1 for w in wins.values()), wins
    assert {r.key: r.holder for r in nodes[0].read_all()} == {k: w[0] for k, w in wins.items()}


def test_s3_racing_takeover_of_expired_lease(s3_server: Any, s3_url: str) -> None:
    store = s3_store(s3_server, s3_url)
    clock = FakeClock()
    leases_for(store, "old", clock).acquire("k")
    clock.advance(TTL)
    contenders = [leases_for(store, f"new-{i}", clock) for i in range(4)]
    results: list[LeaseRecord | None] = []
    barrier = threading.Barrier(len(contenders))

    def take(leases: Leases) -> None:
        barrier.wait()
        results.append(leases.acquire("k"))

    threads = [threading.Thread(target=take, args=(c,)) for c in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [r for r in results if r is not None]
    assert len(results) == 4 and len(winners) == 1
    assert winners[0].epoch == 2
    assert contenders[0].read("k") == winners[0]


def test_s3_takeover_after_real_expiry(s3_server: Any, s3_url: str) -> None:
    store = s3_store(s3_server, s3_url)
    a, b = leases_for(store, "a", ttl=1.0), leases_for(store, "b", ttl=1.0)
    old = a.acquire("k", {"flight": "grpc://a:1"})
    assert old is not None
    assert b.acquire("k") is None
    time.sleep(1.1)
    new = b.acquire("k", {"flight": "grpc://b:1"})
    assert new is not None and (new.holder, new.epoch) == ("b", 2)
    with pytest.raises(LeaseLost):
        a.renew(old)
    a.release(old)  # stale: must not clobber b
    assert b.read("k") == new
    assert b.renew(new).info == {"flight": "grpc://b:1"}


def test_s3_release_and_successor(s3_server: Any, s3_url: str) -> None:
    store = s3_store(s3_server, s3_url)
    a, b = leases_for(store, "a"), leases_for(store, "b")
    record = a.acquire("k")
    assert record is not None and b.acquire("k") is None
    a.release(record)
    new = b.acquire("k")
    assert new is not None and new.epoch == 2


def test_s3_node_registry(s3_server: Any, s3_url: str) -> None:
    store = s3_store(s3_server, s3_url)
    node = f"n-{uuid.uuid4().hex[:8]}"
    registry = NodeRegistry(store, node_id=node, ttl=30)
    registry.heartbeat({"http": "http://127.0.0.1:1"})
    assert [(n.node_id, dict(n.info)) for n in registry.live_nodes()] == [
        (node, {"http": "http://127.0.0.1:1"})
    ]
    registry.leave()
    assert registry.live_nodes() == []
