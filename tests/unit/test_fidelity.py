"""Answers and stored values stay true: order, floats, widening, names (embedded, both engines).

Each case reads back at three moments (only buffered, after a flush, after a compaction)
because the bugs this guards against lived in one of them only: NaN survived the buffer
and became another number after a flush; ORDER BY held on one file and broke on several.
"""

from __future__ import annotations

import math
import re
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import arrowlog
from arrowlog import InvalidInput

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


# -- names: case-insensitive, a case variant refused before the WAL --------------------------


def _entries(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(
    "records",
    [[{"A": 1, "a": 2}], [{"msg": "x", "s": {"k": 1, "K": 2}}]],
)
def test_one_batch_with_case_variant_names_is_refused(
    log: arrowlog.Log, records: list[dict]
) -> None:
    with pytest.raises(InvalidInput, match="differ only in case"):
        log.append("c", records)
    assert log.streams() == []


def test_a_case_variant_of_a_stream_column_is_refused_and_flushing_goes_on(
    log: arrowlog.Log,
) -> None:
    log.append("c", [{"b": 1}])
    log.append("other", [{"x": 1}])
    with pytest.raises(InvalidInput, match=r"column 'B' differs only in case from column 'b'"):
        log.append("c", [{"B": 2}])
    log.flush()
    assert log.sql("SELECT count(*) AS n FROM c").to_arrow().column("n").to_pylist() == [1]
    assert log.describe("other").segments == 1


def test_a_case_variant_of_a_stream_name_is_refused_and_both_engines_agree(
    log: arrowlog.Log, tmp_path: Path
) -> None:
    log.append("base", [{"x": 1}])
    before = _entries(tmp_path / "data" / "streams")
    with pytest.raises(InvalidInput, match=r"stream 'Base' differs only in case from.*'base'"):
        log.append("Base", [{"x": 2}])
    with pytest.raises(InvalidInput, match="differs only in case"):
        log.create_stream("BASE")
    assert _entries(tmp_path / "data" / "streams") == before
    assert [s.name for s in log.streams()] == ["base"]
    for engine in ENGINES:
        got = log.sql("SELECT count(*) AS n FROM Base", engine=engine).to_arrow()
        assert got.column("n").to_pylist() == [1], engine
    assert log.describe("BASE").name == "base"  # lookups are case-insensitive too


def test_a_failing_flush_of_one_stream_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arrowlog import catalog

    with arrowlog.open(tmp_path / "data", flush_interval=0.05) as lg:
        lg.append("bad", [{"x": 1}])
        real = catalog.StreamCatalog.commit

        def commit(self, *args, **kwargs):
            if self.name == "bad":
                raise RuntimeError("not a StorageError: an unexpected failure")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(catalog.StreamCatalog, "commit", commit)
        lg.append("good", [{"x": 1}])
        deadline = time.monotonic() + 10
        while lg.describe("good").segments == 0:
            assert time.monotonic() < deadline, "the flusher stopped"
            time.sleep(0.02)
        lg.append("good2", [{"x": 1}])
        while lg.describe("good2").segments == 0:
            assert time.monotonic() < deadline, "the flusher stopped after a failure"
            time.sleep(0.02)
        monkeypatch.setattr(catalog.StreamCatalog, "commit", real)


# -- types Delta cannot store as they are -----------------------------------------------------


def test_a_null_typed_arrow_column_is_refused_not_dropped(log: arrowlog.Log) -> None:
    with pytest.raises(InvalidInput, match=r"column 'v' has Arrow type null"):
        log.append("n", pa.table({"k": [1, 2], "v": pa.nulls(2)}))
    assert log.streams() == []
    log.append("n", pa.table({"k": [1], "v": pa.array([1.5])}))
    log.append("n", pa.table({"k": [2], "v": pa.nulls(1)}))  # a known column: its nulls
    assert log.sql("SELECT v FROM n ORDER BY _offset").to_arrow().column("v").to_pylist() == [
        1.5,
        None,
    ]


def test_json_like_records_with_an_always_null_field_add_no_column(log: arrowlog.Log) -> None:
    log.append("n", [{"k": 1, "v": None}])
    assert log.schema("n").names[0] == "k" and "v" not in log.schema("n").names
    log.append("n", [{"k": 2, "v": "x"}])
    assert log.sql("SELECT v FROM n ORDER BY _offset").to_arrow().column("v").to_pylist() == [
        None,
        "x",
    ]


def test_decimal_with_a_negative_scale_is_stored_exactly(log: arrowlog.Log) -> None:
    values = pa.array([12300, -4500, None], pa.decimal128(7, 0)).cast(
        pa.decimal128(5, -2), safe=False
    )
    log.append("d", pa.table({"v": values}))
    for moment in _moments(log, "d"):
        got = log.sql("SELECT v FROM d ORDER BY _offset").to_arrow().column("v")
        assert got.type == pa.decimal128(7, 0), moment
        assert [None if x is None else int(x) for x in got.to_pylist()] == [12300, -4500, None]


def test_decimal_too_wide_for_delta_is_refused_clearly(log: arrowlog.Log) -> None:
    values = pa.array([1], pa.decimal128(38, 0)).cast(pa.decimal128(38, -5), safe=False)
    with pytest.raises(InvalidInput, match=r"column 'v' has type decimal128\(38, -5\)"):
        log.append("d", pa.table({"v": values}))
    assert log.streams() == []


# -- widening -----------------------------------------------------------------------------


def _values(log: arrowlog.Log, stream: str, column: str, engine: str = "datafusion") -> list:
    got = log.sql(f"SELECT {column} FROM {stream} ORDER BY _offset", engine=engine).to_arrow()
    return got.column(column).to_pylist()


@pytest.mark.parametrize("flush_first", [False, True])
def test_an_int_column_widens_to_double(log: arrowlog.Log, flush_first: bool) -> None:
    log.append("lat", [{"latency_ms": 12}, {"latency_ms": -3}])
    if flush_first:
        log.flush("lat")
    log.append("lat", [{"latency_ms": 12.5}])
    log.append("lat", [{"latency_ms": 7}])  # ints keep coming: now stored as doubles
    assert log.schema("lat").field("latency_ms").type == pa.float64()
    for moment in _moments(log, "lat"):
        for engine in ENGINES:
            assert _values(log, "lat", "latency_ms", engine) == [12.0, -3.0, 12.5, 7.0], (
                moment,
                engine,
            )
        replay = log.read("lat", from_offset=0).column("latency_ms")
        assert replay.type == pa.float64() and replay.to_pylist() == [12.0, -3.0, 12.5, 7.0]


def test_a_widened_stream_stays_readable_by_other_delta_readers(
    log: arrowlog.Log, tmp_path: Path
) -> None:
    import deltalake
    import polars as pl

    log.append("lat", [{"latency_ms": 12}])
    log.flush("lat")
    log.append("lat", [{"latency_ms": 12.5}])
    log.flush("lat")
    uri = str(tmp_path / "data" / "streams" / "lat")
    frame = pl.scan_delta(uri).select("latency_ms", "_offset").collect().sort("_offset")
    assert frame["latency_ms"].dtype == pl.Float64
    assert frame["latency_ms"].to_list() == [12.0, 12.5]
    table = deltalake.DeltaTable(uri)
    assert pa.schema(table.schema().to_arrow()).field("latency_ms").type == pa.float64()


def test_widening_survives_a_restart(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path / "data", flush_interval=3600.0) as lg:
        lg.append("w", pa.table({"n": pa.array([1, 2], pa.int32())}))
        lg.flush("w")
        lg.append("w", pa.table({"n": pa.array([2**40], pa.int64())}))
        lg.append("w", pa.table({"n": pa.array([0.5], pa.float32())}))
    with arrowlog.open(tmp_path / "data", flush_interval=3600.0) as lg:
        assert lg.schema("w").field("n").type == pa.float64()
        assert _values(lg, "w", "n") == [1.0, 2.0, float(2**40), 0.5]


@pytest.mark.parametrize(
    ("first", "then", "widened"),
    [
        (pa.array([1], pa.int32()), pa.array([2**40], pa.int64()), pa.int64()),
        (pa.array([1], pa.int8()), pa.array([300], pa.int16()), pa.int16()),
        (pa.array([1.5], pa.float32()), pa.array([0.1], pa.float64()), pa.float64()),
        (pa.array([7], pa.int64()), pa.array([0.25], pa.float32()), pa.float64()),
    ],
)
def test_the_wider_type_wins(
    log: arrowlog.Log, first: pa.Array, then: pa.Array, widened: pa.DataType
) -> None:
    log.append("w", pa.table({"n": first}))
    log.flush("w")
    log.append("w", pa.table({"n": then}))
    for moment in _moments(log, "w"):
        got = log.sql("SELECT n FROM w ORDER BY _offset").to_arrow().column("n")
        assert got.type == widened, moment
        assert got.to_pylist() == first.cast(widened).to_pylist() + then.cast(widened).to_pylist()


def test_an_int64_narrower_in_value_keeps_the_declared_type(log: arrowlog.Log) -> None:
    log.create_stream("w", pa.schema([("n", pa.int32())]))
    log.append("w", [{"n": 5}])  # JSON-like ints are int64; they fit int32
    assert log.schema("w").field("n").type == pa.int32()


@pytest.mark.parametrize("flush_first", [False, True])
def test_integers_beyond_2_53_refuse_to_widen_to_double(
    log: arrowlog.Log, flush_first: bool
) -> None:
    big = 2**53 + 1
    log.append("w", [{"n": big}])
    if flush_first:
        log.flush("w")
    with pytest.raises(
        InvalidInput, match=r"column 'n' of stream 'w' holds integers up to .* double"
    ):
        log.append("w", [{"n": 0.5}])
    assert log.schema("w").field("n").type == pa.int64()
    assert _values(log, "w", "n") == [big]


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        ({"n": 1.5}, {"n": "x"}, "column 'n' has type string, but stream 'w' has double"),
        ({"n": "x"}, {"n": 1}, "column 'n' has type int64, but stream 'w' has string"),
        ({"n": 1.5}, {"n": True}, "column 'n' has type bool, but stream 'w' has double"),
    ],
)
def test_string_number_and_bool_do_not_mix(
    log: arrowlog.Log, first: dict, then: dict, message: str
) -> None:
    log.append("w", [first])
    with pytest.raises(InvalidInput, match=re.escape(message)):
        log.append("w", [then])


def test_a_column_widened_before_its_first_flush_is_widened_in_the_delta_schema(
    log: arrowlog.Log, tmp_path: Path
) -> None:
    import polars as pl

    log.append("w", [{"n": 1}])
    log.append("w", [{"n": 1.5}])
    log.flush("w")
    uri = str(tmp_path / "data" / "streams" / "w")
    frame = pl.scan_delta(uri).select("n", "_offset").collect().sort("_offset")
    assert frame["n"].to_list() == [1.0, 1.5]


def test_compaction_while_a_widening_waits_for_its_flush_keeps_every_row(
    tmp_path: Path,
) -> None:
    import polars as pl

    with arrowlog.open(tmp_path / "data", flush_interval=3600.0, flush_rows=10**9) as lg:
        for i in range(4):
            lg.append("w", [{"n": i, "ts": f"2026-11-2{i % 2}T10:00:0{i}Z"}])
            lg.flush("w")
        lg.append("w", [{"n": 0.5, "ts": "2026-11-20T11:00:00Z"}])
        lg.compact("w")
        uri = str(tmp_path / "data" / "streams" / "w")
        frame = pl.scan_delta(uri).select("n", "_offset").collect().sort("_offset")
        assert frame["n"].to_list() == [0.0, 1.0, 2.0, 3.0, 0.5]
        assert _values(lg, "w", "n") == [0.0, 1.0, 2.0, 3.0, 0.5]


# -- found by the differential suite ----------------------------------------------------------


def test_a_stream_with_a_struct_column_flushes_compacts_and_describes(log: arrowlog.Log) -> None:
    for i in range(3):
        log.append("st", [{"s": {"a": i, "b": "x"}, "ok": i % 2 == 0}])
        log.flush("st")
    info = log.describe("st")
    assert (info.rows, info.segments, info.first_offset, info.last_offset) == (3, 3, 0, 2)
    log.compact("st")
    assert log.describe("st").segments == 1
    got = log.sql("SELECT s, ok FROM st ORDER BY _offset").to_arrow().to_pylist()
    assert got == [{"s": {"a": i, "b": "x"}, "ok": i % 2 == 0} for i in range(3)]


def test_the_duckdb_engine_joins_two_streams_that_are_only_buffered(log: arrowlog.Log) -> None:
    log.append("l", [{"k": 1, "a": "left"}])
    log.append("r", [{"k": 1, "b": "right"}])
    sql = "SELECT l.a, r.b FROM l JOIN r ON l.k = r.k"
    for engine in ENGINES:
        assert log.sql(sql, engine=engine).to_arrow().to_pylist() == [
            {"a": "left", "b": "right"}
        ], engine


def test_two_min_aggregates_over_several_files_answer_right_every_time(
    log: arrowlog.Log,
) -> None:
    us = pa.timestamp("us", tz="UTC")
    log.append(
        "a",
        pa.table(
            {
                "c": pa.array([None] * 3, us),
                "ts": pa.array([-2208988799996599, 1735689600000000, 1735603200000000], us),
            }
        ),
    )
    log.flush("a")
    log.append(
        "a",
        pa.table(
            {
                "ts": pa.array(
                    [
                        -86399999999,
                        951782400959840,
                        0,
                        -2208988800000000,
                        951825600000000,
                        1795392000000001,
                        4102358400646162,
                        -2208902400000001,
                    ],
                    us,
                ),
                "c": pa.array(
                    [
                        None,
                        -2208988800000000,
                        1795478399999999,
                        1735603200000000,
                        4102358416865546,
                        1735603200000371,
                        None,
                        951782400172169,
                    ],
                    us,
                ),
            }
        ),
    )
    log.flush("a")
    # DataFusion's aggregate dynamic filters answered this wrongly in most runs.
    for engine in ENGINES * 10:
        got = log.sql("SELECT min(c) AS c, min(ts) AS t FROM a", engine=engine).to_arrow()
        row = [got.column(n).cast(pa.int64())[0].as_py() for n in ("c", "t")]
        assert row == [-2208988800000000, -2208988800000000], engine


@pytest.mark.xfail(
    strict=True,
    reason="DataFusion 55: grouped max of an all -inf group is -1.79e308 (apache/datafusion#24432)",
)
def test_grouped_min_max_of_infinite_groups(log: arrowlog.Log) -> None:
    """Strict: once a DataFusion release fixes it, this passes, and the README's note and
    the differential suite's known-bug entry go."""
    inf = float("inf")
    log.append("g", pa.table({"k": [1, 1, 2], "v": [-inf, -inf, 1.0]}))
    sql = "SELECT k, max(v) AS mx FROM g GROUP BY k ORDER BY k"
    assert log.sql(sql, engine="duckdb").to_arrow().column("mx").to_pylist() == [-inf, 1.0]
    assert log.sql(sql).to_arrow().column("mx").to_pylist() == [-inf, 1.0]


@pytest.mark.xfail(
    strict=True,
    reason="DataFusion 55: a window's PARTITION BY over floats splits -0.0 from 0.0",
)
def test_window_partition_treats_negative_zero_as_zero(log: arrowlog.Log) -> None:
    """Strict: once a DataFusion release fixes it, this passes, and the README's note and
    the differential suite's known-bug entry go. GROUP BY already agrees."""
    log.append("z", pa.table({"x": [0.0, -0.0, 1.0], "v": [1, 2, 3]}))
    grouped = "SELECT count(*) AS c FROM z GROUP BY x ORDER BY c"
    assert log.sql(grouped).to_arrow().column("c").to_pylist() == [1, 2]
    sql = "SELECT v, sum(v) OVER (PARTITION BY x) AS s FROM z ORDER BY v"
    assert log.sql(sql, engine="duckdb").to_arrow().column("s").to_pylist() == [3, 3, 3]
    assert log.sql(sql).to_arrow().column("s").to_pylist() == [3, 3, 3]
