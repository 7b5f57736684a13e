"""Every Arrow type through ADBC ``adbc_ingest`` then ``SELECT``, against ``arrowlog serve``.

``OUTCOMES`` is the table README.md shows under "Types through adbc_ingest": for each type
sent, what a ``SELECT`` of the column gives back. Each case ingests a one-column table
(three rows, one of them null, except for the null type) into its own stream with
``mode="create_append"`` through the real ADBC Flight SQL driver, selects it back in
offset order, and classifies what happened:

* ``exact``: the same Arrow type and the same values;
* ``widened to T``: type T, and every value the same (the sent column cast to T, or the
  same Python values);
* ``truncated to T``: type T, some values lost precision;
* ``dropped``: ingest accepted the column but did not store it (SELECT finds no column);
* ``refused: F``: ingest (or the SELECT) failed, and F is part of the error message.

A case whose behaviour drifts fails: update ``OUTCOMES`` and the README table together.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import warnings
from collections.abc import Iterator

import adbc_driver_flightsql.dbapi as dbapi
import pyarrow as pa
import pytest

from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve

# Honest GetSqlInfo (no transactions) makes the dbapi warn that autocommit stays on.
pytestmark = pytest.mark.filterwarnings("ignore:Cannot disable autocommit")

D = decimal.Decimal
_UTC_TS = [1, None, 1_700_000_000]  # the 1 is below a microsecond for ns


def _ts(unit: str, tz: str | None = None) -> pa.Array:
    return pa.array(_UTC_TS, pa.timestamp(unit, tz=tz))


def _uuid() -> pa.Array:
    storage = pa.array([b"0123456789abcdef", None, b"fedcba9876543210"], pa.binary(16))
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def _json() -> pa.Array:
    storage = pa.array(['{"a": 1}', None, "[]"], pa.string())
    return pa.ExtensionArray.from_storage(pa.json_(), storage)


#: What is sent: one column per case.
COLUMNS: dict[str, pa.Array] = {
    "int8": pa.array([1, None, -8], pa.int8()),
    "int16": pa.array([1, None, -16], pa.int16()),
    "int32": pa.array([1, None, -32], pa.int32()),
    "int64": pa.array([1, None, -64], pa.int64()),
    "uint8": pa.array([1, None, 255], pa.uint8()),
    "uint16": pa.array([1, None, 65535], pa.uint16()),
    "uint32": pa.array([1, None, 2**32 - 1], pa.uint32()),
    "uint64": pa.array([1, None, 2**63 - 1], pa.uint64()),
    "uint64 above int64 max": pa.array([1, None, 2**64 - 1], pa.uint64()),
    "float16": pa.array([1.5, None, -2.0], pa.float16()),
    "float32": pa.array([1.5, None, -2.0], pa.float32()),
    "float64": pa.array([1.5, None, -2.0], pa.float64()),
    "decimal128(10, 2)": pa.array([D("1.25"), None, D("-3.50")], pa.decimal128(10, 2)),
    "decimal128(38, 10)": pa.array([D("1.25"), None, D("-3.5")], pa.decimal128(38, 10)),
    "decimal128(5, -2)": pa.array([D("1E+2"), None, D("-3E+2")], pa.decimal128(5, -2)),
    "decimal256(40, 5)": pa.array([D("1.25"), None, D("-3.5")], pa.decimal256(40, 5)),
    "bool": pa.array([True, None, False]),
    "string": pa.array(["a", None, "c"], pa.string()),
    "large_string": pa.array(["a", None, "c"], pa.large_string()),
    "string_view": pa.array(["a", None, "c"], pa.string_view()),
    "binary": pa.array([b"a", None, b"\x00"], pa.binary()),
    "large_binary": pa.array([b"a", None, b"\x00"], pa.large_binary()),
    "fixed_size_binary(2)": pa.array([b"ab", None, b"\x00\x01"], pa.binary(2)),
    "binary_view": pa.array([b"a", None, b"\x00"], pa.binary_view()),
    "date32": pa.array([datetime.date(2024, 1, 2), None, datetime.date(1, 1, 1)], pa.date32()),
    "date64": pa.array([datetime.date(2024, 1, 2), None, datetime.date(1970, 1, 1)], pa.date64()),
    "time32[s]": pa.array([1, None, 86399], pa.time32("s")),
    "time32[ms]": pa.array([1, None, 86_399_999], pa.time32("ms")),
    "time64[us]": pa.array([1, None, 86_399_999_999], pa.time64("us")),
    "time64[ns]": pa.array([1, None, 86_399_999_999_999], pa.time64("ns")),
    **{f"timestamp[{u}]": _ts(u) for u in ("s", "ms", "us", "ns")},
    **{f"timestamp[{u}, tz=UTC]": _ts(u, "UTC") for u in ("s", "ms", "us", "ns")},
    "timestamp[us, tz=Europe/Paris]": _ts("us", "Europe/Paris"),
    **{f"duration[{u}]": pa.array([1, None, -2], pa.duration(u)) for u in ("s", "ms", "us", "ns")},
    "month_day_nano_interval": pa.array(
        [pa.MonthDayNano([1, 2, 3]), None, pa.MonthDayNano([0, 0, -1])],
        pa.month_day_nano_interval(),
    ),
    "list<int64>": pa.array([[1, 2], None, []], pa.list_(pa.int64())),
    "list<uint8>": pa.array([[1, 255], None, []], pa.list_(pa.uint8())),
    "large_list<int64>": pa.array([[1, 2], None, []], pa.large_list(pa.int64())),
    "fixed_size_list<int64>[2]": pa.array([[1, 2], None, [3, 4]], pa.list_(pa.int64(), 2)),
    "list_view<int64>": pa.array([[1, 2], None, []], pa.list_view(pa.int64())),
    "large_list_view<int64>": pa.array([[1, 2], None, []], pa.large_list_view(pa.int64())),
    "struct<a: int64, b: string>": pa.array(
        [{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}],
        pa.struct([("a", pa.int64()), ("b", pa.string())]),
    ),
    "struct<a: uint16, b: large_string>": pa.array(
        [{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}],
        pa.struct([("a", pa.uint16()), ("b", pa.large_string())]),
    ),
    "map<string, int64>": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64())),
    "dictionary<int32, string>": pa.array(["a", None, "a"]).dictionary_encode(),
    "null": pa.array([None, None, None], pa.null()),
    "run_end_encoded<int32, string>": pa.RunEndEncodedArray.from_arrays(
        pa.array([2, 3], pa.int32()), pa.array(["a", "b"])
    ),
    "dense_union<int64, string>": pa.UnionArray.from_dense(
        pa.array([0, 1, 0], pa.int8()),
        pa.array([0, 0, 1], pa.int32()),
        [pa.array([1, 2], pa.int64()), pa.array(["x"])],
        ["i", "s"],
    ),
    "sparse_union<int64, string>": pa.UnionArray.from_sparse(
        pa.array([0, 1, 0], pa.int8()),
        [pa.array([1, None, 3], pa.int64()), pa.array([None, "x", None])],
        ["i", "s"],
    ),
    "extension<arrow.uuid>": _uuid(),
    "extension<arrow.json>": _json(),
}

_CANNOT_STORE = "INVALID_ARGUMENT: [FlightSQL] column 'v' has type {}, which arrowlog cannot store"

#: Today's behaviour, type sent -> outcome (see the module docstring).
OUTCOMES: dict[str, str] = {
    "int8": "exact",
    "int16": "exact",
    "int32": "exact",
    "int64": "exact",
    "uint8": "widened to int16",
    "uint16": "widened to int32",
    "uint32": "widened to int64",
    "uint64": "widened to int64",
    "uint64 above int64 max": (
        "refused: INVALID_ARGUMENT: [FlightSQL] column 'v' has a value 18446744073709551615 "
        "that is larger than int64 allows"
    ),
    "float16": "widened to float",
    "float32": "exact",
    "float64": "exact",
    "decimal128(10, 2)": "exact",
    "decimal128(38, 10)": "exact",
    # Delta refuses negative scales when the table is created; not yet checked at ingest.
    "decimal128(5, -2)": "widened to decimal128(7, 0)",
    "decimal256(40, 5)": "refused: " + _CANNOT_STORE.format("decimal256(40, 5)"),
    "bool": "exact",
    "string": "exact",
    "large_string": "widened to string",
    "string_view": "widened to string",
    "binary": "exact",
    "large_binary": "widened to binary",
    "fixed_size_binary(2)": "widened to binary",
    "binary_view": "widened to binary",
    "date32": "exact",
    "date64": "widened to date32[day]",
    "time32[s]": "refused: " + _CANNOT_STORE.format("time32[s]"),
    "time32[ms]": "refused: " + _CANNOT_STORE.format("time32[ms]"),
    "time64[us]": "refused: " + _CANNOT_STORE.format("time64[us]"),
    "time64[ns]": "refused: " + _CANNOT_STORE.format("time64[ns]"),
    "timestamp[s]": "widened to timestamp[us, tz=UTC]",
    "timestamp[ms]": "widened to timestamp[us, tz=UTC]",
    "timestamp[us]": "widened to timestamp[us, tz=UTC]",
    "timestamp[ns]": "widened to timestamp[ns, tz=UTC]",
    "timestamp[s, tz=UTC]": "widened to timestamp[us, tz=UTC]",
    "timestamp[ms, tz=UTC]": "widened to timestamp[us, tz=UTC]",
    "timestamp[us, tz=UTC]": "exact",
    "timestamp[ns, tz=UTC]": "exact",
    "timestamp[us, tz=Europe/Paris]": "widened to timestamp[us, tz=UTC]",
    "duration[s]": "refused: " + _CANNOT_STORE.format("duration[s]"),
    "duration[ms]": "refused: " + _CANNOT_STORE.format("duration[ms]"),
    "duration[us]": "refused: " + _CANNOT_STORE.format("duration[us]"),
    "duration[ns]": "refused: " + _CANNOT_STORE.format("duration[ns]"),
    "month_day_nano_interval": "refused: " + _CANNOT_STORE.format("month_day_nano_interval"),
    "list<int64>": "exact",
    "list<uint8>": "widened to list<element: int16>",
    "large_list<int64>": "widened to list<element: int64>",
    "fixed_size_list<int64>[2]": "widened to list<element: int64>",
    "list_view<int64>": "widened to list<element: int64>",
    "large_list_view<int64>": "widened to list<element: int64>",
    "struct<a: int64, b: string>": "exact",
    "struct<a: uint16, b: large_string>": "widened to struct<a: int32, b: string>",
    "map<string, int64>": "exact",
    "dictionary<int32, string>": "widened to string",
    "null": "refused: INVALID_ARGUMENT: [FlightSQL] column 'v' has Arrow type null",
    "run_end_encoded<int32, string>": "refused: "
    + _CANNOT_STORE.format("run_end_encoded<run_ends: int32, values: string>"),
    "dense_union<int64, string>": "refused: "
    + _CANNOT_STORE.format("dense_union<i: int64=0, s: string=1>"),
    "sparse_union<int64, string>": "refused: "
    + _CANNOT_STORE.format("sparse_union<i: int64=0, s: string=1>"),
    "extension<arrow.uuid>": "refused: " + _CANNOT_STORE.format("extension<arrow.uuid>"),
    "extension<arrow.json>": "refused: " + _CANNOT_STORE.format("extension<arrow.json>"),
}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArrowlogServe]:
    server = start_arrowlog_serve(tmp_path_factory.mktemp("types"))
    yield server
    code = server.stop()
    assert code == 0, server.process.output()


@pytest.fixture(scope="module")
def conn(serve: ArrowlogServe) -> Iterator[dbapi.Connection]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        connection = dbapi.connect(serve.flight_url)
    yield connection
    connection.close()


_counter = itertools.count()


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0]


def _same_values(sent: pa.Array, got: pa.Array) -> bool:
    """Every value survives: the sent column cast (safely) to the type it came back as."""
    try:
        if sent.cast(got.type).equals(got):
            return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    return sent.to_pylist() == got.to_pylist()


def _outcome(conn: dbapi.Connection, sent: pa.Array) -> tuple[str, str]:
    """(outcome, full message or type) of one column through adbc_ingest and SELECT."""
    stream = f"types_{next(_counter)}"
    with conn.cursor() as cur:
        try:
            cur.adbc_ingest(stream, pa.table({"v": sent}), mode="create_append")
        except dbapi.Error as e:
            return "refused", _first_line(e)
    with conn.cursor() as cur:
        try:
            cur.execute(f'SELECT v FROM "{stream}" ORDER BY _offset')
            got = cur.fetch_arrow_table().column("v").combine_chunks()
        except dbapi.Error as e:
            if "No field named v" in str(e):
                return "dropped", _first_line(e)
            return "refused", _first_line(e)
    if got.type == sent.type and got.equals(sent):
        return "exact", str(got.type)
    if _same_values(sent, got):
        return f"widened to {got.type}", str(got.type)
    return f"truncated to {got.type}", str(got.type)


def test_every_column_has_an_expected_outcome() -> None:
    assert set(OUTCOMES) == set(COLUMNS)


@pytest.mark.parametrize("name", list(COLUMNS))
def test_type_through_adbc_ingest_and_select(conn: dbapi.Connection, name: str) -> None:
    outcome, detail = _outcome(conn, COLUMNS[name])
    expected = OUTCOMES[name]
    if expected.startswith("refused: "):
        assert outcome == "refused", f"{name}: expected a refusal, got {outcome} ({detail})"
        fragment = expected.removeprefix("refused: ")
        assert fragment in detail, f"{name}: refused with {detail!r}"
    else:
        assert outcome == expected, f"{name}: {outcome} ({detail})"
