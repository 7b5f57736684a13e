"""The HTTP API of a real ``arrowlog serve`` process, driven with httpx.

One server (with a token, bodies limited to 1 MiB) serves the whole module; every test
writes to a stream of its own.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_TOKEN
from tests.integration.conftest import ArrowlogServe

NDJSON = {"Content-Type": "application/x-ndjson"}
LIMIT = 1 << 20  # the fixture's ARROWLOG_MAX_BODY_BYTES


@pytest.fixture
def http(arrowlog_serve: ArrowlogServe) -> Iterator[httpx.Client]:
    with arrowlog_serve.client() as client:
        yield client


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def records(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "ts": f"2026-11-23T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "level": "ERROR" if i % 4 == 0 else "INFO",
            "n": i,
        }
        for i in range(start, start + n)
    ]


def append(http: httpx.Client, stream: str, body: bytes, **headers: str) -> dict[str, Any]:
    r = http.post(f"/v1/streams/{stream}/records", content=body, headers={**NDJSON, **headers})
    assert r.status_code == 200, r.text
    return r.json()


def query(http: httpx.Client, sql: str, accept: str | None = None) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return http.post("/v1/query", json={"sql": sql}, headers=headers)


def count(http: httpx.Client, stream: str) -> int:
    r = query(http, f"SELECT count(*) AS n FROM {stream}")
    assert r.status_code == 200, r.text
    return r.json()["rows"][0][0]


def assert_error(r: httpx.Response, status: int, error: str, message: str | None = None) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == error, body
    if message is not None:
        assert body["message"] == message
    return body["message"]


# -- auth and health ---------------------------------------------------------------------


def test_healthz_needs_no_token(arrowlog_serve: ArrowlogServe) -> None:
    with arrowlog_serve.client(token=None) as anonymous:
        r = anonymous.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


ROUTES = [
    ("POST", "/v1/streams/auth_probe/records"),
    ("POST", "/v1/query"),
    ("GET", "/v1/streams"),
    ("GET", "/v1/streams/auth_probe"),
    ("GET", "/v1/streams/auth_probe/tail"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_every_route_but_healthz_needs_the_token(
    arrowlog_serve: ArrowlogServe, http: httpx.Client, method: str, path: str, token: str | None
) -> None:
    body = (
        ndjson(records(2))
        if path.endswith("/records")
        else json.dumps({"sql": "SELECT 1"}).encode()
    )
    with arrowlog_serve.client(token=token) as client:
        r = client.request(method, path, content=body if method == "POST" else None, headers=NDJSON)
    expected = "missing bearer token: send the header 'Authorization: Bearer <token>'"
    assert_error(r, 401, "Unauthenticated", expected if token is None else "invalid bearer token")
    assert r.headers["www-authenticate"] == "Bearer"
    assert "wrong-token" not in r.text and TEST_TOKEN not in r.text
    # A refused append wrote nothing: the stream was never created.
    assert_error(http.get("/v1/streams/auth_probe"), 404, "StreamNotFound")


def test_basic_auth_is_not_a_bearer_token(arrowlog_serve: ArrowlogServe) -> None:
    with httpx.Client(base_url=arrowlog_serve.http_url, auth=("user", TEST_TOKEN)) as client:
        assert_error(client.get("/v1/streams"), 401, "Unauthenticated")


# -- ingest --------------------------------------------------------------------------------


def test_ndjson_ingest_answers_offsets_and_every_format_reads_it(
    http: httpx.Client, stream_name: str
) -> None:
    assert append(http, stream_name, ndjson(records(3))) == {
        "stream": stream_name,
        "accepted": 3,
        "first_offset": 0,
        "last_offset": 2,
        "shard": 0,
        "partition": 0,
    }
    second = append(http, stream_name, ndjson(records(2, start=3)))
    assert (second["first_offset"], second["last_offset"]) == (3, 4)

    sql = f"SELECT n, level, _offset FROM {stream_name} ORDER BY _offset"
    expected = [[i, "ERROR" if i % 4 == 0 else "INFO", i] for i in range(5)]

    r = query(http, sql)  # JSON is the default
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "columns": [
            {"name": "n", "type": "int64"},
            {"name": "level", "type": "string"},
            {"name": "_offset", "type": "int64"},
        ],
        "rows": expected,
    }

    r = query(http, sql, "application/x-ndjson")
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines == [{"n": n, "level": lv, "_offset": o} for n, lv, o in expected]

    r = query(http, sql, "text/csv")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["n", "level", "_offset"]
    assert rows[1:] == [[str(n), lv, str(o)] for n, lv, o in expected]

    r = query(http, sql, "application/vnd.apache.arrow.stream")
    assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.schema.names == ["n", "level", "_offset"]
    assert [list(row.values()) for row in table.to_pylist()] == expected


def test_json_array_arrow_ipc_and_gzip_bodies(http: httpx.Client, stream_name: str) -> None:
    r = http.post(
        f"/v1/streams/{stream_name}/records",
        content=json.dumps(records(4)).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 4

    table = pa.table({"n": pa.array([100, 101], pa.int64()), "level": ["INFO", "WARN"]})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    r = http.post(
        f"/v1/streams/{stream_name}/records",
        content=sink.getvalue(),
        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["first_offset"], r.json()["last_offset"]) == (4, 5)

    gz = append(
        http, stream_name, gzip.compress(ndjson(records(3))), **{"Content-Encoding": "gzip"}
    )
    assert gz["accepted"] == 3
    r = http.post(
        f"/v1/streams/{stream_name}/records",
        content=gzip.compress(json.dumps(records(2)).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200 and r.json()["last_offset"] == 10
    assert count(http, stream_name) == 11


def test_fluent_bit_json_lines_labelled_application_json(
    http: httpx.Client, stream_name: str
) -> None:
    # What Fluent Bit's http output sends with `Format json_lines` before 3.0.x.
    body = b'{"timestamp":"2026-11-23T10:00:01.000681Z","log":"a"}\n{"timestamp":"2026-11-23T10:00:02.5Z","log":"b"}\n'
    r = http.post(
        f"/v1/streams/{stream_name}/records",
        content=gzip.compress(body),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    info = http.get(f"/v1/streams/{stream_name}").json()
    assert info["time_column"] == "timestamp"
    assert info["min_time"] == "2026-11-23T10:00:01.000681+00:00"


# -- bad input: the right status and message, and nothing changes -------------------------


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


BAD_APPENDS = {
    "malformed json names the line": (
        {"content": b'{"n": 1}\n{"n": 2}\n{"n": }\n', "headers": NDJSON},
        400, "InvalidInput", "malformed NDJSON on line 3: Invalid value.",
    ),
    "malformed json array names line and column": (
        {"content": b'[{"n": 1},\n {"n": 2,}]', "headers": {"Content-Type": "application/json"}},
        400, "InvalidInput",
        "malformed JSON on line 2, column 10: Expecting property name enclosed in double quotes",
    ),
    "type conflict names the column": (
        {"content": b'{"n": "seven"}\n', "headers": NDJSON},
        400, "InvalidInput", "column 'n' has type string, but stream '{stream}' has int64",
    ),
    "over the limit by content-length": (
        {"content": b" " * (LIMIT + 1), "headers": NDJSON},
        413, "BatchTooLarge",
        f"request body of {LIMIT + 1} bytes is over the limit of {LIMIT} bytes (max_body_bytes)",
    ),
    "over the limit while streaming (chunked)": (
        {"content": _chunks(b" " * (LIMIT + 100_000)), "headers": NDJSON},
        413, "BatchTooLarge",
        f"request body of more than {LIMIT} bytes is over the limit of {LIMIT} bytes (max_body_bytes)",
    ),
    "over the limit once un-gzipped": (
        {"content": gzip.compress(b"\n" * (2 * LIMIT)), "headers": {**NDJSON, "Content-Encoding": "gzip"}},
        413, "BatchTooLarge",
        f"request body, un-gzipped, is over the limit of {LIMIT} bytes (max_body_bytes)",
    ),
    "unsupported content type": (
        {"content": b'{"n": 1}\n', "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        415, "UnsupportedMediaType",
        "unsupported Content-Type 'application/x-www-form-urlencoded': send application/x-ndjson, "
        "application/json or application/vnd.apache.arrow.stream",
    ),
    "unsupported content encoding": (
        {"content": b'{"n": 1}\n', "headers": {**NDJSON, "Content-Encoding": "br"}},
        415, "UnsupportedMediaType", "unsupported Content-Encoding 'br': send gzip or identity",
    ),
    "not gzip": (
        {"content": b'{"n": 1}\n', "headers": {**NDJSON, "Content-Encoding": "gzip"}},
        400, "InvalidInput", None,
    ),
    "empty body": ({"content": b"", "headers": NDJSON}, 400, "InvalidInput", "the body holds no records"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_APPENDS), ids=list(BAD_APPENDS))
def test_bad_appends_are_refused_and_change_nothing(
    http: httpx.Client, stream_name: str, case: str
) -> None:
    request, status, error, message = BAD_APPENDS[case]
    append(http, stream_name, ndjson(records(5)))
    r = http.post(f"/v1/streams/{stream_name}/records", **request)
    expected = None if message is None else message.format(stream=stream_name)
    assert_error(r, status, error, expected)
    assert count(http, stream_name) == 5
    assert append(http, stream_name, ndjson(records(1)))["first_offset"] == 5  # no gap either


# One JSON policy for both body kinds: (first record, offending record, reason).
JSON_POLICY = {
    "overflow": ('{"n": 1}', '{"n": 1e400}', "field 'n' holds 1e400, which is too large for a double"),
    "NaN": ('{"n": 1.5}', '{"n": NaN}', "field 'n' holds NaN, which is not JSON (JSON has no NaN or Infinity)"),
    "Infinity": ('{"n": 1.5}', '{"n": Infinity}', "field 'n' holds Infinity, which is not JSON (JSON has no NaN or Infinity)"),
    "duplicate key": ('{"n": 1}', '{"n": 1, "n": 2}', "the key 'n' appears twice in one object"),
    "beyond int64": (
        '{"n": 1}', '{"n": 18446744073709551615}',
        "field 'n' holds 18446744073709551615, an integer outside the int64 range "
        "(send it as a string to keep it exact)",
    ),
    "rounded by a double": (
        '{"x": 0.5}', '{"x": 9007199254740993}',
        "field 'x' holds 9007199254740993, which a double cannot hold exactly "
        "(other values of 'x' have a fraction or exponent, which makes it a double)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", ["ndjson", "json array"])
@pytest.mark.parametrize("case", list(JSON_POLICY), ids=list(JSON_POLICY))
def test_both_json_body_kinds_refuse_what_would_change_silently(
    http: httpx.Client, stream_name: str, case: str, kind: str
) -> None:
    append(http, stream_name, ndjson(records(5)))
    good, bad, reason = JSON_POLICY[case]
    if kind == "ndjson":
        body, ctype = f"{good}\n{bad}\n".encode(), "application/x-ndjson"
        expected = f"malformed NDJSON on line 2: {reason}"
    else:
        body, ctype = f"[{good}, {bad}]".encode(), "application/json"
        expected = f"malformed JSON in record 2: {reason}"
    r = http.post(
        f"/v1/streams/{stream_name}/records", content=body, headers={"Content-Type": ctype}
    )
    assert_error(r, 400, "InvalidInput", expected)
    assert count(http, stream_name) == 5


def test_both_json_body_kinds_store_the_same_values(http: httpx.Client, stream_name: str) -> None:
    lines = [
        '{"n": 9223372036854775807, "x": 1e308, "s": "1e400"}',
        '{"n": -9223372036854775808, "x": 1e-400, "s": "NaN", "l": [null, 2]}',
    ]
    append(http, f"{stream_name}_a", "\n".join(lines).encode())
    r = http.post(
        f"/v1/streams/{stream_name}_b/records",
        content=f"[{','.join(lines)}]".encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    rows = [
        query(http, f"SELECT n, x, s, l FROM {stream_name}_{s} ORDER BY _offset").json()
        for s in "ab"
    ]
    assert rows[0] == rows[1]
    assert rows[0]["rows"] == [[2**63 - 1, 1e308, "1e400", None], [-(2**63), 0.0, "NaN", [None, 2]]]


@pytest.mark.parametrize("name", ["bad-name", "9lives", "x" * 129])
def test_invalid_stream_names(http: httpx.Client, name: str) -> None:
    r = http.post(f"/v1/streams/{name}/records", content=ndjson(records(1)), headers=NDJSON)
    for message in [
        assert_error(r, 400, "InvalidInput"),
        assert_error(http.get(f"/v1/streams/{name}"), 400, "InvalidInput"),
    ]:
        assert message.startswith(f"invalid stream name {name[:20]!r}"[:-1])
        assert message.endswith(": use 1-128 letters, digits or '_', not starting with a digit")


def test_a_refused_first_batch_creates_no_stream(http: httpx.Client, stream_name: str) -> None:
    r = http.post(
        f"/v1/streams/{stream_name}/records", content=b'{"n": 1}\n{"n": }\n', headers=NDJSON
    )
    assert_error(r, 400, "InvalidInput")
    assert_error(http.get(f"/v1/streams/{stream_name}"), 404, "StreamNotFound")
    assert stream_name not in [s["name"] for s in http.get("/v1/streams").json()["streams"]]


def test_bad_queries(http: httpx.Client, stream_name: str) -> None:
    append(http, stream_name, ndjson(records(3)))
    message = assert_error(query(http, "SELEC 1"), 400, "InvalidInput")
    assert "ParserError" in message and "SELEC" in message  # the engine's own words
    message = assert_error(query(http, f"SELECT nope FROM {stream_name}"), 400, "InvalidInput")
    assert "nope" in message
    assert_error(
        query(http, f"DROP TABLE {stream_name}"),
        403,
        "ReadOnlyQuery",
        "DropTable is not allowed: arrowlog is read-only through SQL (DDL statements are refused)",
    )
    assert_error(query(http, f"INSERT INTO {stream_name} (n) VALUES (1)"), 403, "ReadOnlyQuery")
    assert_error(query(http, "SELECT * FROM no_such_stream"), 404, "StreamNotFound")
    assert_error(
        query(http, "SELECT 1", accept="image/png"),
        406,
        "NotAcceptable",
        "cannot answer in any type of Accept: 'image/png': ask for application/json (default), "
        "application/x-ndjson, text/csv or application/vnd.apache.arrow.stream",
    )
    r = http.post("/v1/query", json={"query": "SELECT 1"})
    assert_error(
        r,
        400,
        "InvalidInput",
        "invalid query request: sql: Field required; query: Extra inputs are not permitted",
    )
    assert count(http, stream_name) == 3


def test_query_body_must_be_sent_as_json(http: httpx.Client) -> None:
    # curl -d '{"sql": ...}' says application/x-www-form-urlencoded, which a page of any
    # site may send without a CORS preflight: refused, with the header to send instead.
    r = http.post(
        "/v1/query",
        content=b'{"sql": "SELECT 41 + 1 AS answer"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(
        r,
        415,
        "UnsupportedMediaType",
        "the query must be sent as application/json, not Content-Type "
        "'application/x-www-form-urlencoded' (curl: -H 'Content-Type: application/json')",
    )
    r = http.post(
        "/v1/query",
        content=b'{"sql": "SELECT 41 + 1 AS answer"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[42]]


# -- query: streamed, both engines ---------------------------------------------------------


def test_large_results_stream(http: httpx.Client, stream_name: str) -> None:
    for start in (0, 60_000):
        body = b"".join(b'{"n":%d}\n' % i for i in range(start, start + 60_000))
        append(http, stream_name, body)
    sql = f"SELECT n FROM {stream_name} ORDER BY n"
    with http.stream(
        "POST", "/v1/query", json={"sql": sql}, headers={"Accept": "application/x-ndjson"}
    ) as r:
        assert r.status_code == 200
        assert r.headers.get("transfer-encoding") == "chunked"  # streamed, not sized up front
        lines = sum(1 for _ in r.iter_lines())
    assert lines == 120_000
    document = query(http, sql).json()
    assert [row[0] for row in document["rows"]] == list(range(120_000))
    csv_lines = query(http, sql, "text/csv").text.splitlines()
    assert len(csv_lines) == 120_001
    table = pa.ipc.open_stream(
        query(http, sql, "application/vnd.apache.arrow.stream").content
    ).read_all()
    assert table.num_rows == 120_000 and table.column("n").to_pylist() == list(range(120_000))


def test_duckdb_engine(http: httpx.Client, stream_name: str) -> None:
    append(http, stream_name, ndjson(records(8)))
    r = http.post(
        "/v1/query", json={"sql": f"SELECT count(*) AS n FROM {stream_name}", "engine": "duckdb"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[8]]


def test_empty_result_in_every_format(http: httpx.Client, stream_name: str) -> None:
    append(http, stream_name, ndjson(records(2)))
    sql = f"SELECT n FROM {stream_name} WHERE n < 0"
    assert query(http, sql).json() == {"columns": [{"name": "n", "type": "int64"}], "rows": []}
    assert query(http, sql, "application/x-ndjson").text == ""
    assert query(http, sql, "text/csv").text == '"n"\n'
    table = pa.ipc.open_stream(
        query(http, sql, "application/vnd.apache.arrow.stream").content
    ).read_all()
    assert table.num_rows == 0 and table.schema.names == ["n"]


# -- streams -------------------------------------------------------------------------------


def test_list_and_describe_streams(http: httpx.Client, stream_name: str) -> None:
    append(http, stream_name, ndjson(records(7)))
    info = http.get(f"/v1/streams/{stream_name}").json()
    assert info["name"] == stream_name
    assert (info["rows"], info["first_offset"], info["last_offset"]) == (7, 0, 6)
    assert info["time_column"] == "ts"
    assert [c["name"] for c in info["schema"]] == ["ts", "level", "n", "_offset", "_ingested_at"]
    assert info["min_time"] == "2026-11-23T10:00:00+00:00"
    assert info["max_time"] == "2026-11-23T10:00:06+00:00"
    assert {"bytes", "segments", "buffered_rows"} <= info.keys()
    listed = {s["name"]: s for s in http.get("/v1/streams").json()["streams"]}
    assert listed[stream_name] == info
    assert_error(
        http.get("/v1/streams/no_such_stream"),
        404,
        "StreamNotFound",
        "stream 'no_such_stream' not found",
    )


# -- metrics -------------------------------------------------------------------------------


def scrape(http: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def metric(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_parse_and_counters_move(http: httpx.Client, stream_name: str) -> None:
    before = scrape(http)
    append(http, stream_name, ndjson(records(10)))
    append(http, stream_name, ndjson(records(5)))
    assert query(http, f"SELECT count(*) FROM {stream_name}").status_code == 200
    assert query(http, "SELEC").status_code == 400
    after = scrape(http)

    assert metric(after, "arrowlog_ingested_records_total", stream=stream_name) == 15
    assert metric(after, "arrowlog_ingested_bytes_total", stream=stream_name) > 0
    assert (
        metric(after, "arrowlog_buffered_rows", stream=stream_name)
        + metric(after, "arrowlog_flushed_rows_total", stream=stream_name)
        == 15
    )
    assert metric(after, "arrowlog_next_offset", stream=stream_name) == 15
    for name, labels, at_least in [
        ("arrowlog_wal_fsync_seconds_count", {}, 1),  # group commit may share fsyncs
        ("arrowlog_queries_total", {"engine": "datafusion"}, 2),
        ("arrowlog_query_errors_total", {"engine": "datafusion", "error": "InvalidInput"}, 1),
        (
            "arrowlog_http_requests_total",
            {"method": "POST", "route": "/v1/streams/{stream}/records", "status": "200"},
            2,
        ),
        (
            "arrowlog_http_requests_total",
            {"method": "POST", "route": "/v1/query", "status": "400"},
            1,
        ),
        (
            "arrowlog_http_request_duration_seconds_count",
            {"method": "POST", "route": "/v1/query"},
            2,
        ),
    ]:
        grew = metric(after, name, **labels) - metric(before, name, **labels)
        assert grew >= at_least, (name, labels, grew)
    assert metric(after, "arrowlog_streams") >= 1
    assert metric(after, "arrowlog_wal_files") >= 1
    assert metric(after, "process_resident_memory_bytes") > 0


# -- a shipper: NDJSON chunks from several threads -----------------------------------------


def test_shipper_threads_posting_chunks_lose_and_duplicate_nothing(
    arrowlog_serve: ArrowlogServe, http: httpx.Client, stream_name: str
) -> None:
    threads, chunks, per_chunk = 4, 20, 250
    answers: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def ship(worker: int) -> None:
        try:
            with arrowlog_serve.client() as client:
                for chunk in range(chunks):
                    body = ndjson(
                        [
                            {
                                "worker": worker,
                                "chunk": chunk,
                                "i": i,
                                "msg": f"w{worker} c{chunk} i{i}",
                            }
                            for i in range(per_chunk)
                        ]
                    )
                    headers = dict(NDJSON)
                    if chunk % 2:  # like a shipper with compression on
                        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
                    answer = append(client, stream_name, body, **headers)
                    with lock:
                        answers.append(answer)
        except BaseException as e:  # reported below, with the thread's error
            failures.append(e)

    workers = [threading.Thread(target=ship, args=(w,)) for w in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not failures, failures

    total = threads * chunks * per_chunk
    assert sum(a["accepted"] for a in answers) == total
    ranges = sorted((a["first_offset"], a["last_offset"]) for a in answers)
    assert ranges[0][0] == 0 and ranges[-1][1] == total - 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))  # no gap
    r = query(
        http,
        f"SELECT count(*), count(DISTINCT worker * 100000 + chunk * 1000 + i), "
        f"min(_offset), max(_offset) FROM {stream_name}",
    )
    assert r.json()["rows"] == [[total, total, 0, total - 1]]


# -- docs ------------------------------------------------------------------------------------


def test_openapi_documents_every_route_with_examples(http: httpx.Client) -> None:
    api = http.get("/openapi.json").json()
    operations = {
        (m.upper(), path): op for path, ops in api["paths"].items() for m, op in ops.items()
    }
    assert set(operations) == {
        ("POST", "/v1/streams/{stream}/records"),
        ("POST", "/v1/query"),
        ("GET", "/v1/streams"),
        ("GET", "/v1/streams/{stream}"),
        ("GET", "/v1/streams/{stream}/tail"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/v1/cluster"),
    }
    schemas = api["components"]["schemas"]
    for key, op in operations.items():
        assert op.get("summary") and op.get("description"), key
        assert "422" not in op["responses"], key  # validation errors answer 400
        text = json.dumps(op)
        examples = '"example"' in text or '"examples"' in text
        for ref in {r.rsplit("/", 1)[1] for r in _refs(op)}:
            examples = examples or "examples" in schemas[ref]
        assert examples, f"{key} has no example"
    assert api["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    page = http.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _refs(v)


# -- time formats ------------------------------------------------------------------------


def test_shippers_times_become_the_time_column(
    arrowlog_serve: ArrowlogServe, http: httpx.Client, stream_name: str
) -> None:
    import adbc_driver_flightsql
    import adbc_driver_flightsql.dbapi as dbapi
    import pyarrow.flight as flight

    # 2026-12-04T08:00:00Z; Fluent Bit's default "date" is a double of epoch seconds.
    epoch = 1_796_371_200
    fluent, nginx, otel = (f"{stream_name}_{s}" for s in ("fluent", "nginx", "otel"))
    append(
        http,
        fluent,
        ndjson([{"date": epoch + 0.25, "log": "a"}, {"date": epoch + 1.5, "log": "b"}]),
    )
    append(http, fluent, ndjson([{"date": (epoch + 2) * 1000 + 7, "log": "epoch_ms"}]))
    nginx_lines = [
        {"time": "04/Dec/2026:09:00:00 +0100", "status": 200},
        {"time": "Fri, 04 Dec 2026 08:00:01 GMT", "status": 404},
        {"status": 500},  # no time: stays null, placed by its ingestion time
    ]
    append(http, nginx, ndjson(nginx_lines))
    append(http, otel, ndjson([{"timestamp": "2026-12-04T08:00:00.123456789Z", "n": 1}]))

    header = adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value
    options = flight.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {TEST_TOKEN}".encode())]
    )
    client = flight.connect(arrowlog_serve.flight_url)
    try:
        for stream in (fluent, nginx):  # half from segments, half from the buffer
            list(client.do_action(flight.Action("flush", stream.encode()), options))
    finally:
        client.close()
    append(http, nginx, ndjson([{"time": "04/Dec/2026:08:00:02 +0000", "status": 201}]))

    connection = dbapi.connect(
        arrowlog_serve.flight_url, db_kwargs={header: f"Bearer {TEST_TOKEN}"}, autocommit=True
    )
    try:
        with connection.cursor() as cur:
            cur.execute(f"SELECT date, log FROM {fluent} ORDER BY _offset")
            got = cur.fetch_arrow_table()
            cur.execute(f"SELECT time, status FROM {nginx} ORDER BY _offset")
            lines = cur.fetch_arrow_table()
    finally:
        connection.close()
    assert got.schema.field("date").type == pa.timestamp("us", tz="UTC")
    micros = [(epoch * 10**6) + 250_000, (epoch + 1) * 10**6 + 500_000, (epoch + 2) * 10**6 + 7000]
    assert got.column("date").cast(pa.int64()).to_pylist() == micros
    seconds = [epoch, epoch + 1, None, epoch + 2]
    assert [
        None if v is None else v // 10**6 for v in lines.column("time").cast(pa.int64()).to_pylist()
    ] == seconds
    assert lines.column("status").to_pylist() == [200, 404, 500, 201]

    described = http.get(f"/v1/streams/{nginx}").json()
    assert described["time_column"] == "time"
    assert described["segments"] >= 1 and described["buffered_rows"] == 1
    assert http.get(f"/v1/streams/{fluent}").json()["time_column"] == "date"
    r = query(http, f"SELECT count(*) AS n FROM {nginx} WHERE time IS NULL")
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[1]]

    r = query(http, f"SELECT timestamp FROM {otel}", "application/vnd.apache.arrow.stream")
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert table.column("timestamp").cast(pa.int64()).to_pylist() == [epoch * 10**9 + 123456789]
    r = http.get(f"/v1/streams/{otel}")
    assert r.status_code == 200, r.text
    assert r.json()["min_time"].startswith("2026-12-04T08:00:00.123456")


@pytest.mark.parametrize(
    "query",
    ["?shard=0&partition=1", "?shard=-1", "?shard=true", "?partition=2147483648"],
)
def test_a_bad_or_conflicting_shard_is_refused_and_writes_nothing(
    arrowlog_serve: ArrowlogServe, query: str
) -> None:
    """``partition`` is the former name of ``shard``: both, disagreeing, is the caller's
    mistake, named in a 400, and the records are not written."""
    with arrowlog_serve.client() as http:
        r = http.post(
            "/v1/streams/shard_probe/records" + query,
            content=b'{"a": 1}\n',
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "InvalidInput"
        assert http.get("/v1/streams/shard_probe").status_code == 404
