"""Segment lifecycle: compaction and retention of a stream's day partitions.

Logs arrive in small pieces, so flushes leave many small segments per day partition.
Compaction rewrites a partition's segments into files of a target size, sorted by the time
column (so row-group statistics keep pruning time ranges finely), in one Delta commit that
removes the old files and adds the new ones (``Stream.write_and_commit``): readers see
either all old or all new files, and a crash before the commit leaves only uncommitted
files that vacuum later deletes. Offsets are carried in the rows, so they survive the
rewrite unchanged.

Retention drops whole day partitions by age of the time column and/or total bytes, as a
metadata-only Delta delete: no file is rewritten.

Which partitions to touch is decided by pure functions (``partitions_to_compact``,
``expired_partitions``); ``compact`` and ``apply_retention`` run the work through the
stream, under its locks (see ``arrowlog/stream.py``).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta

from arrowlog.catalog import SegmentInfo
from arrowlog.config import Settings
from arrowlog.errors import StorageError
from arrowlog.results import CompactionResult, RetentionResult
from arrowlog.schema import system_schema
from arrowlog.stream import Stream, read_partition

__all__ = [
    "apply_retention",
    "compact",
    "expired_partitions",
    "partitions_to_compact",
]

logger = logging.getLogger(__name__)


def compact(
    s: Stream,
    settings: Settings,
    *,
    shards: list[int] | None,
    flush: Callable[[Stream], object],
) -> CompactionResult:
    """Merge each day's small segments of ``s`` into time-sorted files of the target size.

    One compaction of a stream runs at a time (``Stream.compact_lock``); the flush lock
    is held only to take the snapshot and to commit: reading and rewriting a day can take
    seconds, and holding it all along would stall flushes, then (through backpressure)
    ingest. Only small segments are merged: a file compaction already wrote is never
    rewritten again.

    Args:
        shards: the shards whose segments this process may merge (cluster mode: those
            it writes; another node's may be mid-commit); None: every segment.
        flush: how the stream is flushed (a widened column is stored by a flush first).
    """
    with s.compact_lock:
        started = time.perf_counter()
        target = settings.compact_target_bytes
        if s.catalog.widened(system_schema(s.schema)):
            # The flush storing a widened column rewrites every segment: compacting first
            # would only rewrite the files that flush rewrites again.
            flush(s)
        with s.flush_lock:
            s.reconcile_if_unsure()
            snap = s.snapshot()
        work = [
            (day, [seg for seg in group if seg.day == day and seg.size < target // 2])
            for group in _groups(snap.segments, shards)
            for day in partitions_to_compact(group, target)
        ]
        days: list[date] = []
        removed = added = rows = 0
        for day, old in work:
            part = replace(snap, segments=old, segments_key=None)
            table = read_partition(part, day)
            rows_per_file = max(1, target * table.num_rows // max(1, sum(seg.size for seg in old)))
            commit = s.write_and_commit(
                [table],
                operation="compact",
                schema=part.schema,
                replacing=old,
                max_rows=rows_per_file,
            )
            if commit is None:
                continue  # retention (or a compaction elsewhere) removed some files meanwhile
            if commit.rows_written != table.num_rows:
                raise StorageError(
                    f"compaction of {s.name!r} partition {day} wrote {commit.rows_written} "
                    f"rows for {table.num_rows} read"
                )
            days.append(day)
            removed += len(commit.removed)
            added += len(commit.added)
            rows += table.num_rows
        if days:
            s.vacuum(settings.vacuum_grace_hours)
        result = CompactionResult(
            s.name, len(days), removed, added, rows, time.perf_counter() - started
        )
    if days:
        logger.info(
            "compacted %r: %d partitions, %d files into %d, %d rows in %.3f s",
            s.name,
            len(days),
            removed,
            added,
            rows,
            result.seconds,
        )
    return result


def apply_retention(
    s: Stream, settings: Settings, *, now: datetime, shards: list[int] | None
) -> RetentionResult | None:
    """Drop ``s``'s day partitions past ``retention_days`` / over ``retention_bytes``.

    None when nothing expired, or when another node applies it (cluster mode: the writer
    of shard 0, so that nodes do not race to drop the same days).

    Under the stream's compaction lock: the vacuum after the drop would otherwise delete
    files a running compaction is reading (with a short ``vacuum_grace_hours``).
    """
    if shards is not None and 0 not in shards:
        return None
    with s.compact_lock, s.flush_lock:
        snap = s.snapshot()
        days = expired_partitions(
            snap.segments,
            now=now,
            retention_days=settings.retention_days,
            retention_bytes=settings.retention_bytes,
        )
        if not days:
            return None
        sizes = {seg.path: seg.size for seg in snap.segments}
        removed = s.drop_partitions(days)
        s.vacuum(settings.vacuum_grace_hours)
    result = RetentionResult(s.name, days, len(removed), sum(sizes.get(p, 0) for p in removed))
    logger.info(
        "retention dropped %d partitions (%d files, %d bytes) of %r",
        len(days),
        result.files_removed,
        result.bytes_removed,
        s.name,
    )
    return result


def _groups(segments: list[SegmentInfo], shards: list[int] | None) -> list[list[SegmentInfo]]:
    """Groups of segments one compaction may merge: each shard's own."""
    if shards is None:
        return [segments]
    return [[seg for seg in segments if seg.shard == p] for p in shards]


def partitions_to_compact(segments: list[SegmentInfo], target_bytes: int) -> list[date]:
    """Day partitions holding at least two segments smaller than half the target size."""
    small: dict[date, int] = defaultdict(int)
    for seg in segments:
        if seg.day is not None and seg.size < target_bytes // 2:
            small[seg.day] += 1
    return sorted(day for day, n in small.items() if n >= 2)


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
