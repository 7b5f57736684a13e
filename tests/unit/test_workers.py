"""Queries through worker processes (``query_workers``) answer exactly as in-process ones.

One embedded log with a single worker, so every query below shares it: buffered tables
handed over once and then cached, schema evolution, flushed segments, both engines,
parameters, information_schema, the same error classes and messages, results planned and
dropped without being read, and a running query closed from another thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import arrowlog
from arrowlog import InvalidInput, ReadOnlyQuery, StreamNotFound, Unavailable


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
