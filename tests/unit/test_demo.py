"""The demo data generator: reproducible, exactly typed, and shaped like real web logs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from arrowlog.demo import (
    DEMO_QUERIES,
    DEMO_QUERIES_DUCKDB,
    DEMO_SCHEMA,
    NEEDLE_USER_ID,
    generate_web_logs,
)

START = datetime(2026, 11, 23, tzinfo=UTC)
SPAN = timedelta(hours=24)


@pytest.fixture(scope="module")
def logs() -> pa.Table:
    return pa.concat_tables(
        generate_web_logs(100_000, seed=7, start=START, span=SPAN, batch_rows=30_000)
    )


def _share(table: pa.Table, mask: pa.ChunkedArray) -> float:
    return pc.sum(mask).as_py() / table.num_rows


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a = pa.concat_tables(generate_web_logs(5_000, seed=1, start=START))
    b = pa.concat_tables(generate_web_logs(5_000, seed=1, start=START))
    c = pa.concat_tables(generate_web_logs(5_000, seed=2, start=START))
    assert a.equals(b)
    assert not a.equals(c)
    assert a.column("ts").equals(b.column("ts"))


def test_schema_is_exact(logs: pa.Table) -> None:
    assert logs.schema.equals(DEMO_SCHEMA)
    assert [(f.name, str(f.type)) for f in logs.schema] == [
        ("ts", "timestamp[us, tz=UTC]"),
        ("service", "string"),
        ("host", "string"),
        ("level", "string"),
        ("status", "int32"),
        ("latency_ms", "double"),
        ("user_id", "int64"),
        ("message", "string"),
        ("endpoint", "string"),
    ]
    assert all(logs.column(name).null_count == 0 for name in logs.column_names)


def test_batches_hold_at_most_batch_rows_and_add_up() -> None:
    sizes = [t.num_rows for t in generate_web_logs(25_001, start=START, batch_rows=10_000)]
    assert sizes == [10_000, 10_000, 5_001]
    assert list(generate_web_logs(0, start=START)) == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="rows must be >= 0"):
        generate_web_logs(-1)
    with pytest.raises(ValueError, match="batch_rows must be positive"):
        generate_web_logs(10, batch_rows=0)
    with pytest.raises(ValueError, match="span must be positive"):
        generate_web_logs(10, span=timedelta(0))


def test_timestamps_fill_the_span_in_rising_order(logs: pa.Table) -> None:
    ts = logs.column("ts")
    lo, hi = pc.min_max(ts).values()
    assert START <= lo.as_py() < START + timedelta(minutes=5)
    assert START + SPAN - timedelta(minutes=5) < hi.as_py() < START + SPAN
    # increasing-ish: the jitter is seconds, the span is a day
    micros = ts.cast(pa.int64()).to_numpy()
    assert micros[:10_000].max() < micros[-10_000:].min()
    assert np.abs(micros - np.maximum.accumulate(micros)).max() < 10_000_000


def test_default_start_ends_the_span_now() -> None:
    table = next(generate_web_logs(1_000, span=timedelta(hours=1)))
    now = datetime.now(UTC)
    lo, hi = pc.min_max(table.column("ts")).values()
    assert now - timedelta(hours=1, minutes=2) <= lo.as_py() and hi.as_py() <= now
    naive = next(generate_web_logs(10, start=datetime(2026, 1, 1), span=timedelta(minutes=1)))
    assert pc.min(naive.column("ts")).as_py() >= datetime(2026, 1, 1, tzinfo=UTC)


def test_services_hosts_and_endpoints(logs: pa.Table) -> None:
    counts = {d["values"]: d["counts"] for d in pc.value_counts(logs.column("service")).to_pylist()}
    assert set(counts) == {
        "api",
        "web",
        "auth",
        "payments",
        "search",
        "cart",
        "inventory",
        "notifications",
    }
    assert counts["api"] > 3 * counts["notifications"]  # skewed
    hosts = logs.group_by(["host", "service"]).aggregate([]).to_pylist()
    assert 35 <= len(hosts) <= 45
    assert len({h["host"] for h in hosts}) == len(hosts)  # each host serves one service
    assert all(re.fullmatch(rf"{h['service']}-\d\d", h["host"]) for h in hosts)
    assert 25 <= pc.count_distinct(logs.column("endpoint")).as_py() <= 35


def test_levels_and_status_agree(logs: pa.Table) -> None:
    level, status = logs.column("level"), logs.column("status")
    assert set(pc.unique(level).to_pylist()) == {"DEBUG", "INFO", "WARN", "ERROR"}
    assert 0.02 <= _share(logs, pc.equal(level, "ERROR")) <= 0.15
    assert 0.65 <= _share(logs, pc.equal(level, "INFO")) <= 0.85
    assert 0.05 <= _share(logs, pc.equal(level, "DEBUG")) <= 0.15
    assert 0.05 <= _share(logs, pc.equal(level, "WARN")) <= 0.15
    assert set(pc.unique(status).to_pylist()) <= {
        200,
        201,
        204,
        301,
        304,
        400,
        401,
        403,
        404,
        429,
        500,
        502,
        503,
    }
    by_level = {
        lv: set(pc.unique(status.filter(pc.equal(level, lv))).to_pylist())
        for lv in ("DEBUG", "INFO", "WARN", "ERROR")
    }
    assert all(s < 400 for s in by_level["DEBUG"] | by_level["INFO"])
    assert all(400 <= s < 500 for s in by_level["WARN"])
    assert all(s >= 500 for s in by_level["ERROR"])


def test_incidents_make_error_bursts(logs: pa.Table) -> None:
    df = logs.select(["ts", "service", "level"]).to_pandas()
    df["window"] = df["ts"].dt.floor("15min")
    share = (df["level"] == "ERROR").groupby([df["window"], df["service"]]).mean()
    assert share.max() > 0.25  # an incident window
    assert share.median() < 0.1  # ordinary ones


def test_latency_is_heavy_tailed_per_service(logs: pa.Table) -> None:
    df = logs.select(["service", "latency_ms"]).to_pandas()
    assert (df["latency_ms"] > 0).all()
    median = df.groupby("service")["latency_ms"].median()
    assert median["payments"] > 2 * median["notifications"]
    assert df["latency_ms"].quantile(0.999) > 10 * df["latency_ms"].median()


def test_users_are_skewed_and_the_needle_user_exists(logs: pa.Table) -> None:
    users = logs.column("user_id")
    lo, hi = pc.min_max(users).values()
    assert lo.as_py() >= 1
    assert hi.as_py() <= 50_000
    top = pc.value_counts(users).to_pylist()
    top.sort(key=lambda d: -d["counts"])
    assert top[0]["counts"] > 50 * (logs.num_rows / 50_000)  # far above a uniform share
    assert 0 < pc.sum(pc.equal(users, NEEDLE_USER_ID)).as_py() < 0.01 * logs.num_rows


def test_messages_follow_the_templates(logs: pa.Table) -> None:
    rows = logs.select(["level", "status", "message", "service", "user_id"]).to_pylist()
    access = re.compile(r"(GET|POST|PUT|DELETE) /\S* \d{3} in \d+ms")
    for row in rows[:5_000]:
        if row["level"] in ("DEBUG", "INFO"):
            assert access.fullmatch(row["message"]), row
            assert f" {row['status']} in " in row["message"]
        elif row["status"] == 503:
            assert row["message"].startswith("upstream timeout after 3000ms"), row
    declined = [r for r in rows if r["message"].startswith("payment declined for user ")]
    assert declined and all(r["service"] == "payments" for r in declined)
    assert all(r["message"].endswith(str(r["user_id"])) for r in declined)


def test_demo_queries_are_named_and_read_http_logs() -> None:
    assert set(DEMO_QUERIES) == {
        "errors_last_hour",
        "per_service_latency",
        "top_error_hosts",
        "needle_user",
        "histogram_1m",
    }
    assert set(DEMO_QUERIES_DUCKDB) <= set(DEMO_QUERIES)
    assert all(
        "FROM http_logs" in sql for sql in [*DEMO_QUERIES.values(), *DEMO_QUERIES_DUCKDB.values()]
    )
    assert "quantile_cont(latency_ms, 0.99)" in DEMO_QUERIES["per_service_latency"]  # exact p99
