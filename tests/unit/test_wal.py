from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowlog.errors import StorageError
from arrowlog.wal import WriteAheadLog, encode_batch


def _table(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {"x": pa.array(range(start, start + n), pa.int64()), "s": [f"v{i}" for i in range(n)]}
    )


def _open(path: Path, **kw) -> tuple[WriteAheadLog, list]:
    wal = WriteAheadLog(path, **kw)
    return wal, list(wal.replay())


def test_entries_round_trip_in_order(tmp_path: Path) -> None:
    wal, old = _open(tmp_path)
    assert old == []
    seqs = [wal.write("a", i * 3, encode_batch(_table(3, i * 3))) for i in range(5)]
    wal.sync(seqs[-1])
    wal.close()
    _, entries = _open(tmp_path)
    assert [e.seq for e in entries] == seqs == [1, 2, 3, 4, 5]
    assert [e.first_offset for e in entries] == [0, 3, 6, 9, 12]
    assert entries[2].table.equals(_table(3, 6))
    assert {e.stream for e in entries} == {"a"}


def _last_file(path: Path) -> Path:
    return sorted(path.glob("*.wal"))[-1]


def _write_entries(path: Path, n: int) -> None:
    wal, _ = _open(path)
    for i in range(n):
        wal.sync(wal.write("s", i * 2, encode_batch(_table(2, i * 2))))
    wal.close()


@pytest.mark.parametrize("cut", [1, 5, 17, 100])
def test_torn_tail_is_cut_off_and_earlier_entries_survive(tmp_path: Path, cut: int) -> None:
    _write_entries(tmp_path, 4)
    f = _last_file(tmp_path)
    size = f.stat().st_size
    with open(f, "r+b") as fh:
        fh.truncate(size - cut)
    _, entries = _open(tmp_path)
    assert [e.first_offset for e in entries] == [0, 2, 4]
    # The torn bytes are gone from disk: a second open sees the same three entries.
    wal, again = _open(tmp_path)
    assert [e.first_offset for e in again] == [0, 2, 4]
    wal.close()


def test_corrupt_last_entry_fails_checksum_and_is_not_read_as_data(tmp_path: Path) -> None:
    _write_entries(tmp_path, 3)
    f = _last_file(tmp_path)
    data = bytearray(f.read_bytes())
    data[-20] ^= 0xFF  # flip a byte inside the last entry's body
    f.write_bytes(bytes(data))
    _, entries = _open(tmp_path)
    assert [e.first_offset for e in entries] == [0, 2]


def test_garbage_appended_after_the_last_entry_is_ignored(tmp_path: Path) -> None:
    _write_entries(tmp_path, 2)
    with open(_last_file(tmp_path), "ab") as fh:
        fh.write(os.urandom(64))
    _, entries = _open(tmp_path)
    assert [e.first_offset for e in entries] == [0, 2]


def test_corruption_in_an_older_file_is_refused_not_skipped(tmp_path: Path) -> None:
    _write_entries(tmp_path, 2)  # file 1
    _write_entries_again = WriteAheadLog(tmp_path)
    list(_write_entries_again.replay())
    _write_entries_again.sync(_write_entries_again.write("s", 4, encode_batch(_table(2, 4))))
    _write_entries_again.close()
    first = sorted(tmp_path.glob("*.wal"))[0]
    data = bytearray(first.read_bytes())
    data[-10] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=r"corrupt at byte .* not the newest file"):
        _open(tmp_path)


def test_not_a_wal_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / f"{1:020d}.wal").write_bytes(b"this is not a wal file at all")
    with pytest.raises(StorageError, match="bad magic"):
        _open(tmp_path)


def test_group_commit_shares_fsyncs_between_concurrent_writers(tmp_path: Path) -> None:
    calls = []

    def slow_fsync(fd: int) -> None:
        calls.append(fd)
        time.sleep(0.005)  # a disk that takes 5 ms per fsync
        os.fdatasync(fd)

    wal, _ = _open(tmp_path, fsync_hook=slow_fsync)
    lock = threading.Lock()
    enc = encode_batch(_table(10))

    def writer() -> None:
        for _ in range(25):
            with lock:  # the Log serialises write(); sync() runs concurrently
                seq = wal.write("s", 0, enc)
            wal.sync(seq)
            assert wal.synced_seq >= seq

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wal.close()
    assert wal.synced_seq == 200
    assert len(calls) < 200 / 2, f"{len(calls)} fsyncs for 200 writes: no sharing"


def test_fsync_failure_refuses_the_write_and_later_writes(tmp_path: Path) -> None:
    def failing(fd: int) -> None:
        raise OSError(28, "No space left on device")

    wal, _ = _open(tmp_path, fsync_hook=failing)
    seq = wal.write("s", 0, encode_batch(_table(1)))
    with pytest.raises(StorageError, match=r"fsync failed.*No space left"):
        wal.sync(seq)
    with pytest.raises(StorageError, match="unusable after an earlier failure"):
        wal.write("s", 1, encode_batch(_table(1)))


def test_rotation_and_release_reclaim_only_fully_flushed_files(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, segment_bytes=2048)
    big = encode_batch(_table(200))
    seqs = []
    for i in range(6):
        seqs.append(wal.write("s", i * 200, big))
        wal.sync(seqs[-1])
    assert wal.file_count >= 3
    files_before = sorted(tmp_path.glob("*.wal"))
    wal.release(below_seq=seqs[3])
    remaining = sorted(tmp_path.glob("*.wal"))
    assert len(remaining) < len(files_before)
    wal.close()
    _, entries = _open(tmp_path, segment_bytes=2048)
    kept = [e.seq for e in entries]
    assert kept == list(range(kept[0], 7)) and kept[0] <= seqs[3]


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=8), cut=st.integers(0, 400))
def test_any_truncation_keeps_a_prefix_of_the_entries(
    tmp_path_factory, sizes: list[int], cut: int
) -> None:
    path = tmp_path_factory.mktemp("wal")
    wal, _ = _open(path)
    offset = 0
    for n in sizes:
        wal.sync(wal.write("s", offset, encode_batch(_table(n, offset))))
        offset += n
    wal.close()
    f = _last_file(path)
    size = f.stat().st_size
    with open(f, "r+b") as fh:
        fh.truncate(max(0, size - cut))
    _, entries = _open(path)
    got = [e.table.num_rows for e in entries]
    assert got == sizes[: len(got)]
    for e in entries:
        assert e.table.column("x").to_pylist() == list(
            range(e.first_offset, e.first_offset + e.table.num_rows)
        )


def test_reopening_an_empty_current_file_never_releases_the_active_file(tmp_path: Path) -> None:
    # Regression: after a clean close the newest file is empty; the next open used to list
    # it twice, and release() then deleted the file being written (acked data lost on crash).
    wal, _ = _open(tmp_path)
    wal.sync(wal.write("s", 0, encode_batch(_table(1))))
    wal.close()
    wal, entries = _open(tmp_path)
    assert [e.first_offset for e in entries] == [0]
    wal.release(below_seq=wal.next_seq)  # everything flushed
    wal.close()
    wal, entries = _open(tmp_path)
    assert entries == []
    seq = wal.write("s", 1, encode_batch(_table(1, 1)))
    wal.sync(seq)
    wal.release(below_seq=seq)  # entry `seq` still needed
    # No close(): as after kill -9.
    _, entries = _open(tmp_path)
    assert [e.first_offset for e in entries] == [1]
