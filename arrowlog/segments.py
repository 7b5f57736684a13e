"""How buffered records become Parquet segment files.

A flush (or a compaction) hands over a table; this module sorts it by the time column (so
row-group and page statistics prune time ranges finely), splits it by day (the Hive-style
``day=YYYY-MM-DD`` partition that retention drops whole), writes each day as zstd Parquet
(one file, or several encoded side by side for a large flush) with dictionaries on
low-cardinality columns, bloom filters on id-like columns, statistics and a page index,
and makes each file durable: a Delta commit must never name a file a crash could still
take back. It also computes the Delta ``stats`` of each file, so the commit needs no
second pass over the data.

The files are not live until the catalog commits them; until then they are invisible to
every reader (the Delta log is the only list of live files) and vacuum removes them if the
commit never happens.

A failed write (disk full, I/O error) raises ``StorageError`` and removes the files this
call wrote, so a flush that fails leaves its records in the buffer and the WAL, and no
half-written file behind. ``fsync`` is the seam fault-injection tests replace
(``Log(..., io_hooks=IOHooks(segment_fsync=...))``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from arrowlog.config import Settings
from arrowlog.errors import StorageError
from arrowlog.schema import INGESTED_AT, OFFSET, PARTITION, SHARD_COLUMN
from arrowlog.storage import Storage

__all__ = ["SegmentFile", "prepare_segment", "write_segment_files"]

logger = logging.getLogger(__name__)

# Longest string kept in min/max statistics: longer values would have to be truncated,
# and a truncated max is no longer an upper bound.
_MAX_STAT_STRING = 64


@dataclass(frozen=True, slots=True)
class SegmentFile:
    """A written (fsynced, not yet committed) segment file."""

    relpath: str  # relative to the table root, as Delta add actions name it
    size: int
    rows: int
    day: date
    stats: str  # Delta add-action statistics (JSON)


def prepare_segment(table: pa.Table, time_column: str) -> pa.Table:
    """Sort by the time column (ties keep offset order) and add the ``day`` partition column.

    A row whose time is null (its producer sent none) is placed by its ``_ingested_at``:
    it sorts and partitions as if that were its time, while the time stays null as sent.
    Live logs mostly arrive in time order already, or nearly (a few rows out of place per
    batch): numpy's stable sort (timsort) orders such times in a few ms per million rows,
    a fraction of what gathering the columns in that order costs.
    """
    times = _placing_times(table, time_column)
    values = _time_values(times)
    if values is None:  # not a UTC timestamp: Arrow's kernels, slower but general
        if table.num_rows > 1 and not _is_sorted(times):
            keys = pa.table({"time": times, "offset": table.column(OFFSET)})
            order = pc.sort_indices(
                keys, sort_keys=[("time", "ascending"), ("offset", "ascending")]
            )
            table, times = table.take(order), times.take(order)
        day = pc.cast(times, pa.date32())
        return table.append_column(pa.field(PARTITION, pa.date32()), day)
    if len(values) > 1 and not (values[1:] >= values[:-1]).all():
        offsets = table.column(OFFSET).combine_chunks().to_numpy()
        if (offsets[1:] > offsets[:-1]).all():  # a flush: rows in offset order already
            order = np.argsort(values, kind="stable")
        else:
            order = np.lexsort((offsets, values))
        # Unsigned indices: Arrow 26 takes from a chunked table 3x slower with signed ones.
        table, values = table.take(pa.array(order.astype(np.uint64))), values[order]
    per_day = _PER_DAY[times.type.unit]
    day = pa.array((values // per_day).astype(np.int32), pa.int32()).view(pa.date32())
    return table.append_column(pa.field(PARTITION, pa.date32()), day)


_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _time_values(times: pa.ChunkedArray) -> np.ndarray | None:
    """A UTC timestamp column (no nulls) as int64 numpy values; None for anything else."""
    t = times.type
    if not pa.types.is_timestamp(t) or t.tz not in ("UTC", "+00:00") or times.null_count:
        return None
    return times.combine_chunks().cast(pa.int64()).to_numpy()


def _placing_times(table: pa.Table, time_column: str) -> pa.ChunkedArray:
    """The time column, with each null replaced by the row's ingestion time."""
    times = table.column(time_column)
    if not times.null_count:
        return times
    # _ingested_at is µs; as the present it always fits a nanosecond time column too.
    return pc.coalesce(times, table.column(INGESTED_AT).cast(times.type))


def _is_sorted(column: pa.ChunkedArray) -> bool:
    values = column.combine_chunks().cast(pa.int64())
    return bool(pc.all(pc.greater_equal(values[1:], values[:-1])).as_py())


def write_segment_files(
    table: pa.Table,
    root: str,
    settings: Settings,
    storage: Storage,
    *,
    max_rows: int | None = None,
    parallel: int = 1,
    fsync: Callable[[int], None] = os.fsync,
) -> list[SegmentFile]:
    """Write ``table`` (from ``prepare_segment``: sorted, with ``day``): one file per day,
    or several of at most ``max_rows`` rows (compaction's target size).

    With ``parallel`` > 1 a large day is cut into that many files written by as many
    threads: Parquet encoding (zstd, dictionaries) is the slowest step of a flush and runs
    without the GIL, so the files encode side by side on several cores. Compaction merges
    them later.

    Raises:
        StorageError: a file could not be written or fsynced; the files written by this
            call are removed again (none of them was committed).
    """
    days = table.column(PARTITION).combine_chunks()
    data = table.drop_columns([PARTITION])
    # Sorted by time, so each day's rows are one contiguous slice.
    as_int = np.asarray(days.cast(pa.int32()))
    starts = np.flatnonzero(np.r_[True, as_int[1:] != as_int[:-1]])
    ends = np.r_[starts[1:], len(as_int)]
    jobs: list[tuple[pa.Table, date]] = []
    for start, b in zip(starts, ends, strict=True):
        rows = int(b - start)
        step = max_rows or rows or 1
        if max_rows is None and parallel > 1 and rows >= 2 * settings.row_group_rows:
            step = math.ceil(rows / parallel)
        for a in range(int(start), int(b), step):
            jobs.append((data.slice(a, min(int(b), a + step) - a), days[a].as_py()))

    def write(job: tuple[pa.Table, date]) -> SegmentFile:
        return _write_one(job[0], job[1], root, settings, storage, fsync)

    if parallel > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(min(parallel, len(jobs))) as pool:
            futures = [pool.submit(write, job) for job in jobs]
        outcomes = [f.exception() or f.result() for f in futures]
    else:
        outcomes = []
        for job in jobs:
            try:
                outcomes.append(write(job))
            except StorageError as e:
                outcomes.append(e)
                break
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    written = [o for o in outcomes if isinstance(o, SegmentFile)]
    if failed:
        # Uncommitted, so invisible to readers; removed now rather than left to vacuum.
        for f in written:
            try:
                storage.delete(storage.join(root, f.relpath))
            except OSError:
                logger.warning("could not remove the uncommitted segment file %s", f.relpath)
        raise failed[0]
    return written


def _write_one(
    table: pa.Table,
    day: date,
    root: str,
    settings: Settings,
    storage: Storage,
    fsync: Callable[[int], None],
) -> SegmentFile:
    first_offset = pc.min(table.column(OFFSET)).as_py()
    shard = pc.min(table.column(SHARD_COLUMN)).as_py() if SHARD_COLUMN in table.column_names else 0
    relpath = (
        f"{PARTITION}={day.isoformat()}/"
        f"part-{shard:04d}-{first_offset:020d}-{uuid.uuid4().hex[:12]}.zstd.parquet"
    )
    uri = storage.join(root, relpath)
    try:
        # Encoded in memory, then written in one call: on S3 a single PUT (or multipart
        # upload) makes the object appear whole or not at all; locally it is fsynced.
        sink = pa.BufferOutputStream()
        shares = _distinct_shares(table)
        pq.write_table(
            table,
            sink,
            compression="zstd",
            compression_level=settings.zstd_level,
            row_group_size=settings.row_group_rows,
            use_dictionary=dictionary_columns(table, shares),
            bloom_filter_options=bloom_filter_options(table, settings.row_group_rows, shares),
            write_statistics=statistics_columns(table),
            write_page_index=True,
            # Format 2.6 has INT64 TIMESTAMP(NANOS); with coerce_timestamps=None each
            # column keeps its unit, so nanosecond columns reach every reader exact.
            version="2.6",
            coerce_timestamps=None,
        )
        size = storage.write_bytes(uri, sink.getvalue(), fsync=fsync)
    except (OSError, pa.ArrowException) as e:
        try:
            storage.delete(uri)
        except OSError:
            logger.warning("could not remove the uncommitted segment file %s", uri)
        raise StorageError(f"could not write segment file {uri}: {e}") from e
    return SegmentFile(relpath, size, table.num_rows, day, json.dumps(delta_stats(table)))


# Encoding choices are made per file from a sample of its first rows (sorted by time, so
# the sample looks like a row group). High-cardinality columns (messages, ids, timestamps)
# gain nothing from a dictionary but pay to build one and then fall back: on the demo logs,
# dictionaries on the low-cardinality columns only wrote 1.7x faster and 17% smaller than
# on every column.
_SAMPLE_ROWS = 64 * 1024
_DICTIONARY_MAX_DISTINCT = 0.1
# A bloom filter per row group tells a reader which row groups cannot hold the id it looks
# for, where min/max statistics cannot: trace, request and user ids are scattered over
# time. Only id-like columns get one: mostly distinct, unsorted (min/max already prune
# sorted ids such as ULIDs or sequence numbers), and for strings without whitespace (text
# is searched with LIKE, which a bloom filter cannot answer). Each filter is sized for the
# distinct values of a row group, extrapolated from the sample: an overestimate where ids
# repeat; an underestimate only makes a filter answer "maybe" too often, never wrongly.
# pyarrow rounds a filter up to a power of two: at 1% that is 2 bytes a row for a row
# group of distinct ids, and about 0.1% false positives; at 5%, 1 byte a row, but ~2.5% of
# the row groups (each one an id column to decode) pass for an absent id, which made such
# lookups about twice as slow (benchmarks/search.py).
_BLOOM_MIN_DISTINCT = 0.5
_BLOOM_FPP = 0.01


def _distinct_shares(table: pa.Table) -> dict[str, float]:
    """Per string, binary or integer column (not ``_offset``), the share of distinct
    values among the first rows: what the encoding choices below are made from."""
    shares = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        t = field.type
        wanted = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
        wanted = wanted or (pa.types.is_integer(t) and field.name != OFFSET)
        if not wanted or len(column) == 0:
            continue
        sample = column.slice(0, _SAMPLE_ROWS)
        shares[field.name] = pc.count_distinct(sample).as_py() / len(sample)
    return shares


def dictionary_columns(table: pa.Table, shares: Mapping[str, float] | None = None) -> list[str]:
    """The columns worth a Parquet dictionary: low-cardinality strings and integers."""
    shares = _distinct_shares(table) if shares is None else shares
    return [name for name, share in shares.items() if share <= _DICTIONARY_MAX_DISTINCT]


def bloom_filter_options(
    table: pa.Table, row_group_rows: int, shares: Mapping[str, float] | None = None
) -> dict[str, dict[str, float]]:
    """``pq.write_table``'s ``bloom_filter_options``: a filter on each id-like column,
    sized for the distinct values of one row group.

    Example: ``bloom_filter_options(table, 128 * 1024)`` -> ``{"trace_id": {"ndv": 131072,
    "fpp": 0.01}}``
    """
    shares = _distinct_shares(table) if shares is None else shares
    group_rows = min(table.num_rows, row_group_rows)
    options = {}
    for name, share in shares.items():
        if share < _BLOOM_MIN_DISTINCT:
            continue
        sample = table.column(name).slice(0, _SAMPLE_ROWS)
        if _is_ascending(sample):
            continue
        if pa.types.is_integer(sample.type) and sample.type.bit_width < 32:
            continue  # DataFusion 55 consults no filter on 8- and 16-bit integers
        if not pa.types.is_integer(sample.type) and _has_whitespace(sample):
            continue
        options[name] = {"ndv": max(1, math.ceil(share * group_rows)), "fpp": _BLOOM_FPP}
    return options


def _is_ascending(sample: pa.ChunkedArray) -> bool:
    values = pc.drop_null(sample).combine_chunks()
    return bool(pc.all(pc.greater_equal(values[1:], values[:-1])).as_py())


def _has_whitespace(sample: pa.ChunkedArray) -> bool:
    return bool(pc.any(pc.match_substring_regex(sample, r"\s")).as_py())


def statistics_columns(table: pa.Table) -> list[str]:
    """The columns whose Parquet min/max statistics are true bounds of their values.

    Parquet leaves NaN out of a float column's min/max, so a file holding ``[nan, 1.5]``
    claims min = max = 1.5: readers then skip it for ``v > 2`` (NaN sorts above every
    number) or take the column for a constant. A float column holding a NaN, and any
    nested column with float leaves, gets no statistics.
    """
    names = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if _has_float_leaves(field.type) and (
            not pa.types.is_floating(field.type) or _has_nan(column)
        ):
            continue
        names.append(field.name)
    return names


def _has_float_leaves(t: pa.DataType) -> bool:
    if pa.types.is_floating(t):
        return True
    return any(_has_float_leaves(t.field(i).type) for i in range(t.num_fields))


def _has_nan(column: pa.ChunkedArray) -> bool:
    return bool(pc.any(pc.is_nan(column)).as_py())


def delta_stats(table: pa.Table) -> dict[str, Any]:
    """Delta add-action statistics: numRecords, and per column minValues/maxValues/nullCount.

    Min/max are given only where they are exact bounds in Delta's JSON form: numbers
    (not for a float column holding NaN), dates, timestamps (in milliseconds, as Delta
    keeps them), short strings.
    """
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        t = field.type
        if not pa.types.is_struct(t):
            # A struct's nullCount is an object of its fields' counts in Delta; a number
            # there makes delta-rs refuse the whole file's statistics (or the commit).
            nulls[field.name] = column.null_count
        if not (
            pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_timestamp(t)
            or pa.types.is_date(t)
            or pa.types.is_string(t)
        ):
            continue
        if column.null_count == len(column):
            continue
        if pa.types.is_floating(t) and _has_nan(column):
            continue  # min_max skips NaN: the bounds would exclude those rows
        lo, hi = pc.min_max(column).values()
        if pa.types.is_timestamp(t):
            lo, hi = _floor_to_ms(lo), _floor_to_ms(hi)
        lo, hi = lo.as_py(), hi.as_py()
        if pa.types.is_floating(t) and not all(math.isfinite(v) for v in (lo, hi)):
            continue
        if pa.types.is_string(t) and max(len(lo), len(hi)) > _MAX_STAT_STRING:
            continue
        mins[field.name], maxs[field.name] = _json_value(lo), _json_value(hi)
    return {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def _floor_to_ms(value: pa.TimestampScalar) -> pa.Scalar:
    """A timestamp floored to the millisecond Delta keeps: still a lower bound for a
    minimum (before 1970 too), and a nanosecond value needs no pandas to become a datetime."""
    floored = pc.floor_temporal(value, unit="millisecond")
    return floored.cast(pa.timestamp("ms", tz=value.type.tz))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # Delta's timestamp statistics have millisecond precision (truncated).
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    return value
