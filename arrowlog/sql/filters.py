"""The filters DataFusion pushed into each table scan, as pyarrow expressions.

A schema-only plan (``arrowlog/sql/datafusion_engine.py``) tells, per scan, which
filters the optimizer pushed down. Comparisons of the time column and ``_offset`` with
literals become a pyarrow expression that the segments' guarantees prune with
(``arrowlog.snapshot.live_paths``), before any file is opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from arrowlog.schema import OFFSET
from arrowlog.sql.catalog import TableShape

__all__ = ["scan_filters"]

_COMPARISONS = {"=": "__eq__", "<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}
_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def scan_filters(plan: Any, shapes: Mapping[str, TableShape]) -> dict[str, ds.Expression | None]:
    """Per table: what every row any scan of it needs satisfies (None: no constraint).

    ``plan`` is an optimized logical plan; ``shapes`` maps the identifiers the query used
    to the streams' shapes. Tables without a scan in the plan are left out.
    """
    found: dict[str, ds.Expression | None] = {}
    stack = [plan]
    while stack:
        node = stack.pop()
        stack.extend(node.inputs())
        variant = node.to_variant()
        if type(variant).__name__ != "TableScan":
            continue
        name = variant.table_name().rsplit(".", 1)[-1]
        shape = shapes.get(name)
        if shape is None:
            continue
        usable = {
            shape.time_column: shape.schema.field(shape.time_column).type,
            OFFSET: pa.int64(),
        }
        conjunction: ds.Expression | None = None
        for f in variant.filters():
            e = _to_arrow(f, usable)
            if e is not None:
                conjunction = e if conjunction is None else conjunction & e
        if name in found:  # another scan of the same table: a file is needed if either needs it
            previous = found[name]
            found[name] = (
                None if previous is None or conjunction is None else previous | conjunction
            )
        else:
            found[name] = conjunction
    return found


def _to_arrow(expr: Any, usable: dict[str, pa.DataType]) -> ds.Expression | None:
    """A pyarrow expression implied by a DataFusion filter, or None if not understood.

    Only AND/OR of comparisons between a time/offset column and a literal are translated;
    anything else is "no constraint", which only ever keeps more files than needed.
    """
    v = expr.to_variant()
    if type(v).__name__ != "BinaryExpr":
        return None
    op = str(v.op()).upper()
    if op in ("AND", "OR"):
        left, right = _to_arrow(v.left(), usable), _to_arrow(v.right(), usable)
        if op == "AND":
            return left if right is None else right if left is None else left & right
        return None if left is None or right is None else left | right
    if op not in _COMPARISONS:
        return None
    lhs, rhs = v.left(), v.right()
    lk, rk = type(lhs.to_variant()).__name__, type(rhs.to_variant()).__name__
    if lk == "Literal" and rk == "Column":
        lhs, rhs, op = rhs, lhs, _FLIPPED[op]
    elif not (lk == "Column" and rk == "Literal"):
        return None
    column = lhs.to_variant().name()
    if column not in usable:
        return None
    value = rhs.python_value()
    if value is None:
        return None
    try:
        scalar = pa.scalar(value, usable[column])
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None
    return getattr(ds.field(column), _COMPARISONS[op])(scalar)
