"""Untrusted queries run in worker processes: they cannot take ``arrowlog serve`` with them.

Against real ``arrowlog serve`` subprocesses (default ``query_workers``: 2), through ADBC,
``pyarrow.flight`` and httpx:

- an allocation no memory pool sees (``repeat('x', 2000000000)``: Rust aborts the process
  whose allocation fails) costs one worker, not the server: the client gets a clear error
  naming ``query_memory_limit`` and every acknowledged record is still there;
- a query whose client gives up (Flight cancel or deadline, an HTTP client that hangs
  up before or during the answer) or that passes ``query_timeout`` stops using CPU: the
  server and its children fall back to idle within about a second (read from
  ``/proc/<pid>/stat``);
- a worker killed mid-query fails that query only, and is replaced;
- more queries than workers wait in a bounded queue; past it they are refused with
  UNAVAILABLE / 503.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve

# Runs for minutes on two cores, producing nothing until then.
RUNAWAY = "SELECT count(*) AS n FROM range(30000000000)"
# Its first 100,000 rows at once (more than one Flight message), then runaway work that
# statistics cannot answer: a client can leave mid-answer.
RUNAWAY_AFTER_ROWS = (
    "SELECT value AS n FROM range(100000) "
    "UNION ALL SELECT max(value % 7) AS n FROM range(30000000000)"
)
DUCKDB_RUNAWAY = "SELECT count(*) AS n FROM range(300000000000) t(x) WHERE x % 7 = 3"
PROBE = "probe"
TICK = os.sysconf("SC_CLK_TCK")
IDLE = 0.15  # CPU seconds per second below which the server and its workers count as idle


# -- CPU of the server process tree ---------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` (and of its reaped children) plus those of its live children."""
    fields = _stat(pid)
    assert fields is not None, "the server is gone"
    total = sum(int(x) for x in fields[11:15])
    for child in children(pid):
        child_fields = _stat(child)
        if child_fields is not None:
            total += sum(int(x) for x in child_fields[11:15])
    return total / TICK


def cpu_over(pid: int, seconds: float) -> float:
    """CPU seconds per second the server's process tree uses over the next ``seconds``."""
    before = tree_cpu(pid)
    time.sleep(seconds)
    return (tree_cpu(pid) - before) / seconds


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def workers(server: ArrowlogServe) -> list[int]:
    found = []
    for pid in children(server.process.pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"arrowlog.sql.worker_main" in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def settle(server: ArrowlogServe, count: int = 2) -> None:
    """Wait until ``count`` workers run and the whole tree is idle."""
    wait_for(lambda: len(workers(server)) == count, 60, f"{count} query workers")
    wait_for(lambda: cpu_over(server.process.pid, 0.5) < IDLE, 60, "an idle server")


def assert_busy(server: ArrowlogServe) -> None:
    """The runaway query is running (else the idle check after it would prove nothing)."""
    wait_for(lambda: cpu_over(server.process.pid, 0.5) > 0.8, 20, "the query to use CPU")


def assert_stops(server: ArrowlogServe, since: float) -> None:
    """Idle 1.5 s after ``since``, measured over the second after that.

    An interrupt reaches DataFusion within a second (its bindings look for signals once a
    second while they wait for the engine); the rest is noticing the client left.
    """
    time.sleep(max(0.0, since + 1.5 - time.monotonic()))
    used = cpu_over(server.process.pid, 1.0)
    assert used < IDLE, f"the server tree still used {used:.2f} CPU-s/s 1.5 s later"


# -- servers ----------------------------------------------------------------------------


def _serve(base: Path, env: dict[str, str]) -> Iterator[ArrowlogServe]:
    server = start_arrowlog_serve(base, env={"ARROWLOG_FLUSH_INTERVAL": "3600", **env})
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, server.process.output()[-4000:]


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArrowlogServe]:
    """Default settings but the attack's: query_memory_limit 256 MiB, a queue of one."""
    env = {"ARROWLOG_QUERY_MEMORY_LIMIT": str(256 << 20), "ARROWLOG_QUERY_QUEUE": "1"}
    yield from _serve(tmp_path_factory.mktemp("isolation"), env)


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArrowlogServe]:
    yield from _serve(tmp_path_factory.mktemp("timed"), {"ARROWLOG_QUERY_TIMEOUT": "2"})


@pytest.fixture
def server(serve: ArrowlogServe) -> ArrowlogServe:
    settle(serve)
    return serve


def flight_client(server: ArrowlogServe) -> flight.FlightClient:
    return flight.connect(server.flight_url)


def append(server: ArrowlogServe, rows: int) -> None:
    with server.client() as http:
        body = "".join(f'{{"k": {i}}}\n' for i in range(rows))
        r = http.post(
            f"/v1/streams/{PROBE}/records",
            content=body,
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 200, r.text


def count(server: ArrowlogServe) -> int:
    table = flight_client(server).do_get(flight.Ticket(f"SELECT count(*) AS n FROM {PROBE}"))
    return table.read_all().column("n")[0].as_py()


def drain(reader: flight.FlightStreamReader) -> None:
    """Read to the end chunk by chunk (``read_all`` turns a cancel into a KeyboardInterrupt)."""
    while True:
        try:
            reader.read_chunk()
        except StopIteration:
            return


def run_in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


# -- memory -----------------------------------------------------------------------------


def test_an_allocation_no_pool_sees_fails_the_query_not_the_server(
    server: ArrowlogServe,
) -> None:
    append(server, 1000)
    before = workers(server)
    with flightsql.connect(server.flight_url, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(Exception, match="query_memory_limit") as e:
            cur.execute("SELECT length(repeat('x', 2000000000)) AS n")
            cur.fetchall()
        assert "ran out of memory" in str(e.value)
        # The same connection goes on working.
        cur.execute(f"SELECT count(*) FROM {PROBE}")
        assert cur.fetchone() == (1000,)
    with server.client() as http:
        r = http.post("/v1/query", json={"sql": "SELECT length(repeat('x', 2000000000))"})
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "QueryLimitExceeded"
        assert "query_memory_limit" in r.json()["message"]
        assert http.get("/healthz").json()["status"] == "ok"
    append(server, 10)
    assert count(server) == 1010
    # The aborted workers were replaced.
    settle(server)
    assert set(workers(server)) != set(before)


# -- clients that give up -----------------------------------------------------------------


@pytest.mark.parametrize("sql", [RUNAWAY, RUNAWAY_AFTER_ROWS], ids=["computing", "mid-answer"])
def test_a_cancelled_flight_query_stops_using_cpu(server: ArrowlogServe, sql: str) -> None:
    client = flight_client(server)
    reader = client.do_get(flight.Ticket(sql))
    if sql == RUNAWAY_AFTER_ROWS:
        assert reader.read_chunk().data.num_rows > 0
    thread, _errors = run_in_thread(lambda: drain(reader))
    assert_busy(server)
    cancelled = time.monotonic()
    reader.cancel()
    thread.join(10)
    assert_stops(server, cancelled)
    assert count(server) >= 0  # and the server answers


def test_two_clients_past_their_deadline_leave_no_work_behind(server: ArrowlogServe) -> None:
    """The report: two clients gave up on the runaway count, the server burnt 2 cores for 50 s."""
    options = flight.FlightCallOptions(timeout=1.5)

    def give_up() -> None:
        with pytest.raises(flight.FlightTimedOutError):
            flight_client(server).do_get(flight.Ticket(RUNAWAY), options).read_all()

    threads = [run_in_thread(give_up) for _ in range(2)]
    for thread, errors in threads:
        thread.join(30)
        assert not errors, errors
    assert_stops(server, time.monotonic())


@pytest.mark.parametrize("sql", [RUNAWAY, RUNAWAY_AFTER_ROWS], ids=["computing", "mid-answer"])
def test_an_http_client_that_hangs_up_stops_its_query(server: ArrowlogServe, sql: str) -> None:
    with server.client(timeout=httpx.Timeout(30, read=1.0)) as http:
        if sql == RUNAWAY:
            with pytest.raises(httpx.ReadTimeout):
                http.post("/v1/query", json={"sql": sql})
        else:
            headers = {"Accept": "application/x-ndjson"}
            with http.stream("POST", "/v1/query", json={"sql": sql}, headers=headers) as r:
                assert r.status_code == 200
                assert next(r.iter_lines()).startswith('{"n": ')
                assert_busy(server)
    left = time.monotonic()  # the connection is closed
    assert_stops(server, left)


# -- query_timeout --------------------------------------------------------------------------


def test_query_timeout_answers_on_time_and_stops_the_work(timed: ArrowlogServe) -> None:
    """DataFusion through Flight, then DuckDB through HTTP."""
    settle(timed)
    started = time.monotonic()
    with pytest.raises(pa.ArrowInvalid, match=r"time limit of 2 s \(query_timeout\)"):
        flight_client(timed).do_get(flight.Ticket(RUNAWAY)).read_all()
    answered = time.monotonic()
    assert answered - started < 4
    assert_stops(timed, answered)

    settle(timed)
    started = time.monotonic()
    with timed.client() as http:
        r = http.post("/v1/query", json={"sql": DUCKDB_RUNAWAY, "engine": "duckdb"})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == "query exceeded the time limit of 2 s (query_timeout)"
    answered = time.monotonic()
    assert answered - started < 4
    assert_stops(timed, answered)


# -- workers that die, queries that wait ------------------------------------------------------


def test_a_worker_killed_mid_query_fails_that_query_and_is_replaced(server: ArrowlogServe) -> None:
    append(server, 5)
    acknowledged = count(server)
    thread, errors = run_in_thread(
        lambda: drain(flight_client(server).do_get(flight.Ticket(RUNAWAY)))
    )
    assert_busy(server)

    def busy_worker() -> int | None:
        def cpu(pid: int) -> int:
            fields = _stat(pid)
            return 0 if fields is None else int(fields[11]) + int(fields[12])

        before = {pid: cpu(pid) for pid in workers(server)}
        time.sleep(0.3)
        used = {pid: cpu(pid) - ticks for pid, ticks in before.items()}
        return max(used, key=used.__getitem__) if used and max(used.values()) > 0 else None

    wait_for(lambda: busy_worker() is not None, 10, "the busy worker")
    victim = busy_worker()
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], flight.FlightUnavailableError), errors
    assert "SIGKILL" in str(errors[0])
    assert count(server) == acknowledged  # the next query works
    settle(server)
    assert victim not in workers(server)


def test_queries_beyond_the_workers_wait_and_beyond_the_queue_are_refused(
    server: ArrowlogServe,
) -> None:
    readers = []
    for _ in range(2):  # both workers busy
        readers.append(flight_client(server).do_get(flight.Ticket(RUNAWAY)))
    # A client that gives up while its query waits frees its place in the queue.
    impatient = flight.FlightCallOptions(timeout=1.0)
    with pytest.raises(flight.FlightTimedOutError):
        flight_client(server).do_get(flight.Ticket("SELECT 41 AS x"), impatient).read_all()
    time.sleep(0.5)
    # The third waits for a worker (the queue holds one)...
    third, third_errors = run_in_thread(
        lambda: flight_client(server).do_get(flight.Ticket("SELECT 42 AS x")).read_all()
    )
    time.sleep(1.0)
    assert third.is_alive()
    # ...and the fourth finds the queue full.
    with pytest.raises(flight.FlightUnavailableError, match="query_queue"):
        flight_client(server).do_get(flight.Ticket("SELECT 1 AS x")).read_all()
    with server.client() as http:
        r = http.post("/v1/query", json={"sql": "SELECT 1"})
        assert r.status_code == 503, r.text
        assert "query_queue" in r.json()["message"]
        assert http.get("/healthz").status_code == 200  # the rest of the server answers
    readers[0].cancel()  # a worker frees up: the waiting query runs
    third.join(10)
    assert not third.is_alive() and not third_errors, third_errors
    readers[1].cancel()
    settle(server)
