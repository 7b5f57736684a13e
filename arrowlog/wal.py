"""Write-ahead log: a record is acknowledged only once its WAL entry is on disk.

Layout: ``<dir>/<first_seq:020d>.wal`` files, each starting with an 8-byte magic. A file is
never appended to after a restart; recovery opens a new one. Each entry is one frame::

    u32 body_length | u32 crc32(body) | body
    body = Arrow IPC stream bytes | stream name (utf-8) | u16 name_length
           | u64 first_offset | u64 seq

Frames are padded with zeros to a multiple of 8 bytes, and files are read into
Arrow-allocated memory, so the IPC buffers of replayed entries stay 8-byte aligned as
Arrow requires (no copies, no alignment warnings).

The small trailer sits after the IPC bytes so the checksum of the (large) IPC part can be
computed before the writer takes the log's lock: only the trailer is checksummed under it.

Group commit: ``write`` only hands bytes to the OS; ``sync(seq)`` makes them
durable. The first waiter whose entry is not yet durable becomes the leader and fsyncs;
everyone whose entry was written before that fsync started is released by it. Writers that
arrive during an fsync wait for the next one, so concurrent writers share fsyncs and
throughput grows with concurrency.

Failures: when a write or an fsync fails, no entry that was not yet
durable is acknowledged: every waiter for one gets ``StorageError``, and the log refuses
writes (``broken``) until ``repair`` succeeds. After a failed fsync the kernel may have
dropped the dirty pages and will not report it again, so the bytes after the last good
fsync cannot be trusted; ``repair`` cuts the file back to that size and fsyncs the cut.
The lost entries' sequence numbers are never reused (a late waiter for one still learns
it failed); the caller (``Log``) drops them from its buffers and rolls offsets back.

Recovery: ``replay`` yields every intact entry in order. A torn or corrupt tail of the last
file (a crash mid-write) fails its length or checksum test and is cut off with a warning;
damage anywhere else is real corruption and raises ``StorageError`` rather than silently
dropping acknowledged data.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from arrowlog.errors import StorageError

__all__ = ["WalEntry", "WriteAheadLog", "encode_batch"]

logger = logging.getLogger(__name__)

_MAGIC = b"ALWAL\x00\x01\n"
_FRAME = struct.Struct("<II")
_TRAILER = struct.Struct("<HQQ")  # name length, first offset, seq
_SUFFIX = ".wal"


@dataclass(frozen=True, slots=True)
class WalEntry:
    """One replayed entry: ``table`` holds the records whose offsets start at ``first_offset``."""

    seq: int
    stream: str
    first_offset: int
    table: pa.Table


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A table serialised as Arrow IPC, with its checksum, ready for ``WriteAheadLog.write``."""

    ipc: pa.Buffer
    crc: int
    num_rows: int


def encode_batch(table: pa.Table) -> EncodedBatch:
    """Serialise ``table`` for the WAL. Done outside any lock: it is the expensive part.

    The IPC size is measured first (``MockOutputStream`` only counts bytes), so the data
    is copied once into a buffer of exactly that size: a growing ``BufferOutputStream``
    reallocates and copies a 1 MB batch several times over, with fresh pages each time.
    """
    counter = pa.MockOutputStream()
    with pa.ipc.new_stream(counter, table.schema) as writer:
        writer.write_table(table)
    buf = pa.allocate_buffer(counter.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(buf), table.schema) as writer:
        writer.write_table(table)
    return EncodedBatch(buf, zlib.crc32(buf), table.num_rows)


class WriteAheadLog:
    """The durable, ordered record of every acknowledged append, across all streams.

    Not for direct use by applications: ``arrowlog.open()`` owns one per data directory.
    ``write`` must be called by one thread at a time (the Log serialises it with offset
    assignment, so WAL order is offset order); ``sync`` may be called from any thread.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int = 64 * 1024 * 1024,
        fsync: bool = True,
        fsync_hook: Callable[[int], None] | None = None,
        write_hook: Callable[[int, Sequence[bytes | pa.Buffer]], int] | None = None,
        on_fsync: Callable[[float], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._fsync_enabled = fsync
        # Test seams (fault injection, tests/reliability/test_faults.py): called instead of
        # os.fdatasync(fd) and os.writev(fd, buffers); raise OSError to simulate a disk fault.
        self._fsync = fsync_hook or os.fdatasync
        self._writev = write_hook or os.writev
        # Called with each fsync's duration in seconds (the metrics' latency histogram).
        self._on_fsync = on_fsync
        self._cond = threading.Condition()
        self._files: list[tuple[int, Path]] = []  # (first seq, path), oldest first
        self._fd = -1
        self._file_size = 0
        self._synced_size = 0  # size of the current file at its last successful fsync
        self._written = 0  # highest seq handed to the OS
        self._synced = 0  # highest seq known durable
        self._syncing = False
        self._failed: BaseException | None = None  # set while broken (until repair)
        # (first, last, "write"/"fsync", error) of entries a failure took back: never
        # acknowledged. One item per failure, so it stays tiny.
        self._lost: list[tuple[int, int, str, BaseException]] = []
        self._replayed = False
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync_count = 0
        self.fsync_seconds = 0.0

    # -- recovery ---------------------------------------------------------------------------

    def replay(self) -> Iterator[WalEntry]:
        """Yield every intact entry, oldest first, then open a fresh file for new writes.

        Must be called exactly once, before the first ``write``.
        """
        if self._replayed:
            raise RuntimeError("replay() runs once, before any write")
        paths = sorted(p for p in self.directory.iterdir() if p.name.endswith(_SUFFIX))
        last_seq = 0
        for i, path in enumerate(paths):
            is_last = i == len(paths) - 1
            first_seq = int(path.name[: -len(_SUFFIX)])
            self._files.append((first_seq, path))
            for entry in self._read_file(path, is_last):
                if entry.seq <= last_seq:
                    raise StorageError(
                        f"WAL file {path} holds entry {entry.seq} after entry {last_seq}: "
                        "the log is out of order"
                    )
                last_seq = entry.seq
                yield entry
            last_seq = max(last_seq, first_seq - 1)
        self._written = self._synced = last_seq
        self._replayed = True
        if self._files and self._files[-1][0] == last_seq + 1:
            # The newest file holds no entries: it is reopened (and truncated) below, and
            # must be listed once, or release() would take it for an older file.
            self._files.pop()
        self._open_new_file(last_seq + 1)

    def _read_file(self, path: Path, is_last: bool) -> Iterator[WalEntry]:
        with pa.OSFile(str(path)) as f:
            buf = f.read_buffer()
        data = memoryview(buf)
        if len(data) < len(_MAGIC) or bytes(data[: len(_MAGIC)]) != _MAGIC:
            if is_last and len(data) < len(_MAGIC) and _MAGIC.startswith(bytes(data)):
                logger.warning("WAL file %s has a torn header; treating it as empty", path)
                self._truncate(path, 0)
                return
            raise StorageError(f"{path} is not an arrowlog WAL file (bad magic)")
        pos = len(_MAGIC)
        while pos < len(data):
            entry, end = self._read_frame(buf, data, pos)
            if entry is None:
                if not is_last:
                    raise StorageError(
                        f"WAL file {path} is corrupt at byte {pos} and is not the newest file; "
                        "refusing to drop the records after it"
                    )
                logger.warning(
                    "WAL file %s: torn or corrupt tail at byte %d (%d bytes) cut off",
                    path,
                    pos,
                    len(data) - pos,
                )
                self._truncate(path, pos)
                return
            yield entry
            pos = end

    @staticmethod
    def _read_frame(buf: pa.Buffer, view: memoryview, pos: int) -> tuple[WalEntry | None, int]:
        if pos + _FRAME.size > len(view):
            return None, pos
        length, crc = _FRAME.unpack_from(view, pos)
        start = pos + _FRAME.size
        end = start + length
        if length < _TRAILER.size or _padded(end) > len(view):
            return None, pos
        body = view[start:end]
        if zlib.crc32(body) != crc:
            return None, pos
        name_len, first_offset, seq = _TRAILER.unpack_from(body, length - _TRAILER.size)
        ipc_end = length - _TRAILER.size - name_len
        if ipc_end < 0:
            return None, pos
        stream = bytes(body[ipc_end : length - _TRAILER.size]).decode("utf-8")
        table = pa.ipc.open_stream(buf.slice(start, ipc_end)).read_all()
        return WalEntry(seq, stream, first_offset, table), _padded(end)

    def _truncate(self, path: Path, size: int) -> None:
        with open(path, "r+b") as f:
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())

    # -- writing ----------------------------------------------------------------------------

    def write(self, stream: str, first_offset: int, batch: EncodedBatch) -> int:
        """Hand one entry to the OS and return its sequence number. Not durable yet: see sync."""
        with self._cond:
            if self._failed is not None:
                raise StorageError(
                    f"the WAL is unusable after an earlier failure until it is repaired: "
                    f"{self._failed}"
                )
            if self._file_size >= self.segment_bytes:
                self._rotate()
            seq = self._written + 1
            name = stream.encode("utf-8")
            trailer = name + _TRAILER.pack(len(name), first_offset, seq)
            length = batch.ipc.size + len(trailer)
            header = _FRAME.pack(length, zlib.crc32(trailer, batch.crc))
            padding = _ZEROS[: _padded(len(header) + length) - len(header) - length]
            total = len(header) + length + len(padding)
            try:
                written = self._writev(self._fd, [header, batch.ipc, trailer, padding])
                if written != total:
                    raise OSError(f"short write to the WAL ({written} of {total} bytes)")
            except OSError as e:
                # Part of the frame may be in the file: the tail is cut off by repair().
                self._fail(e, "write")
                raise StorageError(f"could not write to the WAL: {e}") from e
            self._file_size += written
            self._written = seq
            return seq

    def sync(self, seq: int) -> None:
        """Return once entry ``seq`` (and every entry before it) is durable.

        Raises:
            StorageError: the fsync failed; the entry is not acknowledged.
        """
        with self._cond:
            while True:
                lost = self._lost_error(seq)
                if lost is not None:
                    what, error = lost
                    raise StorageError(
                        f"WAL {what} failed, the write was not acknowledged: {error}"
                    ) from error
                if self._synced >= seq:
                    return
                if self._failed is not None:
                    raise StorageError(
                        f"the WAL failed, the write was not acknowledged: {self._failed}"
                    )
                if self._syncing:
                    self._cond.wait()
                    continue
                self._sync_locked()

    def _lost_error(self, seq: int) -> tuple[str, BaseException] | None:
        for first, last, what, error in self._lost:
            if first <= seq <= last:
                return what, error
        return None

    def _sync_locked(self) -> None:
        """Become the leader: fsync everything written so far, with the lock released."""
        self._syncing = True
        target, fd, size = self._written, self._fd, self._file_size
        error: OSError | None = None
        self._cond.release()
        try:
            if self._fsync_enabled:
                start = time.perf_counter()
                self._fsync(fd)
                seconds = time.perf_counter() - start
                self.fsync_seconds += seconds
                self.fsync_count += 1
                if self._on_fsync is not None:
                    self._on_fsync(seconds)
        except OSError as e:
            error = e
        finally:
            self._cond.acquire()
            self._syncing = False
            self._cond.notify_all()
        if error is not None:
            self._fail(error, "fsync")
            raise StorageError(
                f"WAL fsync failed, the write was not acknowledged: {error}"
            ) from error
        if self._failed is None and target > self._synced:
            # (A failure during this fsync took the entries back: nothing to record.)
            self._synced = target
            if fd == self._fd:
                self._synced_size = max(self._synced_size, size)

    @property
    def synced_seq(self) -> int:
        """The highest sequence number known durable: the visibility horizon for readers."""
        return self._synced

    @property
    def next_seq(self) -> int:
        return self._written + 1

    @property
    def broken(self) -> bool:
        """True after a failed write or fsync, until ``repair`` succeeds."""
        return self._failed is not None

    def _fail(self, error: BaseException, what: str) -> None:
        # After a failed write or fsync the file's tail is unknown: every entry not yet
        # durable is taken back (its waiters get the error) and writes are refused until
        # repair() has cut the tail off.
        if self._failed is None:
            self._failed = error
            if self._written > self._synced:
                self._lost.append((self._synced + 1, self._written, what, error))
        self._cond.notify_all()

    def repair(self) -> int:
        """Make the WAL writable again after a failure: cut the file back to its last
        durable size and make that cut durable.

        Entries written after the last successful fsync were never acknowledged; they are
        gone from the file afterwards, and their sequence numbers stay unused. The caller
        must drop them from its buffers before the next ``write``.

        Returns:
            the first sequence number taken back: entries from it on are gone.

        Raises:
            StorageError: the disk still fails (the WAL stays broken; call again later).
        """
        with self._cond:
            if self._failed is None:
                return self._written + 1
            while self._syncing:
                self._cond.wait()
            try:
                os.ftruncate(self._fd, self._synced_size)
                self._fsync(self._fd)
            except OSError as e:
                raise StorageError(
                    f"the WAL is still failing ({e}) after an earlier failure "
                    f"({self._failed}); new writes are refused, acknowledged records are safe"
                ) from e
            logger.warning(
                "WAL repaired after %s: cut back to %d bytes, entries %d..%d not acknowledged",
                self._failed,
                self._synced_size,
                self._synced + 1,
                self._written,
            )
            first_lost = self._synced + 1
            self._file_size = self._synced_size
            self._synced = self._written  # nothing unsynced is left in the file
            self._failed = None
            return first_lost

    def _rotate(self) -> None:
        while self._syncing:
            self._cond.wait()
        if self._synced < self._written:
            self._sync_locked()
        os.close(self._fd)
        self._open_new_file(self._written + 1)

    def _open_new_file(self, first_seq: int) -> None:
        path = self.directory / f"{first_seq:020d}{_SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            os.write(fd, _MAGIC)
            os.fsync(fd)
            fsync_dir(self.directory)
        except OSError as e:
            raise StorageError(f"could not create WAL file {path}: {e}") from e
        self._fd = fd
        self._file_size = self._synced_size = len(_MAGIC)
        self._files.append((first_seq, path))

    # -- reclaiming space -------------------------------------------------------------------

    def release(self, below_seq: int) -> int:
        """Delete WAL files whose every entry has a seq below ``below_seq``.

        The caller guarantees those entries are in segments the catalog lists (WAL space
        is reclaimed only after that). Returns the number of files deleted.
        """
        with self._cond:
            removable = []
            # A file's last seq is the next file's first seq - 1; the current file stays.
            current = self._files[-1][1]
            for (_, path), (next_first, _) in zip(self._files, self._files[1:], strict=False):
                if next_first - 1 < below_seq and path != current:
                    removable.append(path)
                else:
                    break
            for path in removable:
                path.unlink(missing_ok=True)
            self._files = self._files[len(removable) :]
        if removable:
            fsync_dir(self.directory)
            logger.debug("released %d WAL files below seq %d", len(removable), below_seq)
        return len(removable)

    @property
    def file_count(self) -> int:
        return len(self._files)

    def close(self) -> None:
        """Make everything written durable and close the file."""
        with self._cond:
            if self._fd < 0:
                return
            while self._syncing:
                self._cond.wait()
            if self._failed is None and self._synced < self._written:
                self._sync_locked()
            os.close(self._fd)
            self._fd = -1


_ZEROS = bytes(8)


def _padded(n: int) -> int:
    return (n + 7) & ~7


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a created, renamed or deleted file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
