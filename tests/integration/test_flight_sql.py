"""Flight SQL against a real server process, driven by clients we did not write.

ADBC's Flight SQL driver (``adbc_driver_flightsql.dbapi``), pandas ``read_sql`` /
``to_sql`` and polars ``read_database`` over an ADBC connection; pyarrow.flight only to
seed data and to ingest concurrently.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import json
import threading
import warnings
from collections.abc import Iterator

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as dbapi
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.conftest import TEST_TOKEN, FlightServer

SEED_ROWS = 1000

# Honest GetSqlInfo (no transactions) makes the dbapi warn that autocommit stays on;
# test_transactions_reported_unsupported checks that warning on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Cannot disable autocommit")


def _connect(url: str, **kwargs: object) -> dbapi.Connection:
    return dbapi.connect(url, **kwargs)


def _seed(url: str, stream: str, rows: int = SEED_ROWS) -> None:
    table = pa.table(
        {
            "ts": pa.array(range(rows), pa.timestamp("s", tz="UTC")),
            "level": pa.array(["INFO", "WARN", "ERROR", "DEBUG"] * (rows // 4)),
            "n": pa.array(range(rows), pa.int64()),
        }
    )
    client = flight.connect(url)
    writer, _ = client.do_put(flight.FlightDescriptor.for_path(stream), table.schema)
    with writer:
        writer.write_table(table)
    client.close()


@pytest.fixture(scope="module")
def logs(flight_server: FlightServer) -> str:
    _seed(flight_server.url, "logs")
    return "logs"


@pytest.fixture
def conn(flight_server: FlightServer) -> Iterator[dbapi.Connection]:
    connection = _connect(flight_server.url)
    yield connection
    connection.close()


# -- queries ---------------------------------------------------------------------------------


def test_execute_fetch_arrow_table(conn: dbapi.Connection, logs: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT n, level FROM {logs} WHERE n < 10 ORDER BY n")
        table = cur.fetch_arrow_table()
    assert table.schema.field("level").type == pa.string()  # plain utf8, not a view type
    assert table.column("n").to_pylist() == list(range(10))
    assert table.column("level").to_pylist()[:4] == ["INFO", "WARN", "ERROR", "DEBUG"]


def test_fetchall(conn: dbapi.Connection, logs: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT level, count(*) AS c FROM {logs} GROUP BY level ORDER BY level")
        rows = cur.fetchall()
    assert rows == [("DEBUG", 250), ("ERROR", 250), ("INFO", 250), ("WARN", 250)]


def test_system_columns_and_full_scan(conn: dbapi.Connection, logs: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {logs}")
        table = cur.fetch_arrow_table()
    assert table.num_rows == SEED_ROWS
    assert sorted(table.column("_offset").to_pylist()) == list(range(SEED_ROWS))
    assert "_ingested_at" in table.column_names


def test_parameterised_query(conn: dbapi.Connection, logs: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT n FROM {logs} WHERE n >= $1 AND level = $2 ORDER BY n", (990, "ERROR"))
        assert cur.fetchall() == [(990,), (994,), (998,)]
        # The same prepared statement, new parameters: the handle carries them (stateless).
        cur.execute(f"SELECT n FROM {logs} WHERE n >= $1 AND level = $2 ORDER BY n", (995, "WARN"))
        assert cur.fetchall() == [(997,)]


def test_question_mark_placeholders(conn: dbapi.Connection, logs: str) -> None:
    # What JDBC/ODBC-minded users write; the server numbers them for DataFusion.
    with conn.cursor() as cur:
        cur.execute(f"SELECT n FROM {logs} WHERE n >= ? AND level = ? ORDER BY n", (990, "ERROR"))
        assert cur.fetchall() == [(990,), (994,), (998,)]


def test_prepared_statement_reused(conn: dbapi.Connection, logs: str) -> None:
    query = f"SELECT count(*) FROM {logs} WHERE n < $1"
    with conn.cursor() as cur:
        cur.adbc_prepare(query)
        for limit, expected in ((10, 10), (500, 500), (0, 0)):
            cur.execute(query, (limit,))
            assert cur.fetchone() == (expected,)


def test_execute_schema_of_prepared_statement(conn: dbapi.Connection, logs: str) -> None:
    with conn.cursor() as cur:
        schema = cur.adbc_execute_schema(f"SELECT n, level FROM {logs}")
    assert schema.names == ["n", "level"]
    assert schema.field("level").type == pa.string()


# -- bound parameters ------------------------------------------------------------------------


def test_parameter_rows_mixing_null_and_values_unify(conn: dbapi.Connection) -> None:
    # One result per parameter row: `SELECT $1` of a value is NOT NULL, of a NULL nullable;
    # the rows' results are one stream, so their schemas unify (nullable wins).
    params = pa.table({"p": pa.array(["a", None, "c"])})
    with conn.cursor() as cur:
        cur.execute("SELECT $1 AS v", params)
        table = cur.fetch_arrow_table()
    assert table.schema.field("v").type == pa.string()
    assert table.schema.field("v").nullable
    assert table.column("v").to_pylist() == ["a", None, "c"]
    with conn.cursor() as cur:
        cur.execute("SELECT $1 AS v, $2 AS w", pa.table({"p": [1, None], "q": [None, 2.5]}))
        assert cur.fetchall() == [(1, None), (None, 2.5)]


def _year_one() -> datetime.datetime:
    return datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)


# Each value is bound as Arrow (never through Python objects) and must come back with the
# same Arrow type and value.
BOUND_AS_SENT = {
    "timestamp tz year 1": pa.array([_year_one()], pa.timestamp("us", tz="-05:00")),
    "timestamp[ns]": pa.array([1_000_000_001], pa.timestamp("ns")),
    "timestamp[ns] tz": pa.array([1_000_000_001], pa.timestamp("ns", tz="Europe/Paris")),
    "timestamp[ns] tz null": pa.array([None], pa.timestamp("ns", tz="UTC")),
    "timestamp[s]": pa.array([1], pa.timestamp("s")),
    "timestamp[ms]": pa.array([-1], pa.timestamp("ms")),
    "timestamp[us]": pa.array([1], pa.timestamp("us")),
    "timestamp[s] tz": pa.array([1], pa.timestamp("s", tz="UTC")),
    "timestamp[ms] tz": pa.array([1], pa.timestamp("ms", tz="Asia/Kolkata")),
    "timestamp[us] tz": pa.array([1], pa.timestamp("us", tz="+14:00")),
    "timestamp tz year 9999": pa.array(
        [datetime.datetime(9999, 12, 31, 23, tzinfo=datetime.UTC)], pa.timestamp("us", tz="+14:00")
    ),
    "int8": pa.array([-8], pa.int8()),
    "int16": pa.array([-16], pa.int16()),
    "int32": pa.array([-32], pa.int32()),
    "uint8": pa.array([255], pa.uint8()),
    "uint32": pa.array([2**32 - 1], pa.uint32()),
    "uint64 above int64 max": pa.array([2**64 - 1], pa.uint64()),
    "float16": pa.array([1.5], pa.float16()),
    "float32": pa.array([0.1], pa.float32()),
    "decimal128": pa.array([decimal.Decimal("-12.345")], pa.decimal128(7, 3)),
    "decimal256": pa.array([decimal.Decimal("1" * 50)], pa.decimal256(60, 0)),
    "date32 year 1": pa.array([datetime.date(1, 1, 1)], pa.date32()),
    "date64": pa.array([datetime.date(2024, 2, 29)], pa.date64()),
    "time64[ns]": pa.array([1], pa.time64("ns")),
    "time64[us]": pa.array([1], pa.time64("us")),
    "time32[ms]": pa.array([1], pa.time32("ms")),
    "time32[s]": pa.array([1], pa.time32("s")),
    "duration[ns]": pa.array([-1], pa.duration("ns")),
    "duration[us]": pa.array([1], pa.duration("us")),
    "duration[ms]": pa.array([1], pa.duration("ms")),
    "duration[s]": pa.array([1], pa.duration("s")),
    "interval": pa.array([pa.MonthDayNano([1, -2, 3])], pa.month_day_nano_interval()),
    "large_string": pa.array(["x"], pa.large_string()),
    "binary": pa.array([b"\x00\xff"], pa.binary()),
    "large_binary": pa.array([b"\x00"], pa.large_binary()),
    "fixed_size_binary": pa.array([b"ab"], pa.binary(2)),
    "struct": pa.array([{"x": 1, "y": "a"}], pa.struct([("x", pa.int8()), ("y", pa.string())])),
    "map": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
    "list": pa.array([[1, None]], pa.list_(pa.int16())),
    "large_list": pa.array([[1]], pa.large_list(pa.int64())),
    "fixed_size_list": pa.array([[1, 2]], pa.list_(pa.int32(), 2)),
    "struct of time64[ns]": pa.array([{"t": 1}], pa.struct([("t", pa.time64("ns"))])),
    "dictionary": pa.array(["a"], pa.dictionary(pa.int8(), pa.string())),
    "null": pa.array([None], pa.null()),
}


@pytest.mark.parametrize("name", sorted(BOUND_AS_SENT))
def test_bound_parameter_keeps_its_arrow_type_and_value(conn: dbapi.Connection, name: str) -> None:
    sent = BOUND_AS_SENT[name]
    with conn.cursor() as cur:
        cur.execute("SELECT $1 AS v", pa.table({"p": sent}))
        got = cur.fetch_arrow_table().column("v").combine_chunks()
    assert got.type == sent.type
    assert got.equals(sent), (got, sent)


def test_bound_parameter_in_a_filter_keeps_its_type(conn: dbapi.Connection, logs: str) -> None:
    # A timestamp[ns] parameter compared with the stream's timestamp column (no cast error,
    # no precision lost to a Python datetime).
    params = pa.table({"p": pa.array([999_999_999_999], pa.timestamp("ns", tz="UTC"))})
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {logs} WHERE ts <= $1", params)
        assert cur.fetchone() == (1000,)


def test_dictionary_results_arrive_with_their_dictionaries(conn: dbapi.Connection) -> None:
    # Several batches, each with its own dictionary (replacing the one before).
    sql = (
        "SELECT arrow_cast(CAST(value % 1000 AS VARCHAR), 'Dictionary(Int32, Utf8)') AS v "
        "FROM range(300000)"
    )
    with conn.cursor() as cur:
        cur.execute(sql)
        column = cur.fetch_arrow_table().column("v")
    assert column.type == pa.dictionary(pa.int32(), pa.string())
    assert column.num_chunks > 1
    assert sorted(column.cast(pa.string()).to_pylist()) == sorted(
        str(i % 1000) for i in range(300000)
    )


# -- metadata --------------------------------------------------------------------------------


def test_adbc_get_objects(conn: dbapi.Connection, logs: str) -> None:
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    assert [c["catalog_name"] for c in objects] == ["arrowlog"]
    schemas = objects[0]["catalog_db_schemas"]
    assert [s["db_schema_name"] for s in schemas] == ["public"]
    tables = {t["table_name"]: t for t in schemas[0]["db_schema_tables"]}
    assert tables[logs]["table_type"] == "TABLE"
    columns = [c["column_name"] for c in tables[logs]["table_columns"]]
    assert columns == ["ts", "level", "n", "_offset", "_ingested_at"]


def test_adbc_get_objects_filters(conn: dbapi.Connection, logs: str) -> None:
    objects = conn.adbc_get_objects(depth="tables", table_name_filter="lo%").read_all().to_pylist()
    names = [t["table_name"] for t in objects[0]["catalog_db_schemas"][0]["db_schema_tables"]]
    assert logs in names and all(n.startswith("lo") for n in names)
    none = conn.adbc_get_objects(depth="tables", table_name_filter="no_such%").read_all()
    assert none.to_pylist()[0]["catalog_db_schemas"][0]["db_schema_tables"] == []


def test_adbc_get_table_schema(conn: dbapi.Connection, logs: str) -> None:
    schema = conn.adbc_get_table_schema(logs)
    assert schema.names == ["ts", "level", "n", "_offset", "_ingested_at"]
    assert schema.field("n").type == pa.int64()
    with pytest.raises(dbapi.ProgrammingError, match="NOT_FOUND"):
        conn.adbc_get_table_schema("no_such_table")


def test_adbc_get_table_types(conn: dbapi.Connection) -> None:
    assert conn.adbc_get_table_types() == ["TABLE"]


def test_adbc_get_info(conn: dbapi.Connection) -> None:
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "arrowlog"
    assert info["vendor_version"] == __import__("arrowlog").__version__
    assert info["vendor_arrow_version"] == pa.__version__


def test_current_catalog_and_db_schema(conn: dbapi.Connection, logs: str) -> None:
    # The driver reads them from GetSessionOptions (keys "catalog" and "schema").
    assert conn.adbc_current_catalog == "arrowlog"
    assert conn.adbc_current_db_schema == "public"
    # Setting the only catalog and schema there are is accepted; anything else is refused.
    conn.adbc_current_catalog = "arrowlog"
    conn.adbc_current_db_schema = "public"
    with pytest.raises(dbapi.ProgrammingError, match=r"'catalog' \(invalid value\)"):
        conn.adbc_current_catalog = "other"
    with pytest.raises(dbapi.ProgrammingError, match=r"'schema' \(invalid value\)"):
        conn.adbc_current_db_schema = "other"
    assert conn.adbc_current_catalog == "arrowlog"
    # Unqualified names resolve there: the same table either way.
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM arrowlog.public.{logs}")
        qualified = cur.fetchone()
        cur.execute(f"SELECT count(*) FROM {logs}")
        assert cur.fetchone() == qualified


def test_transactions_reported_unsupported(flight_server: FlightServer) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        connection = dbapi.connect(flight_server.url)
    try:
        assert any("autocommit" in str(w.message) for w in caught)
        with pytest.raises(dbapi.NotSupportedError):
            connection.adbc_connection.set_autocommit(False)
    finally:
        connection.close()


# -- ingest ----------------------------------------------------------------------------------


def test_adbc_ingest_create_and_append(conn: dbapi.Connection, stream_name: str) -> None:
    first = pa.table({"ts": pa.array([1, 2], pa.timestamp("s", tz="UTC")), "v": [1.5, 2.5]})
    with conn.cursor() as cur:
        assert cur.adbc_ingest(stream_name, first, mode="create") == 2
        assert cur.adbc_ingest(stream_name, first, mode="append") == 2
        assert cur.adbc_ingest(stream_name, first, mode="create_append") == 2
        cur.execute(f"SELECT count(*), sum(v), min(_offset), max(_offset) FROM {stream_name}")
        assert cur.fetchone() == (6, 12.0, 0, 5)


def test_adbc_ingest_create_existing_refused(conn: dbapi.Connection, stream_name: str) -> None:
    data = pa.table({"v": [1]})
    with conn.cursor() as cur:
        cur.adbc_ingest(stream_name, data, mode="create")
        with pytest.raises(dbapi.ProgrammingError, match=f"stream '{stream_name}' already exists"):
            cur.adbc_ingest(stream_name, data, mode="create")
        with pytest.raises(dbapi.Error, match="never deletes acknowledged records"):
            cur.adbc_ingest(stream_name, data, mode="replace")
        with pytest.raises(dbapi.ProgrammingError, match=r"NOT_FOUND.*not found"):
            cur.adbc_ingest(stream_name + "_missing", data, mode="append")
        with pytest.raises(dbapi.ProgrammingError, match="column 'v' has type string, but stream"):
            cur.adbc_ingest(stream_name, pa.table({"v": ["x"]}), mode="append")
        cur.execute(f"SELECT count(*) FROM {stream_name}")
        assert cur.fetchone() == (1,)


# -- pandas and polars -----------------------------------------------------------------------


def test_pandas_read_sql(conn: dbapi.Connection, logs: str) -> None:
    df = pd.read_sql(f"SELECT n, level FROM {logs} WHERE n < 4 ORDER BY n", conn)
    assert df["n"].tolist() == [0, 1, 2, 3]
    assert df["level"].tolist() == ["INFO", "WARN", "ERROR", "DEBUG"]


def test_pandas_to_sql(conn: dbapi.Connection, stream_name: str) -> None:
    df = pd.DataFrame({"host": ["a", "b", "c"], "latency_ms": [1.0, 2.0, 3.0]})
    assert df.to_sql(stream_name, conn, index=False) == 3
    assert df.to_sql(stream_name, conn, index=False, if_exists="append") == 3
    back = pd.read_sql(f"SELECT host, latency_ms FROM {stream_name} ORDER BY _offset", conn)
    assert back["host"].tolist() == ["a", "b", "c"] * 2
    assert back["latency_ms"].sum() == 12.0
    with pytest.raises(ValueError, match="already exists"):
        df.to_sql(stream_name, conn, index=False)  # pandas checks via adbc_get_objects


def test_polars_read_database(conn: dbapi.Connection, logs: str) -> None:
    df = pl.read_database(f"SELECT n, level FROM {logs} WHERE n < 100 ORDER BY n", conn)
    assert df.height == 100
    assert df["n"].to_list() == list(range(100))
    assert df.schema["level"] == pl.String


def test_polars_read_database_iter_batches(conn: dbapi.Connection) -> None:
    rows = 200_000  # several Flight messages of ~64k rows each
    frames = list(
        pl.read_database(
            f"SELECT value AS n FROM range({rows})", conn, iter_batches=True, batch_size=50_000
        )
    )
    assert len(frames) >= 2
    assert sum(f.height for f in frames) == rows
    assert pl.concat(frames)["n"].sort().to_list() == list(range(rows))


# -- refusals and errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "error", "code", "message"),
    [
        ("SELEC 1", dbapi.ProgrammingError, "INVALID_ARGUMENT", "ParserError"),
        (
            "SELECT * FROM no_such_stream",
            dbapi.ProgrammingError,
            "NOT_FOUND",
            "stream 'no_such_stream' not found",
        ),
        (
            "DROP TABLE logs",
            dbapi.Error,
            "UNAUTHORIZED",
            "DropTable is not allowed: arrowlog is read-only",
        ),
        (
            "CREATE TABLE x (a INT)",
            dbapi.Error,
            "UNAUTHORIZED",
            "is not allowed: arrowlog is read-only",
        ),
        ("INSERT INTO logs (n) VALUES (1)", dbapi.Error, "UNAUTHORIZED", "Insert is not allowed"),
        ("COPY logs TO '/tmp/x.csv'", dbapi.Error, "UNAUTHORIZED", "COPY is not allowed"),
    ],
)
def test_bad_statements(
    conn: dbapi.Connection, logs: str, sql: str, error: type, code: str, message: str
) -> None:
    with conn.cursor() as cur:
        with pytest.raises(error) as info:
            cur.execute(sql)
            cur.fetchall()
        assert code in str(info.value)
        assert message in str(info.value)
        cur.execute(f"SELECT count(*) FROM {logs}")  # the server keeps serving
        assert cur.fetchone() == (SEED_ROWS,)


def test_update_refused(conn: dbapi.Connection, logs: str) -> None:
    with conn.cursor() as cur, pytest.raises(dbapi.Error, match="read-only through SQL"):
        cur.executemany(f"INSERT INTO {logs} (n) VALUES ($1)", [(1,), (2,)])
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {logs}")
        assert cur.fetchone() == (SEED_ROWS,)


def test_executemany_of_a_query_names_the_alternative(conn: dbapi.Connection, logs: str) -> None:
    # executemany is an update (DB-API: no result set), and SQL is read-only here: a query
    # there is refused with INVALID_ARGUMENT naming what runs it once per parameter row.
    query = f"SELECT n FROM {logs} WHERE n = $1"
    with conn.cursor() as cur, pytest.raises(dbapi.ProgrammingError) as info:
        cur.executemany(query, [(1,), (2,)])
    assert "INVALID_ARGUMENT" in str(info.value)
    assert "executemany returns no rows" in str(info.value)
    assert "cursor.execute(sql, pyarrow_table)" in str(info.value)
    with conn.cursor() as cur:  # the alternative: one result per row, one after another
        cur.execute(query, pa.table({"p": [1, 2, 999]}))
        assert cur.fetchall() == [(1,), (2,), (999,)]
    # A query that does not plan reports its own error, not the executemany advice; DML
    # on a missing table is still refused as an update.
    with conn.cursor() as cur, pytest.raises(dbapi.ProgrammingError, match="NOT_FOUND"):
        cur.executemany("SELECT * FROM no_such_stream WHERE n = $1", [(1,)])
    with conn.cursor() as cur, pytest.raises(dbapi.Error, match="read-only through SQL"):
        cur.executemany("INSERT INTO no_such_stream (n) VALUES ($1)", [(1,)])


# -- auth ------------------------------------------------------------------------------------


def test_token_required(flight_server_with_token: FlightServer) -> None:
    url = flight_server_with_token.url
    _seed_with_token(url, "secured")
    bad = _connect(url)
    try:
        with bad.cursor() as cur, pytest.raises(dbapi.Error, match="UNAUTHENTICATED") as info:
            cur.execute("SELECT count(*) FROM secured")
        assert TEST_TOKEN not in str(info.value)
    finally:
        bad.close()
    wrong = _connect(
        url,
        db_kwargs={adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer nope"},
    )
    try:
        with wrong.cursor() as cur, pytest.raises(dbapi.Error, match="UNAUTHENTICATED"):
            cur.execute("SELECT 1")
    finally:
        wrong.close()


def test_token_authorization_header(flight_server_with_token: FlightServer) -> None:
    url = flight_server_with_token.url
    _seed_with_token(url, "secured_header")
    header = adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value
    connection = _connect(url, db_kwargs={header: f"Bearer {TEST_TOKEN}"})
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM secured_header")
            assert cur.fetchone() == (SEED_ROWS,)
            assert cur.adbc_ingest("secured_header", pa.table({"n": [1]}), mode="append") == 1
        assert "secured_header" in [
            t["table_name"]
            for t in connection.adbc_get_objects(depth="tables")
            .read_all()
            .to_pylist()[0]["catalog_db_schemas"][0]["db_schema_tables"]
        ]
    finally:
        connection.close()


def test_token_basic_auth(flight_server_with_token: FlightServer) -> None:
    url = flight_server_with_token.url
    connection = _connect(url, db_kwargs={"username": "anyone", "password": TEST_TOKEN})
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 41 + 1")
            assert cur.fetchone() == (42,)
    finally:
        connection.close()
    with pytest.raises(dbapi.Error, match="UNAUTHENTICATED"):
        _connect(url, db_kwargs={"username": "anyone", "password": "wrong"})


def _seed_with_token(url: str, stream: str) -> None:
    client = flight.connect(url)
    options = flight.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {TEST_TOKEN}".encode())]
    )
    table = pa.table({"n": pa.array(range(SEED_ROWS), pa.int64())})
    writer, _ = client.do_put(flight.FlightDescriptor.for_path(stream), table.schema, options)
    with writer:
        writer.write_table(table)
    client.close()


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_ingest_and_queries(flight_server: FlightServer, stream_name: str) -> None:
    writers, batches, rows = 4, 15, 200
    errors: list[BaseException] = []
    acks: list[dict[str, int]] = []
    lock = threading.Lock()
    done = threading.Event()

    def ingest(worker: int) -> None:
        try:
            client = flight.connect(flight_server.url)
            for b in range(batches):
                table = pa.table({"worker": [worker] * rows, "seq": [b] * rows})
                writer, reader = client.do_put(
                    flight.FlightDescriptor.for_path(stream_name), table.schema
                )
                with writer:
                    writer.write_table(table)
                    writer.done_writing()
                    ack = json.loads(reader.read().to_pybytes())
                with lock:
                    acks.append(ack)
            client.close()
        except BaseException as e:
            errors.append(e)

    def query() -> None:
        try:
            connection = _connect(flight_server.url)
            seen = 0
            while not done.is_set():
                with connection.cursor() as cur:
                    try:
                        cur.execute(f"SELECT count(*) FROM {stream_name}")
                    except dbapi.ProgrammingError as e:
                        if "NOT_FOUND" in str(e):  # before the first append created it
                            continue
                        raise
                    (count,) = cur.fetchone()
                assert count >= seen and count % rows == 0  # appends are atomic
                seen = count
            connection.close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=ingest, args=(w,)) for w in range(writers)]
    readers = [threading.Thread(target=query) for _ in range(2)]
    for t in [*threads, *readers]:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    for t in readers:
        t.join(60)
    assert not errors, errors
    total = writers * batches * rows
    ranges = sorted((a["first_offset"], a["last_offset"]) for a in acks)
    assert ranges[0][0] == 0 and ranges[-1][1] == total - 1
    assert all(prev[1] + 1 == nxt[0] for prev, nxt in itertools.pairwise(ranges))
    connection = _connect(flight_server.url)
    try:
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT count(*), count(DISTINCT _offset), max(_offset) FROM {stream_name}"
            )
            assert cur.fetchone() == (total, total, total - 1)
            cur.execute(
                f"SELECT worker, count(*) FROM {stream_name} GROUP BY worker ORDER BY worker"
            )
            assert cur.fetchall() == [(w, batches * rows) for w in range(writers)]
    finally:
        connection.close()
