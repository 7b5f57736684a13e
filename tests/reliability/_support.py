"""What the reliability suites share: deadline waits, fault switches, ack bookkeeping."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import deltalake
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what}")
        pause.wait(0.01)


@dataclass
class Fault:
    """A switchable disk fault: while ``code`` (an errno) is set, the wrapped calls raise it.

    ``calls`` counts the calls that failed, so tests can wait for a background attempt.
    """

    code: int | None = None
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, code: int | None) -> None:
        self.code = code

    def _check(self) -> None:
        code = self.code
        if code is not None:
            with self._lock:
                self.calls += 1
            raise OSError(code, os.strerror(code))

    def fsync(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def hook(fd: int) -> None:
            self._check()
            real(fd)

        return hook

    def writev(self) -> Callable[[int, Sequence[object]], int]:
        def hook(fd: int, buffers: Sequence[object]) -> int:
            self._check()
            return os.writev(fd, buffers)  # type: ignore[arg-type]

        return hook


ENOSPC, EIO = errno.ENOSPC, errno.EIO


@dataclass
class Acks:
    """Acknowledged ranges per stream: offsets first..last hold k = k0, k0+1, ..."""

    ranges: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, stream: str, first: int, last: int, k0: int) -> None:
        with self._lock:
            self.ranges.setdefault(stream, []).append((first, last, k0))

    def count(self, stream: str | None = None) -> int:
        with self._lock:
            streams = [stream] if stream else list(self.ranges)
            return sum(b - a + 1 for s in streams for a, b, _ in self.ranges.get(s, []))

    def check(self, stream: str, offsets: list[int], ks: list[int]) -> None:
        """Every ack present exactly once at its offset; offsets gap-free from 0."""
        assert offsets == list(range(len(offsets))), (
            f"{stream}: offsets are not 0..{len(offsets) - 1} (gap or duplicate)"
        )
        assert len(set(ks)) == len(ks), f"{stream}: a record is stored twice"
        by_offset = dict(zip(offsets, ks, strict=True))
        for first, last, k0 in self.ranges.get(stream, []):
            for i, off in enumerate(range(first, last + 1)):
                got = by_offset.get(off)
                assert got == k0 + i, (
                    f"{stream}: acknowledged offset {off} holds {got}, not {k0 + i}"
                )


def check_delta_files(table_dir: Path) -> int:
    """Every file the stream's Delta log lists exists and reads as Parquet; returns the count."""
    table = deltalake.DeltaTable(str(table_dir))
    uris = table.file_uris()
    for uri in uris:
        path = Path(uri.removeprefix("file://"))
        assert path.is_file(), f"the Delta log of {table_dir.name} lists a missing file {path}"
        pq.read_table(path)  # raises on a torn or corrupt file
    return len(uris)


def put_table(
    client: flight.FlightClient,
    descriptor: flight.FlightDescriptor,
    table: pa.Table,
    options: flight.FlightCallOptions,
) -> pa.Buffer | None:
    """One DoPut of ``table``; returns the server's first acknowledgement (None if none)."""
    writer, reader = client.do_put(descriptor, table.schema, options)
    try:
        writer.write_table(table)
        writer.done_writing()
        return reader.read()
    finally:
        writer.close()
