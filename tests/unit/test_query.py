"""SQL helpers that need no data directory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from arrowlog.catalog import SegmentInfo
from arrowlog.snapshot import _PARQUET, TableSnapshot, _guarantee
from arrowlog.sql.policy import number_placeholders


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT * FROM t WHERE a = ? AND b > ?", "SELECT * FROM t WHERE a = $1 AND b > $2"),
        ("SELECT '?', 'it''s ?' FROM t WHERE x = ?", "SELECT '?', 'it''s ?' FROM t WHERE x = $1"),
        ('SELECT "we?ird" FROM t WHERE x = ?', 'SELECT "we?ird" FROM t WHERE x = $1'),
        (
            "SELECT 1 -- what?\nWHERE y = ? /* and ? */ AND z = ?",
            "SELECT 1 -- what?\nWHERE y = $1 /* and ? */ AND z = $2",
        ),
        ("SELECT 'unterminated ?", "SELECT 'unterminated ?"),
        ("no placeholders", "no placeholders"),
    ],
)
def test_positional_placeholders_are_numbered_outside_literals(query: str, expected: str) -> None:
    assert number_placeholders(query) == expected


def _pruned(time_type: pa.DataType, segment: SegmentInfo, where: ds.Expression) -> bool:
    schema = pa.schema([("ts", time_type), ("_offset", pa.int64())])
    snap = TableSnapshot("s", schema, "ts", [segment])
    fragment = _PARQUET.make_fragment(
        "/nonexistent.parquet",
        pafs.LocalFileSystem(),
        partition_expression=_guarantee(segment, snap),
    )
    dataset = ds.FileSystemDataset([fragment], schema, _PARQUET, pafs.LocalFileSystem())
    return not list(dataset.get_fragments(filter=where))


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_time_guarantee_allows_for_the_millisecond_truncation_of_delta_stats(unit: str) -> None:
    # The file's true times span .000 to .999999(999); Delta recorded them as .000 and .999.
    t = pa.timestamp(unit, tz="UTC")
    lo = datetime(2026, 12, 4, 8, 0, 0, tzinfo=UTC)
    segment = SegmentInfo("/f", 1, 2, 0, 1, lo, lo + timedelta(milliseconds=999), time_nulls=0)
    true_max = pa.scalar(1_796_371_200_999_999_999 // (1000 if unit == "us" else 1), t)
    just_below = pa.scalar(true_max.value - 1, t)
    assert not _pruned(t, segment, ds.field("ts") > just_below)
    assert not _pruned(t, segment, ds.field("ts") >= true_max)
    assert _pruned(t, segment, ds.field("ts") > true_max)
    assert _pruned(t, segment, ds.field("ts") < pa.scalar(lo, t))


def test_a_segment_that_may_hold_null_times_is_kept_for_is_null() -> None:
    t = pa.timestamp("us", tz="UTC")
    lo = datetime(2026, 12, 4, 8, 0, 0, tzinfo=UTC)
    is_null, later = ds.field("ts").is_null(), ds.field("ts") > pa.scalar(lo + timedelta(days=1), t)
    no_nulls = SegmentInfo("/f", 1, 4, 0, 3, lo, lo, time_nulls=0)
    assert _pruned(t, no_nulls, is_null) and _pruned(t, no_nulls, later)
    for nulls in (2, None):  # some rows, or unknown (statistics without nullCount)
        some = SegmentInfo("/f", 1, 4, 0, 3, lo, lo, time_nulls=nulls)
        assert not _pruned(t, some, is_null)
        assert not _pruned(t, some, ds.field("ts") == pa.scalar(lo, t))
    only_nulls = SegmentInfo("/f", 1, 4, 0, 3, None, None, time_nulls=4)
    assert not _pruned(t, only_nulls, is_null)
    assert _pruned(t, only_nulls, later) and _pruned(t, only_nulls, ds.field("ts").is_valid())
