"""Disk faults (ENOSPC, EIO) injected into the WAL, the segment writer and the Delta commit.

Through ``IOHooks`` (the test seam of ``Log``) and a patched Delta commit: a failing write
is refused with ``StorageError``, nothing acknowledged before is lost, reads keep working,
and once the fault clears writes resume with gap-free offsets and no duplicates, also
across a reopen.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from arrowlog import StorageError
from arrowlog.config import Settings
from arrowlog.http import create_app
from arrowlog.log import IOHooks, Log
from arrowlog.wal import WriteAheadLog, encode_batch
from tests.reliability._support import EIO, ENOSPC, Acks, Fault, check_delta_files, wait_until

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _batch(k0: int, n: int) -> pa.Table:
    return pa.table(
        {
            "ts": pa.array(
                [T0 + timedelta(hours=(k % 60)) for k in range(k0, k0 + n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "k": pa.array(range(k0, k0 + n), pa.int64()),
        }
    )


def _open(path: Path, hooks: IOHooks | None = None, **settings: object) -> Log:
    defaults: dict[str, object] = {"flush_interval": 3600.0, "compact_interval": 3600.0}
    return Log(Settings(data_dir=path, **{**defaults, **settings}), io_hooks=hooks)


def _contents(log: Log, stream: str = "s") -> tuple[list[int], list[int]]:
    t = log.sql(f"SELECT _offset, k FROM {stream} ORDER BY _offset").to_arrow()
    return t.column("_offset").to_pylist(), t.column("k").to_pylist()


def _parquet_files(path: Path) -> set[str]:
    return {str(p) for p in (path / "streams").rglob("*.parquet")}


def _live_files(path: Path, stream: str = "s") -> set[str]:
    uris = DeltaTable(str(path / "streams" / stream)).file_uris()
    return {u.removeprefix("file://") for u in uris}


# -- the WAL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [ENOSPC, EIO], ids=["ENOSPC", "EIO"])
@pytest.mark.parametrize("where", ["fsync", "write"])
def test_wal_fault_refuses_the_append_keeps_acks_and_recovers(
    tmp_path: Path, code: int, where: str
) -> None:
    fault = Fault()
    hooks = (
        IOHooks(wal_fsync=fault.fsync(os.fdatasync))
        if where == "fsync"
        else IOHooks(wal_write=fault.writev())
    )
    acks = Acks()
    log = _open(tmp_path, hooks)
    r = log.append("s", _batch(0, 5))
    acks.add("s", r.first_offset, r.last_offset, 0)

    fault.set(code)
    expected = (
        f"WAL fsync failed, the write was not acknowledged: [Errno {code}] {os.strerror(code)}"
        if where == "fsync"
        else f"could not write to the WAL: [Errno {code}] {os.strerror(code)}"
    )
    with pytest.raises(StorageError) as e:
        log.append("s", _batch(100, 3))
    assert str(e.value) == expected
    # While the disk still fails, writes are refused, and say so.
    still = (
        r"the WAL is still failing .* acknowledged records are safe"
        if where == "fsync"  # repair's own fsync fails
        else r"could not write to the WAL"  # repair succeeds, the next write fails again
    )
    with pytest.raises(StorageError, match=still):
        log.append("s", _batch(200, 3))
    # Reads keep working and show exactly the acknowledged records.
    assert _contents(log) == ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
    assert log.describe("s").rows == 5

    fault.set(None)
    r = log.append("s", _batch(300, 3))
    assert r.first_offset == 5  # the refused records' offsets are handed out again
    acks.add("s", r.first_offset, r.last_offset, 300)
    acks.check("s", *_contents(log))
    log.close()

    with _open(tmp_path) as reopened:
        offsets, ks = _contents(reopened)
        acks.check("s", offsets, ks)
        assert ks == [0, 1, 2, 3, 4, 300, 301, 302]  # nothing refused came back


def test_wal_repair_cuts_the_tail_and_never_reports_a_taken_back_entry(tmp_path: Path) -> None:
    """Sequence numbers of taken-back entries are not reused: a late waiter still fails."""
    fault = Fault()
    wal = WriteAheadLog(tmp_path, fsync_hook=fault.fsync(os.fdatasync))
    assert list(wal.replay()) == []
    first = wal.write("s", 0, encode_batch(_batch(0, 2)))
    wal.sync(first)
    pending = wal.write("s", 2, encode_batch(_batch(2, 2)))
    fault.set(EIO)
    with pytest.raises(StorageError, match=r"^WAL fsync failed, the write was not acknowledged"):
        wal.sync(pending)
    assert wal.broken
    with pytest.raises(StorageError, match=r"^the WAL is still failing \(\[Errno 5\]"):
        wal.repair()
    fault.set(None)
    assert wal.repair() == pending  # entries from `pending` on are gone
    later = wal.write("s", 2, encode_batch(_batch(100, 2)))
    wal.sync(later)
    assert later > pending
    with pytest.raises(StorageError, match="not acknowledged"):
        wal.sync(pending)  # durable seqs moved past it, yet it was never written back
    wal.close()
    replayed = list(WriteAheadLog(tmp_path).replay())
    assert [(e.seq, e.first_offset, e.table.column("k").to_pylist()) for e in replayed] == [
        (first, 0, [0, 1]),
        (later, 2, [100, 101]),
    ]


def test_fault_under_concurrent_writers_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Writers sharing group-commit fsyncs while the disk fails on and off."""
    fault = Fault()
    log = _open(tmp_path, IOHooks(wal_fsync=fault.fsync(os.fdatasync)), flush_rows=400)
    acks = Acks()
    refused = [0]
    counter = iter(range(0, 10**9, 10))
    lock = threading.Lock()
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            with lock:
                k0 = next(counter)
            try:
                r = log.append("s", _batch(k0, 1 + k0 % 7))
            except StorageError:
                with lock:
                    refused[0] += 1
                continue
            acks.add("s", r.first_offset, r.last_offset, k0)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for round_ in range(6):
            acked = acks.count()
            wait_until(lambda a=acked: acks.count() > a + 50, 30, "writers make progress")
            fault.set(EIO if round_ % 2 == 0 else ENOSPC)
            failed = refused[0]
            wait_until(lambda f=failed: refused[0] > f + 5, 30, "writers see the fault")
            fault.set(None)
        resumed = acks.count()
        wait_until(lambda: acks.count() > resumed + 50, 30, "writers resume")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert refused[0] > 0
    acks.check("s", *_contents(log))
    log.close()
    with _open(tmp_path) as reopened:
        offsets, ks = _contents(reopened)
        acks.check("s", offsets, ks)
        assert len(offsets) == acks.count()  # a refused append never comes back
    assert check_delta_files(tmp_path / "streams" / "s") > 0


# -- flushes: segment files and the Delta commit ---------------------------------------------


@pytest.mark.parametrize("code", [ENOSPC, EIO], ids=["ENOSPC", "EIO"])
def test_segment_write_fault_keeps_records_buffered_and_a_later_flush_succeeds(
    tmp_path: Path, code: int
) -> None:
    fault = Fault()
    log = _open(tmp_path, IOHooks(segment_fsync=fault.fsync(os.fsync)))
    log.append("s", _batch(0, 50))
    log.flush()
    log.append("s", _batch(50, 50))

    fault.set(code)
    with pytest.raises(StorageError, match=rf"could not write segment file .*\[Errno {code}\]"):
        log.flush()
    assert log.describe("s").buffered_rows == 50
    assert _contents(log) == (list(range(100)), list(range(100)))
    # The failed flush left no file behind, committed or not.
    assert _parquet_files(tmp_path) == _live_files(tmp_path)

    fault.set(None)
    log.flush()
    assert log.describe("s").buffered_rows == 0
    assert _contents(log) == (list(range(100)), list(range(100)))
    log.close()
    with _open(tmp_path) as reopened:
        assert _contents(reopened) == (list(range(100)), list(range(100)))
    check_delta_files(tmp_path / "streams" / "s")


def test_delta_commit_fault_keeps_records_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = DeltaTable.create_write_transaction
    fault = Fault()

    def commit(self: DeltaTable, *args: object, **kwargs: object) -> object:
        fault._check()  # fails before anything is written
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", commit)
    log = _open(tmp_path)
    log.append("s", _batch(0, 20))
    fault.set(EIO)
    with pytest.raises(StorageError, match=r"flush of stream 's' failed: .*Input/output error"):
        log.flush()
    assert log.describe("s").buffered_rows == 20
    assert _contents(log) == (list(range(20)), list(range(20)))
    fault.set(None)
    log.flush()
    assert log.describe("s").buffered_rows == 0
    assert _contents(log) == (list(range(20)), list(range(20)))
    log.close()
    with _open(tmp_path) as reopened:
        assert _contents(reopened) == (list(range(20)), list(range(20)))


@pytest.mark.parametrize("operation", ["flush", "compact"])
def test_a_commit_that_landed_but_reported_failure_is_not_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The commit reaches the Delta log, then an error is raised (the answer was lost).

    Retrying the flush blindly would commit the same records a second time; the log
    re-reads the Delta log first. For a compaction, the index must drop the files the
    commit removed (vacuum deletes them) and pick up the new ones.
    """
    real = DeltaTable.create_write_transaction
    lose_answer = threading.Event()

    def commit(self: DeltaTable, *args: object, **kwargs: object) -> object:
        result = real(self, *args, **kwargs)
        if lose_answer.is_set():
            lose_answer.clear()
            raise OSError(EIO, os.strerror(EIO))
        return result

    monkeypatch.setattr(DeltaTable, "create_write_transaction", commit)
    log = _open(tmp_path, vacuum_grace_hours=0)
    for i in range(3):
        log.append("s", _batch(i * 10, 10))
        if operation == "compact":
            log.flush()
    lose_answer.set()
    with pytest.raises(StorageError, match="Input/output error"):
        log.flush() if operation == "flush" else log.compact()
    log.append("s", _batch(30, 10))
    log.flush()
    log.compact()  # vacuum (grace 0) deletes what compaction removed: the index must know
    assert _contents(log) == (list(range(40)), list(range(40)))
    assert log.describe("s").rows == 40
    log.close()
    with _open(tmp_path) as reopened:
        assert _contents(reopened) == (list(range(40)), list(range(40)))
    check_delta_files(tmp_path / "streams" / "s")


def test_background_flusher_survives_a_segment_fault_and_retries(tmp_path: Path) -> None:
    fault = Fault()
    log = _open(
        tmp_path, IOHooks(segment_fsync=fault.fsync(os.fsync)), flush_rows=10, flush_interval=0.2
    )
    fault.set(EIO)
    log.append("s", _batch(0, 20))
    wait_until(lambda: fault.calls >= 2, 20, "the background flusher tried (and retried)")
    assert log.describe("s").buffered_rows == 20
    fault.set(None)
    wait_until(lambda: log.describe("s").buffered_rows == 0, 20, "the flusher succeeded")
    assert _contents(log) == (list(range(20)), list(range(20)))
    log.close()


# -- what a server answers -----------------------------------------------------------------------


def test_http_refuses_writes_with_500_and_keeps_serving_reads(tmp_path: Path) -> None:
    fault = Fault()
    log = _open(tmp_path, IOHooks(wal_fsync=fault.fsync(os.fdatasync)))
    app = create_app(log, log.settings)
    body = b'{"ts": "2026-11-20T12:00:00Z", "k": 1}\n'
    headers = {"Content-Type": "application/x-ndjson"}
    # Host 127.0.0.1, not TestClient's "testserver": the app answers only its own names.
    with TestClient(app, base_url="http://127.0.0.1") as http:
        assert http.post("/v1/streams/s/records", content=body, headers=headers).status_code == 200
        fault.set(ENOSPC)
        r = http.post("/v1/streams/s/records", content=body, headers=headers)
        assert r.status_code == 500
        assert r.json() == {
            "error": "StorageError",
            "message": "WAL fsync failed, the write was not acknowledged: "
            "[Errno 28] No space left on device",
        }
        assert http.get("/healthz").status_code == 200
        q = http.post("/v1/query", json={"sql": "SELECT count(*) AS n FROM s"})
        assert q.json()["rows"] == [[1]]
        fault.set(None)
        r = http.post("/v1/streams/s/records", content=body, headers=headers)
        assert r.status_code == 200 and r.json()["first_offset"] == 1
    log.close()
