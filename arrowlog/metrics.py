"""Prometheus metrics: one registry per ``Metrics`` object, exported at ``GET /metrics``.

Each ``Log`` owns one ``Metrics`` (``log.metrics``), so several logs in one process (tests,
notebooks) never share or clash over a global registry. Two kinds of metric live here:

- counters and histograms that the code paths bump as things happen: records and bytes
  ingested, WAL fsync latency, flushes, queries, Flight and HTTP requests. Each costs one
  or two lock-protected additions per event (an append, an fsync, a request), never per
  record;
- gauges of state (segments and bytes on disk, buffered rows, WAL files) that are read
  from the Log only when Prometheus scrapes, through ``watch``: nothing on the hot path
  keeps them up to date.

Metric names (``arrowlog_`` prefix; counters get ``_total`` in the exposition)::

    ingested_records{stream}, ingested_bytes{stream}       counters (bytes: Arrow IPC in the WAL)
    wal_fsync_seconds                                       histogram (one per group commit)
    flushes{stream}, flushed_rows{stream}                   counters
    flush_duration_seconds                                  histogram
    queries{engine}, query_errors{engine,error}             counters (one per execution)
    query_duration_seconds{engine}                          histogram (planning to last batch)
    query_plans{kind}                                       counter (kind: schema, execute)
    query_snapshots{stream}                                 counter (snapshots queries took)
    flight_requests{method,status}                          counter
    http_requests{method,route,status}                      counter
    http_request_duration_seconds{method,route}             histogram
    http_tails                                              gauge (open SSE tails)
    tails{protocol}                                         gauge (tails holding a slot)
    tails_refused{limit}, tails_cut_off                     counters
    segments{stream}, segment_bytes{stream},                gauges, read at scrape time
    buffered_rows{stream}, buffered_bytes{stream},
    next_offset{stream}, streams, wal_files

Example: ``body, content_type = log.metrics.exposition()``
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from arrowlog.errors import ArrowlogError
from arrowlog.sql.result import QueryResult

__all__ = ["LogGauges", "Metrics", "StreamGauges"]

logger = logging.getLogger(__name__)

# fsyncs take 50 µs (tmpfs, NVMe with a write cache) to 100 ms (spinning disks, busy VMs).
_FSYNC_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
_SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class StreamGauges:
    """One stream's state at scrape time."""

    stream: str
    segments: int
    segment_bytes: int
    buffered_rows: int
    buffered_bytes: int
    next_offset: int


@dataclass(frozen=True, slots=True)
class LogGauges:
    """The Log's state at scrape time, as ``Log._gauges`` reports it."""

    streams: list[StreamGauges]
    wal_files: int


class Metrics:
    """arrowlog's metrics, in a ``CollectorRegistry`` of their own (``self.registry``).

    Created by the ``Log`` (``log.metrics``); the HTTP app and the Flight server count their
    requests into the same object, so ``/metrics`` shows everything one process does.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ingested_records = Counter(
            "arrowlog_ingested_records",
            "Records acknowledged (durable in the WAL).",
            ["stream"],
            registry=r,
        )
        self.ingested_bytes = Counter(
            "arrowlog_ingested_bytes",
            "Arrow IPC bytes of acknowledged records written to the WAL.",
            ["stream"],
            registry=r,
        )
        self.wal_fsync_seconds = Histogram(
            "arrowlog_wal_fsync_seconds",
            "Duration of WAL fsyncs; one fsync acknowledges every append of its group commit.",
            buckets=_FSYNC_BUCKETS,
            registry=r,
        )
        self.flushes = Counter(
            "arrowlog_flushes",
            "Flushes of a stream's buffer into Parquet segments.",
            ["stream"],
            registry=r,
        )
        self.backpressure_waits = Counter(
            "arrowlog_backpressure_waits",
            "Appends that waited because the buffers were over max_buffer_bytes.",
            registry=r,
        )
        self.flushed_rows = Counter(
            "arrowlog_flushed_rows",
            "Rows written to Parquet segments by flushes.",
            ["stream"],
            registry=r,
        )
        self.flush_seconds = Histogram(
            "arrowlog_flush_duration_seconds",
            "Duration of a flush: Parquet writing and the Delta commit.",
            buckets=_SLOW_BUCKETS,
            registry=r,
        )
        self.queries = Counter(
            "arrowlog_queries",
            "SQL queries executed (Log.sql, a Flight DoGet, an HTTP query).",
            ["engine"],
            registry=r,
        )
        self.query_errors = Counter(
            "arrowlog_query_errors",
            "SQL queries that failed, by error class.",
            ["engine", "error"],
            registry=r,
        )
        self.query_seconds = Histogram(
            "arrowlog_query_duration_seconds",
            "Duration of a query from planning until its last batch was read.",
            ["engine"],
            buckets=_SLOW_BUCKETS,
            registry=r,
        )
        self.query_plans = Counter(
            "arrowlog_query_plans",
            "Query plans made: 'schema' over the streams' shapes only (no snapshot, no "
            "file), 'execute' over the snapshots' data (a query that reads no stream runs "
            "its schema plan, counted as both).",
            ["kind"],
            registry=r,
        )
        self.query_snapshots = Counter(
            "arrowlog_query_snapshots",
            "Stream snapshots taken for queries (one per stream a query reads).",
            ["stream"],
            registry=r,
        )
        self.flight_requests = Counter(
            "arrowlog_flight_requests",
            "Flight RPCs handled, by method and status code.",
            ["method", "status"],
            registry=r,
        )
        self.http_requests = Counter(
            "arrowlog_http_requests",
            "HTTP requests handled, by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_seconds = Histogram(
            "arrowlog_http_request_duration_seconds",
            "Duration of HTTP requests until the last byte of the answer was sent.",
            ["method", "route"],
            buckets=_SLOW_BUCKETS,
            registry=r,
        )
        self.http_tails = Gauge(
            "arrowlog_http_tails",
            "Tails open over HTTP (Server-Sent Events): one thread each.",
            registry=r,
        )
        self.tails = Gauge(
            "arrowlog_tails",
            "Tails holding a slot of max_tails, by protocol (http, flight).",
            ["protocol"],
            registry=r,
        )
        for protocol in ("http", "flight"):
            self.tails.labels(protocol)  # exported as 0 before the first tail
        self.tails_refused = Counter(
            "arrowlog_tails_refused",
            "Tails refused: over max_tails (limit=all) or max_tails_per_client (limit=client).",
            ["limit"],
            registry=r,
        )
        self.tails_cut_off = Counter(
            "arrowlog_tails_cut_off",
            "HTTP tails cut off: their client took nothing for tail_send_timeout seconds.",
            registry=r,
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds, ...
        ProcessCollector(registry=r)

    # -- events ----------------------------------------------------------------------------

    def ingested(self, stream: str, records: int, nbytes: int) -> None:
        """An append of ``records`` records was acknowledged."""
        self.ingested_records.labels(stream).inc(records)
        self.ingested_bytes.labels(stream).inc(nbytes)

    def tail_changed(self, protocol: str, delta: int) -> None:
        """A counted tail opened (+1) or ended (-1)."""
        self.tails.labels(protocol).inc(delta)

    def backpressure(self) -> None:
        """An append had to wait for flushes to make buffer room."""
        self.backpressure_waits.inc()

    def flushed(self, stream: str, rows: int, seconds: float) -> None:
        """A flush committed ``rows`` rows of ``stream`` in ``seconds``."""
        self.flushes.labels(stream).inc()
        self.flushed_rows.labels(stream).inc(rows)
        self.flush_seconds.observe(seconds)

    def flight_request(self, method: str, status: str) -> None:
        """A Flight RPC ended: ``method`` as pyarrow names it, ``status`` e.g. ``OK``."""
        self.flight_requests.labels(method, status).inc()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """An HTTP request ended; ``route`` is the path template, not the path."""
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_request_seconds.labels(method, route).observe(seconds)

    def query_planned(self, kind: str) -> None:
        """A query plan is being made: ``"schema"`` (no data) or ``"execute"``."""
        self.query_plans.labels(kind).inc()

    def query_snapshot(self, stream: str) -> None:
        """A query took a snapshot of ``stream``."""
        self.query_snapshots.labels(stream).inc()

    def track_query(self, engine: str, plan: Callable[[], QueryResult]) -> QueryResult:
        """Count the query ``plan()`` makes and time it until its result is read.

        Returns a QueryResult that streams the same batches; the duration is observed
        when iteration ends (exhausted, failed or abandoned) or ``to_arrow`` returns.
        """
        started = time.perf_counter()
        self.queries.labels(engine).inc()
        try:
            result = plan()
        except ArrowlogError as e:
            self.query_errors.labels(engine, type(e).__name__).inc()
            raise

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from result
            except ArrowlogError as e:
                self.query_errors.labels(engine, type(e).__name__).inc()
                raise
            finally:
                self.query_seconds.labels(engine).observe(time.perf_counter() - started)

        def collect() -> pa.Table:
            try:
                return result.to_arrow()
            except ArrowlogError as e:
                self.query_errors.labels(engine, type(e).__name__).inc()
                raise
            finally:
                self.query_seconds.labels(engine).observe(time.perf_counter() - started)

        return QueryResult(result.schema, batches, collect, source=result)

    # -- state -----------------------------------------------------------------------------

    def watch(self, source: Callable[[], LogGauges]) -> None:
        """Report the gauges ``source()`` returns at every scrape (the Log registers itself)."""
        self.registry.register(_LogCollector(source))

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the text format ``accept`` asks for: (body, content type)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _LogCollector(Collector):
    def __init__(self, source: Callable[[], LogGauges]) -> None:
        self._source = source

    def describe(self) -> Iterable[Metric]:
        return []  # unknown until scraped; never collected at registration

    def collect(self) -> Iterable[Metric]:
        state = self._source()
        per_stream = {
            "segments": ("arrowlog_segments", "Live Parquet segments of the stream."),
            "segment_bytes": ("arrowlog_segment_bytes", "Bytes of the stream's live segments."),
            "buffered_rows": ("arrowlog_buffered_rows", "Acknowledged rows not yet flushed."),
            "buffered_bytes": ("arrowlog_buffered_bytes", "Arrow bytes of the buffered rows."),
            "next_offset": ("arrowlog_next_offset", "The offset the stream's next record gets."),
        }
        for attr, (name, help) in per_stream.items():
            family = GaugeMetricFamily(name, help, labels=["stream"])
            for s in state.streams:
                family.add_metric([s.stream], getattr(s, attr))
            yield family
        yield GaugeMetricFamily("arrowlog_streams", "Streams in the log.", value=len(state.streams))
        yield GaugeMetricFamily(
            "arrowlog_wal_files", "Write-ahead log files on disk.", value=state.wal_files
        )
