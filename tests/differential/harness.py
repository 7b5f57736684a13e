"""Run one generated case on the oracle and on arrowlog's paths, at three moments.

A case is a stream ``A`` (and, for joins, a partner ``B``) plus a few queries. Each
stream is written twice under fresh names:

* ``P``: every batch appended, nothing flushed (flush thresholds are set out of reach):
  moment **buffered**; then ``flush`` (embedded ``Log.flush`` / the Flight action
  ``flush``): moment **flushed**;
* ``Q``: flushed after every append, so each day holds several small segments, then
  ``compact``: moment **compacted**.

The oracle is DuckDB in memory over exactly the tables appended (one table per stream,
missing columns as NULL, ``_offset`` = 0..n-1 in append order).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from tests.differential.compare import diff
from tests.differential.data import StreamData, arrow_type
from tests.differential.queries import DUCK, Query, order_sensitive

MOMENTS = ("buffered", "flushed", "compacted")
_names = itertools.count()
STATS: Counter[str] = Counter()

# High enough that nothing flushes on its own during a case.
NO_AUTO_FLUSH = {
    "flush_rows": 10**9,
    "flush_bytes": 1 << 40,
    "flush_interval": 1e9,
    "compact_interval": 1e9,
    "max_buffer_bytes": 1 << 40,
}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass
class Target:
    """One way of asking arrowlog: a name, the SQL dialect it speaks, and a runner."""

    name: str
    dialect: str
    run: Callable[[str], pa.Table]


@dataclass
class Writer:
    """How a case's streams are written: append, flush, compact (embedded or via Flight)."""

    append: Callable[[str, pa.Table], Any]
    flush: Callable[[str], Any]
    compact: Callable[[str], Any]
    label: str = "embedded"


@dataclass
class Case:
    a: StreamData
    partner: tuple[StreamData, str] | None
    queries: list[Query]

    @property
    def b(self) -> StreamData | None:
        return self.partner[0] if self.partner else None


def oracle_connection(case: Case) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.register("oracle_a", case.a.oracle_table())
    if case.b is not None:
        con.register("oracle_b", case.b.oracle_table())
    return con


def run_oracle(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    return con.sql(sql).to_arrow_table()


@dataclass
class Disagreement:
    moment: str
    target: str
    sql: str
    oracle_sql: str
    detail: str


@dataclass
class Outcome:
    disagreements: list[Disagreement] = field(default_factory=list)
    compared: int = 0


def _int64_overflow(table: pa.Table, columns: list[int]) -> bool:
    for i in columns:
        for v in table.column(i).to_pylist():
            if v is not None and not (-(2**63) <= int(v) < 2**63):
                return True
    return False


def run_case(case: Case, writer: Writer, targets: list[Target]) -> Outcome:
    """Write the case's streams, query every target at every moment, compare with the oracle."""
    n = next(_names)
    p = {"A": f"dp{n}_a", "B": f"dp{n}_b"}
    q = {"A": f"dq{n}_a", "B": f"dq{n}_b"}
    streams = [("A", case.a)] + ([("B", case.b)] if case.b is not None else [])
    for key, s in streams:
        for batch in s.batches:
            _write(case, "append", writer.append, p[key], s.table(batch))
            _write(case, "append", writer.append, q[key], s.table(batch))
            _write(case, "compacted", writer.flush, q[key])

    con = oracle_connection(case)
    expected: list[pa.Table | None] = []
    for query in case.queries:
        try:
            result = run_oracle(con, query.sql(DUCK, {"A": "oracle_a", "B": "oracle_b"}))
        except duckdb.Error:
            STATS["skipped: oracle error"] += 1
            result = None
        if result is not None and _int64_overflow(result, query.int64_columns):
            STATS["skipped: int64 sum overflow"] += 1
            result = None
        expected.append(result)
    con.close()

    outcome = Outcome()
    for moment in MOMENTS:
        if moment == "flushed":
            for key, _ in streams:
                _write(case, "flushed", writer.flush, p[key])
        if moment == "compacted":
            for key, _ in streams:
                _write(case, "compacted", writer.compact, q[key])
        tables = q if moment == "compacted" else p
        for query, exp in zip(case.queries, expected, strict=True):
            if exp is None:
                continue
            for target in targets:
                sql = query.sql(target.dialect, tables)
                outcome.compared += 1
                try:
                    actual = target.run(sql)
                except Exception as e:  # any error from arrowlog is a disagreement
                    detail = f"arrowlog raised {type(e).__name__}: {str(e)[:800]}"
                else:
                    detail = diff(exp, actual, query.modes, order_sensitive(query, target.dialect))
                if detail is not None:
                    oracle_sql = query.sql(DUCK, {"A": "oracle_a", "B": "oracle_b"})
                    outcome.disagreements.append(
                        Disagreement(moment, target.name, sql, oracle_sql, detail)
                    )
    STATS["cases (data, query)"] += sum(e is not None for e in expected)
    STATS["comparisons"] += outcome.compared
    return outcome


class WriteFailed(AssertionError):
    """arrowlog refused or failed to store data the oracle took: a disagreement too."""


def _write(case: Case, moment: str, step: Callable[..., Any], *args: Any) -> None:
    try:
        step(*args)
    except Exception as e:
        d = Disagreement(
            moment,
            f"{getattr(step, '__name__', step)}",
            "",
            "",
            f"{type(e).__name__}: {str(e)[:600]}",
        )
        raise WriteFailed(
            f"{getattr(step, '__name__', step)}({args[0]!r}) failed: {d.detail}\n\n"
            f"--- repro (the writes) ---\n{repro(case, d)}"
        ) from e


# -- repro ---------------------------------------------------------------------------------


def _py(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "float('nan')"
        if math.isinf(v):
            return "float('inf')" if v > 0 else "float('-inf')"
    return repr(v)


def _type_code(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return f"pa.timestamp({t.unit!r}, tz={t.tz!r})"
    if pa.types.is_list(t):
        return f"pa.list_({_type_code(t.value_type)})"
    if pa.types.is_struct(t):
        inner = ", ".join(f"({f.name!r}, {_type_code(f.type)})" for f in t)
        return f"pa.struct([{inner}])"
    return {
        pa.int64(): "pa.int64()",
        pa.int32(): "pa.int32()",
        pa.float64(): "pa.float64()",
        pa.string(): "pa.string()",
        pa.bool_(): "pa.bool_()",
        pa.date32(): "pa.date32()",
    }[t]


def table_code(s: StreamData, i: int) -> str:
    batch = s.batches[i]
    cols = []
    for name, values in batch.values.items():
        kind = batch.send_as.get(name, s.kind(name))
        rows = len(values) // batch.repeat
        text = "[" + ", ".join(_py(v) for v in values[:rows]) + "]"
        if batch.repeat > 1:
            text += f" * {batch.repeat}"
        cols.append(f"    {name!r}: pa.array({text}, {_type_code(arrow_type(kind, s.unit))}),")
    return "pa.table({\n" + "\n".join(cols) + "\n})"


def repro(case: Case, d: Disagreement) -> str:
    """A standalone script that shows the disagreement through ``arrowlog.open``."""
    engine = "duckdb" if d.target.endswith("duckdb") else "datafusion"
    compacted = d.moment == "compacted"
    lines = [
        "import tempfile",
        "import duckdb, pyarrow as pa, arrowlog",
        "log = arrowlog.open(tempfile.mkdtemp(), flush_rows=10**9, flush_bytes=1 << 40,",
        "                    flush_interval=1e9, compact_interval=1e9)",
    ]
    oracle = []
    streams = [("a", case.a)] + ([("b", case.b)] if case.b is not None else [])
    for name, s in streams:
        parts = []
        for i in range(len(s.batches)):
            lines.append(f"{name}{i} = {table_code(s, i)}")
            lines.append(f"log.append({name!r}, {name}{i})")
            parts.append(f"{name}{i}")
            if compacted:
                lines.append(f"log.flush({name!r})")
        if d.moment == "flushed":
            lines.append(f"log.flush({name!r})")
        if compacted:
            lines.append(f"log.compact({name!r})")
        oracle += [
            f"t = pa.concat_tables([{', '.join(parts)}], promote_options='permissive')",
            f"con.register('oracle_{name}', t.append_column('_offset', "
            "pa.array(range(t.num_rows), pa.int64())))",
        ]
    if not d.sql:  # a write failed: the repro ends with the failing step
        return "\n".join(lines)
    lines.append(f"print(log.sql({_rename(d.sql)!r}, engine={engine!r}).to_arrow().to_pylist())")
    lines.append("# oracle: DuckDB over the same rows, _offset = 0..n-1 in append order")
    lines.append("con = duckdb.connect(); con.execute(\"SET TimeZone = 'UTC'\")")
    lines += oracle
    lines.append(f"print(con.sql({d.oracle_sql!r}).to_arrow_table().to_pylist())")
    return "\n".join(lines)


def _rename(sql: str) -> str:
    import re

    return re.sub(r'"d[pq]\d+_([ab])"', lambda m: f'"{m.group(1)}"', sql)


def report(case: Case, outcome: Outcome) -> str:
    first = outcome.disagreements[0]
    where = sorted({(d.moment, d.target) for d in outcome.disagreements})
    return (
        f"{len(outcome.disagreements)} disagreement(s) with the DuckDB oracle "
        f"(at {', '.join(f'{m}/{t}' for m, t in where)})\n"
        f"first: {first.moment} / {first.target}\n"
        f"  arrowlog SQL: {first.sql}\n"
        f"  oracle SQL:   {first.oracle_sql}\n"
        f"{first.detail}\n\n"
        f"--- minimal repro ---\n{repro(case, first)}\n"
        f"--- every disagreement ---\n"
        + "\n".join(
            f"{d.moment} / {d.target}: {d.sql}\n{d.detail}" for d in outcome.disagreements[:10]
        )
        + "\n"
        + json.dumps({"stats": dict(STATS)})
    )
