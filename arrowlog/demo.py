"""Realistic, reproducible web-service logs for demos, docs, tests and benchmarks.

``generate_web_logs`` yields pyarrow Tables of access/application log records from a fleet
of eight services; ``DEMO_QUERIES`` is the query set the README and ``arrowlog demo`` show
against them. Everything is drawn with numpy from one seeded generator, whole batches at a
time (no per-row Python), so a seed, a start time and a batch size always give the same
rows.

What makes the data worth querying:

- traffic is skewed across services, hosts and users (a Zipf-like long tail of ~50k users),
  and user ``4242`` (``NEEDLE_USER_ID``) always has a handful of requests, for point lookups;
- levels are ~10% DEBUG, ~75% INFO, ~10% WARN, ~5% ERROR, and ``status`` agrees with them;
- latency is lognormal around a per-service median with a heavy tail;
- two incident windows each make one service's ERROR rate and latency spike, so
  "top error hosts" and the per-minute histogram have something to find.

Example: ``for table in generate_web_logs(1_000_000): log.append("http_logs", table)``
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DEMO_QUERIES",
    "DEMO_QUERIES_DUCKDB",
    "DEMO_SCHEMA",
    "DEMO_STREAM",
    "NEEDLE_USER_ID",
    "generate_web_logs",
]

DEMO_STREAM = "http_logs"
NEEDLE_USER_ID = 4242

DEMO_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("service", pa.string()),
        pa.field("host", pa.string()),
        pa.field("level", pa.string()),
        pa.field("status", pa.int32()),
        pa.field("latency_ms", pa.float64()),
        pa.field("user_id", pa.int64()),
        pa.field("message", pa.string()),
        pa.field("endpoint", pa.string()),
    ]
)

# Written once in the dialect both engines share. The p99 is exact (quantile_cont): the
# engines' t-digest estimates missed it by up to 40% on this heavy-tailed data, and
# differently per engine and batch layout. DEMO_QUERIES_DUCKDB holds the queries DuckDB
# must spell differently: none at the moment.
DEMO_QUERIES: dict[str, str] = {
    "errors_last_hour": (
        "SELECT count(*) AS errors FROM http_logs "
        "WHERE level = 'ERROR' AND ts > (SELECT max(ts) FROM http_logs) - INTERVAL '1 hour'"
    ),
    "per_service_latency": (
        "SELECT service, count(*) AS requests, avg(latency_ms) AS avg_ms, "
        "quantile_cont(latency_ms, 0.99) AS p99_ms "
        "FROM http_logs GROUP BY service ORDER BY requests DESC"
    ),
    "top_error_hosts": (
        "SELECT host, count(*) AS errors FROM http_logs WHERE level = 'ERROR' "
        "GROUP BY host ORDER BY errors DESC, host LIMIT 10"
    ),
    "needle_user": (
        "SELECT ts, service, endpoint, status, latency_ms, message FROM http_logs "
        f"WHERE user_id = {NEEDLE_USER_ID} ORDER BY ts"
    ),
    "histogram_1m": (
        "SELECT date_trunc('minute', ts) AS minute, count(*) AS requests FROM http_logs "
        "GROUP BY date_trunc('minute', ts) ORDER BY minute"
    ),
}

DEMO_QUERIES_DUCKDB: dict[str, str] = {}


@dataclass(frozen=True)
class _Service:
    name: str
    weight: float  # share of traffic
    hosts: int
    median_ms: float
    # (method, route) with any path parameter last, written as "{id}"
    endpoints: tuple[tuple[str, str], ...]


_SERVICES = (
    _Service(
        "api",
        0.30,
        8,
        35.0,
        (
            ("GET", "/api/v1/orders/{id}"),
            ("POST", "/api/v1/orders"),
            ("GET", "/api/v1/users/{id}"),
            ("GET", "/api/v1/products"),
            ("GET", "/api/v1/products/{id}"),
        ),
    ),
    _Service(
        "web",
        0.22,
        8,
        60.0,
        (
            ("GET", "/"),
            ("GET", "/products"),
            ("GET", "/products/{id}"),
            ("GET", "/static/app.js"),
            ("GET", "/checkout"),
            ("GET", "/account"),
        ),
    ),
    _Service(
        "auth",
        0.12,
        4,
        25.0,
        (
            ("POST", "/auth/login"),
            ("POST", "/auth/logout"),
            ("POST", "/auth/token/refresh"),
            ("GET", "/auth/me"),
        ),
    ),
    _Service(
        "payments",
        0.07,
        4,
        120.0,
        (
            ("POST", "/payments/charge"),
            ("POST", "/payments/refund"),
            ("POST", "/payments/webhook"),
            ("GET", "/payments/{id}"),
        ),
    ),
    _Service(
        "search",
        0.10,
        5,
        80.0,
        (
            ("GET", "/search"),
            ("GET", "/search/suggest"),
            ("GET", "/search/facets"),
        ),
    ),
    _Service(
        "cart",
        0.09,
        4,
        40.0,
        (
            ("GET", "/cart"),
            ("POST", "/cart/items"),
            ("DELETE", "/cart/items/{id}"),
        ),
    ),
    _Service(
        "inventory",
        0.06,
        4,
        30.0,
        (
            ("GET", "/inventory/{id}"),
            ("PUT", "/inventory/{id}"),
            ("GET", "/inventory/reservations"),
        ),
    ),
    _Service(
        "notifications",
        0.04,
        3,
        15.0,
        (
            ("POST", "/notify/email"),
            ("POST", "/notify/push"),
            ("GET", "/notify/preferences"),
        ),
    ),
)

_SERVICE_NAMES = pa.array([s.name for s in _SERVICES])
_SERVICE_P = np.array([s.weight for s in _SERVICES]) / sum(s.weight for s in _SERVICES)
_MEDIAN_MS = np.array([s.median_ms for s in _SERVICES])

# Hosts and endpoints are numbered globally; *_SERVICE maps each back to its service and
# *_START/*_COUNT give each service's contiguous range.
_HOST_COUNT = np.array([s.hosts for s in _SERVICES])
_HOST_START = np.concatenate([[0], np.cumsum(_HOST_COUNT)[:-1]])
_HOST_NAMES = pa.array([f"{s.name}-{i:02d}" for s in _SERVICES for i in range(1, s.hosts + 1)])
_EP_COUNT = np.array([len(s.endpoints) for s in _SERVICES])
_EP_START = np.concatenate([[0], np.cumsum(_EP_COUNT)[:-1]])
_ENDPOINTS = [ep for s in _SERVICES for ep in s.endpoints]
_EP_METHOD = pa.array([m for m, _ in _ENDPOINTS])
_EP_ROUTE = pa.array([r for _, r in _ENDPOINTS])
_EP_PREFIX = pa.array([r.removesuffix("{id}") for _, r in _ENDPOINTS])
_EP_HAS_ID = np.array([r.endswith("{id}") for _, r in _ENDPOINTS])
_EP_IS_POST = np.array([m == "POST" for m, _ in _ENDPOINTS])
_PAYMENTS = next(i for i, s in enumerate(_SERVICES) if s.name == "payments")

_LEVELS = pa.array(["DEBUG", "INFO", "WARN", "ERROR"])
_DEBUG, _INFO, _WARN, _ERROR = range(4)
_BASE_ERROR_P = 0.045
_INCIDENT_ERROR_P = 0.45
_INCIDENT_LATENCY = 6.0
# Among non-errors: DEBUG 10, INFO 75, WARN 10 (out of 95), cumulative.
_NON_ERROR_CUT = np.cumsum([10 / 95, 75 / 95])

# status choices and probabilities per level
_STATUS = {
    _DEBUG: ([200, 304], [0.9, 0.1]),
    _INFO: ([200, 204, 301, 304], [0.88, 0.04, 0.03, 0.05]),
    _WARN: ([400, 401, 403, 404, 429], [0.25, 0.15, 0.10, 0.30, 0.20]),
    _ERROR: ([500, 502, 503], [0.6, 0.25, 0.15]),
}
_UPSTREAMS = pa.array(
    ["inventory-db", "payments-gateway", "search-cluster", "redis-cache", "user-db"]
)

_USERS = 50_000
_ZIPF_S = 1.1
_NEEDLE_RANK = 40  # rank 40 of a Zipf(1.1) over 50k users: ~0.2% of requests
_INCIDENTS = 2


def generate_web_logs(
    rows: int,
    *,
    seed: int = 42,
    start: datetime | None = None,
    span: timedelta = timedelta(hours=24),
    batch_rows: int = 100_000,
) -> Iterator[pa.Table]:
    """Yield ``rows`` web-service log records as Tables of at most ``batch_rows`` rows.

    Timestamps rise through ``[start, start + span)`` with a little jitter (records arrive
    slightly out of order, as they do from a real fleet). The same arguments always give
    the same rows; ``start`` defaults to now minus ``span``, floored to the minute, so pass
    it explicitly for reproducible data.

    Args:
        rows: how many records in total.
        seed: seeds every random choice (services, incidents, users, latencies).
        start: the first instant of the time range (UTC if naive).
        span: the length of the time range.
        batch_rows: the most rows one yielded table holds.

    Returns:
        An iterator of Tables with schema ``DEMO_SCHEMA``.

    Raises:
        ValueError: ``rows`` is negative, or ``batch_rows`` or ``span`` not positive.

    Example: ``pa.concat_tables(generate_web_logs(10_000, seed=7))``
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if batch_rows <= 0:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    span_us = _micros(span)
    if span_us <= 0:
        raise ValueError(f"span must be positive, got {span}")
    if start is None:
        start = (datetime.now(UTC) - span).replace(second=0, microsecond=0)
    elif start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    start_us = _micros(start - datetime(1970, 1, 1, tzinfo=UTC))
    return _generate(rows, seed, start_us, span_us, batch_rows)


def _generate(
    rows: int, seed: int, start_us: int, span_us: int, batch_rows: int
) -> Iterator[pa.Table]:
    rng = np.random.default_rng(seed)
    incidents = _draw_incidents(rng, start_us, span_us)
    users = _draw_user_ids(rng)
    zipf_cdf = np.cumsum(1.0 / np.arange(1, _USERS + 1) ** _ZIPF_S)
    zipf_cdf /= zipf_cdf[-1]
    for lo in range(0, rows, batch_rows):
        n = min(batch_rows, rows - lo)
        yield _batch(rng, lo, n, rows, start_us, span_us, incidents, users, zipf_cdf)


def _draw_incidents(
    rng: np.random.Generator, start_us: int, span_us: int
) -> list[tuple[int, int, int]]:
    """(service index, first µs, last µs) of each incident: ~2% of the span each."""
    services = rng.choice(len(_SERVICES), size=_INCIDENTS, replace=False, p=_SERVICE_P)
    # one in each half, so they never overlap
    centres = (np.arange(_INCIDENTS) + rng.uniform(0.2, 0.8, _INCIDENTS)) / _INCIDENTS
    half = span_us * rng.uniform(0.008, 0.015, _INCIDENTS)
    return [
        (int(svc), start_us + int(c * span_us - h), start_us + int(c * span_us + h))
        for svc, c, h in zip(services, centres, half, strict=True)
    ]


def _draw_user_ids(rng: np.random.Generator) -> np.ndarray:
    """User id for each popularity rank; the needle user sits at a fixed rank."""
    ids = rng.permutation(np.arange(1, _USERS + 1, dtype=np.int64))
    at = int(np.flatnonzero(ids == NEEDLE_USER_ID)[0])
    ids[[at, _NEEDLE_RANK - 1]] = ids[[_NEEDLE_RANK - 1, at]]
    return ids


def _batch(
    rng: np.random.Generator,
    lo: int,
    n: int,
    rows: int,
    start_us: int,
    span_us: int,
    incidents: list[tuple[int, int, int]],
    users: np.ndarray,
    zipf_cdf: np.ndarray,
) -> pa.Table:
    # Time: an even spread over the span, plus ~0.5 s of arrival jitter (out-of-order records).
    # Jitter that would leave the span is reflected back in, so no instant piles up at an edge.
    position = (np.arange(lo, lo + n) + rng.random(n)) / rows
    ts = start_us + position * span_us + rng.normal(0.0, min(5e5, span_us / 1000), n)
    end_us = start_us + span_us - 1
    ts = np.where(ts < start_us, 2 * start_us - ts, ts)
    ts = np.where(ts > end_us, 2 * end_us - ts, ts)
    ts = np.clip(ts, start_us, end_us).astype(np.int64)

    service = rng.choice(len(_SERVICES), size=n, p=_SERVICE_P)
    host = _HOST_START[service] + (rng.random(n) ** 1.5 * _HOST_COUNT[service]).astype(np.int64)
    endpoint = _EP_START[service] + (rng.random(n) ** 1.3 * _EP_COUNT[service]).astype(np.int64)

    in_incident = np.zeros(n, dtype=bool)
    for svc, first, last in incidents:
        in_incident |= (service == svc) & (ts >= first) & (ts <= last)

    # Level: errors first (their rate depends on incidents), the rest split 10:75:10.
    error_p = np.where(in_incident, _INCIDENT_ERROR_P, _BASE_ERROR_P)
    level = np.searchsorted(_NON_ERROR_CUT, rng.random(n), side="right")
    level[rng.random(n) < error_p] = _ERROR

    status = np.empty(n, dtype=np.int32)
    for lvl, (codes, p) in _STATUS.items():
        mask = level == lvl
        status[mask] = rng.choice(codes, size=int(mask.sum()), p=p)
    created = (status == 200) & _EP_IS_POST[endpoint] & (rng.random(n) < 0.7)
    status[created] = 201

    # Latency: lognormal around the service median, a Pareto tail on ~2%, slow incidents,
    # fast rejections (4xx) and upstream timeouts (503) at ~3 s.
    latency = _MEDIAN_MS[service] * rng.lognormal(0.0, 0.55, n)
    tail = rng.random(n) < 0.02
    latency[tail] *= 1.0 + rng.pareto(1.5, int(tail.sum())) * 4.0
    latency[in_incident] *= _INCIDENT_LATENCY
    rejected = (status >= 400) & (status < 500)
    latency[rejected] = rng.lognormal(np.log(4.0), 0.5, int(rejected.sum()))
    timeout = status == 503
    latency[timeout] = 3000.0 + rng.exponential(15.0, int(timeout.sum()))
    latency = np.round(latency, 3)

    rank = np.searchsorted(zipf_cdf, rng.random(n), side="right")
    user_id = users[np.minimum(rank, _USERS - 1)]
    object_id = rng.integers(1, 100_000, n)

    message = _messages(rng, n, service, endpoint, level, status, latency, user_id, object_id)
    return pa.Table.from_arrays(
        [
            pa.array(ts, DEMO_SCHEMA.field("ts").type),
            _SERVICE_NAMES.take(service),
            _HOST_NAMES.take(host),
            _LEVELS.take(level),
            pa.array(status, pa.int32()),
            pa.array(latency, pa.float64()),
            pa.array(user_id, pa.int64()),
            message,
            _EP_ROUTE.take(endpoint),
        ],
        schema=DEMO_SCHEMA,
    )


def _messages(
    rng: np.random.Generator,
    n: int,
    service: np.ndarray,
    endpoint: np.ndarray,
    level: np.ndarray,
    status: np.ndarray,
    latency: np.ndarray,
    user_id: np.ndarray,
    object_id: np.ndarray,
) -> pa.Array:
    """One templated message per record, built column-wise with pyarrow compute.

    Each template is rendered only for the rows it applies to (their status codes never
    overlap); the pieces are then put back in row order with one ``take``.
    """
    method = _EP_METHOD.take(endpoint)
    path = pc.binary_join_element_wise(
        _EP_PREFIX.take(endpoint), pc.if_else(_EP_HAS_ID[endpoint], _text(object_id), ""), ""
    )
    status_s = _text(status)
    ms = _text(np.rint(latency).astype(np.int64))
    user = _text(user_id)
    upstream = _UPSTREAMS.take(rng.integers(0, len(_UPSTREAMS), n))
    payments = service == _PAYMENTS
    templates: list[tuple[np.ndarray, tuple[pa.Array | str, ...]]] = [
        (level <= _INFO, (method, " ", path, " ", status_s, " in ", ms, "ms")),
        (status == 400, ("bad request on ", path, ": validation failed")),
        (status == 401, ("invalid or expired token for user ", user)),
        (status == 403, ("user ", user, " is not allowed to ", method, " ", path)),
        (status == 404, (method, " ", path, " 404 not found")),
        (status == 429, ("rate limit exceeded for user ", user)),
        ((status == 500) & payments, ("payment declined for user ", user)),
        ((status == 500) & ~payments, ("unhandled exception in ", method, " ", path)),
        (status == 502, ("bad gateway from ", upstream, " on ", path)),
        (status == 503, ("upstream timeout after 3000ms on ", path)),
    ]
    placed: list[np.ndarray] = []
    pieces: list[pa.Array] = []
    for mask, parts in templates:
        rows = np.flatnonzero(mask)
        if rows.size:
            picked = [p if isinstance(p, str) else p.take(rows) for p in parts]
            placed.append(rows)
            pieces.append(pc.binary_join_element_wise(*picked, ""))
    if not pieces:
        return pa.array([], pa.string())
    return pa.concat_arrays(pieces).take(np.argsort(np.concatenate(placed)))


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
