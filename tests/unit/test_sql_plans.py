"""How a query is planned: over the streams' shapes first, then once over the data.

The plan path depends on what the plan reads, never on the SQL text: a string literal
that says ``information_schema`` changes nothing, and DataFusion's own
``information_schema`` answers next to stream data, in this process and in a worker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

import arrowlog
from arrowlog.schema import OFFSET
from arrowlog.snapshot import TableSnapshot
from arrowlog.sql.catalog import StreamTables, TableShape
from arrowlog.sql.datafusion_engine import DataFusionEngine
from arrowlog.sql.limits import Limits

DAYS = ["2026-11-20", "2026-11-21", "2026-11-22"]


def samples(log: arrowlog.Log) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = log.metrics.exposition()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def grew(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[arrowlog.Log, arrowlog.Log]]:
    """The same records, one segment per day plus a buffered row, with and without a worker."""
    logs = []
    for name, workers in (("inprocess", 0), ("workers", 1)):
        log = arrowlog.open(
            tmp_path_factory.mktemp(name), flush_interval=3600.0, query_workers=workers
        )
        for day in DAYS:
            log.append("s", [{"ts": f"{day}T10:00:00Z", "n": i, "m": "x"} for i in range(5)])
            log.flush()
        log.append("s", [{"ts": "2026-11-23T10:00:00Z", "n": 99, "m": "y"}])
        log.append("other", [{"ts": "2026-11-23T10:00:00Z", "k": 1.5}])
        logs.append(log)
    yield logs[0], logs[1]
    for log in logs:
        log.close()


def _scanned(log: arrowlog.Log, sql: str) -> str:
    """The physical plan's scans, with the query's own literal taken out."""
    plan = log.sql(f"EXPLAIN {sql}").to_arrow().to_pylist()[-1]["plan"]
    return "\n".join(line.strip() for line in plan.splitlines() if "DataSourceExec" in line)


def test_a_literal_that_says_information_schema_changes_nothing(
    pair: tuple[arrowlog.Log, arrowlog.Log],
) -> None:
    log = pair[0]
    where = "WHERE ts >= TIMESTAMP '2026-11-22T00:00:00Z'"
    plain = _scanned(log, f"SELECT 'catalog' AS x, count(*) AS c FROM s {where}")
    literal = _scanned(log, f"SELECT 'information_schema' AS x, count(*) AS c FROM s {where}")
    assert plain == literal
    # The native Parquet reader, over the one file left after pruning.
    assert "file_type=parquet" in literal
    assert len(re.findall(r"day=\d{4}-\d\d-\d\d/", literal)) == 1
    for each in pair:
        got = each.sql(f"SELECT 'information_schema' AS x, count(*) AS c FROM s {where}")
        assert got.to_arrow().to_pylist() == [{"x": "information_schema", "c": 6}]


@pytest.mark.parametrize("path", ["in process", "in a worker"])
def test_information_schema_next_to_stream_data(
    pair: tuple[arrowlog.Log, arrowlog.Log], path: str
) -> None:
    log = pair[0] if path == "in process" else pair[1]
    sql = (
        "SELECT c.table_name, c.column_name, c.data_type, t.table_type, "
        "(SELECT count(*) FROM s) AS rows "
        "FROM information_schema.columns c JOIN information_schema.tables t "
        "ON c.table_name = t.table_name AND c.table_schema = t.table_schema "
        "WHERE c.table_schema = 'public' ORDER BY c.table_name, c.ordinal_position"
    )
    got = log.sql(sql).to_arrow().to_pylist()
    columns = [(r["table_name"], r["column_name"], r["data_type"]) for r in got]
    assert ("s", "m", "Utf8") in columns  # plain strings, as clients read them
    assert ("other", "k", "Float64") in columns
    assert {r["table_type"] for r in got} == {"BASE TABLE"}
    assert {r["rows"] for r in got} == {16}
    assert got == pair[0].sql(sql).to_arrow().to_pylist()


@pytest.mark.parametrize("path", ["in process", "in a worker"])
def test_one_execution_snapshots_each_stream_once_and_plans_once(
    pair: tuple[arrowlog.Log, arrowlog.Log], path: str
) -> None:
    log = pair[0] if path == "in process" else pair[1]
    sql = "SELECT count(*) AS c FROM s a JOIN s b ON a.n = b.n JOIN other o ON true"
    before = samples(log)
    assert log.sql(sql).to_arrow().column("c").to_pylist() == [5 * 3 * 3 + 1]
    after = samples(log)
    assert grew(before, after, "arrowlog_query_plans_total", kind="schema") == 1
    assert grew(before, after, "arrowlog_query_plans_total", kind="execute") == 1
    assert grew(before, after, "arrowlog_query_snapshots_total", stream="s") == 1
    assert grew(before, after, "arrowlog_query_snapshots_total", stream="other") == 1
    assert grew(before, after, "arrowlog_queries_total", engine="datafusion") == 1


@pytest.mark.parametrize("path", ["in process", "in a worker"])
@pytest.mark.parametrize("engine", ["datafusion", "duckdb"])
def test_a_schema_alone_takes_no_snapshot(
    pair: tuple[arrowlog.Log, arrowlog.Log], path: str, engine: str
) -> None:
    log = pair[0] if path == "in process" else pair[1]
    sql = "SELECT m, count(*) AS c, max(ts) AS t FROM s GROUP BY m"
    before = samples(log)
    schema = log.sql_schema(sql, engine=engine)
    after = samples(log)
    assert schema == log.sql(sql, engine=engine).schema
    assert schema.field("m").type == pa.string()
    assert grew(before, after, "arrowlog_query_plans_total", kind="schema") == 1
    assert grew(before, after, "arrowlog_query_plans_total", kind="execute") == 0
    assert grew(before, after, "arrowlog_query_snapshots_total", stream="s") == 0
    assert grew(before, after, "arrowlog_queries_total", engine=engine) == 0


def test_a_schema_refuses_what_execution_refuses(pair: tuple[arrowlog.Log, arrowlog.Log]) -> None:
    for log in pair:
        with pytest.raises(arrowlog.StreamNotFound, match="stream 'nope' not found"):
            log.sql_schema("SELECT * FROM nope")
        with pytest.raises(arrowlog.ReadOnlyQuery, match="DropTable is not allowed"):
            log.sql_schema("DROP TABLE s")


def test_a_schema_that_evolved_after_planning_is_planned_again(tmp_path: Path) -> None:
    old = pa.schema([("ts", pa.timestamp("us", tz="UTC")), ("n", pa.int64()), (OFFSET, pa.int64())])
    new = old.append(pa.field("x", pa.string()))
    data = pa.table(
        {"ts": pa.array([0], old.field("ts").type), "n": [1], OFFSET: [0], "x": ["added"]},
        schema=new,
    )
    plans: list[str] = []
    tables = StreamTables(
        names=lambda: ["s"],
        shape=lambda name: TableShape("s", old, "ts"),  # still the shape before "x"
        snapshot=lambda name: TableSnapshot("s", new, "ts", [], [data]),
    )
    engine = DataFusionEngine(tables, Limits(), on_plan=plans.append)
    result = engine.sql("SELECT * FROM s")
    assert result.schema.names == ["ts", "n", OFFSET, "x"]
    assert result.to_arrow().column("x").to_pylist() == ["added"]
    assert plans == ["schema", "schema", "execute"]


def test_a_query_planned_before_over_the_same_shapes_plans_only_its_execution(
    tmp_path: Path,
) -> None:
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        for day in DAYS:
            log.append("s", [{"ts": f"{day}T10:00:00Z", "n": i} for i in range(5)])
            log.flush()
        sql = "SELECT count(*) AS c FROM s WHERE ts >= TIMESTAMP '2026-11-22T00:00:00Z'"
        first = log.sql(sql).to_arrow()
        before = samples(log)
        log.append("s", [{"ts": "2026-11-23T11:00:00Z", "n": 7}])  # buffered: read-your-writes
        again = log.sql(sql).to_arrow()
        after = samples(log)
        assert again.column("c").to_pylist() == [first.column("c")[0].as_py() + 1]
        assert grew(before, after, "arrowlog_query_plans_total", kind="schema") == 0
        assert grew(before, after, "arrowlog_query_plans_total", kind="execute") == 1
        assert grew(before, after, "arrowlog_query_snapshots_total", stream="s") == 1
        # A new column changes the shape: the query is planned again and sees it.
        log.append("s", [{"ts": "2026-11-23T12:00:00Z", "n": 8, "extra": "x"}])
        star = "SELECT * FROM s ORDER BY ts DESC LIMIT 1"
        log.sql(star).to_arrow()
        log.append("s", [{"ts": "2026-11-23T13:00:00Z", "n": 9, "later": 1.5}])
        before = samples(log)
        latest = log.sql(star).to_arrow()
        after = samples(log)
        assert "later" in latest.schema.names and latest.column("n").to_pylist() == [9]
        assert grew(before, after, "arrowlog_query_plans_total", kind="schema") == 1
        # A query whose filters hold for the moment it was planned is always planned.
        volatile = "SELECT count(*) AS c FROM s WHERE ts <= now()"
        log.sql(volatile).to_arrow()
        before = samples(log)
        log.sql(volatile).to_arrow()
        after = samples(log)
        assert grew(before, after, "arrowlog_query_plans_total", kind="schema") == 1


def test_a_very_long_query_text_is_not_remembered(tmp_path: Path) -> None:
    """The remembered plans are keyed by their text: a client sending a few hundred
    megabyte-long queries (a huge IN list) must not have them all kept in memory."""
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        log.append("s", [{"ts": "2026-11-23T10:00:00Z", "n": i} for i in range(5)])
        values = ", ".join(str(i) for i in range(200_000))
        sql = f"SELECT count(*) AS c FROM s WHERE n IN ({values})"
        assert log.sql(sql).to_arrow().column("c").to_pylist() == [5]
        before = samples(log)
        assert log.sql(sql).to_arrow().column("c").to_pylist() == [5]
        after = samples(log)
        assert grew(before, after, "arrowlog_query_plans_total", kind="schema") == 1
