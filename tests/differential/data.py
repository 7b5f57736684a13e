"""Random streams with hostile values, as hypothesis strategies.

A :class:`StreamData` is the exact sequence of pyarrow Tables appended to one stream
(several appends, a schema that grows between them, columns sent in varying order and,
for int64 columns, sometimes as int32 so arrowlog has to widen them), plus what the oracle
needs: the stream's columns in order and every value as plain Python, so the case can be
printed as a standalone repro.

Timestamps are generated as integer ticks of ``TS_UNIT`` (``ARROWLOG_DIFF_TS_UNIT``, "us"
by default; "ns" adds sub-microsecond ticks once arrowlog stores nanoseconds).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

TS_UNIT = os.environ.get("ARROWLOG_DIFF_TS_UNIT", "us")
TICKS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
F64_MAX = 1.7976931348623157e308

# Scalar kinds can be compared, grouped and ordered; nested ones are only projected,
# tested for NULL and counted.
SCALAR_KINDS = ("i64", "i32", "f64", "str", "bool", "ts", "date")
NESTED_KINDS = ("list", "struct")
NUMERIC_KINDS = ("i64", "i32", "f64")

HOSTILE_STRINGS = [
    "",
    " ",
    "a",
    "A",
    "ab",
    "abc",
    "a%b",
    "a_b",
    "%",
    "_",
    "'",
    '"',
    "it's",
    "e\u0301",  # e + combining acute
    "\u00e9",  # precomposed é: looks the same, different bytes
    "a\x00b",  # NUL inside
    "\x00",
    "\u05d0\u05d1\u05d2",  # Hebrew, right to left
    "\u202eabc",  # right-to-left override
    "\U0001f600",  # emoji, 4 bytes
    "\u00df",  # ß
    "\u03a9",  # Ω
    "null",
    "NULL",
    "NaN",
    "\n",
    "tab\there",
    "  x  ",
    "z" * 40,
    "9",
    "10",
]
# Alphabet of the free-form strings: wildcards, case pairs, combining marks, NUL, RTL.
STRING_ALPHABET = "aAbB%_.\u00e9\u0301\x00\u05d0 9"

# Days the time column spreads over: before 1970, leap day, year boundaries, far future.
BASE_DAYS = [
    dt.date(1900, 1, 1),
    dt.date(1969, 12, 31),
    dt.date(1970, 1, 1),
    dt.date(2000, 2, 29),
    dt.date(2024, 12, 31),
    dt.date(2025, 1, 1),
    dt.date(2026, 11, 23),
    dt.date(2099, 12, 31),
]
EPOCH = dt.date(1970, 1, 1)

HOSTILE_FLOATS = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    0.0,
    5e-324,
    -5e-324,
    F64_MAX,
    -F64_MAX,
    0.1,
    1.5,
    -2.5,
    float(2**53),
    float(2**53 + 2),
    1e-300,
]
HOSTILE_INTS = [I64_MIN, I64_MAX, I64_MIN + 1, I64_MAX - 1, 0, -1, 1, 2**53 + 1]

# Column names that need quoting (keywords, spaces, quotes, unicode, upper case).
HOSTILE_NAMES = ["select", "s p", 'x"q', "\u00fcn\u00ef", "Val", "order", "a.b", "Group"]
TIME_NAMES = ["ts", "ts", "ts", "timestamp", "@timestamp"]
RESERVED_NAMES = {
    "_offset",
    "_ingested_at",
    "day",
    "_partition",
    "ts",
    "timestamp",
    "time",
    "@timestamp",
}


def arrow_type(kind: str, unit: str = TS_UNIT) -> pa.DataType:
    """The Arrow type a generated column of ``kind`` is appended as."""
    return {
        "i64": pa.int64(),
        "i32": pa.int32(),
        "f64": pa.float64(),
        "str": pa.string(),
        "bool": pa.bool_(),
        "ts": pa.timestamp(unit, tz="UTC"),
        "date": pa.date32(),
        "list": pa.list_(pa.int64()),
        "struct": pa.struct([("a", pa.int64()), ("b", pa.string())]),
    }[kind]


@dataclass(frozen=True)
class Column:
    name: str
    kind: str


@dataclass
class Batch:
    """One append: values per column (timestamps and dates as integer ticks/days)."""

    values: dict[str, list[Any]]
    # Columns sent with a narrower type than the stream's (int64 column sent as int32).
    send_as: dict[str, str] = field(default_factory=dict)
    # > 1: the values are the first num_rows // repeat rows repeated (a big append).
    repeat: int = 1

    @property
    def num_rows(self) -> int:
        return len(next(iter(self.values.values())))


@dataclass
class StreamData:
    columns: list[Column]  # every column the stream ends up with, in order of appearance
    batches: list[Batch]
    time_column: str | None
    unit: str = TS_UNIT

    @property
    def num_rows(self) -> int:
        return sum(b.num_rows for b in self.batches)

    def kind(self, name: str) -> str:
        return next(c.kind for c in self.columns if c.name == name)

    def table(self, batch: Batch) -> pa.Table:
        """The pyarrow Table appended for ``batch`` (its own column order and types)."""
        return pa.table(
            {
                name: pa.array(
                    values, arrow_type(batch.send_as.get(name, self.kind(name)), self.unit)
                )
                for name, values in batch.values.items()
            }
        )

    def column_values(self, name: str) -> list[Any]:
        """Every value of column ``name`` in append order (None where a batch lacked it)."""
        out: list[Any] = []
        for b in self.batches:
            out.extend(b.values.get(name, [None] * b.num_rows))
        return out

    def oracle_table(self) -> pa.Table:
        """All appended rows in one table with the stream's columns plus ``_offset``."""
        arrays = {
            c.name: pa.array(self.column_values(c.name), arrow_type(c.kind, self.unit))
            for c in self.columns
        }
        arrays["_offset"] = pa.array(range(self.num_rows), pa.int64())
        return pa.table(arrays)

    def has_nan(self) -> bool:
        return any(
            isinstance(v, float) and math.isnan(v)
            for c in self.columns
            if c.kind == "f64"
            for v in self.column_values(c.name)
        )

    def max_abs(self, name: str) -> float:
        """Largest magnitude in a numeric column (the scale of float tolerances)."""
        finite = [
            abs(float(v))
            for v in self.column_values(name)
            if v is not None and not (isinstance(v, float) and not math.isfinite(v))
        ]
        return max(finite, default=0.0)


def _nullable(strategy: st.SearchStrategy[Any], null_weight: int = 5) -> st.SearchStrategy[Any]:
    """``strategy`` or None about one time in ``null_weight``."""
    return st.one_of(*([strategy] * (null_weight - 1)), st.none())


def day_ticks(day: dt.date, unit: str) -> int:
    return (day - EPOCH).days * 86400 * TICKS_PER_SECOND[unit]


def time_values(unit: str) -> st.SearchStrategy[int]:
    """Ticks across a few far-apart days, with ties and day boundaries."""
    per_day = 86400 * TICKS_PER_SECOND[unit]
    in_day = st.one_of(
        st.sampled_from([0, 1, per_day - 1, per_day // 2]),
        st.integers(0, per_day - 1),
    )
    return st.builds(lambda d, t: day_ticks(d, unit) + t, st.sampled_from(BASE_DAYS), in_day)


def value_strategy(kind: str, unit: str = TS_UNIT) -> st.SearchStrategy[Any]:
    """Non-null values of one kind, biased towards the hostile ones."""
    if kind in ("i64", "i32"):
        lo, hi = (I64_MIN, I64_MAX) if kind == "i64" else (I32_MIN, I32_MAX)
        extremes = [v for v in HOSTILE_INTS if lo <= v <= hi] + [lo, hi]
        return st.one_of(st.sampled_from(extremes), st.integers(-3, 3), st.integers(lo, hi))
    if kind == "f64":
        return st.one_of(
            st.sampled_from(HOSTILE_FLOATS),
            st.integers(-3, 3).map(float),
            st.floats(allow_nan=False, width=64),
        )
    if kind == "str":
        return st.one_of(
            st.sampled_from(HOSTILE_STRINGS),
            st.text(alphabet=STRING_ALPHABET, max_size=5),
        )
    if kind == "bool":
        return st.booleans()
    if kind == "ts":
        return time_values(unit)
    if kind == "date":
        return st.one_of(
            st.sampled_from([(d - EPOCH).days for d in BASE_DAYS]),
            st.integers((dt.date(1800, 1, 1) - EPOCH).days, (dt.date(2200, 1, 1) - EPOCH).days),
        )
    if kind == "list":
        return st.lists(_nullable(st.integers(-3, 3)), max_size=3)
    if kind == "struct":
        return st.fixed_dictionaries(
            {
                "a": _nullable(st.integers(-3, 3)),
                "b": _nullable(st.sampled_from(["", "x", "e\u0301"])),
            }
        )
    raise ValueError(kind)


@st.composite
def column_specs(draw: st.DrawFn, *, min_columns: int = 1, max_columns: int = 5) -> list[Column]:
    kinds = draw(
        st.lists(
            st.sampled_from(SCALAR_KINDS + SCALAR_KINDS + NESTED_KINDS),
            min_size=min_columns,
            max_size=max_columns,
        )
    )
    columns: list[Column] = []
    taken: set[str] = set()
    for i, kind in enumerate(kinds):
        name = f"c{i}_{kind}"
        if draw(st.integers(0, 4)) == 0:
            name = draw(st.sampled_from(HOSTILE_NAMES))
        # Names are unique case-insensitively: arrowlog refuses case variants by design
        # (tests/unit/test_fidelity.py), the oracle would take them.
        key = name.lower()
        if key in taken or name.lower() in RESERVED_NAMES or name == "":
            name = f"c{i}_{kind}"
            key = name.lower()
        taken.add(key)
        columns.append(Column(name, kind))
    return columns


@st.composite
def streams(
    draw: st.DrawFn,
    *,
    unit: str = TS_UNIT,
    max_batches: int = 4,
    max_rows: int = 12,
    columns: list[Column] | None = None,
    allow_big: bool = True,
) -> StreamData:
    """A stream: a time column (usually), random other columns, 1..max_batches appends.

    Columns after the first batch's may first appear in a later batch (schema evolution);
    a batch may leave out a known column (nulls) and sends its columns in any order.
    """
    cols = columns if columns is not None else draw(column_specs())
    time_column = draw(st.sampled_from([*TIME_NAMES, None]))
    all_columns = ([Column(time_column, "ts")] if time_column else []) + cols
    n_batches = draw(st.integers(1, max_batches))
    # The batch in which each non-time column first appears.
    first = {c.name: draw(st.integers(0, n_batches - 1)) for c in cols}
    if cols and min(first.values()) > 0:
        first[cols[0].name] = 0
    batches: list[Batch] = []
    seen: list[Column] = []
    for b in range(n_batches):
        rows = draw(st.integers(1, max_rows))
        present = [
            c
            for c in all_columns
            if c.name == time_column
            or (first[c.name] <= b and (first[c.name] == b or draw(st.integers(0, 4)) > 0))
        ]
        if not [c for c in present if c.name != time_column] and cols:
            present.append(next(c for c in cols if first[c.name] <= b))
        present = draw(st.permutations(present))
        values: dict[str, list[Any]] = {}
        send_as: dict[str, str] = {}
        for c in present:
            if c.name == time_column:
                values[c.name] = draw(st.lists(time_values(unit), min_size=rows, max_size=rows))
                continue
            strategy = value_strategy(c.kind, unit)
            values[c.name] = draw(st.lists(_nullable(strategy), min_size=rows, max_size=rows))
            if (
                c.kind == "i64"
                and any(s.name == c.name for s in seen)
                and draw(st.integers(0, 3)) == 0
            ):
                # a later batch sends the column as int32: arrowlog widens it
                values[c.name] = [
                    None if v is None else max(I32_MIN, min(I32_MAX, v)) for v in values[c.name]
                ]
                send_as[c.name] = "i32"
            if c not in seen:
                seen.append(c)
        if time_column and all_columns[0] not in seen:
            seen.insert(0, all_columns[0])
        batches.append(Batch(values, send_as))
    if allow_big and draw(st.integers(0, 11)) == 0:
        # One large append (> one 8192-row engine batch): tile a batch's rows.
        src = batches[-1]
        times = -(-9000 // src.num_rows)
        batches.append(
            Batch({k: v * times for k, v in src.values.items()}, dict(src.send_as), times)
        )
    order = [c for c in all_columns if c in seen]
    # Stream column order: order of first appearance across batches.
    appearance: list[Column] = []
    for b in batches:
        for name in b.values:
            c = next(c for c in order if c.name == name)
            if c not in appearance:
                appearance.append(c)
    return StreamData(appearance, batches, time_column, unit)


@st.composite
def join_partner(
    draw: st.DrawFn, a: StreamData, *, unit: str = TS_UNIT
) -> tuple[StreamData, str] | None:
    """A second stream whose ``k`` column shares values with one int64/string column of ``a``."""
    keys = [c for c in a.columns if c.kind in ("i64", "str") and c.name != a.time_column]
    if not keys:
        return None
    key = draw(st.sampled_from(keys))
    pool = [v for v in a.column_values(key.name)] + [None]
    extra = value_strategy(key.kind, unit)
    k_values = st.one_of(st.sampled_from(pool), st.sampled_from(pool), extra, st.none())
    batches = []
    for _ in range(draw(st.integers(1, 2))):
        rows = draw(st.integers(1, 8))
        batches.append(
            Batch(
                {
                    "k": draw(st.lists(k_values, min_size=rows, max_size=rows)),
                    "w": draw(
                        st.lists(_nullable(st.integers(-3, 3)), min_size=rows, max_size=rows)
                    ),
                }
            )
        )
    b = StreamData([Column("k", key.kind), Column("w", "i64")], batches, None, unit)
    return b, key.name
