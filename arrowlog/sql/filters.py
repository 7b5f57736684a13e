"""The filters DataFusion pushed into each table scan, as ranges segments can refute.

A schema-only plan (``arrowlog/sql/datafusion_engine.py``) tells, per scan, which
filters the optimizer pushed down. Comparisons of the time column and ``_offset`` with
literals become a ``SegmentFilter`` that the segments' statistics prune with
(``arrowlog.snapshot.live_paths``), before any file is opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from arrowlog.schema import OFFSET
from arrowlog.snapshot import SegmentFilter
from arrowlog.sql.catalog import TableShape

__all__ = ["scan_filters"]

_COMPARISONS = {"=", "<", "<=", ">", ">="}
_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def scan_filters(plan: Any, shapes: Mapping[str, TableShape]) -> dict[str, SegmentFilter | None]:
    """Per table: what every row any scan of it needs satisfies (None: no constraint).

    ``plan`` is an optimized logical plan; ``shapes`` maps the identifiers the query used
    to the streams' shapes. Tables without a scan in the plan are left out.
    """
    found: dict[str, SegmentFilter | None] = {}
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
        conjunction: SegmentFilter | None = None
        for f in variant.filters():
            e = _to_ranges(f, usable)
            if e is not None:
                conjunction = e if conjunction is None else ("and", conjunction, e)
        if name in found:  # another scan of the same table: a file is needed if either needs it
            previous = found[name]
            found[name] = (
                None if previous is None or conjunction is None else ("or", previous, conjunction)
            )
        else:
            found[name] = conjunction
    return found


def _to_ranges(expr: Any, usable: dict[str, pa.DataType]) -> SegmentFilter | None:
    """A ``SegmentFilter`` implied by a DataFusion filter, or None if not understood.

    Only AND/OR of comparisons between a time/offset column and a literal are translated;
    anything else is "no constraint", which only ever keeps more files than needed.
    """
    v = expr.to_variant()
    if type(v).__name__ != "BinaryExpr":
        return None
    op = str(v.op()).upper()
    if op in ("AND", "OR"):
        left, right = _to_ranges(v.left(), usable), _to_ranges(v.right(), usable)
        if op == "AND":
            return left if right is None else right if left is None else ("and", left, right)
        return None if left is None or right is None else ("or", left, right)
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
        # The literal in the column's type, then as an int in its unit (what
        # ``live_paths`` compares with the statistics).
        scalar = pa.scalar(value, usable[column]).cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None
    return (column, op, scalar.as_py())
