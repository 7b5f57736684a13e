"""Compare an arrowlog answer with the oracle's, up to documented normalisations.

Normalisations (each one a legitimate difference between engines or protocols, not a
difference in the data):

* column names are ignored (answers are compared by position; the generated queries alias
  every output ``r0, r1, ...`` anyway, and engines name unaliased expressions differently);
* integer widths: values compare as Python ints (DuckDB's ``sum`` of integers is a HUGEINT,
  sent as ``decimal128(38, 0)``; DataFusion's is an ``int64``); integral decimals become ints;
* string encodings (utf8, large_utf8, utf8view) compare as Python ``str``;
* timestamps compare as the instant (nanoseconds since the epoch), not the unit or time
  zone label (DuckDB labels TIMESTAMPTZ with its session zone);
* floats: NaN equals NaN whatever its sign or payload (DuckDB and DataFusion produce
  different NaN bit patterns for the same operation); otherwise bit-exact (so -0.0 is not
  0.0) in mode ``EXACT`` (stored values, projections); in mode ``LOOSE`` -0.0 equals 0.0,
  for group keys, DISTINCT and min/max where which of the two equal values an engine keeps
  is arbitrary; in a ``Tol`` mode (float sums, averages) within the tolerance the query
  computed from the data (summation order differs between engines and between arrowlog's
  moments). An infinite tolerance (sums over values near the float maximum, where the
  order decides between a finite result and inf) accepts any number.
* row order only when the query's ORDER BY determines it; otherwise rows are multisets.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import struct
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tests.differential.queries import LOOSE, Tol

_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _float_key(x: float, mode: Any) -> Any:
    if math.isnan(x):
        return ("nan",)
    if mode == LOOSE:
        x = x + 0.0
    return ("f", struct.pack(">d", x))


def _value(v: Any, mode: Any) -> Any:
    """A hashable, order-independent form of a Python value from ``to_pylist``."""
    if v is None:
        return None
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, float):
        if isinstance(mode, Tol):
            return ("tol", v)
        return _float_key(v, mode)
    if isinstance(v, decimal.Decimal):
        if v == v.to_integral_value():
            return int(v)
        return ("dec", str(v.normalize()))
    if isinstance(v, int | str | bytes):
        return v
    if isinstance(v, dt.datetime):  # only reached inside nested values
        return ("ts", v.isoformat())
    if isinstance(v, dt.date):
        return ("date", v.isoformat())
    if isinstance(v, list | tuple):
        return ("list", tuple(_value(x, mode) for x in v))
    if isinstance(v, dict):
        return ("struct", tuple((k, _value(x, mode)) for k, x in v.items()))
    return ("other", repr(v))


def column_values(array: pa.ChunkedArray | pa.Array, mode: Any) -> list[Any]:
    t = array.type
    if pa.types.is_timestamp(t):
        ticks = pc.cast(array, pa.int64()).to_pylist()
        return [None if x is None else ("ts", x * _NS[t.unit]) for x in ticks]
    if pa.types.is_dictionary(t):
        array = pc.cast(array, t.value_type)
    return [_value(v, mode) for v in array.to_pylist()]


def canonical_rows(table: pa.Table, modes: list[Any]) -> list[tuple[Any, ...]]:
    cols = [column_values(table.column(i), modes[i]) for i in range(table.num_columns)]
    return list(zip(*cols, strict=True)) if cols else [() for _ in range(table.num_rows)]


def _exact_part(row: tuple[Any, ...], modes: list[Any]) -> tuple[Any, ...]:
    return tuple(v for v, m in zip(row, modes, strict=True) if not isinstance(m, Tol))


def _sort_key(row: tuple[Any, ...], modes: list[Any]) -> str:
    return repr(_exact_part(row, modes)) + repr(row)


def _close(a: Any, b: Any, tol: Tol) -> bool:
    if a is None or b is None:
        return a is None and b is None
    x, y = a[1], b[1]
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if x == y or math.isinf(tol.scale):
        return True
    if math.isinf(x) or math.isinf(y):
        return False
    return abs(x - y) <= tol.scale + 1e-12 * max(abs(x), abs(y))


def _rows_equal(a: tuple[Any, ...], b: tuple[Any, ...], modes: list[Any]) -> bool:
    for x, y, m in zip(a, b, modes, strict=True):
        if isinstance(m, Tol):
            if not _close(x, y, m):
                return False
        elif x != y:
            return False
    return True


def show(row: tuple[Any, ...]) -> str:
    """A row as readable text (floats as numbers, not bytes)."""
    out = []
    for v in row:
        if isinstance(v, tuple) and v and v[0] == "f":
            out.append(repr(struct.unpack(">d", v[1])[0]))
        elif isinstance(v, tuple) and v and v[0] in ("tol",):
            out.append(repr(v[1]))
        elif v == ("nan",):
            out.append("nan")
        else:
            out.append(repr(v))
    return "(" + ", ".join(out) + ")"


def diff(expected: pa.Table, actual: pa.Table, modes: list[Any], ordered: bool) -> str | None:
    """None when ``actual`` matches ``expected``, else a short description of how not."""
    if expected.num_columns != actual.num_columns:
        return f"{actual.num_columns} columns, expected {expected.num_columns}: {actual.schema}"
    exp = canonical_rows(expected, modes)
    act = canonical_rows(actual, modes)
    if not ordered:
        exp.sort(key=lambda r: _sort_key(r, modes))
        act.sort(key=lambda r: _sort_key(r, modes))
    lines = []
    if len(exp) != len(act):
        lines.append(f"{len(act)} rows, expected {len(exp)}")
        exp_set = {repr(r) for r in exp}
        act_set = {repr(r) for r in act}
        missing = [r for r in exp if repr(r) not in act_set][:5]
        extra = [r for r in act if repr(r) not in exp_set][:5]
        lines += [f"  missing {show(r)}" for r in missing]
        lines += [f"  unexpected {show(r)}" for r in extra]
        return "\n".join(lines)
    bad = [i for i, (x, y) in enumerate(zip(exp, act, strict=True)) if not _rows_equal(x, y, modes)]
    if not bad:
        return None
    lines.append(
        f"{len(bad)} of {len(exp)} rows differ ({'in order' if ordered else 'as multisets'})"
    )
    for i in bad[:5]:
        lines.append(f"  row {i}: expected {show(exp[i])}")
        lines.append(f"  row {i}:   actual {show(act[i])}")
    return "\n".join(lines)
