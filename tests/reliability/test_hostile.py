"""Hostile input against one real ``arrowlog serve``: every case is refused clearly, changes
nothing, and the server stays up.

Covered: HTTP bodies (random bytes under every content type, truncated and deeply nested
JSON, huge lines, gzip bombs within the body limit), Flight tickets, Flight SQL commands
and descriptors (random bytes, foreign type URLs), stream names (path traversal,
unicode, very long, NUL) on every route that takes one, and SQL that writes or reads
files, explodes (cross joins, sorts) or nests deeply. After every example: ``/healthz``
answers, Flight answers, the probe stream holds exactly the records acknowledged so far,
and the data directory holds the same entries.

The server runs with a 1 MiB body limit, ``query_timeout`` 2 s and
``query_memory_limit`` 64 MiB, so runaway queries end quickly with their error.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import string
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from google.protobuf import any_pb2
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flight_server import sql_protocol as sp
from flight_server.errors import GENERIC_INTERNAL_MESSAGE
from tests.conftest import TEST_TOKEN
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve
from tests.reliability._support import put_table

LIMIT = 1 << 20
PROBE = "hostile"
BEARER = flight.FlightCallOptions(
    headers=[(b"authorization", f"Bearer {TEST_TOKEN}".encode())], timeout=30
)
VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
FEW = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
# Errors a Flight client may see for a refused request: INVALID_ARGUMENT, NOT_FOUND,
# PERMISSION_DENIED, UNIMPLEMENTED. Never INTERNAL/UNKNOWN (a bug) or UNAVAILABLE (down).
FLIGHT_REFUSALS = (
    pa.ArrowInvalid,
    pa.ArrowKeyError,
    pa.ArrowNotImplementedError,
    flight.FlightUnauthorizedError,
)


@dataclass
class Target:
    """The server under attack, what it must still hold, and its clients."""

    server: ArrowlogServe
    http: httpx.Client
    flight: flight.FlightClient
    rows: int = 0  # records of PROBE acknowledged so far

    def listing(self) -> set[str]:
        root = self.server.data_dir
        return {str(p.relative_to(root.parent)) for p in root.parent.iterdir()} | {
            str(p.relative_to(root)) for p in (root / "streams").iterdir()
        }

    def count(self) -> int:
        r = self.http.post("/v1/query", json={"sql": f"SELECT count(*) FROM {PROBE}"})
        assert r.status_code == 200, r.text
        return r.json()["rows"][0][0]

    def assert_unharmed(self, before: set[str]) -> None:
        """The server answers both protocols and nothing changed."""
        assert self.http.get("/healthz").json()["status"] == "ok"
        actions = list(self.flight.list_actions(BEARER))
        assert actions, "Flight answers"
        assert self.count() == self.rows
        assert self.listing() == before


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = start_arrowlog_serve(
        tmp_path_factory.mktemp("hostile"),
        token=TEST_TOKEN,
        env={
            "ARROWLOG_MAX_BODY_BYTES": str(LIMIT),
            "ARROWLOG_QUERY_TIMEOUT": "2",
            "ARROWLOG_QUERY_MEMORY_LIMIT": str(64 << 20),
        },
    )
    http = server.client(timeout=60)
    client = flight.FlightClient(server.flight_url)
    t = Target(server, http, client)
    r = http.post(
        f"/v1/streams/{PROBE}/records",
        content=b"".join(
            json.dumps({"ts": f"2026-11-23T10:00:{i:02d}Z", "level": "INFO", "n": i}).encode()
            + b"\n"
            for i in range(10)
        ),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    t.rows = 10
    yield t
    client.close()
    http.close()
    code = server.stop()
    assert code == 0, server.process.output()
    # Nothing the attacks sent was logged as an unexpected server failure.
    stderr = server.process.stderr_path.read_text(errors="replace")
    assert "Traceback" not in stderr, stderr[-5000:]


def _assert_refused(r: httpx.Response, *statuses: int) -> dict:
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "message"} and body["message"], body
    return body


# -- HTTP bodies -------------------------------------------------------------------------------

CONTENT_TYPES = [
    "application/x-ndjson",
    "application/json",
    "application/vnd.apache.arrow.stream",
    "text/plain",
    "application/octet-stream",
    "multipart/form-data; boundary=xyz",
    "application/x-www-form-urlencoded",
    "",
]


def _post(t: Target, body: bytes, content_type: str, encoding: str | None = None) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    if encoding:
        headers["Content-Encoding"] = encoding
    return t.http.post(f"/v1/streams/{PROBE}/records", content=body, headers=headers)


def _check_append(t: Target, r: httpx.Response, before: set[str]) -> None:
    """Accepted whole (then the count grew by exactly that) or refused with a 4xx."""
    if r.status_code == 200:
        t.rows += r.json()["accepted"]
    else:
        _assert_refused(r, 400, 413, 415)
    t.assert_unharmed(before)


@FEW
@given(
    body=st.binary(max_size=4096),
    content_type=st.sampled_from(CONTENT_TYPES),
    encoding=st.sampled_from([None, "gzip", "br", "gzip, gzip"]),
)
def test_random_bytes_as_a_body(
    target: Target, body: bytes, content_type: str, encoding: str | None
) -> None:
    before = target.listing()
    _check_append(target, _post(target, body, content_type, encoding), before)


@FEW
@given(
    records=st.lists(
        st.fixed_dictionaries(
            {"n": st.integers(0, 10**6), "level": st.sampled_from(["INFO", "ERROR"])}
        ),
        min_size=1,
        max_size=20,
    ),
    cut=st.floats(0, 1, exclude_max=True),
    as_array=st.booleans(),
)
def test_truncated_json(target: Target, records: list[dict], cut: float, as_array: bool) -> None:
    before = target.listing()
    if as_array:
        body, ctype = json.dumps(records).encode(), "application/json"
    else:
        body, ctype = (
            b"".join(json.dumps(r).encode() + b"\n" for r in records),
            "application/x-ndjson",
        )
    body = body[: max(1, int(len(body) * cut))]
    _check_append(target, _post(target, body, ctype), before)


@pytest.mark.parametrize("ctype", ["application/x-ndjson", "application/json"])
@pytest.mark.parametrize("depth", [64, 1_000, 100_000, 400_000])
@pytest.mark.parametrize("shape", ["array", "object"])
def test_deeply_nested_json(target: Target, ctype: str, depth: int, shape: str) -> None:
    before = target.listing()
    inner = "[" * depth + "]" * depth if shape == "array" else '{"a":' * depth + "1" + "}" * depth
    record = '{"n": 1, "deep": ' + inner + "}"
    body = ("[" + record + "]" if ctype == "application/json" else record + "\n").encode()
    r = _post(target, body, ctype)
    assert r.status_code != 200 or depth <= 64, r.text[:300]
    _check_append(target, r, before)


@pytest.mark.parametrize(
    "size", [LIMIT // 2, LIMIT - 64, LIMIT + 1, 4 * LIMIT], ids=["half", "just-under", "over", "4x"]
)
def test_huge_lines(target: Target, size: int) -> None:
    before = target.listing()
    line = b'{"n": 1, "msg": "' + b"x" * size + b'"}\n'
    r = _post(target, line, "application/x-ndjson")
    if len(line) > LIMIT:
        assert _assert_refused(r, 413)["error"] == "BatchTooLarge"
    _check_append(target, r, before)


@pytest.mark.parametrize(
    "ctype", ["application/x-ndjson", "application/json", "application/vnd.apache.arrow.stream"]
)
@pytest.mark.parametrize(
    "inflated", [LIMIT + 1, 64 * LIMIT, 256 * LIMIT], ids=["just-over", "64x", "256x"]
)
def test_gzip_bombs_within_the_body_limit(target: Target, ctype: str, inflated: int) -> None:
    before = target.listing()
    line = b'{"n": 1, "level": "INFO"}\n'
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    chunk = line * (1 << 16)
    parts = [compressor.compress(chunk) for _ in range(inflated // len(chunk) + 1)]
    body = b"".join(parts) + compressor.flush()
    assert len(body) < LIMIT
    r = _post(target, body, ctype, "gzip")
    assert _assert_refused(r, 413)["error"] == "BatchTooLarge"
    _check_append(target, r, before)


def test_gzip_that_is_not_gzip_and_truncated_gzip(target: Target) -> None:
    before = target.listing()
    good = gzip.compress(b'{"n": 1}\n' * 100)
    for body in [b"not gzip at all", good[: len(good) // 2], good[:10], good + b"trailing junk"]:
        r = _post(target, body, "application/x-ndjson", "gzip")
        _check_append(target, r, before)
        assert r.status_code != 200 or body.startswith(good)


# Bodies whose first record is not an object: pyarrow 26 crashed the whole server
# (SIGSEGV) on a parse block starting with null. Each is refused, and the server lives on.
NOT_OBJECTS = [
    b"null", b"null\n", b" \t null\n", b"\n\nnull\n", b"\xef\xbb\xbfnull\n", b"null null",
    b'null {"n": 1}', b'{"n": 1}\rnull\n', b'{"n": 1}\r\nnull\r\n', b"1", b'"x"', b"true",
    b"[]", b"[null]", b"[[1]]", b"[1]",
]  # fmt: skip


@pytest.mark.parametrize("ctype", ["application/x-ndjson", "application/json"])
@pytest.mark.parametrize("encoding", [None, "gzip"])
@pytest.mark.parametrize("body", NOT_OBJECTS, ids=[repr(b)[2:-1] for b in NOT_OBJECTS])
def test_a_first_record_that_is_not_an_object(
    target: Target, body: bytes, ctype: str, encoding: str | None
) -> None:
    before = target.listing()
    r = _post(target, gzip.compress(body) if encoding else body, ctype, encoding)
    assert target.server.process.process.poll() is None, target.server.process.output()
    message = _assert_refused(r, 400)["message"]
    assert message.startswith(("each NDJSON line must be a JSON object; line ",
                               "each record of a JSON array must be a JSON object; record ",
                               "the body holds no records")), message  # fmt: skip
    _check_append(target, r, before)


def test_a_null_line_far_into_a_body(target: Target) -> None:
    before = target.listing()
    line = b'{"n": 1, "level": "INFO"}\n'
    body = line * (LIMIT // 2 // len(line)) + b"null\n" + line
    r = _post(target, body, "application/x-ndjson")
    assert _assert_refused(r, 400)["message"].endswith(" is null")
    _check_append(target, r, before)


# -- stream names --------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "..", ".", "../etc", "../../../../tmp/pwned", "a/b", "a\\b", "%2e%2e", "..%2f..%2fetc",
    "_delta_log", "stréam", "名前", "emoji😀", "a\x00b", "\x00", "x" * 129,
    "x" * 10_000, " lead", "trail ", "a.b", "a-b", "9lives", "", "$(id)", "a;rm -rf /",
    "a\nb", "\u202etxt", "\u017f",
]  # fmt: skip


def _refusable(name: str) -> bool:
    return name == "_delta_log" or not VALID_NAME.fullmatch(name)


def _name_strategy() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([n for n in HOSTILE_NAMES if _refusable(n)]),
        st.text(min_size=1, max_size=200).filter(_refusable),
    )


@FEW
@given(name=_name_strategy())
def test_hostile_stream_names_over_http(target: Target, name: str) -> None:
    # httpx resolves dot segments itself: /v1/streams/../records never leaves the client.
    assume(name.strip(".") != "")
    before = target.listing()
    path = quote(name, safe="")
    r = target.http.post(
        f"/v1/streams/{path}/records",
        content=b'{"n": 1}\n',
        headers={"Content-Type": "application/x-ndjson"},
    )
    # 404/405/307: a name with a slash (or an empty one) never reaches the route at all
    # (Starlette decodes %2F; a trailing one is answered with a redirect without it).
    assert r.status_code in (400, 404, 405, 307), r.text[:300]
    if r.status_code == 400:
        message = _assert_refused(r, 400)["message"]
        assert re.match(r"invalid stream name|stream name '.*' is reserved", message), message
    r = target.http.get(f"/v1/streams/{path}")
    assert r.status_code in (400, 404, 307), r.text[:300]
    target.assert_unharmed(before)


def _flight_refused(call: object) -> None:
    try:
        result = call()  # type: ignore[operator]
    except FLIGHT_REFUSALS:
        return
    raise AssertionError(f"accepted: {result!r}")


@FEW
@given(name=_name_strategy())
def test_hostile_stream_names_over_flight(target: Target, name: str) -> None:
    before = target.listing()
    c = target.flight
    table = pa.table({"n": [1]})

    def put() -> object:
        return put_table(c, flight.FlightDescriptor.for_path(name), table, BEARER)

    def ingest() -> object:
        command = sp.CommandStatementIngest(table=name)
        command.table_definition_options.if_not_exist = sp.TableNotExistOption.CREATE
        command.table_definition_options.if_exists = sp.TableExistsOption.APPEND
        descriptor = flight.FlightDescriptor.for_command(sp.pack(command))
        return put_table(c, descriptor, table, BEARER)

    calls = [
        put,
        ingest,
        lambda: c.get_flight_info(flight.FlightDescriptor.for_path(name), BEARER),
        lambda: c.get_schema(flight.FlightDescriptor.for_path(name), BEARER),
        lambda: c.do_get(flight.Ticket(json.dumps({"read": name}).encode()), BEARER).read_all(),
        lambda: list(c.do_action(flight.Action("describe", name.encode()), BEARER)),
    ]
    if name.strip():  # an empty body means "every stream" to these two
        calls += [
            lambda: list(c.do_action(flight.Action("flush", name.encode()), BEARER)),
            lambda: list(c.do_action(flight.Action("compact", name.encode()), BEARER)),
        ]
    for call in calls:
        _flight_refused(call)
    target.assert_unharmed(before)


# -- Flight tickets, commands and descriptors ------------------------------------------------------


def _any(type_url: str, value: bytes) -> bytes:
    return any_pb2.Any(type_url=type_url, value=value).SerializeToString()


_FLIGHT_SQL_NAMES = [
    "CommandStatementQuery", "CommandPreparedStatementQuery", "TicketStatementQuery",
    "CommandGetTables", "CommandGetSqlInfo", "CommandStatementIngest",
    "CommandStatementUpdate", "CommandGetCrossReference", "Nope", "",
]  # fmt: skip

hostile_commands = st.one_of(
    st.binary(max_size=512),
    st.builds(
        _any,
        st.one_of(
            st.sampled_from([sp.TYPE_URL_PREFIX + sp.PACKAGE + "." + n for n in _FLIGHT_SQL_NAMES]),
            st.text(max_size=80).map(lambda s: "type.googleapis.com/" + s),
            st.text(max_size=80),
        ),
        st.binary(max_size=256),
    ),
)


def _read_all(stream: flight.FlightStreamReader) -> pa.Table:
    return stream.read_all()


@FEW
@given(command=hostile_commands)
def test_hostile_tickets_and_descriptors(target: Target, command: bytes) -> None:
    before = target.listing()
    c = target.flight
    descriptor = flight.FlightDescriptor.for_command(command)
    for call in [
        lambda: _read_all(c.do_get(flight.Ticket(command), BEARER)),
        lambda: c.get_flight_info(descriptor, BEARER),
    ]:
        with contextlib.suppress(*FLIGHT_REFUSALS):
            call()
    try:
        c.get_schema(descriptor, BEARER)
    except FLIGHT_REFUSALS:
        pass
    except pa.ArrowException as e:
        # pyarrow 26 sends a FlightError raised in GetSchema as UNKNOWN (it keeps the
        # message): PERMISSION_DENIED for an update command arrives that way.
        assert "read-only" in str(e) and GENERIC_INTERNAL_MESSAGE not in str(e), e
    try:
        writer, reader = c.do_put(descriptor, pa.schema([("n", pa.int64())]), BEARER)
        writer.write_table(pa.table({"n": [1]}))
        writer.done_writing()
        reader.read()
        writer.close()
    except FLIGHT_REFUSALS:
        pass
    target.assert_unharmed(before)


@FEW
@given(action=st.text(max_size=40), body=st.binary(max_size=512))
def test_hostile_actions(target: Target, action: str, body: bytes) -> None:
    before = target.listing()
    with contextlib.suppress(*FLIGHT_REFUSALS):
        list(target.flight.do_action(flight.Action(action, body), BEARER))
    target.assert_unharmed(before)


# -- SQL -------------------------------------------------------------------------------------------

# (sql, engine, HTTP status, error class, message fragment)
HOSTILE_SQL = [
    ("COPY hostile TO '/tmp/arrowlog-pwned.csv'", "datafusion", 403, "ReadOnlyQuery", "is not allowed"),
    ("COPY (SELECT 1) TO '/tmp/arrowlog-pwned.parquet'", "datafusion", 403, "ReadOnlyQuery", ""),
    ("CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc'", "datafusion", 403, "ReadOnlyQuery", ""),
    ("CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'", "datafusion", 403, "ReadOnlyQuery", ""),
    ("CREATE TABLE t AS SELECT 1", "datafusion", 403, "ReadOnlyQuery", ""),
    ("CREATE VIEW v AS SELECT 1", "datafusion", 403, "ReadOnlyQuery", ""),
    ("INSERT INTO hostile (n) VALUES (1)", "datafusion", 403, "ReadOnlyQuery", ""),
    ("DELETE FROM hostile", "datafusion", 403, "ReadOnlyQuery", ""),
    ("DROP TABLE hostile", "datafusion", 403, "ReadOnlyQuery", ""),
    ("SET datafusion.execution.target_partitions = 1000", "datafusion", 403, "ReadOnlyQuery", ""),
    ("SELECT * FROM '/etc/passwd'", "datafusion", 404, "StreamNotFound", ""),
    ("SELECT * FROM 'file:///etc/passwd'", "datafusion", 404, "StreamNotFound", ""),
    ("SELECT * FROM '../streams/hostile'", "datafusion", 400, "InvalidInput", "not found"),
    ("SELECT * FROM read_csv('/etc/passwd')", "datafusion", 400, "InvalidInput", ""),
    ("SELECT * FROM read_parquet('/etc/passwd')", "datafusion", 400, "InvalidInput", ""),
    ("SELECT 1; COPY hostile TO '/tmp/arrowlog-pwned.csv'", "datafusion", 400, "InvalidInput", ""),
    ("COPY hostile TO '/tmp/arrowlog-pwned.csv'", "duckdb", 403, "ReadOnlyQuery", ""),
    ("SELECT * FROM read_csv('/etc/passwd')", "duckdb", 400, "InvalidInput", ""),
    ("SELECT * FROM read_text('/etc/passwd')", "duckdb", 400, "InvalidInput", ""),
    ("SELECT * FROM read_blob('/etc/passwd')", "duckdb", 400, "InvalidInput", ""),
    ("SELECT * FROM glob('/etc/*')", "duckdb", 400, "InvalidInput", ""),
    ("SELECT * FROM '/etc/passwd'", "duckdb", 404, "StreamNotFound", ""),
    ("ATTACH '/tmp/arrowlog-pwned.db'", "duckdb", 403, "ReadOnlyQuery", ""),
    ("INSTALL httpfs", "duckdb", 403, "ReadOnlyQuery", ""),
    ("LOAD httpfs", "duckdb", 403, "ReadOnlyQuery", ""),
    ("SET enable_external_access = true", "duckdb", 403, "ReadOnlyQuery", ""),
    ("EXPORT DATABASE '/tmp/arrowlog-pwned'", "duckdb", 403, "ReadOnlyQuery", ""),
    ("SELECT getenv('HOME')", "duckdb", 400, "InvalidInput", ""),
    # Runaway queries end with the guards' errors. (Shapes whose work stops with them: see
    # docs/reliability.md for those that keep computing until their next batch.)
    (
        "SELECT value, repeat('x', 100) AS pad FROM generate_series(1, 100000000) ORDER BY random()",
        "datafusion", 400, "QueryLimitExceeded", "query exceeded the",
    ),
    (
        "SELECT array_agg(value) FROM generate_series(1, 100000000)",
        "datafusion", 400, "QueryLimitExceeded",
        "query exceeded the memory limit of 67108864 bytes (query_memory_limit)",
    ),
    (
        "SELECT count(*) FROM range(1000000000) a CROSS JOIN range(1000000000) b",
        "duckdb", 400, "QueryLimitExceeded", "query exceeded the time limit of 2 s (query_timeout)",
    ),
    (
        "SELECT list(range) FROM range(1000000000)",
        "duckdb", 400, "QueryLimitExceeded", "query exceeded the",
    ),
    ("SELECT " + "(" * 5000 + "1" + ")" * 5000, "datafusion", 400, "InvalidInput", ""),
    ("SELECT " + "abs(" * 5000 + "1" + ")" * 5000, "datafusion", 400, "InvalidInput", ""),
    # Operator chains: around 10,000 crashed the server (a stack overflow in planning).
    ("SELECT " + "+".join(["1"] * 20000), "datafusion", 400, "InvalidInput", "operators"),
    ("SELECT 1 FROM hostile WHERE " + " OR ".join(["n = 1"] * 20000), "datafusion", 400, "InvalidInput", "operators"),
    ("SELECT " + "+".join(["1"] * 20000), "duckdb", 400, "InvalidInput", "operators"),
    ("SELECT " + "(" * 5000 + "1" + ")" * 5000, "duckdb", 400, "InvalidInput", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "engine", "status", "error", "message"),
    HOSTILE_SQL,
    ids=[f"{engine}:{sql[:50]}" for sql, engine, *_ in HOSTILE_SQL],
)
def test_hostile_sql_over_http(
    target: Target, sql: str, engine: str, status: int, error: str, message: str
) -> None:
    before = target.listing()
    r = target.http.post("/v1/query", json={"sql": sql, "engine": engine})
    body = _assert_refused(r, status)
    assert body["error"] == error, body
    assert message in body["message"], body
    for path in [
        "/tmp/arrowlog-pwned.csv",
        "/tmp/arrowlog-pwned.parquet",
        "/tmp/arrowlog-pwned.db",
    ]:
        assert not os.path.exists(path)
    target.assert_unharmed(before)


DATAFUSION_SQL = [(s, error) for s, engine, _, error, _ in HOSTILE_SQL if engine == "datafusion"]


@pytest.mark.parametrize(("sql", "error"), DATAFUSION_SQL, ids=[s[:50] for s, _ in DATAFUSION_SQL])
def test_hostile_sql_over_flight(target: Target, sql: str, error: str) -> None:
    before = target.listing()
    c = target.flight
    command = sp.pack(sp.CommandStatementQuery(query=sql))
    _flight_refused(lambda: _read_all(c.do_get(flight.Ticket(sql.encode()), BEARER)))
    if error != "QueryLimitExceeded":  # those plan fine: the guards stop their execution
        _flight_refused(
            lambda: c.get_flight_info(flight.FlightDescriptor.for_command(command), BEARER)
        )
    target.assert_unharmed(before)


def test_huge_cross_join_with_a_limit_answers(target: Target) -> None:
    before = target.listing()
    sql = (
        "SELECT a.value AS x FROM generate_series(1, 1000000000) a "
        "CROSS JOIN generate_series(1, 1000000000) b LIMIT 5"
    )
    r = target.http.post("/v1/query", json={"sql": sql})
    assert r.status_code == 200, r.text
    assert len(r.json()["rows"]) == 5
    target.assert_unharmed(before)


@FEW
@given(sql=st.text(alphabet=string.printable + "ñ€😀\x00", max_size=300))
def test_random_sql_text(target: Target, sql: str) -> None:
    before = target.listing()
    r = target.http.post("/v1/query", json={"sql": sql})
    if r.status_code != 200:
        _assert_refused(r, 400, 403, 404)
    target.assert_unharmed(before)
