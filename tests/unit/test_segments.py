"""Segment encoding choices, checked on the files written."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from arrowlog.segments import dictionary_columns


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
