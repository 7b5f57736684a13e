"""Unit tests for arrowlog.schema: the ingest step, in-process and without I/O."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowlog.errors import BatchTooLarge, InvalidInput
from arrowlog.schema import (
    INGESTED_AT,
    OFFSET,
    PARTITION,
    RESERVED,
    TIME_CANDIDATES,
    TIME_TYPE,
    choose_time_column,
    coerce,
    merge_schemas,
    normalize,
    system_schema,
    to_table,
    validate_stream_name,
    with_offsets,
)

UTC = dt.UTC
NS = pa.timestamp("ns", tz="UTC")
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LIMIT = 1024


def prepare(data: Any, *, max_string_bytes: int = LIMIT) -> pa.Table:
    return normalize(to_table(data), max_string_bytes=max_string_bytes)


def exactly(message: str) -> str:
    """A ``pytest.raises(match=...)`` pattern for exactly this message."""
    return f"^{re.escape(message)}$"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def invalid_utf8() -> pa.Array:
    offsets = pa.py_buffer(np.array([0, 2], dtype=np.int32).tobytes())
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(b"\xff\xfe")])


# -- stream names ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "_", "http_logs", "A1_b2", "_delta", "a" * 128])
def test_valid_stream_names_are_returned(name: str) -> None:
    assert validate_stream_name(name) == name


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "", "1abc", "é", "a" * 129, "a\x00", "a.b", " a", "a-b", None, 7]
)
def test_invalid_stream_names_are_rejected(name: object) -> None:
    with pytest.raises(InvalidInput, match=r"^invalid stream name .*: use 1-128 letters"):
        validate_stream_name(name)


def test_stream_name_message_shows_the_name_and_the_rule() -> None:
    expected = (
        "invalid stream name '../etc': use 1-128 letters, digits or '_', not starting with a digit"
    )
    with pytest.raises(InvalidInput, match=exactly(expected)):
        validate_stream_name("../etc")


# -- to_table --------------------------------------------------------------------------


class _CStream:
    """A foreign producer known only by the Arrow C stream interface."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


class _CArray:
    """A foreign producer known only by the Arrow C array interface."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self._batch = batch

    def __arrow_c_array__(self, requested_schema: object = None) -> object:
        return self._batch.__arrow_c_array__(requested_schema)


EXPECTED = {"a": [1, 2], "b": ["x", None]}
SAMPLE = pa.table(EXPECTED)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([{"a": 1, "b": "x"}, {"a": 2}], id="list-of-dicts"),
        pytest.param(EXPECTED, id="dict-of-lists"),
        pytest.param(SAMPLE, id="table"),
        pytest.param(SAMPLE.to_batches()[0], id="record-batch"),
        pytest.param(
            pa.RecordBatchReader.from_batches(SAMPLE.schema, SAMPLE.to_batches()), id="reader"
        ),
        pytest.param(pd.DataFrame(EXPECTED, index=[10, 11]), id="pandas"),
        pytest.param(pl.DataFrame(EXPECTED), id="polars"),
        pytest.param(_CStream(SAMPLE), id="c-stream"),
        pytest.param(_CArray(SAMPLE.to_batches()[0]), id="c-array"),
    ],
)
def test_to_table_accepts_every_input_kind(data: object) -> None:
    table = to_table(data)
    assert isinstance(table, pa.Table)
    assert table.to_pydict() == EXPECTED  # pandas' index is not a column


def test_to_table_keeps_fields_that_first_appear_in_later_records() -> None:
    table = to_table([{"a": 1}, {"b": "x", "a": 2}, {"c": True}])
    assert table.column_names == ["a", "b", "c"]
    assert table.to_pylist() == [
        {"a": 1, "b": None, "c": None},
        {"a": 2, "b": "x", "c": None},
        {"a": None, "b": None, "c": True},
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "empty batch: it holds no records"),
        ({}, "empty batch: it holds no records"),
        (SAMPLE.slice(0, 0), "empty batch: it holds no records"),
        ([{}, {}], "empty batch: its records have no fields"),
        (pa.table({"a": [1]}).select([]), "empty batch: its records have no fields"),
    ],
)
def test_to_table_rejects_an_empty_batch(data: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=exactly(message)):
        to_table(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"a": 1}, "x"], "records must be dicts; item 1 has type str"),
        ([{"a": 1}, None], "records must be dicts; item 1 has type NoneType"),
        ([1, 2], "records must be dicts; item 0 has type int"),
    ],
)
def test_to_table_rejects_a_list_holding_non_dicts(data: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=exactly(message)):
        to_table(data)


def test_to_table_names_the_field_whose_values_do_not_convert() -> None:
    with pytest.raises(InvalidInput, match=r"^field 'b' cannot be stored: Could not convert 'x'"):
        to_table([{"a": 1, "b": 1}, {"a": 2, "b": "x"}])


def test_to_table_names_the_field_with_an_integer_beyond_int64() -> None:
    with pytest.raises(
        InvalidInput, match=exactly("field 'n' holds an integer outside the int64 range")
    ):
        to_table([{"n": 1}, {"n": 2**70}])


def test_to_table_explains_a_single_record_dict() -> None:
    with pytest.raises(InvalidInput, match="to send one record, wrap it in a list"):
        to_table({"a": 1})


@pytest.mark.parametrize("data", [object(), "a,b", 42, pl.LazyFrame({"a": [1]})])
def test_to_table_rejects_other_types_naming_them(data: object) -> None:
    name = re.escape(type(data).__qualname__)
    with pytest.raises(InvalidInput, match=f"^cannot append a value of type .*{name}: send a list"):
        to_table(data)


# -- normalize -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "expected_type", "expected_values"),
    [
        (pa.array(["a", None], pa.large_string()), pa.string(), ["a", None]),
        (pa.array(["a", None], pa.string_view()), pa.string(), ["a", None]),
        (pa.array([b"a", None], pa.large_binary()), pa.binary(), [b"a", None]),
        (pa.array([b"a", None], pa.binary_view()), pa.binary(), [b"a", None]),
        (pa.array([b"ab", None], pa.binary(2)), pa.binary(), [b"ab", None]),
        (pa.array(["x", "y", "x"]).dictionary_encode(), pa.string(), ["x", "y", "x"]),
        (pa.array([[1], None], pa.large_list(pa.int64())), pa.list_(pa.int64()), [[1], None]),
        (
            pa.array([[1, 2], [3], None, []], pa.list_view(pa.int64())),
            pa.list_(pa.int64()),
            [[1, 2], [3], None, []],
        ),
        (pa.array([[1, 2], None], pa.list_(pa.int64(), 2)), pa.list_(pa.int64()), [[1, 2], None]),
        (pa.array([255, None], pa.uint8()), pa.int16(), [255, None]),
        (pa.array([65535], pa.uint16()), pa.int32(), [65535]),
        (pa.array([2**32 - 1], pa.uint32()), pa.int64(), [2**32 - 1]),
        (pa.array([2**63 - 1], pa.uint64()), pa.int64(), [2**63 - 1]),
        (pa.array([1.5], pa.float32()).cast(pa.float16()), pa.float32(), [1.5]),
        (pa.array([dt.date(2026, 11, 23)], pa.date64()), pa.date32(), [dt.date(2026, 11, 23)]),
        (
            pa.array([Decimal("1.25")], pa.decimal256(10, 2)),
            pa.decimal128(10, 2),
            [Decimal("1.25")],
        ),
    ],
    ids=lambda v: str(v) if isinstance(v, pa.DataType) else None,
)
def test_normalize_maps_each_type_to_its_storable_form(
    array: pa.Array, expected_type: pa.DataType, expected_values: list[Any]
) -> None:
    table = normalize(pa.table({"c": array}), max_string_bytes=LIMIT)
    assert table.schema.field("c").type == expected_type
    assert table.column("c").to_pylist() == expected_values


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (pa.array([1_795_428_000], pa.timestamp("s")), utc(2026, 11, 23, 10)),
        (
            pa.array([1_795_428_000_123], pa.timestamp("ms", tz="UTC")),
            utc(2026, 11, 23, 10, 0, 0, 123000),
        ),
        (pa.array([1_795_428_000_000_001], pa.timestamp("us")), utc(2026, 11, 23, 10, 0, 0, 1)),
        (
            pa.array(
                [dt.datetime(2026, 11, 23, 11, tzinfo=dt.timezone(dt.timedelta(hours=1)))],
                pa.timestamp("ms", tz="Europe/Paris"),
            ),
            utc(2026, 11, 23, 10),
        ),
    ],
    ids=["naive-s", "utc-ms", "naive-us", "paris-ms"],
)
def test_normalize_makes_coarser_timestamps_utc_microseconds(
    array: pa.Array, expected: dt.datetime
) -> None:
    table = normalize(pa.table({"t": array}), max_string_bytes=LIMIT)
    assert table.schema.field("t").type == TIME_TYPE
    assert table.column("t").to_pylist() == [expected]


def test_normalize_recurses_into_structs_lists_and_maps() -> None:
    struct = pa.struct(
        [
            ("a", pa.uint32()),
            ("gone", pa.null()),
            ("tags", pa.large_list(pa.large_string())),
            ("attrs", pa.map_(pa.large_string(), pa.uint8())),
        ]
    )
    values = [{"a": 1, "gone": None, "tags": ["x"], "attrs": [("k", 2)]}, None]
    table = normalize(pa.table({"s": pa.array(values, struct)}), max_string_bytes=LIMIT)
    assert table.schema.field("s").type == pa.struct(
        [
            ("a", pa.int64()),
            ("tags", pa.list_(pa.string())),
            ("attrs", pa.map_(pa.string(), pa.int16())),
        ]
    )
    assert table.column("s").to_pylist() == [{"a": 1, "tags": ["x"], "attrs": [("k", 2)]}, None]


def test_normalize_handles_a_sliced_map() -> None:
    maps = pa.array(
        [[("a", 1)], [("b", 2), ("c", 3)], None], pa.map_(pa.large_string(), pa.uint8())
    )
    table = normalize(pa.table({"m": maps.slice(1)}), max_string_bytes=LIMIT)
    assert table.column("m").to_pylist() == [[("b", 2), ("c", 3)], None]


def test_normalize_rejects_a_uint64_beyond_int64_naming_the_column() -> None:
    column = pa.array([1, 2**64 - 1], pa.uint64())
    with pytest.raises(
        InvalidInput,
        match=r"^column 'big' has a value 18446744073709551615 that is larger than int64",
    ):
        normalize(pa.table({"big": column}), max_string_bytes=LIMIT)


@pytest.mark.parametrize(
    ("array", "type_name"),
    [
        (pa.array([1], pa.time64("us")), "time64[us]"),
        (pa.array([1], pa.time32("s")), "time32[s]"),
        (pa.array([1], pa.duration("ms")), "duration[ms]"),
        (
            pa.array([pa.MonthDayNano([1, 2, 3])], pa.month_day_nano_interval()),
            "month_day_nano_interval",
        ),
        (pa.array([[1]], pa.list_(pa.time64("us"))), "time64[us]"),
    ],
)
def test_normalize_rejects_types_delta_cannot_store(array: pa.Array, type_name: str) -> None:
    with pytest.raises(
        InvalidInput,
        match=rf"^column 'x(\[\])?' has type {re.escape(type_name)}, which arrowlog cannot store; send it as a string or a timestamp$",
    ):
        normalize(pa.table({"x": array}), max_string_bytes=LIMIT)


def test_an_all_null_field_of_untyped_records_adds_no_column() -> None:
    table = prepare([{"a": 1, "b": None}, {"a": 2, "b": None}])
    _, schema = coerce(table, None, INGESTED_AT, NOW, stream="s")
    assert schema.names == ["a"]


def test_records_whose_every_field_is_null_keep_their_rows() -> None:
    table = prepare([{"a": None}, {"a": None}, {"a": None}])
    batch, schema = coerce(table, None, INGESTED_AT, NOW, stream="s")
    assert (batch.num_rows, schema.names) == (3, [])  # untyped: no column for it yet


@pytest.mark.parametrize("name", sorted(RESERVED))
def test_normalize_rejects_reserved_column_names(name: str) -> None:
    with pytest.raises(InvalidInput, match=f"^column '{name}' is reserved"):
        normalize(pa.table({name: [1]}), max_string_bytes=LIMIT)


def test_normalize_rejects_duplicate_and_empty_column_names() -> None:
    with pytest.raises(InvalidInput, match=exactly("column 'a' appears more than once")):
        normalize(pa.table([[1], [2]], names=["a", "a"]), max_string_bytes=LIMIT)
    with pytest.raises(InvalidInput, match=exactly("column names must be non-empty strings")):
        normalize(pa.table([[1]], names=[""]), max_string_bytes=LIMIT)


def test_normalize_rejects_invalid_utf8_naming_the_column() -> None:
    with pytest.raises(
        InvalidInput, match=exactly("column 'msg' holds a value that is not valid UTF-8")
    ):
        normalize(pa.table({"msg": invalid_utf8()}), max_string_bytes=LIMIT)


def test_normalize_rejects_invalid_utf8_inside_a_list() -> None:
    tags = pa.ListArray.from_arrays(pa.array([0, 1], pa.int32()), invalid_utf8())
    with pytest.raises(
        InvalidInput, match=exactly("column 'tags' holds a value that is not valid UTF-8")
    ):
        normalize(pa.table({"tags": tags}), max_string_bytes=LIMIT)


def test_normalize_accepts_a_string_exactly_at_the_limit() -> None:
    table = prepare([{"msg": "x" * 10}], max_string_bytes=10)
    assert table.column("msg").to_pylist() == ["x" * 10]


@pytest.mark.parametrize(
    ("records", "path"),
    [
        ([{"msg": "x"}, {"msg": "é" * 6}], "msg"),  # 12 bytes, 6 characters
        ([{"blob": b"\x00" * 11}], "blob"),
        ([{"tags": ["ok", "y" * 11]}], "tags[]"),
        ([{"req": {"path": "z" * 11}}], "req.path"),
    ],
)
def test_normalize_rejects_values_over_max_string_bytes(
    records: list[dict[str, Any]], path: str
) -> None:
    with pytest.raises(
        BatchTooLarge,
        match=rf"^column '{re.escape(path)}' holds a value of \d+ bytes; the limit is 10 bytes",
    ):
        prepare(records, max_string_bytes=10)


def test_normalize_output_is_nullable_and_free_of_metadata() -> None:
    schema = pa.schema([pa.field("a", pa.int64(), nullable=False)], metadata={"k": "v"})
    table = normalize(pa.table({"a": [1]}, schema=schema), max_string_bytes=LIMIT)
    assert table.schema.field("a").nullable
    assert table.schema.metadata is None
    assert prepare(pd.DataFrame({"a": [1]})).schema.metadata is None


# -- choose_time_column ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["timestamp", "ts", "time", "@timestamp"])
def test_choose_time_column_finds_each_candidate_as_timestamp(name: str) -> None:
    table = prepare({"msg": ["a"], name: pa.array([NOW])})
    assert choose_time_column(table) == name


@pytest.mark.parametrize("name", ["timestamp", "ts", "time", "@timestamp"])
def test_choose_time_column_finds_each_candidate_as_iso_string(name: str) -> None:
    table = prepare([{name: "2026-11-23T10:00:00Z"}, {name: None}, {name: "2026-11-23 10:00"}])
    assert choose_time_column(table) == name


def test_choose_time_column_prefers_the_earlier_candidate() -> None:
    table = prepare([{"time": "2026-11-23T10:00:00Z", "timestamp": "2026-11-23T10:00:00Z"}])
    assert choose_time_column(table) == "timestamp"


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([{"ts": 17}], INGESTED_AT),
        ([{"ts": True}], INGESTED_AT),
        ([{"ts": "yesterday"}], INGESTED_AT),
        ([{"ts": "2026-11-23T10:00:00Z"}, {"ts": "soon"}], INGESTED_AT),
        ([{"ts": "garbage", "time": "2026-11-23T10:00:00Z"}], "time"),
        ([{"ts": None, "msg": "x"}], INGESTED_AT),
        ([{"when": "2026-11-23T10:00:00Z"}], INGESTED_AT),
    ],
    ids=[
        "small-int",
        "bool",
        "garbage",
        "partly-garbage",
        "next-candidate",
        "all-null",
        "no-candidate",
    ],
)
def test_choose_time_column_falls_back(records: list[dict[str, Any]], expected: str) -> None:
    assert choose_time_column(prepare(records)) == expected


def test_choose_time_column_accepts_a_declared_column() -> None:
    table = prepare([{"when": "2026-11-23T10:00:00Z", "at": NOW, "ts": NOW}])
    assert choose_time_column(table, "when") == "when"
    assert choose_time_column(table, "at") == "at"
    assert choose_time_column(table, INGESTED_AT) == INGESTED_AT


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ("nope", "time column 'nope' is not in the batch, whose columns are 'b', 'when'"),
        (
            "b",
            "time column 'b' has type bool; it must be a timestamp, a time string or an "
            "epoch number",
        ),
        ("when", "column 'when' has a value that is not a timestamp: 'later'"),
    ],
)
def test_choose_time_column_rejects_an_unusable_declared_column(
    declared: str, message: str
) -> None:
    table = prepare([{"b": True, "when": "later"}])
    with pytest.raises(InvalidInput, match=exactly(message)):
        choose_time_column(table, declared)


# -- coerce ----------------------------------------------------------------------------


def test_coerce_new_stream_takes_the_batch_schema_and_adds_ingested_at() -> None:
    table = prepare([{"level": "INFO", "n": 1}, {"level": "WARN", "n": 2}])
    out, schema = coerce(table, None, INGESTED_AT, NOW, stream="s")
    assert schema == pa.schema([("level", pa.string()), ("n", pa.int64())])
    assert out.schema == schema.append(pa.field(INGESTED_AT, TIME_TYPE, nullable=False))
    assert out.column(INGESTED_AT).to_pylist() == [NOW, NOW]
    assert OFFSET not in out.column_names


def test_coerce_appends_new_columns_after_existing_ones() -> None:
    stream = pa.schema([("level", pa.string()), ("n", pa.int64())])
    table = prepare([{"extra": 1.5, "n": 3, "level": "INFO"}])
    out, schema = coerce(table, stream, INGESTED_AT, NOW, stream="s")
    assert schema.names == ["level", "n", "extra"]
    assert out.column_names == ["level", "n", "extra", INGESTED_AT]
    assert out.to_pylist()[0] | {INGESTED_AT: None} == {
        "level": "INFO",
        "n": 3,
        "extra": 1.5,
        INGESTED_AT: None,
    }


def test_coerce_fills_missing_columns_with_typed_nulls() -> None:
    stream = pa.schema([("level", pa.string()), ("n", pa.int64()), ("tags", pa.list_(pa.string()))])
    out, schema = coerce(prepare([{"n": 1}]), stream, INGESTED_AT, NOW, stream="s")
    assert schema == stream
    assert out.select(["level", "n", "tags"]).to_pylist() == [{"level": None, "n": 1, "tags": None}]
    assert out.schema.field("tags").type == pa.list_(pa.string())


@pytest.mark.parametrize(
    ("array", "stream_type", "expected"),
    [
        (pa.array([1, None], pa.int32()), pa.int64(), [1, None]),
        (pa.array([-5], pa.int8()), pa.int32(), [-5]),
        (pa.array([7], pa.int64()), pa.float64(), [7.0]),
        (pa.array([7], pa.int16()), pa.float64(), [7.0]),
        (pa.array([1.5], pa.float32()), pa.float64(), [1.5]),
        (pa.array([dt.date(2026, 11, 23)]), TIME_TYPE, [utc(2026, 11, 23)]),
        (pa.array([5]), pa.int32(), [5]),  # narrower int: accepted when every value fits
    ],
    ids=lambda v: str(v) if isinstance(v, pa.DataType) else None,
)
def test_coerce_widens_to_the_stream_type(
    array: pa.Array, stream_type: pa.DataType, expected: list[Any]
) -> None:
    out, schema = coerce(
        pa.table({"v": array}), pa.schema([("v", stream_type)]), INGESTED_AT, NOW, stream="s"
    )
    assert schema.field("v").type == stream_type
    assert out.column("v").type == stream_type
    assert out.column("v").to_pylist() == expected


def test_coerce_conflict_message_names_the_column_and_both_types() -> None:
    stream = pa.schema([("status", pa.int64())])
    expected = "column 'status' has type string, but stream 'http_logs' has int64"
    with pytest.raises(InvalidInput, match=exactly(expected)):
        coerce(prepare([{"status": "200"}]), stream, INGESTED_AT, NOW, stream="http_logs")


@pytest.mark.parametrize(
    ("array", "stream_type"),
    [
        (pa.array([1]), pa.string()),
        (pa.array([True]), pa.string()),
        (pa.array([NOW]), pa.string()),
        (pa.array(["2026-11-23"]), pa.date32()),
        (pa.array([[1]], pa.list_(pa.int32())), pa.list_(pa.int64())),
        (pa.array([{"a": 1}]), pa.struct([("a", pa.int64()), ("b", pa.string())])),
    ],
    ids=lambda v: str(v) if isinstance(v, pa.DataType) else None,
)
def test_coerce_rejects_casts_that_are_not_widening(
    array: pa.Array, stream_type: pa.DataType
) -> None:
    message = f"column 'v' has type {array.type}, but stream 's' has {stream_type}"
    with pytest.raises(InvalidInput, match=exactly(message)):
        coerce(
            pa.table({"v": array}), pa.schema([("v", stream_type)]), INGESTED_AT, NOW, stream="s"
        )


@pytest.mark.parametrize(
    ("array", "stream_type", "widened"),
    [
        (pa.array([1.5]), pa.int64(), pa.float64()),
        (pa.array([1.5]), pa.float32(), pa.float64()),
        (pa.array([1]), pa.float32(), pa.float64()),
        (pa.array([2**40]), pa.int32(), pa.int64()),
        (pa.array([1], pa.int16()), pa.int8(), pa.int8()),  # fits: the column keeps int8
        (pa.array([300], pa.int16()), pa.int8(), pa.int16()),
    ],
    ids=str,
)
def test_coerce_widens_a_column_to_a_wider_number(
    array: pa.Array, stream_type: pa.DataType, widened: pa.DataType
) -> None:
    batch, schema = coerce(
        pa.table({"v": array}), pa.schema([("v", stream_type)]), INGESTED_AT, NOW, stream="s"
    )
    assert schema.field("v").type == widened
    assert batch.column("v").type == widened
    assert batch.column("v").to_pylist() == array.cast(widened).to_pylist()


@pytest.mark.parametrize(
    ("array", "stream_type"),
    [(pa.array([2**53 + 1]), pa.float64())],
)
def test_coerce_rejects_a_value_the_widened_type_cannot_hold(
    array: pa.Array, stream_type: pa.DataType
) -> None:
    with pytest.raises(
        InvalidInput,
        match=rf"^column 'v' has a value that stream 's' cannot store as {stream_type}: .*{array[0]}",
    ):
        coerce(
            pa.table({"v": array}), pa.schema([("v", stream_type)]), INGESTED_AT, NOW, stream="s"
        )


def test_coerce_accepts_an_all_null_column_of_another_type_as_nulls() -> None:
    stream = pa.schema([("status", pa.int64())])
    out, _ = coerce(
        pa.table({"status": pa.array([None, None], pa.string())}),
        stream,
        INGESTED_AT,
        NOW,
        stream="s",
    )
    assert out.column("status").type == pa.int64()
    assert out.column("status").to_pylist() == [None, None]


def test_coerce_waits_for_a_typed_batch_before_adding_an_empty_list_column() -> None:
    out, schema = coerce(prepare([{"n": 1, "tags": []}]), None, INGESTED_AT, NOW, stream="s")
    assert schema.names == ["n"]
    out, schema = coerce(prepare([{"n": 2, "tags": ["a"]}]), schema, INGESTED_AT, NOW, stream="s")
    assert schema.field("tags").type == pa.list_(pa.string())
    out, schema = coerce(
        prepare([{"n": 3, "tags": []}, {"n": 4}]), schema, INGESTED_AT, NOW, stream="s"
    )
    assert out.column("tags").to_pylist() == [[], None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:00:00Z", utc(2026, 11, 23, 10)),
        ("2026-11-23 10:00:00.123+01:00", utc(2026, 11, 23, 9, 0, 0, 123000)),
        ("2026-11-23T10:00:00-0530", utc(2026, 11, 23, 15, 30)),
        ("2026-11-23T10:00:00", utc(2026, 11, 23, 10)),
        ("2026-11-23 10:00", utc(2026, 11, 23, 10)),
        ("2026-11-23", utc(2026, 11, 23)),
    ],
)
def test_coerce_parses_iso_time_strings_naive_as_utc(text: str, expected: dt.datetime) -> None:
    out, schema = coerce(prepare([{"ts": text}]), None, "ts", NOW, stream="s")
    assert schema.field("ts").type == TIME_TYPE
    assert out.column("ts").to_pylist() == [expected]


def test_coerce_parses_strings_for_an_existing_timestamp_column() -> None:
    stream = pa.schema([("ts", TIME_TYPE), ("seen", TIME_TYPE)])
    table = prepare([{"ts": "2026-11-23T10:00:00Z", "seen": "2026-11-23T11:00:00+01:00"}])
    out, _ = coerce(table, stream, "ts", NOW, stream="s")
    assert out.select(["ts", "seen"]).to_pylist() == [
        {"ts": utc(2026, 11, 23, 10), "seen": utc(2026, 11, 23, 10)}
    ]


def test_coerce_names_the_time_value_that_does_not_parse() -> None:
    table = prepare([{"ts": "2026-11-23T10:00:00Z"}, {"ts": "yesterday"}])
    with pytest.raises(
        InvalidInput, match=exactly("column 'ts' has a value that is not a timestamp: 'yesterday'")
    ):
        coerce(table, pa.schema([("ts", TIME_TYPE)]), "ts", NOW, stream="s")


def test_coerce_keeps_missing_times_null() -> None:
    # What the producer sent is kept: a record without a time has a null time, and its
    # ingestion time (in _ingested_at) places it in a day partition (prepare_segment).
    table = prepare([{"ts": "2026-11-23T10:00:00Z"}, {"ts": None}, {"msg": "no time"}])
    out, _ = coerce(table, None, "ts", NOW, stream="s")
    assert out.column("ts").to_pylist() == [utc(2026, 11, 23, 10), None, None]
    assert out.column(INGESTED_AT).to_pylist() == [NOW] * 3


def test_coerce_leaves_a_time_column_absent_from_the_batch_null() -> None:
    stream = pa.schema([("ts", TIME_TYPE), ("msg", pa.string())])
    out, schema = coerce(prepare([{"msg": "a"}]), stream, "ts", NOW, stream="s")
    assert schema == stream
    assert out.column("ts").to_pylist() == [None]
    out, _ = coerce(prepare([{"msg": "a"}]), pa.schema([("ts", NS)]), "ts", NOW, stream="s")
    assert out.column("ts").type == NS and out.column("ts").to_pylist() == [None]


def test_coerce_adds_a_declared_time_column_nobody_sent() -> None:
    out, schema = coerce(
        prepare([{"msg": "a"}]), pa.schema([("msg", pa.string())]), "at", NOW, stream="s"
    )
    assert schema == pa.schema([("msg", pa.string()), ("at", TIME_TYPE)])
    assert out.column("at").to_pylist() == [None]


def test_coerce_rejects_a_new_time_column_that_is_not_a_time() -> None:
    expected = (
        "column 'ts' has type bool, but the time column of stream 's' must be a timestamp, "
        "a time string or an epoch number"
    )
    with pytest.raises(InvalidInput, match=exactly(expected)):
        coerce(prepare([{"ts": True}]), None, "ts", NOW, stream="s")


@pytest.mark.parametrize(
    "ingested_at",
    [
        NOW,
        NOW.replace(tzinfo=None),
        pa.scalar(NOW, TIME_TYPE),
        pa.scalar(NOW.astimezone(dt.timezone(dt.timedelta(hours=2)))),
    ],
    ids=["aware", "naive", "scalar", "scalar-other-zone"],
)
def test_coerce_accepts_ingested_at_as_datetime_or_scalar(ingested_at: Any) -> None:
    out, _ = coerce(prepare([{"a": 1}]), None, INGESTED_AT, ingested_at, stream="s")
    assert out.column(INGESTED_AT).to_pylist() == [NOW]


def test_coerce_does_not_depend_on_the_batch_column_order() -> None:
    stream = pa.schema(
        [("ts", TIME_TYPE), ("level", pa.string()), ("n", pa.float64()), ("k", pa.int64())]
    )
    records = [
        {"ts": "2026-11-23T10:00:00Z", "level": "INFO", "n": 1, "k": 2},
        {"level": "WARN", "n": 2.5},
    ]
    tables = [
        prepare([{key: r[key] for key in order if key in r} for r in records])
        for order in (
            ["ts", "level", "n", "k"],
            ["k", "n", "level", "ts"],
            ["level", "k", "ts", "n"],
        )
    ]
    results = [coerce(t, stream, "ts", NOW, stream="s") for t in tables]
    assert len({t.column_names[0] for t in tables}) == 3  # the inputs really differ
    for out, schema in results[1:]:
        assert schema == results[0][1]
        assert out.equals(results[0][0])


# -- time: epoch numbers and string formats --------------------------------------------

# 2026-12-04T08:00:00Z, a Friday.
EPOCH = 1_796_371_200
DEC4 = utc(2026, 12, 4, 8)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EPOCH, DEC4),
        (EPOCH * 1000 + 123, DEC4.replace(microsecond=123000)),
        (EPOCH * 1_000_000 + 123456, DEC4.replace(microsecond=123456)),
        (EPOCH * 1_000_000_000 + 123456000, DEC4.replace(microsecond=123456)),
        (EPOCH + 0.123456, DEC4.replace(microsecond=123456)),  # Fluent Bit's double
        (EPOCH * 1000 + 123.456, DEC4.replace(microsecond=123456)),  # epoch_ms as a double
        (-86400, utc(1969, 12, 31)),
        (0, utc(1970, 1, 1)),
    ],
    ids=["s", "ms", "us", "ns", "float-s", "float-ms", "negative-s", "zero"],
)
def test_coerce_reads_an_epoch_number_in_the_unit_its_magnitude_says(
    value: float, expected: dt.datetime
) -> None:
    out, schema = coerce(prepare([{"date": value}]), None, "date", NOW, stream="s")
    assert pa.types.is_timestamp(schema.field("date").type)
    assert out.column("date").cast(TIME_TYPE).to_pylist() == [expected]


def test_coerce_decides_the_epoch_unit_per_value() -> None:
    values = [EPOCH, EPOCH * 1000, EPOCH * 1_000_000, EPOCH + 0.5]
    out, _ = coerce(pa.table({"ts": pa.array(values[:3])}), None, "ts", NOW, stream="s")
    assert out.column("ts").to_pylist() == [DEC4] * 3
    out, _ = coerce(pa.table({"ts": pa.array(values)}), None, "ts", NOW, stream="s")
    assert out.column("ts").to_pylist() == [DEC4] * 3 + [DEC4.replace(microsecond=500000)]


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-04T08:00:00Z",
        "2026-12-04T10:00:00+02:00",
        "2026-12-04T10:00:00+0200",
        "2026-12-04 03:30:00-04:30",
        "Fri, 04 Dec 2026 08:00:00 +0000",
        "Fri, 04 Dec 2026 08:00:00 GMT",
        "04 Dec 2026 09:30:00 +0130",
        "Fri, 4 Dec 2026 08:00 UT",
        "04/Dec/2026:08:00:00 +0000",
        "04/Dec/2026:09:00:00 +0100",
        "1796371200",
        "1796371200000",
    ],
)
def test_coerce_parses_every_supported_time_string(text: str) -> None:
    out, schema = coerce(prepare([{"ts": text}]), None, "ts", NOW, stream="s")
    assert schema.field("ts").type == TIME_TYPE
    assert out.column("ts").to_pylist() == [DEC4]


def test_coerce_reads_fractional_epoch_strings() -> None:
    out, _ = coerce(prepare([{"ts": "1796371200.123"}]), None, "ts", NOW, stream="s")
    assert out.column("ts").to_pylist() == [DEC4.replace(microsecond=123000)]


def test_coerce_parses_a_batch_mixing_formats() -> None:
    texts = ["2026-12-04T08:00:00Z", "Fri, 04 Dec 2026 08:00:00 GMT", "04/Dec/2026:08:00:00 +0000"]
    out, _ = coerce(prepare([{"ts": t} for t in texts]), None, "ts", NOW, stream="s")
    assert out.column("ts").to_pylist() == [DEC4, DEC4, DEC4]


@pytest.mark.parametrize("name", ["timestamp", "ts", "time", "@timestamp", "date"])
@pytest.mark.parametrize(
    "value", [EPOCH, EPOCH + 0.25, EPOCH * 1000, "04/Dec/2026:08:00:00 +0000", "1796371200"]
)
def test_choose_time_column_finds_epoch_numbers_and_other_formats(name: str, value: Any) -> None:
    assert choose_time_column(prepare([{name: value, "msg": "x"}])) == name


@pytest.mark.parametrize(
    "value", [dt.date(2026, 12, 4), "2026-12-04", DEC4], ids=["date32", "iso-date", "datetime"]
)
def test_choose_time_column_takes_a_date_column_of_dates(value: Any) -> None:
    table = prepare([{"date": value, "msg": "x"}])
    assert choose_time_column(table) == "date"
    out, _ = coerce(table, None, "date", NOW, stream="s")
    assert out.column("date").to_pylist() == [DEC4 if value is DEC4 else utc(2026, 12, 4)]


def test_date_is_the_last_time_candidate() -> None:
    assert TIME_CANDIDATES[-1] == "date"
    table = prepare([{"date": EPOCH + 0.5, "time": "2026-12-04T08:00:00Z"}])
    assert choose_time_column(table) == "time"


@pytest.mark.parametrize("value", [5, 1.5, 99_999_999, "42"])
def test_choose_time_column_skips_small_numbers(value: Any) -> None:
    # Counters and durations are not times: a number becomes the time column on its own
    # only from 1e8 (1973-03-03) on, where every unit reads as a plausible instant.
    assert choose_time_column(prepare([{"ts": value}])) == INGESTED_AT


def test_choose_time_column_accepts_a_declared_epoch_column() -> None:
    table = prepare([{"at": 5}, {"at": EPOCH}])
    assert choose_time_column(table, "at") == "at"
    out, _ = coerce(table, None, "at", NOW, stream="s")
    assert out.column("at").to_pylist() == [utc(1970, 1, 1, 0, 0, 5), DEC4]


def test_coerce_converts_numbers_and_strings_for_an_existing_time_column() -> None:
    stream = pa.schema([("ts", TIME_TYPE), ("seen", TIME_TYPE)])
    for value in [EPOCH, EPOCH * 1000, float(EPOCH), "Fri, 04 Dec 2026 08:00:00 GMT"]:
        out, schema = coerce(prepare([{"ts": value}]), stream, "ts", NOW, stream="s")
        assert schema == stream
        assert out.column("ts").to_pylist() == [DEC4]
    out, _ = coerce(
        prepare([{"seen": "04/Dec/2026:08:00:00 +0000"}]), stream, "ts", NOW, stream="s"
    )
    assert out.column("seen").to_pylist() == [DEC4]


def test_coerce_refuses_numbers_for_a_timestamp_column_that_is_not_the_time_column() -> None:
    stream = pa.schema([("ts", TIME_TYPE), ("seen", TIME_TYPE)])
    expected = "column 'seen' has type int64, but stream 's' has timestamp[us, tz=UTC]"
    with pytest.raises(InvalidInput, match=exactly(expected)):
        coerce(prepare([{"seen": EPOCH}]), stream, "ts", NOW, stream="s")


@pytest.mark.parametrize(
    ("values", "quoted"),
    [
        (
            ["04/Dec/2026:08:00:00 +0000", "04/Dec/2026:25:00:00 +0000"],
            "'04/Dec/2026:25:00:00 +0000'",
        ),
        (
            ["Fri, 04 Dec 2026 08:00:00 GMT", "Fri, 04 Dez 2026 08:00:00 GMT"],
            "'Fri, 04 Dez 2026 08:00:00 GMT'",
        ),
        (["1796371200", "17963712OO"], "'17963712OO'"),
        (["2026-12-04T08:00:00Z", "2026-12-04T08:00:00 CET"], "'2026-12-04T08:00:00 CET'"),
        ([float(EPOCH), float("nan")], "nan"),
        ([float(EPOCH), float("inf")], "inf"),
    ],
)
def test_coerce_quotes_the_time_value_that_does_not_parse(values: list[Any], quoted: str) -> None:
    table = pa.table({"ts": pa.array(values)})
    with pytest.raises(
        InvalidInput, match=exactly(f"column 'ts' has a value that is not a timestamp: {quoted}")
    ):
        coerce(table, pa.schema([("ts", TIME_TYPE)]), "ts", NOW, stream="s")


# -- time: nanoseconds -----------------------------------------------------------------
DEC4_NS = EPOCH * 1_000_000_000  # 2026-12-04T08:00:00Z in nanoseconds


def test_normalize_keeps_top_level_nanoseconds_exactly() -> None:
    for source in (pa.timestamp("ns"), pa.timestamp("ns", tz="Europe/Paris"), NS):
        table = normalize(pa.table({"t": pa.array([DEC4_NS + 1], source)}), max_string_bytes=LIMIT)
        assert table.schema.field("t").type == NS
        assert table.column("t").cast(pa.int64()).to_pylist() == [DEC4_NS + 1]


def test_normalize_stores_nested_nanoseconds_as_microseconds_only_when_exact() -> None:
    exact = pa.array([[DEC4_NS + 5000]], pa.list_(pa.timestamp("ns")))
    table = normalize(pa.table({"l": exact}), max_string_bytes=LIMIT)
    assert table.schema.field("l").type == pa.list_(TIME_TYPE)
    assert table.column("l").to_pylist() == [[DEC4.replace(microsecond=5)]]
    finer = pa.array([{"at": DEC4_NS + 5001}], pa.struct([("at", pa.timestamp("ns"))]))
    with pytest.raises(InvalidInput, match=r"^column 's\.at' has a value with nanoseconds"):
        normalize(pa.table({"s": finer}), max_string_bytes=LIMIT)


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("2026-12-04T08:00:00.123456789Z", DEC4_NS + 123456789),
        ("2026-12-04T10:00:00.000000001+02:00", DEC4_NS + 1),
        ("2026-12-04 08:00:00.1234567", DEC4_NS + 123456700),
    ],
)
def test_coerce_parses_more_than_six_fractional_digits_into_a_nanosecond_column(
    text: str, nanos: int
) -> None:
    out, schema = coerce(prepare([{"ts": text}]), None, "ts", NOW, stream="s")
    assert schema.field("ts").type == NS
    assert out.column("ts").cast(pa.int64()).to_pylist() == [nanos]


def test_coerce_makes_a_nanosecond_column_from_nanosecond_input() -> None:
    table = prepare({"ts": pa.array([DEC4_NS + 7], pa.timestamp("ns")), "seen": [DEC4]})
    out, schema = coerce(table, None, "ts", NOW, stream="s")
    assert schema == pa.schema([("ts", NS), ("seen", TIME_TYPE)])
    assert out.column("ts").cast(pa.int64()).to_pylist() == [DEC4_NS + 7]
    assert out.column(INGESTED_AT).type == TIME_TYPE


def test_coerce_puts_microseconds_into_a_nanosecond_column_exactly() -> None:
    stream = pa.schema([("ts", NS)])
    values = [DEC4, "2026-12-04T08:00:00.000001Z", EPOCH, EPOCH * 1000]
    nanos = [DEC4_NS, DEC4_NS + 1000, DEC4_NS, DEC4_NS]
    for value, expected in zip(values, nanos, strict=True):
        out, schema = coerce(prepare([{"ts": value}]), stream, "ts", NOW, stream="s")
        assert schema == stream
        assert out.column("ts").cast(pa.int64()).to_pylist() == [expected]


def test_coerce_refuses_a_microsecond_value_a_nanosecond_column_cannot_hold() -> None:
    stream = pa.schema([("ts", NS)])
    expected = (
        "column 'ts' of stream 's' holds nanoseconds, which reach only the years 1677-2262, "
        "but the batch has values from 2026-12-04T08:00:00.000000Z to 2500-01-01T00:00:00.000000Z"
    )
    with pytest.raises(InvalidInput, match=exactly(expected)):
        coerce(prepare([{"ts": DEC4}, {"ts": utc(2500, 1, 1)}]), stream, "ts", NOW, stream="s")


def test_coerce_refuses_nanoseconds_a_microsecond_column_would_lose() -> None:
    stream = pa.schema([("ts", TIME_TYPE), ("seen", TIME_TYPE)])
    finer = pa.table({"seen": pa.array([DEC4_NS, DEC4_NS + 1], NS)})
    expected = (
        "column 'seen' of stream 's' holds microseconds, but the batch has "
        "2026-12-04T08:00:00.000000001Z: arrowlog does not drop the nanoseconds; send whole "
        "microseconds"
    )
    with pytest.raises(InvalidInput, match=exactly(expected)):
        coerce(finer, stream, "ts", NOW, stream="s")
    with pytest.raises(InvalidInput, match=r"^column 'ts' of stream 's' holds microseconds"):
        coerce(prepare([{"ts": "2026-12-04T08:00:00.123456789Z"}]), stream, "ts", NOW, stream="s")


def test_coerce_accepts_whole_microseconds_sent_as_nanoseconds_into_a_microsecond_column() -> None:
    stream = pa.schema([("ts", TIME_TYPE)])
    table = pa.table({"ts": pa.array([DEC4_NS + 5000], NS)})
    out, _ = coerce(table, stream, "ts", NOW, stream="s")
    assert out.column("ts").type == TIME_TYPE
    assert out.column("ts").to_pylist() == [DEC4.replace(microsecond=5)]
    out, _ = coerce(
        prepare([{"ts": "2026-12-04T08:00:00.000005000Z"}]), stream, "ts", NOW, stream="s"
    )
    assert out.column("ts").to_pylist() == [DEC4.replace(microsecond=5)]


# -- merge_schemas ---------------------------------------------------------------------


def test_merge_schemas_keeps_a_order_and_takes_the_wider_type() -> None:
    a = pa.schema([("x", pa.int32()), ("y", pa.float32()), ("t", TIME_TYPE), ("s", pa.string())])
    b = pa.schema([("new", pa.binary()), ("y", pa.int64()), ("x", pa.int64()), ("t", pa.string())])
    assert merge_schemas(a, b) == pa.schema(
        [
            ("x", pa.int64()),
            ("y", pa.float64()),
            ("t", TIME_TYPE),
            ("s", pa.string()),
            ("new", pa.binary()),
        ]
    )


def test_merge_schemas_rejects_types_with_no_common_widening() -> None:
    a = pa.schema([("status", pa.int64())])
    b = pa.schema([("status", pa.string())])
    with pytest.raises(
        InvalidInput,
        match=exactly("column 'status' has type int64 in one schema and string in the other"),
    ):
        merge_schemas(a, b)


# -- system columns --------------------------------------------------------------------


def test_with_offsets_gives_exactly_the_system_schema() -> None:
    out, schema = coerce(
        prepare([{"a": 1}, {"a": 2}, {"b": "x"}]), None, INGESTED_AT, NOW, stream="s"
    )
    stored = with_offsets(out, 40)
    assert stored.schema == system_schema(schema)
    assert stored.column_names == ["a", "b", OFFSET, INGESTED_AT]
    assert [(f.name, f.nullable) for f in stored.schema] == [
        ("a", True),
        ("b", True),
        (OFFSET, False),
        (INGESTED_AT, False),
    ]
    assert stored.column(OFFSET).to_pylist() == [40, 41, 42]
    assert stored.schema.field(OFFSET).type == pa.int64()


def test_system_schema_appends_offset_then_ingested_at() -> None:
    schema = system_schema(pa.schema([("msg", pa.string())]))
    assert schema == pa.schema(
        [
            ("msg", pa.string()),
            pa.field(OFFSET, pa.int64(), nullable=False),
            pa.field(INGESTED_AT, TIME_TYPE, nullable=False),
        ]
    )
    assert PARTITION not in schema.names


def test_with_offsets_rejects_a_table_that_is_not_a_coerce_result() -> None:
    with pytest.raises(ValueError, match="needs a coerce"):
        with_offsets(pa.table({"a": [1]}), 0)


# -- property: successive batches never lose a row or a value --------------------------

_ZONES = st.sampled_from(
    [
        None,
        UTC,
        dt.timezone(dt.timedelta(hours=1)),
        dt.timezone(dt.timedelta(hours=-5, minutes=-30)),
    ]
)


@st.composite
def _time_strings(draw: st.DrawFn) -> tuple[str, dt.datetime]:
    moment = draw(
        st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1))
    )
    zone = draw(_ZONES)
    if zone is None:
        return moment.isoformat(sep=draw(st.sampled_from("T "))), moment.replace(tzinfo=UTC)
    aware = moment.replace(tzinfo=zone)
    return aware.isoformat(), aware.astimezone(UTC)


_RECORD = st.fixed_dictionaries(
    {"i": st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1)},
    optional={
        "f": st.none() | st.floats(allow_nan=False),
        "s": st.none() | st.text(max_size=8),
        "ts": st.none() | _time_strings(),
    },
)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(_RECORD, min_size=1, max_size=6), min_size=1, max_size=4))
def test_successive_batches_keep_every_row_and_value(batches: list[list[dict[str, Any]]]) -> None:
    schema: pa.Schema | None = None
    time_column = INGESTED_AT
    outputs: list[tuple[list[dict[str, Any]], dt.datetime, pa.Table]] = []
    for number, batch in enumerate(batches):
        ingested = NOW + dt.timedelta(seconds=number)
        records = [{k: (v[0] if k == "ts" and v else v) for k, v in r.items()} for r in batch]
        table = prepare(records)
        if schema is None:
            time_column = choose_time_column(table)
        out, schema = coerce(table, schema, time_column, ingested, stream="s")
        assert out.num_rows == len(batch)
        assert out.column(INGESTED_AT).to_pylist() == [ingested] * len(batch)
        outputs.append((batch, ingested, out))

    for batch, _ingested, out in outputs:
        for record, row in zip(batch, out.to_pylist(), strict=True):
            for key in ("i", "f", "s"):
                assert row.get(key) == record.get(key)
            sent = record.get("ts")
            if time_column == "ts":
                assert row["ts"] == (sent[1] if sent else None)
            else:
                assert row.get("ts") == (sent[0] if sent else None)
