"""arrowlog.connect() against a real server process: the remote Log's verbs and errors."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import arrowlog
from tests.conftest import (
    TEST_TOKEN,
    FlightServer,
    free_port,
    self_signed_cert,
    start_flight_server,
)


@pytest.fixture
def client(flight_server: FlightServer) -> Iterator[arrowlog.Client]:
    with arrowlog.connect(flight_server.url) as c:
        yield c


def test_append_and_sql(client: arrowlog.Client, stream_name: str) -> None:
    first = client.append(
        stream_name,
        [
            {"ts": "2026-11-23T10:00:00Z", "level": "INFO", "msg": "up"},
            {"ts": "2026-11-23T10:00:01Z", "level": "ERROR", "msg": "down"},
        ],
    )
    assert first == arrowlog.AppendResult(stream_name, 2, 0, 1)
    result = client.sql(
        f"SELECT level, count(*) AS c FROM {stream_name} GROUP BY level ORDER BY level"
    )
    assert isinstance(result, arrowlog.QueryResult)
    assert result.to_arrow().to_pydict() == {"level": ["ERROR", "INFO"], "c": [1, 1]}
    assert result.to_pandas()["c"].tolist() == [1, 1]  # iterating again re-runs the query
    assert result.to_polars()["level"].to_list() == ["ERROR", "INFO"]
    schema = client.sql(f"SELECT * FROM {stream_name}").schema
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")  # parsed like Log.append


def test_append_accepts_what_log_append_accepts(client: arrowlog.Client, stream_name: str) -> None:
    inputs = [
        [{"n": 1}, {"n": 2}],
        {"n": [3, 4]},
        pa.table({"n": [5, 6]}),
        pa.record_batch({"n": [7, 8]}),
        pd.DataFrame({"n": [9, 10]}),
        pl.DataFrame({"n": [11, 12]}),
        pa.concat_tables([pa.table({"n": [13]}), pa.table({"n": [14]})]),  # two chunks
    ]
    results = [client.append(stream_name, data) for data in inputs]
    assert [(r.first_offset, r.last_offset) for r in results] == [
        (i, i + 1) for i in range(0, 14, 2)
    ]
    values = client.sql(f"SELECT n FROM {stream_name} ORDER BY _offset").to_arrow()
    assert values.column("n").to_pylist() == list(range(1, 15))


def test_sql_streams_batches(client: arrowlog.Client) -> None:
    result = client.sql("SELECT value AS n FROM range(200000)")
    sizes = [batch.num_rows for batch in result]
    assert sum(sizes) == 200_000 and len(sizes) >= 3
    partial = iter(client.sql("SELECT value FROM range(1000000)"))
    assert next(partial).num_rows > 0
    partial.close()  # abandoning a result half-way cancels its stream


def test_read(client: arrowlog.Client, stream_name: str) -> None:
    client.append(stream_name, {"n": list(range(50))})
    table = client.read(stream_name, from_offset=10, limit=5)
    assert table.column("_offset").to_pylist() == [10, 11, 12, 13, 14]
    assert table.column("n").to_pylist() == [10, 11, 12, 13, 14]
    assert client.read(stream_name, from_offset=100).num_rows == 0


def test_iter_read_and_tail_in_batch_rows(client: arrowlog.Client, stream_name: str) -> None:
    client.append(stream_name, {"n": list(range(10))})
    replayed = list(client.iter_read(stream_name, 2, batch_rows=3))
    assert [t.num_rows for t in replayed] == [3, 3, 2]
    assert pa.concat_tables(replayed).column("_offset").to_pylist() == list(range(2, 10))
    assert list(client.iter_read(stream_name, 10)) == []
    tail = client.tail(stream_name, 1, batch_rows=4, poll=0.1)
    assert [next(tail).num_rows for _ in range(3)] == [4, 4, 1]
    tail.close()
    with pytest.raises(arrowlog.InvalidInput, match="batch_rows must be at least 1"):
        next(client.iter_read(stream_name, batch_rows=0))


def test_tail_receives_appends_in_order(client: arrowlog.Client, stream_name: str) -> None:
    client.append(stream_name, {"n": [0, 1, 2]})
    stop = threading.Event()
    offsets: list[int] = []
    total = 3 + 30 * 4
    received_all = threading.Event()

    def follow() -> None:
        for table in client.tail(stream_name, from_offset=1, stop=stop):
            offsets.extend(table.column("_offset").to_pylist())
            if len(offsets) >= total - 1:
                received_all.set()

    follower = threading.Thread(target=follow)
    follower.start()
    for i in range(30):  # appended while the tail runs
        client.append(stream_name, {"n": [3 + 4 * i + k for k in range(4)]})
    assert received_all.wait(30), offsets
    stop.set()
    follower.join(10)
    assert not follower.is_alive()
    assert offsets == list(range(1, total))


def test_tail_follows_schema_evolution(client: arrowlog.Client, stream_name: str) -> None:
    client.append(stream_name, {"n": [0]})
    tail = client.tail(stream_name)
    assert next(tail).column("n").to_pylist() == [0]
    client.append(stream_name, {"n": [1], "extra": ["new column"]})
    evolved = next(tail)  # the server ended the old stream; the client resubscribed
    assert evolved.column("_offset").to_pylist() == [1]
    assert evolved.column("extra").to_pylist() == ["new column"]
    tail.close()


def test_streams_describe_flush(client: arrowlog.Client, stream_name: str) -> None:
    client.append(stream_name, {"n": [1, 2, 3]})
    assert client.describe(stream_name).buffered_rows == 3
    client.flush(stream_name)
    described = client.describe(stream_name)
    assert isinstance(described, arrowlog.StreamInfo)
    assert (described.rows, described.buffered_rows, described.last_offset) == (3, 0, 2)
    listed = {s.name: s for s in client.streams()}
    assert listed[stream_name] == described
    assert listed[stream_name].schema.names == ["n", "_offset", "_ingested_at"]
    assert client.schema(stream_name) == described.schema
    client.flush()


def test_remote_answers_equal_the_embedded_ones(tmp_path: Path) -> None:
    """describe, streams and compact answer through a server what the embedded Log answers.

    The server's data directory is read embedded once the server stopped; compaction runs
    remotely on it and embedded on a copy taken at the same point.
    """
    ts = pa.timestamp("us", tz="UTC")
    server = start_flight_server(tmp_path)
    with arrowlog.connect(server.url) as c:
        for i in range(3):  # three small segments of one day: something to compact
            c.append(
                "events",
                pa.table(
                    {
                        "ts": pa.array([i * 1_000_000, i * 1_000_000 + 1], ts),
                        "tags": pa.array([{"k": i}, None], pa.struct([("k", pa.int8())])),
                        "price": pa.array([i, None], pa.decimal128(9, 2)),
                    }
                ),
            )
            c.flush("events")
        c.append("other", {"n": [1, 2]})
        c.flush()
        described, listed = c.describe("events"), c.streams()
    assert server.process.stop() == 0
    shutil.copytree(server.data_dir, tmp_path / "twin")
    with arrowlog.open(server.data_dir) as log:
        assert described == log.describe("events")
        assert described.schema.equals(log.describe("events").schema, check_metadata=True)
        assert listed == log.streams()
    assert [type(i) for i in listed] == [arrowlog.StreamInfo] * 2

    server = start_flight_server(tmp_path)
    try:
        with arrowlog.connect(server.url) as c:
            remote = c.compact()
    finally:
        assert server.process.stop() == 0
    with arrowlog.open(tmp_path / "twin") as log:
        embedded = log.compact()
    assert [type(r) for r in remote] == [arrowlog.CompactionResult] * 2

    def timeless(results: list[arrowlog.CompactionResult]) -> list[arrowlog.CompactionResult]:
        return sorted((dataclasses.replace(r, seconds=0.0) for r in results), key=str)

    assert timeless(remote) == timeless(embedded)
    assert {r.stream: r.files_removed for r in remote}["events"] == 3


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: c.sql("SELEC 1"), arrowlog.InvalidInput, "SQL error: ParserError"),
        (
            lambda c: c.sql("SELECT * FROM no_such_stream"),
            arrowlog.StreamNotFound,
            "stream 'no_such_stream' not found (Error during planning",
        ),
        (
            lambda c: c.sql("DROP TABLE x"),
            arrowlog.ReadOnlyQuery,
            "DropTable is not allowed: arrowlog is read-only through SQL (DDL statements are refused)",
        ),
        (
            lambda c: c.describe("no_such_stream"),
            arrowlog.StreamNotFound,
            "stream 'no_such_stream' not found",
        ),
        (
            lambda c: c.read("no_such_stream"),
            arrowlog.StreamNotFound,
            "stream 'no_such_stream' not found",
        ),
        (
            lambda c: c.append("bad name", {"n": [1]}),
            arrowlog.InvalidInput,
            "invalid stream name 'bad name'",
        ),
        (
            lambda c: c.append("errors_typed", {"n": ["x"]}),
            arrowlog.InvalidInput,
            "column 'n' has type string, but stream 'errors_typed' has int64",
        ),
        (
            lambda c: c.sql("SELECT 1 / (value - 2) FROM range(5)").to_arrow(),
            arrowlog.InvalidInput,
            "DataFusion error: Arrow error: Divide by zero error",
        ),
    ],
)
def test_errors_are_arrowlog_errors_with_the_server_message(
    client: arrowlog.Client, call: object, error: type, message: str
) -> None:
    client.append("errors_typed", {"n": [1]})
    with pytest.raises(error) as info:
        call(client)  # type: ignore[operator]
    assert str(info.value) == message or str(info.value).startswith(message)
    assert "Detail:" not in str(info.value) and "Traceback" not in str(info.value)
    assert client.sql("SELECT 1 AS x").to_arrow().num_rows == 1  # the server keeps serving


def test_token(flight_server_with_token: FlightServer) -> None:
    with arrowlog.connect(flight_server_with_token.url, token=TEST_TOKEN) as c:
        assert c.append("client_secured", {"n": [1, 2]}).accepted == 2
        assert c.sql("SELECT count(*) AS c FROM client_secured").to_arrow()["c"].to_pylist() == [2]
    for token in (None, "wrong"):
        with arrowlog.connect(flight_server_with_token.url, token=token) as c:
            with pytest.raises(arrowlog.Unauthenticated) as info:
                c.streams()
            assert TEST_TOKEN not in str(info.value)


def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path / "tls")
    server = start_flight_server(tmp_path, tls=(cert, key), extra_args=["--token", TEST_TOKEN])
    try:
        with arrowlog.connect(server.url, token=TEST_TOKEN, tls_root_certs=cert) as c:
            c.append("tls_stream", {"n": [1, 2, 3]})
            assert c.read("tls_stream", 0, 10).num_rows == 3
    finally:
        assert server.process.stop() == 0


def test_unreachable_server_is_unavailable() -> None:
    with arrowlog.connect(f"grpc://127.0.0.1:{free_port()}") as c:
        started = time.monotonic()
        with pytest.raises(arrowlog.Unavailable):
            c.streams()
        assert time.monotonic() - started < 30
