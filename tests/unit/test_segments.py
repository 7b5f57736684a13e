"""Segment encoding choices, checked on the files written."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from arrowlog.config import Settings
from arrowlog.segments import (
    delta_stats,
    dictionary_columns,
    prepare_segment,
    write_segment_files,
)
from arrowlog.storage import Storage


def test_dictionaries_only_on_low_cardinality_columns(tmp_path) -> None:
    n = 100_000
    table = pa.table(
        {
            "level": pa.array(["INFO", "WARN", "ERROR", "DEBUG"] * (n // 4)),
            "status": pa.array([200, 404, 500, 302] * (n // 4), pa.int32()),
            "message": pa.array([f"request {i} done" for i in range(n)]),
            "latency": pa.array([float(i) for i in range(n)]),
            "_offset": pa.array(range(n), pa.int64()),
        }
    )
    assert dictionary_columns(table) == ["level", "status"]
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, use_dictionary=dictionary_columns(table))
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(5)}
    assert "RLE_DICTIONARY" in encodings["level"]
    assert "RLE_DICTIONARY" not in encodings["message"]
    assert dictionary_columns(table.slice(0, 0)) == []


def test_nanosecond_segments_keep_nanoseconds_and_their_day(tmp_path) -> None:
    dec4 = 1_796_371_200 * 10**9  # 2026-12-04T08:00:00Z
    times = [dec4 + 86_400 * 10**9, dec4 + 999_999_999, dec4 + 1]
    table = pa.table(
        {
            "ts": pa.array(times, pa.timestamp("ns", tz="UTC")),
            "_offset": pa.array([0, 1, 2], pa.int64()),
        }
    )
    prepared = prepare_segment(table, "ts")
    assert prepared.column("ts").cast(pa.int64()).to_pylist() == sorted(times)
    assert [d.isoformat() for d in prepared.column("day").to_pylist()] == [
        "2026-12-04",
        "2026-12-04",
        "2026-12-05",
    ]
    stats = delta_stats(prepared.slice(0, 2).drop_columns(["day"]))
    # Delta's timestamp statistics are milliseconds, truncated: a lower bound and a maximum
    # at most 1 ms below the true one.
    assert stats["minValues"]["ts"] == "2026-12-04T08:00:00.000Z"
    assert stats["maxValues"]["ts"] == "2026-12-04T08:00:00.999Z"
    files = write_segment_files(prepared, str(tmp_path), Settings(), Storage(str(tmp_path)))
    assert [f.rows for f in files] == [2, 1]
    for f in files:
        column = pq.ParquetFile(tmp_path / f.relpath).schema.column(0)
        assert column.physical_type == "INT64"
        assert "timeUnit=nanoseconds" in str(column.logical_type)
        assert pq.read_table(tmp_path / f.relpath).schema.field("ts").type == pa.timestamp(
            "ns", tz="UTC"
        )


def test_a_row_without_a_time_is_placed_by_its_ingestion_time() -> None:
    us = pa.timestamp("us", tz="UTC")
    dec4, dec5 = 1_796_371_200 * 10**6, 1_796_457_600 * 10**6  # 2026-12-04/05 08:00 UTC
    for unit in ("us", "ns"):
        t = pa.timestamp(unit, tz="UTC")
        scale = 1000 if unit == "ns" else 1
        table = pa.table(
            {
                "ts": pa.array([(dec5 + 5) * scale, None, dec4 * scale, None], t),
                "_offset": pa.array([0, 1, 2, 3], pa.int64()),
                "_ingested_at": pa.array([dec5 + 9, dec5 + 1, dec5 + 9, dec4 + 1], us),
            }
        )
        prepared = prepare_segment(table, "ts")
        # Sorted by time, a null time standing in for its ingestion time; the time stays null.
        assert prepared.column("_offset").to_pylist() == [2, 3, 1, 0], unit
        assert prepared.column("ts").null_count == 2
        assert [d.isoformat() for d in prepared.column("day").to_pylist()] == [
            "2026-12-04",
            "2026-12-04",
            "2026-12-05",
            "2026-12-05",
        ]
        stats = delta_stats(prepared.drop_columns(["day"]))
        assert stats["nullCount"]["ts"] == 2
        assert stats["minValues"]["ts"] == "2026-12-04T08:00:00.000Z"
        assert stats["maxValues"]["ts"] == "2026-12-05T08:00:00.000Z"
