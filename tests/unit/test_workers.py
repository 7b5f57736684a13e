"""Queries through worker processes (``query_workers``) answer exactly as in-process ones.

One embedded log with a single worker, so every query below shares it: buffered tables
handed over once and then cached, schema evolution, flushed segments, both engines,
parameters, information_schema, the same error classes and messages, results planned and
dropped without being read, and a running query closed from another thread.
"""

from __future__ import annotations

import datetime
import decimal
import threading
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import arrowlog
from arrowlog import InvalidInput, ReadOnlyQuery, StreamNotFound, Unavailable
from arrowlog.sql import framing


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[arrowlog.Log, arrowlog.Log]]:
    """The same records in a log with one query worker and in one without."""
    logs = [
        arrowlog.open(tmp_path_factory.mktemp(name), flush_interval=3600.0, query_workers=workers)
        for name, workers in (("workers", 1), ("inprocess", 0))
    ]
    yield logs[0], logs[1]
    for log in logs:
        log.close()


def both(pair: tuple[arrowlog.Log, arrowlog.Log], sql: str, **kwargs: object) -> pa.Table:
    worked, local = (log.sql(sql, **kwargs).to_arrow() for log in pair)
    assert worked.equals(local), (worked, local)
    return worked


def test_answers_match_in_process_through_buffers_evolution_and_flushes(
    pair: tuple[arrowlog.Log, arrowlog.Log],
) -> None:
    for log in pair:
        log.append("s", [{"ts": "2026-12-01T00:00:00Z", "n": i, "m": "a"} for i in range(100)])
    sql = "SELECT count(*) AS c, sum(n) AS t, count(x) AS x FROM s"
    with pytest.raises(InvalidInput):  # no column x yet, the same error both ways
        pair[0].sql(sql).to_arrow()
    assert both(pair, "SELECT count(*) AS c, sum(n) AS t FROM s").to_pylist() == [
        {"c": 100, "t": 4950}
    ]
    for log in pair:  # a new column; the worker already holds the first buffered table
        log.append("s", [{"ts": "2026-12-02T00:00:00Z", "n": 1000, "x": 1.5}])
    assert both(pair, sql).to_pylist() == [{"c": 101, "t": 5950, "x": 1}]
    for log in pair:
        log.flush()
        log.append("s", [{"ts": "2026-12-03T00:00:00Z", "n": 1, "m": "b"}])
    assert both(pair, sql).to_pylist() == [{"c": 102, "t": 5951, "x": 1}]
    both(pair, "SELECT ts, n, m, x, _offset FROM s ORDER BY _offset")
    both(pair, "SELECT m, count(*) AS c FROM s GROUP BY m ORDER BY m", engine="duckdb")
    # Pruning by time still applies (EXPLAIN names the one file left).
    both(pair, "SELECT count(*) AS c FROM s WHERE ts >= '2026-12-02T00:00:00Z'")


def test_parameters_keep_their_arrow_types(pair: tuple[arrowlog.Log, arrowlog.Log]) -> None:
    table = both(pair, "SELECT $1 AS v, $2 AS w", params=[pa.scalar(5, pa.int8()), "x"])
    assert table.schema.field("v").type == pa.int8()
    both(pair, "SELECT count(*) AS c FROM s WHERE n > $1", params=[pa.scalar(10, pa.int64())])


def _year_one() -> datetime.datetime:
    return datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)


# Arrow scalars cross to a worker as Arrow (arrowlog/sql/framing.py), never through as_py():
# pickling a scalar lost a time64[ns]'s nanoseconds, failed on an interval, and raised on a
# zoned timestamp whose local time is outside Python's years.
ARROW_PARAMS = {
    "interval": pa.scalar(pa.MonthDayNano([1, -2, 3]), pa.month_day_nano_interval()),
    "time64[ns]": pa.scalar(1, pa.time64("ns")),
    "time64[us]": pa.scalar(1, pa.time64("us")),
    "time32[s]": pa.scalar(1, pa.time32("s")),
    "time32[ms]": pa.scalar(1, pa.time32("ms")),
    "timestamp tz year 1": pa.scalar(_year_one(), pa.timestamp("us", tz="-05:00")),
    "timestamp tz year 9999": pa.scalar(
        datetime.datetime(9999, 12, 31, 23, tzinfo=datetime.UTC), pa.timestamp("us", tz="+14:00")
    ),
    **{
        f"timestamp[{u}]": pa.scalar(1_000_000_001, pa.timestamp(u))
        for u in ("s", "ms", "us", "ns")
    },
    **{
        f"timestamp[{u}] tz": pa.scalar(1_000_000_001, pa.timestamp(u, tz="Europe/Paris"))
        for u in ("s", "ms", "us", "ns")
    },
    **{f"duration[{u}]": pa.scalar(-1, pa.duration(u)) for u in ("s", "ms", "us", "ns")},
    "decimal128": pa.scalar(decimal.Decimal("-12.345"), pa.decimal128(7, 3)),
    "decimal256": pa.scalar(decimal.Decimal("1" * 50), pa.decimal256(60, 0)),
    "large_string": pa.scalar("x", pa.large_string()),
    "binary": pa.scalar(b"\x00\xff", pa.binary()),
    "fixed_size_binary": pa.scalar(b"ab", pa.binary(2)),
    "date32 year 1": pa.scalar(datetime.date(1, 1, 1), pa.date32()),
    "date64": pa.scalar(datetime.date(2024, 2, 29), pa.date64()),
    "list": pa.scalar([1, None], pa.list_(pa.int16())),
    "struct of time64[ns]": pa.scalar({"t": 1}, pa.struct([("t", pa.time64("ns"))])),
    "map": pa.scalar([("k", 1)], pa.map_(pa.string(), pa.int64())),
    "dictionary": pa.array(["a"], pa.dictionary(pa.int8(), pa.string()))[0],
    "null": pa.scalar(None, pa.null()),
    "uint64 max": pa.scalar(2**64 - 1, pa.uint64()),
}


@pytest.mark.parametrize("name", sorted(ARROW_PARAMS))
def test_arrow_parameters_cross_as_arrow(name: str) -> None:
    sent = ARROW_PARAMS[name]
    for params in ([sent, "x"], {"p": sent, "q": "x"}):
        encoded = framing.encode_params(params)
        got = framing.read_plan(framing.plan_bytes(1, "q", "datafusion", encoded, [], "execute"))[3]
        assert type(got) is type(params)
        first = got[0] if isinstance(got, list) else got["p"]
        assert first.type == sent.type
        assert first.equals(sent), (first, sent)


@pytest.mark.parametrize("name", sorted(ARROW_PARAMS))
@pytest.mark.parametrize("named", [False, True], ids=["positional", "named"])
def test_arrow_parameters_answer_as_in_process(
    pair: tuple[arrowlog.Log, arrowlog.Log], name: str, named: bool
) -> None:
    sent = ARROW_PARAMS[name]
    sql, params = ("SELECT $p AS v", {"p": sent}) if named else ("SELECT $1 AS v", [sent])
    value = both(pair, sql, params=params).column("v").combine_chunks()
    assert value.type == sent.type
    assert value.equals(pa.repeat(sent, 1))


PYTHON_PARAMS = {
    "int": 5,
    "str": "x'y",
    "none": None,
    "datetime": datetime.datetime(2024, 1, 1, 12, 0, 0, 7),
    "zoned datetime": datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    "time": datetime.time(1, 2, 3, 4),
    "decimal": decimal.Decimal("-1.25"),
    "list": [1, 2],
    "MonthDayNano": pa.MonthDayNano([1, 2, 3]),  # does not pickle by itself
}


@pytest.mark.parametrize("engine", ["datafusion", "duckdb"])
@pytest.mark.parametrize("named", [False, True], ids=["positional", "named"])
def test_python_parameters_answer_as_in_process(
    pair: tuple[arrowlog.Log, arrowlog.Log], engine: str, named: bool
) -> None:
    # Plain values stay Python values: each engine converts them as it would in process.
    names = sorted(PYTHON_PARAMS)
    if named:
        sql = "SELECT " + ", ".join(f"$p{i} AS v{i}" for i in range(len(names)))
        params: object = {f"p{i}": PYTHON_PARAMS[n] for i, n in enumerate(names)}
    else:
        mark = "?" if engine == "duckdb" else "$"
        holes = [mark if mark == "?" else f"${i + 1}" for i in range(len(names))]
        sql = "SELECT " + ", ".join(f"{h} AS v{i}" for i, h in enumerate(holes))
        params = [PYTHON_PARAMS[n] for n in names]
    both(pair, sql, engine=engine, params=params)


def test_a_parameter_that_cannot_cross_is_refused_without_costing_a_worker(
    pair: tuple[arrowlog.Log, arrowlog.Log],
) -> None:
    log = pair[0]
    with pytest.raises(InvalidInput, match=r"^parameter \$2 \(lock\) cannot be sent"):
        log.sql("SELECT $1 AS a, $2 AS b", params=[1, threading.Lock()])
    started = time.monotonic()  # the worker was never given the plan: nothing to cancel
    assert log.sql("SELECT 1 AS a").to_arrow().column(0).to_pylist() == [1]
    assert time.monotonic() - started < 1


def test_information_schema_lists_the_streams(pair: tuple[arrowlog.Log, arrowlog.Log]) -> None:
    table = both(
        pair,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    assert "s" in table.column(0).to_pylist()


@pytest.mark.parametrize("engine", ["datafusion", "duckdb"])
@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("DROP TABLE s", ReadOnlyQuery),
        ("SELECT * FROM nope", StreamNotFound),
        ("SELEC 1", InvalidInput),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", ReadOnlyQuery),
    ],
)
def test_refusals_are_the_same(
    pair: tuple[arrowlog.Log, arrowlog.Log], engine: str, sql: str, error: type
) -> None:
    messages = []
    for log in pair:
        with pytest.raises((InvalidInput, StreamNotFound)) as e:
            log.sql(sql, engine=engine).to_arrow()
        messages.append((type(e.value), str(e.value)))
    assert messages[0] == messages[1]
    if engine == "datafusion":
        assert messages[0][0] is error


def test_results_planned_and_dropped_free_the_worker(
    pair: tuple[arrowlog.Log, arrowlog.Log],
) -> None:
    log = pair[0]
    first, second = log.sql("SELECT 1 AS a"), log.sql("SELECT 2 AS b")  # one worker, reused
    assert second.to_arrow().column(0).to_pylist() == [2]
    assert first.to_arrow().column(0).to_pylist() == [1]
    for _ in range(3):
        assert log.sql("SELECT 3 AS c").schema.names == ["c"]  # planned, never read
    started = time.monotonic()
    assert log.sql("SELECT 4 AS d").to_arrow().column(0).to_pylist() == [4]
    assert time.monotonic() - started < 5


def test_closing_a_running_query_stops_it(pair: tuple[arrowlog.Log, arrowlog.Log]) -> None:
    log = pair[0]
    result = log.sql("SELECT count(*) FROM range(30000000000)")
    batches = iter(result)
    threading.Timer(0.5, result.close).start()
    started = time.monotonic()
    with pytest.raises(Unavailable, match="cancelled"):
        next(batches)
    assert time.monotonic() - started < 2
    assert log.sql("SELECT count(*) AS c FROM s").to_arrow().column(0).to_pylist() == [102]


def test_embedded_logs_run_queries_in_process(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path) as log:
        assert log.settings.query_workers == 0 and log.settings.query_timeout == 0
