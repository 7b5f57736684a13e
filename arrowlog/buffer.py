"""Unflushed records of one stream, in offset order, waiting to become a Parquet segment.

Each entry remembers the WAL sequence number that made it durable. Readers and the flusher
only ever see the prefix whose WAL entries are fsynced (``durable``), so a query never shows
a record that a crash could still take back, and a flush never writes one.
"""

from __future__ import annotations

import bisect
import itertools
import time
from dataclasses import dataclass, field

import pyarrow as pa

__all__ = ["BufferedBatch", "StreamBuffer"]


@dataclass(frozen=True, slots=True)
class BufferedBatch:
    seq: int
    first_offset: int
    table: pa.Table  # with system columns, in the stream's schema at append time
    added_at: float = field(default_factory=time.monotonic)

    @property
    def last_offset(self) -> int:
        return self.first_offset + self.table.num_rows - 1


class StreamBuffer:
    """Append-only list of batches; trimmed from the front once a flush has committed them.

    Not thread-safe on its own: the Log guards it with its state lock.
    """

    def __init__(self) -> None:
        self._batches: list[BufferedBatch] = []
        self.rows = 0
        self.nbytes = 0

    def add(self, batch: BufferedBatch) -> None:
        if self._batches:
            expected = self._batches[-1].last_offset + 1
            if batch.first_offset != expected:
                raise AssertionError(
                    f"buffer gap: got offset {batch.first_offset}, expected {expected}"
                )
        self._batches.append(batch)
        self.rows += batch.table.num_rows
        self.nbytes += batch.table.nbytes

    def durable(self, synced_seq: int) -> list[BufferedBatch]:
        """The prefix of batches whose WAL entries are fsynced."""
        out = []
        for b in self._batches:
            if b.seq > synced_seq:
                break
            out.append(b)
        return out

    def durable_from(self, offset: int, synced_seq: int, rows: int) -> list[BufferedBatch] | None:
        """Durable batches from the one holding ``offset`` on, enough for ``rows`` records.

        None when ``offset`` is before the buffer (those records are in segments); an
        empty list when nothing durable is at or after it. O(log n) to find the start.
        """
        if not self._batches or offset < self._batches[0].first_offset:
            return None
        i = max(bisect.bisect_right(self._batches, offset, key=_first_offset) - 1, 0)
        out: list[BufferedBatch] = []
        wanted = rows + (offset - self._batches[i].first_offset)
        for b in itertools.islice(self._batches, i, None):
            if b.seq > synced_seq or wanted <= 0:
                break
            if b.last_offset >= offset:
                out.append(b)
            wanted -= b.table.num_rows
        return out

    def drop_through(self, last_offset: int) -> None:
        """Forget every batch up to and including ``last_offset`` (now in a segment)."""
        keep = 0
        for keep, b in enumerate(self._batches):  # noqa: B007
            if b.last_offset > last_offset:
                break
        else:
            keep = len(self._batches)
        dropped, self._batches = self._batches[:keep], self._batches[keep:]
        self.rows -= sum(b.table.num_rows for b in dropped)
        self.nbytes -= sum(b.table.nbytes for b in dropped)

    def take_back(self, from_seq: int) -> list[BufferedBatch]:
        """Remove and return the batches whose WAL entries (seq >= ``from_seq``) a WAL
        failure took back: never acknowledged, always the newest batches."""
        keep = len(self._batches)
        while keep and self._batches[keep - 1].seq >= from_seq:
            keep -= 1
        taken, self._batches = self._batches[keep:], self._batches[:keep]
        self.rows -= sum(b.table.num_rows for b in taken)
        self.nbytes -= sum(b.table.nbytes for b in taken)
        return taken

    def batches(self) -> list[BufferedBatch]:
        """Every buffered batch, durable or not, oldest first."""
        return list(self._batches)

    @property
    def oldest_seq(self) -> int | None:
        return self._batches[0].seq if self._batches else None

    @property
    def oldest_age(self) -> float:
        return time.monotonic() - self._batches[0].added_at if self._batches else 0.0

    def __len__(self) -> int:
        return len(self._batches)


def _first_offset(batch: BufferedBatch) -> int:
    return batch.first_offset
