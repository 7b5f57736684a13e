"""How often a query is planned and snapshotted, counted by a real ``arrowlog serve``.

One ADBC ``execute`` is several Flight SQL calls (a prepared statement when it has
parameters, GetFlightInfo, DoGet). Only DoGet runs the query: the others plan for the
result schema only, over the streams' shapes, taking no snapshot. ``/metrics`` counts
plans by kind, snapshots by stream and queries by engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import adbc_driver_flightsql.dbapi as dbapi
import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from prometheus_client.parser import text_string_to_metric_families

import arrowlog
from tests.conftest import TEST_TOKEN
from tests.integration.conftest import ArrowlogServe


def scrape(http: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = http.get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def grew(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture
def http(arrowlog_serve: ArrowlogServe) -> Iterator[httpx.Client]:
    with arrowlog_serve.client() as client:
        yield client


@pytest.fixture
def conn(arrowlog_serve: ArrowlogServe) -> Iterator[dbapi.Connection]:
    kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {TEST_TOKEN}"}
    with dbapi.connect(arrowlog_serve.flight_url, db_kwargs=kwargs, autocommit=True) as c:
        yield c


def seed(server: ArrowlogServe, http: httpx.Client, stream: str) -> None:
    """Three flushed segments (one per hour) and records still buffered."""
    for hour in range(4):
        body = "".join(
            json.dumps({"ts": f"2026-11-23T{10 + hour:02d}:00:{i:02d}Z", "n": i}) + "\n"
            for i in range(10)
        )
        r = http.post(
            f"/v1/streams/{stream}/records",
            content=body.encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 200, r.text
        if hour < 3:
            client = flight.connect(server.flight_url)
            options = flight.FlightCallOptions(
                headers=[(b"authorization", f"Bearer {TEST_TOKEN}".encode())]
            )
            list(client.do_action(flight.Action("flush", stream.encode()), options))
            client.close()


def test_one_adbc_execute_plans_once_for_doget(
    arrowlog_serve: ArrowlogServe, http: httpx.Client, conn: dbapi.Connection, stream_name: str
) -> None:
    seed(arrowlog_serve, http, stream_name)
    sql = (
        f"SELECT a.n, count(*) AS c FROM {stream_name} a JOIN {stream_name} b ON a.n = b.n "
        "WHERE a.ts >= TIMESTAMP '2026-11-23T12:00:00Z' GROUP BY a.n ORDER BY a.n"
    )
    before = scrape(http)
    with conn.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    after = scrape(http)
    assert table.column("c").to_pylist() == [8] * 10  # per n: 2 hours of a x 4 hours of b
    assert grew(before, after, "arrowlog_query_plans_total", kind="execute") == 1
    # The stream is read twice (a self-join) but snapshotted once: both sides agree.
    assert grew(before, after, "arrowlog_query_snapshots_total", stream=stream_name) == 1
    assert grew(before, after, "arrowlog_queries_total", engine="datafusion") == 1
    assert grew(before, after, "arrowlog_query_duration_seconds_count", engine="datafusion") == 1
    # CreatePreparedStatement (ADBC prepares each new SQL text) and GetFlightInfo plan the
    # schema only, DoGet over the shapes before its one execute plan; a query worker that
    # planned this text over the same shapes already reuses that plan.
    assert 1 <= grew(before, after, "arrowlog_query_plans_total", kind="schema") <= 3


def test_a_prepared_execute_with_parameters_plans_once_for_doget(
    arrowlog_serve: ArrowlogServe, http: httpx.Client, conn: dbapi.Connection, stream_name: str
) -> None:
    seed(arrowlog_serve, http, stream_name)
    before = scrape(http)
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) AS c FROM {stream_name} WHERE n >= ?", parameters=(5,))
        table = cur.fetch_arrow_table()
    after = scrape(http)
    assert table.column("c").to_pylist() == [20]
    assert grew(before, after, "arrowlog_query_plans_total", kind="execute") == 1
    assert grew(before, after, "arrowlog_query_snapshots_total", stream=stream_name) == 1
    assert grew(before, after, "arrowlog_queries_total", engine="datafusion") == 1


def test_describing_a_query_takes_no_snapshot(
    arrowlog_serve: ArrowlogServe, http: httpx.Client, stream_name: str
) -> None:
    seed(arrowlog_serve, http, stream_name)
    client = flight.connect(arrowlog_serve.flight_url)
    options = flight.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {TEST_TOKEN}".encode())]
    )
    descriptor = flight.FlightDescriptor.for_command(f"SELECT n, ts FROM {stream_name}")
    before = scrape(http)
    info = client.get_flight_info(descriptor, options)
    schema = client.get_schema(descriptor, options).schema
    after = scrape(http)
    client.close()
    assert (
        info.schema
        == schema
        == pa.schema([("n", pa.int64()), ("ts", pa.timestamp("us", tz="UTC"))])
    )
    # Each describe plans the schema, unless its worker planned this text already.
    assert 1 <= grew(before, after, "arrowlog_query_plans_total", kind="schema") <= 2
    assert grew(before, after, "arrowlog_query_plans_total", kind="execute") == 0
    assert grew(before, after, "arrowlog_query_snapshots_total", stream=stream_name) == 0
    assert grew(before, after, "arrowlog_queries_total", engine="datafusion") == 0


def test_a_client_asks_for_a_schema_without_a_snapshot(
    arrowlog_serve: ArrowlogServe, http: httpx.Client, stream_name: str
) -> None:
    seed(arrowlog_serve, http, stream_name)
    sql = f"SELECT n, count(*) AS c FROM {stream_name} GROUP BY n"
    with arrowlog.connect(arrowlog_serve.flight_url, token=TEST_TOKEN) as client:
        before = scrape(http)
        schema = client.sql_schema(sql)
        after = scrape(http)
        assert schema == client.sql(sql).schema
    assert schema.names == ["n", "c"]
    assert grew(before, after, "arrowlog_query_snapshots_total", stream=stream_name) == 0
    assert grew(before, after, "arrowlog_query_plans_total", kind="execute") == 0
