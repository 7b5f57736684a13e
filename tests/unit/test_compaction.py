"""Compaction and retention: fewer files, same rows and offsets, sorted, metadata-only drops."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import deltalake
import pyarrow.parquet as pq
import pytest

import arrowlog
from arrowlog.catalog import SegmentInfo
from arrowlog.compaction import expired_partitions, partitions_to_compact

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _fill(log: arrowlog.Log, flushes: int = 8) -> None:
    for i in range(flushes):
        # Each flush writes into three day partitions; times go backwards within a batch.
        log.append(
            "s",
            [
                {"ts": T0 + timedelta(hours=h, minutes=i), "n": i * 100 + h}
                for h in range(69, -1, -3)
            ],
        )
        log.flush()


def _rows(log: arrowlog.Log) -> list[dict]:
    return log.sql("SELECT _offset, n, ts FROM s ORDER BY _offset").to_arrow().to_pylist()


def test_compaction_merges_small_segments_keeping_rows_offsets_and_time_order(
    tmp_path: Path,
) -> None:
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        _fill(log)
        before = _rows(log)
        assert log.describe("s").segments == 24
        [result] = log.compact()
        assert (result.partitions, result.files_removed, result.files_added, result.rows) == (
            3,
            24,
            3,
            len(before),
        )
        assert log.describe("s").segments == 3
        assert _rows(log) == before
        files = deltalake.DeltaTable(str(tmp_path / "streams" / "s")).file_uris()
        assert len(files) == 3
        for f in files:
            ts = pq.read_table(f, columns=["ts"]).column("ts").to_pylist()
            assert ts == sorted(ts)
        assert log.compact()[0].partitions == 0  # nothing left to do
    with arrowlog.open(tmp_path) as log:  # the index after reopen comes from the Delta log
        assert log.describe("s").segments == 3
        assert _rows(log) == before


def test_a_query_planned_before_compaction_still_reads_its_files(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path, flush_interval=3600.0, vacuum_grace_hours=1) as log:
        _fill(log, 4)
        running = log.sql("SELECT count(*) AS c, sum(n) AS s FROM s")  # snapshot taken at planning
        expected = log.sql("SELECT count(*) AS c, sum(n) AS s FROM s").to_arrow().to_pylist()
        log.compact()
        assert running.to_arrow().to_pylist() == expected


def test_late_records_land_in_their_old_partition(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        log.append("s", [{"ts": T0 + timedelta(days=5), "n": 1}])
        log.flush()
        log.append("s", [{"ts": T0, "n": 2}])  # five days late
        log.flush()
        days = sorted(str(s.day) for s in log._streams["s"].catalog.segments.values())
        assert days == ["2026-11-01", "2026-11-06"]
        got = log.sql("SELECT n FROM s WHERE ts < TIMESTAMP '2026-11-02T00:00:00Z'").to_arrow()
        assert got.column("n").to_pylist() == [2]


def test_retention_by_age_drops_exactly_the_expired_days(tmp_path: Path) -> None:
    with arrowlog.open(
        tmp_path, flush_interval=3600.0, retention_days=1.0, vacuum_grace_hours=0
    ) as log:
        _fill(log, 2)
        before = _rows(log)
        [res] = log.apply_retention(now=datetime(2026, 11, 3, 6, tzinfo=UTC))
        assert res.partitions == [date(2026, 11, 1)]
        assert res.files_removed == 2 and res.bytes_removed > 0
        left = log.sql("SELECT min(ts) AS lo, count(*) AS c FROM s").to_arrow().to_pylist()[0]
        assert left["lo"] >= datetime(2026, 11, 2, tzinfo=UTC) and left["c"] == 2 * 16
        # Exactly the records of 2026-11-01 are gone; every other offset is intact.
        assert _rows(log) == [r for r in before if r["ts"] >= datetime(2026, 11, 2, tzinfo=UTC)]
        dt = deltalake.DeltaTable(str(tmp_path / "streams" / "s"))
        [op] = [h for h in dt.history(5) if h["operation"] == "DELETE"]
        assert op["operationMetrics"]["num_copied_rows"] == 0  # metadata-only: nothing rewritten


def _seg(day: int, size: int) -> SegmentInfo:
    return SegmentInfo(f"/x/{day}-{size}", size, 1, 0, 0, None, None, date(2026, 11, day))


def test_retention_by_bytes_keeps_the_newest_partition() -> None:
    segs = [_seg(1, 100), _seg(2, 100), _seg(3, 500)]
    now = datetime(2026, 11, 4, tzinfo=UTC)
    assert expired_partitions(segs, now=now, retention_days=0, retention_bytes=250) == [
        date(2026, 11, 1),
        date(2026, 11, 2),
    ]
    assert expired_partitions(segs, now=now, retention_days=0, retention_bytes=10) == [
        date(2026, 11, 1),
        date(2026, 11, 2),
    ]
    assert expired_partitions(segs, now=now, retention_days=0, retention_bytes=0) == []
    assert expired_partitions(segs, now=now, retention_days=1.5, retention_bytes=0) == [
        date(2026, 11, 1)
    ]


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([10, 10], [date(2026, 11, 1)]),
        ([10], []),
        ([10, 900], []),
        ([900, 900, 10, 10], [date(2026, 11, 1)]),
    ],
)
def test_only_partitions_with_several_small_files_are_compacted(
    sizes: list[int], expected: list[date]
) -> None:
    segs = [
        SegmentInfo(f"/x/{i}", s, 1, 0, 0, None, None, date(2026, 11, 1))
        for i, s in enumerate(sizes)
    ]
    assert partitions_to_compact(segs, target_bytes=1000) == expected


def _held_compaction(
    monkeypatch: pytest.MonkeyPatch, thread: str
) -> tuple[threading.Event, threading.Event, Callable[[arrowlog.Log], None], list[BaseException]]:
    """Hold the compaction running in thread ``thread`` just before it reads a day.

    Returns (set once it is held, set to let it go, a compaction to run in that thread,
    the errors the compactions raised).
    """
    from arrowlog import compaction as compaction_module

    reading = threading.Event()
    release = threading.Event()
    real = compaction_module.read_partition
    errors: list[BaseException] = []

    def held_read(snap, day):
        if threading.current_thread().name == thread:
            reading.set()
            release.wait(10)
        return real(snap, day)

    def compact(lg: arrowlog.Log) -> None:
        try:
            lg.compact("s")
        except BaseException as e:
            errors.append(e)

    monkeypatch.setattr(compaction_module, "read_partition", held_read)
    return reading, release, compact, errors


def test_two_compactions_of_one_stream_run_one_after_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compaction must not vacuum the files another compaction of the stream is reading.

    The first compaction is held inside its read; the second then either waits for it
    (right) or merges and vacuums the same files (grace 0), and the first one's read
    fails with FileNotFoundError.
    """
    with arrowlog.open(tmp_path, flush_interval=3600.0, vacuum_grace_hours=0) as lg:
        _fill(lg)
        before = _rows(lg)
        reading, release, compact, errors = _held_compaction(monkeypatch, "first")
        first = threading.Thread(target=compact, args=(lg,), name="first")
        first.start()
        assert reading.wait(10)
        second = threading.Thread(target=compact, args=(lg,), name="second")
        second.start()
        second.join(2.0)  # with one compaction at a time, it is still waiting here
        release.set()
        first.join(30)
        second.join(30)
        assert errors == []
        assert _rows(lg) == before


def test_retention_waits_for_a_compaction_of_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention must not vacuum the files a running compaction is reading.

    The compaction is held just before it reads the first day; retention then drops that
    day and vacuums (grace 0). Unless retention waits for the compaction, the read finds
    its files gone (FileNotFoundError, reported as a storage error).
    """
    with arrowlog.open(
        tmp_path, flush_interval=3600.0, vacuum_grace_hours=0, retention_days=1
    ) as lg:
        _fill(lg)
        kept = [r for r in _rows(lg) if r["ts"] >= T0 + timedelta(days=1)]
        reading, release, compact, errors = _held_compaction(monkeypatch, "compaction")
        compacting = threading.Thread(target=compact, args=(lg,), name="compaction")
        compacting.start()
        assert reading.wait(10)
        retention = threading.Thread(
            target=lambda: lg.apply_retention("s", now=T0 + timedelta(days=2, hours=12)),
            name="retention",
        )
        retention.start()
        retention.join(2.0)  # with the fix, still waiting for the compaction here
        release.set()
        compacting.join(30)
        retention.join(30)
        assert errors == []
        assert _rows(lg) == kept
