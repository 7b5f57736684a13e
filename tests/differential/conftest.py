"""Fixtures of the differential suite: one embedded Log and one ``arrowlog serve`` per module.

Both never flush or compact on their own (thresholds out of reach), so a case controls
exactly when its records move from the buffer to segments.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

import arrowlog
from tests.differential.data import join_partner, streams
from tests.differential.harness import NO_AUTO_FLUSH, STATS, Case, Target, Writer, env_int
from tests.differential.queries import DF, DUCK, query_for
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve

# Queries per generated data set, examples per test in the default (CI) run and in the
# long run (-m slow). A case is one (data set, query) pair, checked on every path and
# moment of its test.
QUERIES = env_int("ARROWLOG_DIFF_QUERIES", 5)
CI_EXAMPLES = env_int("ARROWLOG_DIFF_CI_EXAMPLES", 12)
SLOW_EXAMPLES = env_int("ARROWLOG_DIFF_EXAMPLES", 250)


# Shrinking re-runs whole cases (appends, flushes, compactions) hundreds of times: off by
# default, the report already prints a standalone repro; ARROWLOG_DIFF_SHRINK=1 turns it on.
SHRINK = env_int("ARROWLOG_DIFF_SHRINK", 0)


def diff_settings(max_examples: int) -> settings:
    """Reproducible: derandomized (same examples every run), no deadline (servers)."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    return settings(
        max_examples=max_examples,
        phases=[*phases, Phase.shrink] if SHRINK else phases,
        derandomize=True,
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


@st.composite
def cases(draw: st.DrawFn, n_queries: int = QUERIES) -> Case:
    a = draw(streams())
    partner = draw(join_partner(a)) if draw(st.booleans()) else None
    queries = [draw(query_for(a, partner)) for _ in range(n_queries)]
    return Case(a, partner, queries)


# -- embedded --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Writer, list[Target]]]:
    log = arrowlog.open(tmp_path_factory.mktemp("diff-embedded"), **NO_AUTO_FLUSH)
    writer = Writer(log.append, log.flush, log.compact, "embedded")
    targets = [
        Target("embedded-datafusion", DF, lambda sql: log.sql(sql).to_arrow()),
        Target("embedded-duckdb", DUCK, lambda sql: log.sql(sql, engine="duckdb").to_arrow()),
    ]
    yield writer, targets
    try:
        log.close()
    except arrowlog.ArrowlogError as e:  # after a failed flush a test already reported
        warnings.warn(f"closing the differential suite's log failed: {e}", stacklevel=1)


# -- server ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArrowlogServe]:
    env = {f"ARROWLOG_{k.upper()}": str(v) for k, v in NO_AUTO_FLUSH.items()}
    server = start_arrowlog_serve(tmp_path_factory.mktemp("diff-serve"), env=env)
    yield server
    code = server.stop()
    assert code == 0, server.process.output()


@pytest.fixture(scope="module")
def remote(served: ArrowlogServe) -> Iterator[tuple[Writer, list[Target]]]:
    import adbc_driver_flightsql.dbapi as flightsql
    import httpx

    client = arrowlog.connect(served.flight_url)
    conn = flightsql.connect(served.flight_url, autocommit=True)
    http = httpx.Client(base_url=served.http_url, timeout=60)

    def adbc(sql: str) -> pa.Table:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table()

    def http_arrow(sql: str, engine: str = DF) -> pa.Table:
        r = http.post(
            "/v1/query",
            json={"sql": sql, "engine": engine},
            headers={"Accept": "application/vnd.apache.arrow.stream"},
        )
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:500]}")
        return pa.ipc.open_stream(io.BytesIO(r.content)).read_all()

    writer = Writer(client.append, client.flush, client.compact, "flight")
    targets = [
        Target("adbc-flightsql", DF, adbc),
        Target("http-arrow", DF, http_arrow),
        # DuckDB in the server's query workers, as the embedded suite runs it in process.
        Target("http-arrow-duckdb", DUCK, lambda sql: http_arrow(sql, DUCK)),
    ]
    yield writer, targets
    http.close()
    conn.close()
    client.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STATS:
        terminalreporter.write_sep("-", "differential suite")
        for key, value in sorted(STATS.items()):
            terminalreporter.write_line(f"{key}: {value}")
