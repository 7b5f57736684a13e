"""Segment lifecycle: which partitions to compact, which to drop for retention.

Logs arrive in small pieces, so flushes leave many small segments per day partition.
Compaction rewrites a partition's segments into files of a target size, sorted by the time
column (so row-group statistics keep pruning time ranges finely), in one Delta commit that
removes the old files and adds the new ones: readers see either all old or all new files,
and a crash before the commit leaves only uncommitted files that vacuum later deletes.
Offsets are carried in the rows, so they survive the rewrite unchanged.

Retention drops whole day partitions by age of the time column and/or total bytes, as a
metadata-only Delta delete: no file is rewritten.

This module only decides and reads; ``Log`` runs the commits under the stream's flush lock.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta

import pyarrow as pa

from arrowlog.catalog import SegmentInfo
from arrowlog.snapshot import TableSnapshot, build_dataset

__all__ = [
    "expired_partitions",
    "partitions_to_compact",
    "read_partition",
]


def partitions_to_compact(segments: list[SegmentInfo], target_bytes: int) -> list[date]:
    """Day partitions holding at least two segments smaller than half the target size."""
    small: dict[date, int] = defaultdict(int)
    for seg in segments:
        if seg.day is not None and seg.size < target_bytes // 2:
            small[seg.day] += 1
    return sorted(day for day, n in small.items() if n >= 2)


def read_partition(snap: TableSnapshot, day: date) -> pa.Table:
    """Every row of the snapshot's segments in partition ``day``, in the stream's schema."""
    files = [seg for seg in snap.segments if seg.day == day]
    only = replace(snap, segments=files, buffer=[], segments_key=None)
    return build_dataset(only).to_table()


def expired_partitions(
    segments: list[SegmentInfo],
    *,
    now: datetime,
    retention_days: float,
    retention_bytes: int,
) -> list[date]:
    """Partitions to drop: older than ``retention_days`` (0 = keep), then oldest first while
    the stream is over ``retention_bytes`` (0 = no limit). The newest partition is never
    dropped for size, so a stream always keeps its most recent data.
    """
    sizes: dict[date, int] = defaultdict(int)
    for seg in segments:
        if seg.day is not None:
            sizes[seg.day] += seg.size
    days = sorted(sizes)
    expired: list[date] = []
    if retention_days > 0:
        cutoff = now - timedelta(days=retention_days)
        # A partition is expired once its whole day lies before the cutoff.
        expired = [
            d
            for d in days
            if datetime(d.year, d.month, d.day, tzinfo=cutoff.tzinfo) + timedelta(days=1) <= cutoff
        ]
    if retention_bytes > 0:
        remaining = [d for d in days if d not in expired]
        total = sum(sizes[d] for d in remaining)
        while total > retention_bytes and len(remaining) > 1:
            oldest = remaining.pop(0)
            expired.append(oldest)
            total -= sizes[oldest]
    return sorted(expired)
