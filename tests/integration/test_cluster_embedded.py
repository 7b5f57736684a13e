"""Two cluster nodes in one process over a real S3 (SeaweedFS): shards, leases, reads.

The kill -9 takeover between ``arrowlog serve`` processes is in ``test_cluster.py``; here
the nodes are two ``Log`` objects with their own data directories and node ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import arrowlog
from arrowlog.config import Settings
from arrowlog.errors import InvalidInput, NotShardOwner
from arrowlog.log import Log

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)


def _node(tmp_path: Path, s3_server, s3_url: str, node_id: str) -> Log:
    settings = Settings.load(
        env=s3_server.env(),
        data_dir=tmp_path / node_id,
        storage=s3_url,
        node_id=node_id,
        shards=2,
        lease_seconds=3.0,
        refresh_interval=0.2,
    )
    return arrowlog.open(settings=settings)


def _wait(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def _rows(ids: range) -> list[dict]:
    return [{"ts": T0 + timedelta(seconds=i), "id": i, "level": "INFO"} for i in ids]


@pytest.fixture
def nodes(tmp_path, s3_server, s3_url) -> Iterator[tuple[Log, Log]]:
    a = _node(tmp_path, s3_server, s3_url, "node-a")
    a.append("events", _rows(range(0, 1)))  # creates the stream; node a claims its share
    b = _node(tmp_path, s3_server, s3_url, "node-b")
    try:
        # Node b is below its fair share (1 of 2) once it sees the stream: it claims the
        # shard node a did not take.
        _wait(lambda: len(a.cluster.held("events")) == 1 and len(b.cluster.held("events")) == 1)
        yield a, b
    finally:
        b.close()
        a.close()


def test_each_node_writes_its_own_shard_and_reads_everything(nodes) -> None:
    a, b = nodes
    [pa_] = a.cluster.held("events")
    [pb] = b.cluster.held("events")
    assert {pa_, pb} == {0, 1}
    results = []
    threads = [
        threading.Thread(
            target=lambda log=log, lo=lo: results.extend(
                log.append("events", _rows(range(lo + i * 100, lo + i * 100 + 100)))
                for i in range(5)
            )
        )
        for log, lo in ((a, 1000), (b, 2000))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.shard in (pa_, pb) for r in results)
    # Read-your-writes on the node that acknowledged; the other node within its refresh.
    assert a.sql("SELECT count(*) AS c FROM events WHERE id >= 1000 AND id < 2000").to_arrow()[
        "c"
    ].to_pylist() == [500]
    _wait(lambda: b.sql("SELECT count(*) AS c FROM events").to_arrow()["c"][0].as_py() == 1001)
    _wait(lambda: a.sql("SELECT count(*) AS c FROM events").to_arrow()["c"][0].as_py() == 1001)
    query = "SELECT _partition, count(*) AS c, min(_offset) AS lo, max(_offset) AS hi FROM events GROUP BY _partition ORDER BY _partition"
    on_a = a.sql(query).to_arrow().to_pylist()
    assert on_a == b.sql(query).to_arrow().to_pylist()
    for row in on_a:  # gap-free offsets per shard
        assert row["lo"] == 0 and row["hi"] == row["c"] - 1
    replay = a.read("events", 0, 10_000, partition=pb)
    assert replay["_offset"].to_pylist() == list(range(replay.num_rows))


def test_writes_to_another_nodes_shard_name_the_owner(nodes) -> None:
    a, b = nodes
    [pb] = b.cluster.held("events")
    with pytest.raises(NotShardOwner) as e:
        a.append("events", _rows(range(5000, 5001)), shard=pb)
    assert e.value.owner["node"] == "node-b"
    assert "node 'node-b'" in str(e.value)
    with pytest.raises(InvalidInput, match=r"shards 0\.\.1, not 7"):
        a.append("events", _rows(range(1)), shard=7)
    with pytest.raises(InvalidInput, match="pass a shard"):
        a.read("events", 0, 10)


def test_a_node_leaving_hands_its_shard_over(nodes) -> None:
    a, b = nodes
    [pb] = b.cluster.held("events")
    b.append("events", _rows(range(3000, 3010)))
    b.close()  # releases its lease: node a takes the shard on its next claim round
    _wait(lambda: sorted(a.cluster.held("events")) == [0, 1])
    result = a.append("events", _rows(range(3010, 3020)), partition=pb)  # former name
    assert (result.first_offset, result.last_offset) == (10, 19)  # continues, no gap
    got = a.read("events", 0, 100, partition=pb)["id"].to_pylist()
    assert got == list(range(3000, 3020))


def test_each_node_compacts_only_the_shards_it_writes(nodes) -> None:
    a, b = nodes
    [pa_] = a.cluster.held("events")
    for i in range(4):
        a.append("events", _rows(range(10_000 + 10 * i, 10_010 + 10 * i)))
        b.append("events", _rows(range(20_000 + 10 * i, 20_010 + 10 * i)))
    query = "SELECT _partition, count(*) AS c, sum(id) AS s FROM events GROUP BY _partition ORDER BY _partition"
    _wait(lambda: a.sql(query).to_arrow().equals(b.sql(query).to_arrow()))
    before = a.sql(query).to_arrow()

    def files(log: Log, shard: int) -> int:
        return sum(1 for seg in log._get("events").catalog.segments.values() if seg.shard == shard)

    others = files(a, 1 - pa_)
    [result] = a.compact("events")
    assert result.files_removed >= 4 and result.files_added == 1
    assert files(a, pa_) == 1 and files(a, 1 - pa_) == others  # node b's files untouched
    assert a.sql(query).to_arrow().equals(before)
    _wait(lambda: b.sql(query).to_arrow().equals(before))
