"""Query guards and input limits, embedded: clear errors instead of runaway work or a crash.

- ``query_timeout`` and ``query_memory_limit`` (both engines), and that the engine's work
  stops after a time-out for queries whose stream is dropped;
- SQL operator chains long enough to overflow DataFusion's planner (a SIGSEGV that killed
  the whole server) are refused before planning;
- records nested deeper than pyarrow's JSON parser or Arrow IPC survive (a SIGSEGV and a
  500) are refused with a message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import arrowlog
from arrowlog import InvalidInput, QueryLimitExceeded
from arrowlog.http.body import MAX_JSON_DEPTH, check_json_depth, decode_body
from arrowlog.schema import MAX_NESTING
from arrowlog.sql.policy import MAX_OPERATORS

SORT = "SELECT value, repeat('x', 100) AS pad FROM generate_series(1, 100000000) ORDER BY random()"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[arrowlog.Log]:
    with arrowlog.open(
        tmp_path, flush_interval=3600.0, query_timeout=1.0, query_memory_limit=32 << 20
    ) as log:
        log.append("s", [{"n": i} for i in range(10)])
        yield log


def test_timeout_stops_the_query_and_its_work(guarded: arrowlog.Log) -> None:
    started = time.monotonic()
    with pytest.raises(QueryLimitExceeded) as e:
        guarded.sql(SORT).to_arrow()
    assert str(e.value) in ("query exceeded the time limit of 1 s (query_timeout)",) or str(
        e.value
    ).startswith("query exceeded the memory limit")
    assert time.monotonic() - started < 10
    # The engine stopped: no CPU is burnt after the error.
    cpu = os.times().user
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.times().user - cpu < 0.5
    assert guarded.sql("SELECT count(*) AS c FROM s").to_arrow().column("c")[0].as_py() == 10


def test_timeout_of_duckdb(guarded: arrowlog.Log) -> None:
    sql = "SELECT count(*) FROM range(1000000000) a CROSS JOIN range(1000000000) b"
    with pytest.raises(
        QueryLimitExceeded, match=r"^query exceeded the time limit of 1 s \(query_timeout\)$"
    ):
        guarded.sql(sql, engine="duckdb").to_arrow()


def test_memory_limit(guarded: arrowlog.Log) -> None:
    with pytest.raises(QueryLimitExceeded) as e:
        guarded.sql("SELECT array_agg(value) FROM generate_series(1, 100000000)").to_arrow()
    assert str(e.value).startswith(
        "query exceeded the memory limit of 33554432 bytes (query_memory_limit): "
    )
    assert "Resources exhausted" in str(e.value)


def test_a_slow_reader_does_not_use_up_the_time(guarded: arrowlog.Log) -> None:
    """The limit is engine time: pausing between batches does not count."""
    batches = iter(guarded.sql("SELECT value FROM generate_series(1, 200000)"))
    first = next(batches)
    time.sleep(1.2)  # longer than the limit, spent by the reader
    rows = first.num_rows + sum(b.num_rows for b in batches)
    assert rows == 200000


def test_guards_off_by_default(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path) as log:
        assert log.settings.query_timeout == 0 and log.settings.query_memory_limit == 0
        assert log.sql("SELECT 1 AS x").to_arrow().column("x").to_pylist() == [1]


@pytest.mark.parametrize("engine", ["datafusion", "duckdb"])
def test_long_operator_chains_are_refused_before_planning(
    guarded: arrowlog.Log, engine: str
) -> None:
    sql = "SELECT " + "+".join(["1"] * 20000)
    with pytest.raises(InvalidInput) as e:
        guarded.sql(sql, engine=engine)
    assert str(e.value) == (
        f"the query has 19999 operators; at most {MAX_OPERATORS} are accepted (longer chains "
        "overflow the planner): for long lists of values use IN (...)"
    )
    # Operators inside literals and comments do not count; a realistic chain passes.
    sql = (
        "SELECT '"
        + "+" * 50_000
        + "' AS s /* "
        + "-" * 50_000
        + " */ FROM s WHERE "
        + " OR ".join(f"n = {i}" for i in range(500))
    )
    assert guarded.sql(sql, engine=engine).to_arrow().num_rows == 10


def test_deep_json_is_refused_before_parsing() -> None:
    deep = '{"n": 1, "deep": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    with pytest.raises(
        InvalidInput, match=rf"record on line 1 is nested more than {MAX_JSON_DEPTH}"
    ):
        decode_body(deep.encode(), "ndjson", limit=1 << 30)
    # Brackets inside strings (escaped quotes too) are not nesting.
    fine = '{"msg": "' + "[" * 10_000 + '\\"{{{{"}\n'
    assert decode_body(fine.encode(), "ndjson", limit=1 << 30).num_rows == 1
    at_the_limit = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    check_json_depth(('{"a": ' + at_the_limit + "}").encode())


def test_deep_json_array_bodies_are_refused() -> None:
    body = "[" + '{"deep": ' + "[" * 50_000 + "]" * 50_000 + "}]"
    with pytest.raises(InvalidInput, match="the JSON body is nested too deeply"):
        decode_body(body.encode(), "json", limit=1 << 30)


def test_deeply_nested_columns_are_refused(guarded: arrowlog.Log) -> None:
    record: object = 1
    for _ in range(MAX_NESTING + 5):
        record = {"a": record}
    with pytest.raises(
        InvalidInput, match=rf"column 'deep' is nested \d+ levels deep; at most {MAX_NESTING}"
    ):
        guarded.append("s", [{"n": 1, "deep": record}])
    assert guarded.describe("s").rows == 10
