"""Metrics: one registry per Log, counters bumped by the Log, gauges read at scrape time."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import arrowlog
from arrowlog.errors import InvalidInput, StreamNotFound
from arrowlog.metrics import Metrics


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_append_flush_and_query_move_the_counters(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path / "d") as log:
        before = scrape(log.metrics)
        log.append("s", [{"n": 1}, {"n": 2}, {"n": 3}])
        log.append("s", [{"n": 4}])
        after_append = scrape(log.metrics)
        assert value(after_append, "arrowlog_ingested_records_total", stream="s") == 4
        assert value(after_append, "arrowlog_ingested_bytes_total", stream="s") > 0
        fsyncs = value(after_append, "arrowlog_wal_fsync_seconds_count")
        assert fsyncs >= value(before, "arrowlog_wal_fsync_seconds_count") + 2
        assert value(after_append, "arrowlog_buffered_rows", stream="s") == 4
        assert value(after_append, "arrowlog_next_offset", stream="s") == 4
        assert value(after_append, "arrowlog_streams") == 1

        log.flush()
        after_flush = scrape(log.metrics)
        assert value(after_flush, "arrowlog_flushes_total", stream="s") == 1
        assert value(after_flush, "arrowlog_flushed_rows_total", stream="s") == 4
        assert value(after_flush, "arrowlog_flush_duration_seconds_count") == 1
        assert value(after_flush, "arrowlog_buffered_rows", stream="s") == 0
        assert value(after_flush, "arrowlog_segments", stream="s") >= 1
        assert value(after_flush, "arrowlog_segment_bytes", stream="s") > 0

        assert log.sql("SELECT sum(n) AS t FROM s").to_arrow().column("t")[0].as_py() == 10
        assert sum(b.num_rows for b in log.sql("SELECT * FROM s")) == 4
        with pytest.raises(StreamNotFound):
            log.sql("SELECT * FROM nope")
        with pytest.raises(InvalidInput):
            log.sql("SELEC 1")
        after_query = scrape(log.metrics)
        assert value(after_query, "arrowlog_queries_total", engine="datafusion") == 4
        assert value(after_query, "arrowlog_query_duration_seconds_count", engine="datafusion") == 2
        errors = {"engine": "datafusion"}
        assert (
            value(after_query, "arrowlog_query_errors_total", error="StreamNotFound", **errors) == 1
        )
        assert (
            value(after_query, "arrowlog_query_errors_total", error="InvalidInput", **errors) == 1
        )


def test_each_log_has_its_own_registry(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path / "a") as a, arrowlog.open(tmp_path / "b") as b:
        a.append("s", [{"n": 1}])
        assert value(scrape(a.metrics), "arrowlog_ingested_records_total", stream="s") == 1
        assert value(scrape(b.metrics), "arrowlog_ingested_records_total", stream="s") == 0
        assert a.metrics.registry is not b.metrics.registry


def test_request_counters() -> None:
    m = Metrics()
    m.flight_request("DoGet", "OK")
    m.flight_request("DoGet", "OK")
    m.http_request("POST", "/v1/query", 200, 0.01)
    samples = scrape(m)
    assert value(samples, "arrowlog_flight_requests_total", method="DoGet", status="OK") == 2
    labels = {"method": "POST", "route": "/v1/query"}
    assert value(samples, "arrowlog_http_requests_total", status="200", **labels) == 1
    assert value(samples, "arrowlog_http_request_duration_seconds_count", **labels) == 1


def test_openmetrics_when_asked() -> None:
    body, content_type = Metrics().exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
