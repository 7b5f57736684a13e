"""Random deterministic queries generated from a stream's schema and values.

A query is rendered per dialect ("datafusion" — also what the Flight and HTTP paths run —
or "duckdb") with table placeholders filled in at run time, so one generated query runs
against the oracle and against every arrowlog path and moment.

Only queries with a deterministic answer are generated: ORDER BY always ends with
``_offset`` (a total order), LIMIT only follows such an ORDER BY, everything else is
compared as a multiset. Dialect differences written down here (and steered around):

* regex: ``regexp_like`` (DataFusion) vs ``regexp_matches`` (DuckDB).
* timestamp literals: ``arrow_cast(..., 'Timestamp(Microsecond, Some("UTC"))')`` vs
  ``TIMESTAMPTZ '...+00'``.
* float literals go through ``CAST('...' AS DOUBLE)`` (DuckDB reads ``1.5`` as a DECIMAL),
  integer literals through ``CAST('...' AS BIGINT)`` (``-9223372036854775808`` does not
  parse as one int64 literal in DataFusion).
* NULL ordering: always explicit ``NULLS FIRST``/``NULLS LAST`` (defaults differ: DuckDB
  puts NULLs last both ways, DataFusion first when descending).
* ordering by a float column is written ``(x + 0.0)``: DataFusion orders -0.0 before 0.0
  (IEEE total order), DuckDB treats them as equal, so ties would break differently;
  adding 0.0 turns -0.0 into 0.0 in both.
* LIKE patterns never contain a backslash: it escapes in DataFusion, not in DuckDB.
* no ``upper``/``reverse``: Rust and utf8proc case-map ß differently (SS vs ẞ), DuckDB's
  reverse keeps grapheme clusters (e + combining accent) together.
* no arithmetic on int64 columns (overflow is an error in DuckDB), no integer division.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tests.differential.data import (
    BASE_DAYS,
    EPOCH,
    NUMERIC_KINDS,
    SCALAR_KINDS,
    TICKS_PER_SECOND,
    StreamData,
    day_ticks,
    value_strategy,
)
from tests.differential.known import avoid

Render = Callable[[str], str]  # dialect -> SQL text (with {A} / {B} table placeholders)

DIALECTS = ("datafusion", "duckdb")
DF, DUCK = "datafusion", "duckdb"

# Output column comparison modes (see compare.py).
EXACT = "exact"  # bit-exact, -0.0 != 0.0, NaN == NaN
LOOSE = "loose"  # like exact but -0.0 == 0.0 (which of the two a group/min/max keeps is arbitrary)


@dataclass(frozen=True)
class Tol:
    """A float aggregate: equal within ``scale`` (absolute), NaN == NaN."""

    scale: float


@dataclass
class Query:
    kind: str
    render: Render
    modes: list[Any]  # per output column: EXACT, LOOSE or Tol
    ordered: bool = False
    has_limit: bool = False
    # Skip the case when the oracle's value of an int column is outside int64 (sum of
    # int64 is an int64 that wraps in DataFusion, a HUGEINT in DuckDB).
    int64_columns: list[int] = field(default_factory=list)

    def sql(self, dialect: str, tables: dict[str, str]) -> str:
        text = self.render(dialect)
        for placeholder, name in tables.items():
            text = text.replace("{" + placeholder + "}", ident(name))
        return text


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def col(name: str, qualifier: str | None = None) -> str:
    return ident(name) if qualifier is None else f"{qualifier}.{ident(name)}"


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ts_iso(ticks: int, unit: str) -> str:
    """ISO-8601 text (no zone) of ``ticks`` of ``unit`` since the epoch, every digit kept."""
    seconds, frac = divmod(ticks, TICKS_PER_SECOND[unit])
    text = (EPOCH_DT + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}[unit]
    return text + (f".{frac:0{digits}d}" if digits else "")


EPOCH_DT = dt.datetime(1970, 1, 1)

_ARROW_UNIT = {"s": "Second", "ms": "Millisecond", "us": "Microsecond", "ns": "Nanosecond"}


def literal(kind: str, value: Any, dialect: str, unit: str) -> str:
    """A typed SQL literal of ``kind`` in ``dialect``."""
    if value is None:
        return "NULL"
    if kind in ("i64", "i32"):
        return f"CAST('{value}' AS BIGINT)"
    if kind == "f64":
        text = "NaN" if math.isnan(value) else repr(value)
        return f"CAST('{text}' AS DOUBLE)"
    if kind == "str":
        return sql_string(value)
    if kind == "bool":
        return "TRUE" if value else "FALSE"
    if kind == "ts":
        iso = ts_iso(value, unit)
        if dialect == DF:
            return f"arrow_cast('{iso}Z', 'Timestamp({_ARROW_UNIT[unit]}, Some(\"UTC\"))')"
        if unit == "ns":
            return f"CAST('{iso}' AS TIMESTAMP_NS)"
        return f"TIMESTAMPTZ '{iso.replace('T', ' ')}+00'"
    if kind == "date":
        d = EPOCH + dt.timedelta(days=value)
        return f"DATE '{d.isoformat()}'"
    raise ValueError(kind)


def regex(expr: str, pattern: str, dialect: str) -> str:
    fn = "regexp_like" if dialect == DF else "regexp_matches"
    return f"{fn}({expr}, {sql_string(pattern)})"


def order_key(expr: str, kind: str) -> str:
    return f"({expr} + 0.0)" if kind == "f64" else expr


# -- predicates ------------------------------------------------------------------------------

REGEX_PATTERNS = [
    "^a",
    "b$",
    "^$",
    "[0-9]",
    "\u00e9",
    "e\u0301",
    "^.$",
    "a.b",
    "(?i)^a",
    "%",
    "_",
    "[[:alpha:]]",
    "^[^a]",
    "\u05d0",
    "x+",
]


def _regex_escape(text: str) -> str:
    return "".join("\\" + ch if ch in ".^$*+?()[]{}|\\" else ch for ch in text)


@st.composite
def predicate(draw: st.DrawFn, s: StreamData, q: str | None = None, depth: int = 0) -> Render:
    """A WHERE condition over stream ``s`` (columns qualified with ``q`` if given)."""
    if depth < 1 and draw(st.integers(0, 3)) == 0:
        left = draw(predicate(s, q, depth + 1))
        right = draw(predicate(s, q, depth + 1))
        op = draw(st.sampled_from(["AND", "OR"]))
        neg = draw(st.booleans())
        return lambda d: f"{'NOT ' if neg else ''}(({left(d)}) {op} ({right(d)}))"
    choices = ["offset", "null"]
    if s.time_column:
        choices += ["time", "time"]
    scalar = [c for c in s.columns if c.kind in SCALAR_KINDS]
    if scalar:
        choices += ["cmp", "cmp", "between"]
    if any(c.kind == "str" for c in s.columns):
        choices += ["like", "regex", "strfn"]
    what = draw(st.sampled_from(choices))
    unit = s.unit
    n = s.num_rows
    off = col("_offset", q)
    if what == "offset":
        k1 = draw(st.integers(-1, n + 1))
        k2 = draw(st.integers(-1, n + 1))
        form = draw(st.sampled_from(["ge", "lt", "between", "eq", "in"]))
        text = {
            "ge": f"{off} >= {k1}",
            "lt": f"{off} < {k1}",
            "between": f"{off} BETWEEN {min(k1, k2)} AND {max(k1, k2)}",
            "eq": f"{off} = {k1}",
            "in": f"{off} IN ({k1}, {k2})",
        }[form]
        return lambda d: text
    if what == "null":
        c = draw(st.sampled_from(s.columns))
        neg = draw(st.booleans())
        text = f"{col(c.name, q)} IS {'NOT ' if neg else ''}NULL"
        return lambda d: text
    if what == "time":
        values = s.column_values(s.time_column)
        boundaries = [day_ticks(day, unit) for day in BASE_DAYS]
        pick = st.one_of(st.sampled_from(values), st.sampled_from(boundaries))
        t1, t2 = draw(pick), draw(pick)
        op = draw(st.sampled_from([">=", "<", "=", ">", "<=", "between"]))
        c = col(s.time_column, q)
        if op == "between":
            lo, hi = min(t1, t2), max(t1, t2)
            return lambda d: (
                f"{c} BETWEEN {literal('ts', lo, d, unit)} AND {literal('ts', hi, d, unit)}"
            )
        return lambda d: f"{c} {op} {literal('ts', t1, d, unit)}"
    if what in ("cmp", "between"):
        c = draw(st.sampled_from(scalar))
        values = [v for v in s.column_values(c.name) if v is not None]
        pick = st.sampled_from(values) if values else value_strategy(c.kind, unit)
        v1 = draw(st.one_of(pick, pick, value_strategy(c.kind, unit)))
        if c.kind == "str" and "\x00" in v1:
            v1 = v1.replace("\x00", "")
        lit_kind = "i64" if c.kind == "i32" else c.kind
        cc = col(c.name, q)
        if what == "between" and c.kind != "bool":
            v2 = draw(st.one_of(pick, value_strategy(c.kind, unit)))
            if c.kind == "str":
                v2 = v2.replace("\x00", "")
            neg = draw(st.booleans())
            return lambda d: (
                f"{cc} {'NOT ' if neg else ''}BETWEEN {literal(lit_kind, v1, d, unit)} "
                f"AND {literal(lit_kind, v2, d, unit)}"
            )
        op = draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">="]))
        return lambda d: f"{cc} {op} {literal(lit_kind, v1, d, unit)}"
    strings = [c for c in s.columns if c.kind == "str"]
    c = draw(st.sampled_from(strings))
    cc = col(c.name, q)
    values = [v for v in s.column_values(c.name) if v]
    if what == "like":
        base = draw(st.sampled_from(values)) if values else "a"
        base = base.replace("\\", "").replace("\x00", "")
        form = draw(st.sampled_from(["prefix", "contains", "underscore", "exact", "suffix"]))
        cut = draw(st.integers(0, len(base)))
        pattern = {
            "prefix": base[:cut] + "%",
            "contains": "%" + base[cut : cut + 2] + "%",
            "underscore": base[:cut] + "_" + base[cut + 1 :],
            "exact": base,
            "suffix": "%" + base[cut:],
        }[form]
        neg = draw(st.booleans())
        return lambda d: f"{cc} {'NOT ' if neg else ''}LIKE {sql_string(pattern)}"
    if what == "regex":
        pattern = draw(
            st.one_of(
                st.sampled_from(REGEX_PATTERNS),
                st.sampled_from(values or ["a"]).map(
                    lambda v: _regex_escape(v.replace("\x00", "")[:3])
                ),
            )
        )
        return lambda d: regex(cc, pattern, d)
    # a string function in a condition
    needle = draw(st.sampled_from(["a", "b", "\u00e9", " ", "%"]))
    form = draw(st.sampled_from(["len", "starts", "strpos"]))
    k = draw(st.integers(0, 3))
    text = {
        "len": f"character_length({cc}) > {k}",
        "starts": f"starts_with({cc}, {sql_string(needle)})",
        "strpos": f"strpos({cc}, {sql_string(needle)}) > 0",
    }[form]
    return lambda d: text


@st.composite
def maybe_where(draw: st.DrawFn, s: StreamData, q: str | None = None) -> Render:
    if draw(st.integers(0, 2)) == 0:
        return lambda d: ""
    p = draw(predicate(s, q))
    return lambda d: f" WHERE {p(d)}"


@st.composite
def order_by(draw: st.DrawFn, s: StreamData, q: str | None = None) -> Render:
    """A total order: 0-2 scalar columns, each ASC/DESC with explicit NULLS, then _offset."""
    keys = [c for c in s.columns if c.kind in SCALAR_KINDS]
    chosen = draw(st.lists(st.sampled_from(keys), max_size=2, unique=True)) if keys else []
    parts = []
    for c in chosen:
        direction = draw(st.sampled_from(["ASC", "DESC"]))
        nulls = draw(st.sampled_from(["NULLS FIRST", "NULLS LAST"]))
        parts.append(f"{order_key(col(c.name, q), c.kind)} {direction} {nulls}")
    parts.append(f"{col('_offset', q)} {draw(st.sampled_from(['ASC', 'DESC']))}")
    text = ", ".join(parts)
    return lambda d: f" ORDER BY {text}"


# -- query kinds -----------------------------------------------------------------------------


@st.composite
def string_expr(draw: st.DrawFn, c: str) -> str:
    i, k = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    return draw(
        st.sampled_from(
            [
                f"lower({c})",
                f"character_length({c})",
                f"substr({c}, {i + 1}, {k})",
                f"{c} || '|'",
                f"concat({c}, '\u00e9', {c})",
                f"replace({c}, 'a', 'Z')",
                f"strpos({c}, 'b')",
                f"starts_with({c}, 'a')",
                f"{c} LIKE '%a%'",
            ]
        )
    )


@st.composite
def select_query(draw: st.DrawFn, s: StreamData) -> Query:
    """Projection (+ string functions), optional filter, optional ORDER BY [LIMIT]."""
    picks = draw(st.lists(st.sampled_from([*s.columns, None]), min_size=1, max_size=4))
    outs: list[str] = []
    modes: list[Any] = []
    for c in picks:
        if c is None:
            outs.append(col("_offset"))
        elif c.kind == "str" and draw(st.integers(0, 2)) == 0:
            outs.append(draw(string_expr(col(c.name))))
        else:
            outs.append(col(c.name))
        modes.append(EXACT)
    where = draw(maybe_where(s))
    ordered = draw(st.integers(0, 2)) > 0
    order = draw(order_by(s)) if ordered else (lambda d: "")
    has_limit = ordered and draw(st.booleans())
    limit = f" LIMIT {draw(st.integers(0, s.num_rows + 1))}" if has_limit else ""
    items = ", ".join(f"{o} AS r{i}" for i, o in enumerate(outs))
    return Query(
        "select",
        lambda d: f"SELECT {items} FROM {{A}}{where(d)}{order(d)}{limit}",
        modes,
        ordered=ordered,
        has_limit=has_limit,
    )


@st.composite
def group_query(draw: st.DrawFn, s: StreamData) -> Query:
    keys = [c for c in s.columns if c.kind in SCALAR_KINDS]
    group = draw(st.lists(st.sampled_from(keys), max_size=2, unique=True)) if keys else []
    outs: list[str] = []
    modes: list[Any] = []
    int64_cols: list[int] = []
    for c in group:
        outs.append(col(c.name))
        modes.append(LOOSE if c.kind == "f64" else EXACT)
    n_aggs = draw(st.integers(1, 3))
    n = max(1, s.num_rows)
    for _ in range(n_aggs):
        c = draw(st.sampled_from(s.columns))
        options = ["count_star", "count"]
        if c.kind in SCALAR_KINDS:
            options += ["count_distinct"]
            if not (group and c.kind == "f64" and avoid("datafusion_grouped_float_minmax")):
                options += ["min", "max"]
        if c.kind in NUMERIC_KINDS:
            options += ["sum", "avg", "sum", "avg"]
        agg = draw(st.sampled_from(options))
        cc = col(c.name)
        if agg == "count_star":
            outs.append("count(*)")
            modes.append(EXACT)
        elif agg == "count":
            outs.append(f"count({cc})")
            modes.append(EXACT)
        elif agg == "count_distinct":
            outs.append(f"count(DISTINCT {cc})")
            modes.append(EXACT)
        elif agg in ("min", "max"):
            outs.append(f"{agg}({cc})")
            modes.append(LOOSE if c.kind == "f64" else EXACT)
        elif agg == "sum" and c.kind != "f64":
            outs.append(f"sum({cc})")
            modes.append(EXACT)
            int64_cols.append(len(outs) - 1)
        else:
            # float sums and every avg: summation order differs between engines and
            # between arrowlog's moments (segments, batches), so equal up to rounding.
            # When n values of this size can add up past the largest double, the order
            # decides between a finite sum and inf: any number is then accepted.
            scale = 8 * n * 2.0**-52 * s.max_abs(c.name) + 1e-300
            overflows = not math.isfinite(n * s.max_abs(c.name))
            outs.append(f"{agg}({cc})")
            modes.append(Tol(math.inf if overflows or not math.isfinite(scale) else scale))
    where = draw(maybe_where(s))
    items = ", ".join(f"{o} AS r{i}" for i, o in enumerate(outs))
    group_by = f" GROUP BY {', '.join(col(c.name) for c in group)}" if group else ""
    ordered = bool(group) and draw(st.booleans())
    tail = ""
    if ordered:
        # Group keys are unique per row (up to -0.0 == 0.0, which + 0.0 folds): a total order.
        parts = [
            f"{order_key(col(c.name), c.kind)} {draw(st.sampled_from(['ASC', 'DESC']))} "
            f"{draw(st.sampled_from(['NULLS FIRST', 'NULLS LAST']))}"
            for c in group
        ]
        tail = f" ORDER BY {', '.join(parts)} LIMIT {draw(st.integers(0, 20))}"
    return Query(
        "group",
        lambda d: f"SELECT {items} FROM {{A}}{where(d)}{group_by}{tail}",
        modes,
        ordered=ordered,
        has_limit=ordered,
        int64_columns=int64_cols,
    )


@st.composite
def distinct_query(draw: st.DrawFn, s: StreamData) -> Query:
    keys = [c for c in s.columns if c.kind in SCALAR_KINDS or c.kind == "list"]
    if not keys:
        return draw(select_query(s))
    chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True))
    where = draw(maybe_where(s))
    items = ", ".join(f"{col(c.name)} AS r{i}" for i, c in enumerate(chosen))
    modes = [LOOSE if c.kind == "f64" else EXACT for c in chosen]
    return Query("distinct", lambda d: f"SELECT DISTINCT {items} FROM {{A}}{where(d)}", modes)


@st.composite
def window_query(draw: st.DrawFn, s: StreamData) -> Query:
    keys = [c for c in s.columns if c.kind in SCALAR_KINDS]
    part_keys = [c for c in keys if not (c.kind == "f64" and avoid("datafusion_window_float_zero"))]
    part = draw(st.sampled_from([None, *part_keys])) if part_keys else None
    order_col = draw(st.sampled_from([None, *keys])) if keys else None
    over_parts = []
    if part is not None:
        over_parts.append(f"PARTITION BY {col(part.name)}")
    order_items = []
    if order_col is not None:
        order_items.append(
            f"{order_key(col(order_col.name), order_col.kind)} "
            f"{draw(st.sampled_from(['ASC', 'DESC']))} {draw(st.sampled_from(['NULLS FIRST', 'NULLS LAST']))}"
        )
    order_items.append(f"{col('_offset')} {draw(st.sampled_from(['ASC', 'DESC']))}")
    over = " ".join([*over_parts, "ORDER BY " + ", ".join(order_items)])
    outs = [col("_offset"), f"row_number() OVER ({over})"]
    modes: list[Any] = [EXACT, EXACT]
    if part is not None and draw(st.booleans()):
        outs.append(f"count(*) OVER (PARTITION BY {col(part.name)})")
        modes.append(EXACT)
    if draw(st.booleans()):
        c = draw(st.sampled_from(keys)) if keys else None
        if c is not None and c.kind != "f64":
            outs.append(f"lag({col(c.name)}) OVER ({over})")
            modes.append(EXACT)
    where = draw(maybe_where(s))
    items = ", ".join(f"{o} AS r{i}" for i, o in enumerate(outs))
    return Query("window", lambda d: f"SELECT {items} FROM {{A}}{where(d)}", modes)


@st.composite
def join_query(draw: st.DrawFn, a: StreamData, b: StreamData, key: str) -> Query:
    left = draw(st.booleans())
    join = "LEFT JOIN" if left else "JOIN"
    a_cols = draw(st.lists(st.sampled_from([c for c in a.columns]), max_size=2))
    outs = [
        col("_offset", "a"),
        col("_offset", "b"),
        col("w", "b"),
        *[col(c.name, "a") for c in a_cols],
    ]
    modes = [EXACT] * len(outs)
    where = draw(maybe_where(a, "a"))
    ordered = draw(st.booleans())
    tail = ""
    if ordered:
        tail = (
            f" ORDER BY {col('_offset', 'a')} ASC, {col('_offset', 'b')} ASC NULLS FIRST"
            f" LIMIT {draw(st.integers(0, 50))}"
        )
    items = ", ".join(f"{o} AS r{i}" for i, o in enumerate(outs))
    on = f"{col(key, 'a')} = {col('k', 'b')}"
    return Query(
        "join",
        lambda d: f"SELECT {items} FROM {{A}} AS a {join} {{B}} AS b ON {on}{where(d)}{tail}",
        modes,
        ordered=ordered,
        has_limit=ordered,
    )


@st.composite
def query_for(draw: st.DrawFn, a: StreamData, partner: tuple[StreamData, str] | None) -> Query:
    kinds = ["select", "select", "group", "group", "distinct", "window"]
    if partner is not None:
        kinds.append("join")
    kind = draw(st.sampled_from(kinds))
    if kind == "select":
        return draw(select_query(a))
    if kind == "group":
        return draw(group_query(a))
    if kind == "distinct":
        return draw(distinct_query(a))
    if kind == "window":
        return draw(window_query(a))
    return draw(join_query(a, partner[0], partner[1]))


def order_sensitive(q: Query, dialect: str) -> bool:
    """Whether the row order of ``q``'s answer is compared (the same on every engine)."""
    return q.ordered
