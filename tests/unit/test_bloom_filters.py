"""Bloom filters on id-like columns: chosen from the data, written, used, and never wrong.

A bloom filter that answers "absent" for a value a row group holds drops rows silently,
so lookups are checked against the data itself (pyarrow compute), on both engines, with
the segments flushed and then compacted, for present, absent, NULL and case-different
values, on every integer width a stream stores.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

import arrowlog
from arrowlog.segments import bloom_filter_options

ENGINES = ("datafusion", "duckdb")
ROWS = 6_000
GROUP_ROWS = 500  # 12 row groups per file: enough for the filters to skip most of them
T0 = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1_000_000)


def _ids(rng: np.random.Generator, n: int) -> list[str]:
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]


def _table(rng: np.random.Generator, n: int) -> pa.Table:
    trace = _ids(rng, n)
    trace[7::97] = [None] * len(trace[7::97])  # NULLs among the ids
    request = [f"req_{x[:8]}" for x in _ids(rng, n)]
    request[3] = "req_MiXeD"  # a case-sensitive id
    return pa.table(
        {
            "ts": pa.array(T0 + np.arange(n) * 1_000_000, pa.timestamp("us", tz="UTC")),
            "trace_id": pa.array(trace, pa.string()),
            "request_id": pa.array(request, pa.string()),
            "user_id": pa.array(rng.permutation(n) * 7 + 10**12, pa.int64()),
            "i32": pa.array(rng.permutation(n) - n // 2, pa.int32()),
            "i16": pa.array(rng.permutation(n) - n // 2, pa.int16()),
            "blob": pa.array([x.encode() for x in _ids(rng, n)], pa.binary()),
            "message": pa.array([f"GET /orders/{i} 200 in {i % 97}ms" for i in range(n)]),
            # Time-ordered ids: their min/max statistics prune already.
            "seq": pa.array(np.arange(n) * 3, pa.int64()),
            "ulid": pa.array([f"01J{i:010d}{x[:6]}" for i, x in enumerate(_ids(rng, n))]),
            "level": pa.array(["INFO", "WARN", "ERROR"] * (n // 3)),
        }
    )


@pytest.fixture(scope="module")
def data() -> pa.Table:
    return _table(np.random.default_rng(11), ROWS)


@pytest.fixture(scope="module", params=["flushed", "compacted"])
def log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, data: pa.Table
) -> Iterator[arrowlog.Log]:
    path = tmp_path_factory.mktemp("bloom") / "data"
    with arrowlog.open(path, row_group_rows=GROUP_ROWS, flush_interval=3600.0) as lg:
        for batch in data.to_batches(max_chunksize=1_000):
            lg.append("s", batch)
            lg.flush("s")  # six files, then one after compaction
        if request.param == "compacted":
            lg.compact("s")
        yield lg


def _files(log: arrowlog.Log) -> list[str]:
    uris = DeltaTable(str(log.settings.data_dir / "streams" / "s")).file_uris()
    return [u.removeprefix("file://") for u in uris]


def test_only_id_like_columns_get_a_filter_sized_for_a_row_group(data: pa.Table) -> None:
    options = bloom_filter_options(data, GROUP_ROWS)
    # Not the free text, the low-cardinality level, the time, the time-ordered ids, nor a
    # 16-bit integer (DataFusion does not read its filter).
    assert sorted(options) == ["blob", "i32", "request_id", "trace_id", "user_id"]
    for name, option in options.items():
        distinct = pc.count_distinct(data.column(name).slice(0, GROUP_ROWS)).as_py()
        assert distinct <= option["ndv"] <= GROUP_ROWS, name
    assert bloom_filter_options(data.slice(0, 0), GROUP_ROWS) == {}


def test_segments_carry_the_filters(log: arrowlog.Log) -> None:
    for path in _files(log):
        meta = pq.ParquetFile(path).metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        for g in range(meta.num_row_groups):
            column = meta.row_group(g).column
            with_filter = {n for i, n in enumerate(names) if column(i).bloom_filter_offset}
            assert with_filter == {"blob", "i32", "request_id", "trace_id", "user_id"}


def _sql_literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _expected(data: pa.Table, column: str, values: list[object]) -> list[int]:
    """Row positions (the ``_offset``) holding any of ``values``, from the data itself."""
    mask = pc.is_in(data.column(column), pa.array(values, data.schema.field(column).type))
    return np.flatnonzero(np.asarray(mask.combine_chunks())).tolist()


def _offsets(log: arrowlog.Log, where: str, engine: str) -> list[int]:
    sql = f"SELECT _offset FROM s WHERE {where} ORDER BY _offset"
    return log.sql(sql, engine=engine).to_arrow().column(0).to_pylist()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("column", ["trace_id", "request_id", "user_id", "i32", "i16"])
def test_needles_present_and_absent(
    log: arrowlog.Log, data: pa.Table, engine: str, column: str
) -> None:
    values = data.column(column)
    for row in (0, 1, 499, 500, 2_999, ROWS - 1):
        value = values[row].as_py()
        if value is None:
            continue
        assert _offsets(log, f"{column} = {_sql_literal(value)}", engine) == _expected(
            data, column, [value]
        ), (column, value)
    absent: object = {
        "trace_id": "7a3e5c1d-0b2f-4c6a-9d8e-123456789abc",
        "request_id": "req_zzzzzzzz",
        "user_id": 10**12 + 3,
        "i32": ROWS,
        "i16": -ROWS,
    }[column]
    assert _offsets(log, f"{column} = {_sql_literal(absent)}", engine) == []
    present = [values[10].as_py(), values[4_321].as_py()]
    listed = ", ".join(_sql_literal(v) for v in [*present, absent])
    assert _offsets(log, f"{column} IN ({listed})", engine) == _expected(data, column, present)


@pytest.mark.parametrize("engine", ENGINES)
def test_nulls_are_found_and_never_equal(log: arrowlog.Log, data: pa.Table, engine: str) -> None:
    nulls = np.flatnonzero(np.asarray(data.column("trace_id").is_null())).tolist()
    assert nulls and _offsets(log, "trace_id IS NULL", engine) == nulls
    assert _offsets(log, "trace_id = NULL", engine) == []
    not_null = _offsets(log, "trace_id IS NOT NULL", engine)
    assert len(not_null) == ROWS - len(nulls)


@pytest.mark.parametrize("engine", ENGINES)
def test_ids_compare_case_sensitively(log: arrowlog.Log, data: pa.Table, engine: str) -> None:
    trace = data.column("trace_id")[1_234].as_py()
    assert _offsets(log, f"trace_id = '{trace.upper()}'", engine) == []
    assert _offsets(log, f"upper(trace_id) = '{trace.upper()}'", engine) == [1_234]
    assert _offsets(log, "request_id = 'req_MiXeD'", engine) == [3]
    assert _offsets(log, "request_id = 'req_mixed'", engine) == []
    assert _offsets(log, "lower(request_id) = 'req_mixed'", engine) == [3]


@pytest.mark.parametrize("engine", ENGINES)
def test_binary_needles(log: arrowlog.Log, data: pa.Table, engine: str) -> None:
    blob = data.column("blob")[2_500].as_py()
    where = f"blob = CAST('{blob.decode()}' AS {'BYTEA' if engine == 'datafusion' else 'BLOB'})"
    assert _offsets(log, where, engine) == [2_500]


@pytest.mark.parametrize("column", ["trace_id", "request_id", "user_id", "i32", "blob"])
def test_datafusion_skips_row_groups_by_their_filters(
    log: arrowlog.Log, data: pa.Table, column: str
) -> None:
    value = data.column(column)[4_000].as_py()
    literal = (
        f"CAST('{value.decode()}' AS BYTEA)" if isinstance(value, bytes) else _sql_literal(value)
    )
    sql = f"EXPLAIN ANALYZE SELECT * FROM s WHERE {column} = {literal}"
    text = "\n".join(log.sql(sql).to_arrow().column("plan").to_pylist())
    counts = re.findall(r"row_groups_pruned_bloom_filter=(\d+) total → (\d+) matched", text)
    total = sum(int(t) for t, _ in counts)
    matched = sum(int(m) for _, m in counts)
    # Min/max statistics may rule out a few row groups first; the filters rule out the rest
    # but the one holding the value (and, rarely, a false positive).
    assert total >= ROWS // GROUP_ROWS // 2 and 1 <= matched <= 2, text
