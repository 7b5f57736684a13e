"""Answers and stored values stay true: order, floats, widening, names (embedded, both engines).

Each case reads back at three moments (only buffered, after a flush, after a compaction)
because the bugs this guards against lived in one of them only: NaN survived the buffer
and became another number after a flush; ORDER BY held on one file and broke on several.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import arrowlog

ENGINES = ("datafusion", "duckdb")
T0 = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[arrowlog.Log]:
    with arrowlog.open(tmp_path / "data", flush_interval=3600.0) as lg:
        yield lg


def _moments(log: arrowlog.Log, stream: str) -> Iterator[str]:
    """Yield once with everything buffered, once after a flush, once after a compaction."""
    yield "buffered"
    log.flush(stream)
    yield "flushed"
    log.compact(stream)
    yield "compacted"


def _bits(values: list[float | None]) -> list[int | None]:
    return [None if v is None else struct.unpack("<q", struct.pack("<d", v))[0] for v in values]


# -- ORDER BY --------------------------------------------------------------------------------


def _random_segments(log: arrowlog.Log, stream: str, *, files: int, rows: int) -> None:
    """``files`` flushed segments and one buffered batch of random times and values."""
    rng = np.random.default_rng(7)
    start = int(T0.timestamp() * 1_000_000)
    for i in range(files + 1):
        times = start + rng.integers(0, 2 * 86_400 * 1_000_000, rows)
        log.append(
            stream,
            pa.table(
                {
                    "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
                    "v": pa.array(rng.normal(size=rows)),
                    "k": pa.array([f"k{j % 13}" for j in range(rows)]),
                }
            ),
        )
        if i < files:
            log.flush(stream)


def _inversions(values: np.ndarray, descending: bool) -> int:
    steps = np.diff(values)
    return int((steps > 0).sum() if descending else (steps < 0).sum())


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("sql", "column", "descending"),
    [
        ("SELECT ts, k FROM s ORDER BY ts", "ts", False),
        ("SELECT * FROM s ORDER BY v DESC", "v", True),
        ("SELECT k, v FROM s ORDER BY v", "v", False),
        ("SELECT upper(k) AS k, ts FROM s ORDER BY ts DESC", "ts", True),
    ],
)
def test_order_by_holds_across_batches_and_files(
    log: arrowlog.Log, engine: str, sql: str, column: str, descending: bool
) -> None:
    _random_segments(log, "s", files=3, rows=20_000)
    result = log.sql(sql, engine=engine)
    batches = list(result)
    assert len(batches) > 1  # the order must hold across batch boundaries
    values = pa.Table.from_batches(batches).column(column)
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.int64())
    assert len(values) == 80_000
    assert _inversions(values.to_numpy(), descending) == 0


# -- floats ----------------------------------------------------------------------------------

SPECIAL = [
    float("nan"),
    1.5,
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    0.0,
    5e-324,  # the smallest subnormal
    -2.2250738585072014e-308,
    1.7976931348623157e308,
    None,
]


@pytest.mark.parametrize("engine", ENGINES)
def test_floats_round_trip_bit_exact(log: arrowlog.Log, engine: str) -> None:
    log.append("f", pa.table({"v": pa.array(SPECIAL, pa.float64())}))
    for moment in _moments(log, "f"):
        got = log.sql("SELECT v FROM f ORDER BY _offset", engine=engine).to_arrow()
        assert _bits(got.column("v").to_pylist()) == _bits(SPECIAL), moment


@pytest.mark.parametrize("engine", ENGINES)
def test_a_constant_column_with_nan_is_not_taken_for_a_constant(
    log: arrowlog.Log, engine: str
) -> None:
    log.append("f", [{"v": math.nan}, {"v": 1.5}, {"v": math.nan}])
    for moment in _moments(log, "f"):
        got = log.sql("SELECT v FROM f ORDER BY _offset", engine=engine).to_arrow()
        assert _bits(got.column("v").to_pylist()) == _bits([math.nan, 1.5, math.nan]), moment


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("v > 2", 4),  # both NaNs, +inf and the largest double: NaN sorts above numbers
        ("v = 'NaN'::double", 2),
        ("v < 0", 2),  # -inf and the negative subnormal; -0.0 is not < 0
        ("v IS NULL", 1),
        ("isnan(v)", 2),
    ],
)
def test_filters_on_floats_are_not_pruned_by_statistics(
    log: arrowlog.Log, engine: str, where: str, expected: int
) -> None:
    log.append("f", pa.table({"v": pa.array(SPECIAL, pa.float64())}))
    for moment in _moments(log, "f"):
        got = log.sql(f"SELECT count(*) AS n FROM f WHERE {where}", engine=engine).to_arrow()
        assert got.column("n").to_pylist() == [expected], (moment, where)


def test_float32_keeps_its_type_and_bits(log: arrowlog.Log) -> None:
    values = [float("nan"), -0.0, float("inf"), 1.25]
    log.append("f", pa.table({"v": pa.array(values, pa.float32())}))
    for moment in _moments(log, "f"):
        got = log.sql("SELECT v FROM f ORDER BY _offset").to_arrow().column("v")
        assert got.type == pa.float32(), moment
        assert [struct.pack("<f", x) if x is not None else None for x in got.to_pylist()] == [
            struct.pack("<f", x) for x in values
        ], moment
