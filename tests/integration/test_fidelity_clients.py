"""Answers and stored values through real clients: ADBC, pyarrow.flight, httpx.

The embedded cases live in ``tests/unit/test_fidelity.py``; here each is driven from
outside against one ``arrowlog serve``: an order that must hold across batches and
files, floats that must come back bit for bit after a flush, a column that widens, and
names that differ only in case, refused whole with nothing left behind.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from datetime import UTC, datetime

import adbc_driver_flightsql.dbapi as dbapi
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.conftest import TEST_TOKEN
from tests.integration.conftest import ArrowlogServe

NDJSON = {"Content-Type": "application/x-ndjson"}
ARROW = "application/vnd.apache.arrow.stream"
AUTH = [(b"authorization", f"Bearer {TEST_TOKEN}".encode())]


@pytest.fixture
def http(arrowlog_serve: ArrowlogServe) -> Iterator[httpx.Client]:
    with arrowlog_serve.client() as client:
        yield client


@pytest.fixture
def conn(arrowlog_serve: ArrowlogServe) -> Iterator[dbapi.Connection]:
    kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {TEST_TOKEN}"}
    with dbapi.connect(arrowlog_serve.flight_url, db_kwargs=kwargs, autocommit=True) as c:
        yield c


@pytest.fixture
def plain(arrowlog_serve: ArrowlogServe) -> Iterator[flight.FlightClient]:
    client = flight.FlightClient(arrowlog_serve.flight_url)
    yield client
    client.close()


def _options() -> flight.FlightCallOptions:
    return flight.FlightCallOptions(headers=AUTH)


def _action(client: flight.FlightClient, name: str, stream: str) -> None:
    body = json.dumps({"stream": stream}).encode()
    list(client.do_action(flight.Action(name, body), options=_options()))


def _adbc(conn: dbapi.Connection, sql: str) -> pa.Table:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _http_arrow(http: httpx.Client, sql: str) -> pa.Table:
    r = http.post("/v1/query", json={"sql": sql}, headers={"Accept": ARROW})
    assert r.status_code == 200, r.text
    return pa.ipc.open_stream(io.BytesIO(r.content)).read_all()


def _bits(values: list) -> list:
    return [None if v is None else struct.pack("<d", v) for v in values]


def _post(http: httpx.Client, stream: str, records: list[dict]) -> httpx.Response:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    return http.post(f"/v1/streams/{stream}/records", content=body, headers=NDJSON)


def test_order_by_holds_through_every_client(
    conn: dbapi.Connection, http: httpx.Client, plain: flight.FlightClient, stream_name: str
) -> None:
    rng = np.random.default_rng(11)
    start = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1_000_000)
    with conn.cursor() as cur:
        for i in range(4):
            times = start + rng.integers(0, 2 * 86_400 * 1_000_000, 20_000)
            table = pa.table(
                {
                    "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
                    "latency_ms": pa.array(rng.exponential(100, 20_000)),
                    "service": pa.array([f"s{j % 7}" for j in range(20_000)]),
                }
            )
            cur.adbc_ingest(stream_name, table, mode="create_append")
            if i < 3:
                _action(plain, "flush", stream_name)
    for sql, column, descending in [
        (f"SELECT ts, service FROM {stream_name} ORDER BY ts", "ts", False),
        (f"SELECT * FROM {stream_name} ORDER BY latency_ms DESC", "latency_ms", True),
    ]:
        ticket = flight.Ticket(sql.encode())
        answers = {
            "adbc": _adbc(conn, sql),
            "http": _http_arrow(http, sql),
            "flight": plain.do_get(ticket, options=_options()).read_all(),
        }
        for client, table in answers.items():
            values = table.column(column)
            if pa.types.is_timestamp(values.type):
                values = values.cast(pa.int64())
            steps = np.diff(values.to_numpy())
            inversions = int((steps > 0).sum() if descending else (steps < 0).sum())
            assert (table.num_rows, inversions) == (80_000, 0), (client, sql)


def test_floats_come_back_bit_exact_after_a_flush(
    conn: dbapi.Connection, http: httpx.Client, plain: flight.FlightClient, stream_name: str
) -> None:
    nan = float("nan")
    sent = {
        "v": [nan, 1.5, nan, float("inf"), -0.0, 5e-324, None],
        "c": [nan, 1.5, nan, nan, 1.5, nan, None],  # one number besides NaN: "constant"
    }
    with conn.cursor() as cur:
        cur.adbc_ingest(stream_name, pa.table(sent), mode="create_append")
    sql = f"SELECT v, c FROM {stream_name} ORDER BY _offset"
    above = f"SELECT count(*) AS n FROM {stream_name} WHERE c > 2"
    for moment in ("buffered", "flushed", "compacted"):
        if moment == "flushed":
            _action(plain, "flush", stream_name)
        if moment == "compacted":
            _action(plain, "compact", stream_name)
        for got in (_adbc(conn, sql), _http_arrow(http, sql)):
            for column, values in sent.items():
                assert _bits(got.column(column).to_pylist()) == _bits(values), moment
        assert _adbc(conn, above).column("n").to_pylist() == [4], moment  # NaN > 2


def test_an_http_producer_sending_ints_then_floats_widens_the_column(
    conn: dbapi.Connection, http: httpx.Client, plain: flight.FlightClient, stream_name: str
) -> None:
    assert _post(http, stream_name, [{"latency_ms": 12}, {"latency_ms": 30}]).status_code == 200
    _action(plain, "flush", stream_name)
    r = _post(http, stream_name, [{"latency_ms": 12.5}])
    assert r.status_code == 200, r.text
    got = _adbc(conn, f"SELECT latency_ms FROM {stream_name} ORDER BY _offset")
    assert got.schema.field("latency_ms").type == pa.float64()
    assert got.column("latency_ms").to_pylist() == [12.0, 30.0, 12.5]
    refused = _post(http, stream_name, [{"latency_ms": "slow"}])
    assert refused.status_code == 400
    assert refused.json()["message"] == (
        f"column 'latency_ms' has type string, but stream '{stream_name}' has double"
    )


def test_case_variant_names_are_refused_over_http_and_flight(
    arrowlog_serve: ArrowlogServe,
    http: httpx.Client,
    plain: flight.FlightClient,
    stream_name: str,
) -> None:
    streams = arrowlog_serve.data_dir / "streams"
    before = sorted(p.name for p in streams.iterdir()) if streams.exists() else []
    # In one record: refused whole, and no stream is created.
    r = _post(http, stream_name, [{"A": 1, "a": 2}])
    assert r.status_code == 400
    assert "differ only in case" in r.json()["message"]
    table = pa.table({"b": [1], "B": [2]})
    descriptor = flight.FlightDescriptor.for_path(stream_name)
    with pytest.raises(pa.ArrowInvalid, match="differ only in case"):
        writer, reader = plain.do_put(descriptor, table.schema, options=_options())
        writer.write_table(table)
        writer.done_writing()
        reader.read()
        writer.close()
    after = sorted(p.name for p in streams.iterdir()) if streams.exists() else []
    assert after == before  # nothing left behind
    # Against the stream's own columns, and a variant of the stream's name.
    assert _post(http, stream_name, [{"b": 1}]).status_code == 200
    r = _post(http, stream_name, [{"B": 2}])
    assert r.status_code == 400 and "differs only in case" in r.json()["message"]
    r = _post(http, stream_name.upper(), [{"b": 2}])
    assert r.status_code == 400 and "differs only in case" in r.json()["message"]
    _action(plain, "flush", stream_name)
    r = http.post("/v1/query", json={"sql": f"SELECT count(*) AS n FROM {stream_name.upper()}"})
    assert r.json()["rows"] == [[1]]


def test_json_fields_null_in_every_record_wait_for_a_value_and_arrow_nulls_are_refused(
    conn: dbapi.Connection, http: httpx.Client, stream_name: str
) -> None:
    assert _post(http, stream_name, [{"msg": "a", "extra": None}]).status_code == 200
    assert _post(http, stream_name, [{"msg": "b", "extra": 7}]).status_code == 200
    assert _post(http, stream_name, [{"msg": "c", "extra": None}]).status_code == 200
    got = _adbc(conn, f"SELECT msg, extra FROM {stream_name} ORDER BY _offset")
    assert got.to_pylist() == [
        {"msg": "a", "extra": None},
        {"msg": "b", "extra": 7},
        {"msg": "c", "extra": None},
    ]
    with conn.cursor() as cur, pytest.raises(dbapi.Error, match="has Arrow type null"):
        cur.adbc_ingest(stream_name, pa.table({"msg": ["d"], "other": pa.nulls(1)}), mode="append")


def test_nan_then_infinity_over_http_arrow_come_back_as_sent(
    http: httpx.Client, plain: flight.FlightClient, stream_name: str
) -> None:
    sent = [float("nan"), float("inf")]  # Parquet min = max = inf: read back [inf, inf]
    sink = pa.BufferOutputStream()
    table = pa.table({"v": pa.array(sent)})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    r = http.post(
        f"/v1/streams/{stream_name}/records",
        content=sink.getvalue().to_pybytes(),
        headers={"Content-Type": ARROW},
    )
    assert r.status_code == 200, r.text
    _action(plain, "flush", stream_name)
    got = _http_arrow(http, f"SELECT v FROM {stream_name} ORDER BY _offset")
    assert _bits(got.column("v").to_pylist()) == _bits(sent)
