"""The HTTP API: ``create_app(log, settings)`` wires every route, the auth and the errors.

One FastAPI app serves one open ``Log`` (the same one the Flight server serves, in
``arrowlog serve``). Like the Flight handlers, each route decodes the request, calls one
``Log`` method and encodes the answer; blocking Log calls run in worker threads, never on
the event loop.

Routes (OpenAPI at ``/docs``)::

    POST /v1/streams/{stream}/records   append NDJSON / JSON array / Arrow IPC (gzip ok)
    POST /v1/query                      SQL, answered as JSON, NDJSON, CSV or Arrow IPC
    GET  /v1/streams                    list streams
    GET  /v1/streams/{stream}           describe one
    GET  /v1/streams/{stream}/tail      follow one: Server-Sent Events (``http/tail.py``)
    GET  /healthz                       liveness, never needs the token
    GET  /metrics                       Prometheus text format
    GET  /docs, /openapi.json           the API's documentation
    GET  /, /console                    the web console (``http/console.py``)

With a token configured every route but ``/healthz`` and the console's three static files
requires ``Authorization: Bearer <token>`` (the docs too: they are routes like the
others). The console holds no data: it asks for the token and sends it as that header.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arrowlog._version import __version__
from arrowlog.config import Settings
from arrowlog.errors import Unavailable
from arrowlog.http import console, errors, ingest, limits, query, streams, tail
from arrowlog.http.deps import LogDep, require_token
from arrowlog.http.models import ErrorResponse
from arrowlog.log import Log
from arrowlog.metrics import Metrics

__all__ = ["create_app"]

_DESCRIPTION = """\
arrowlog's HTTP API: append records to streams, query them with SQL, look at them.

Errors always answer `{"error": <class>, "message": <text>}`: 400 bad input (malformed
JSON names the line, a type conflict names the column, bad SQL carries the engine's
message) or a Host this server does not answer for, 401 missing/wrong token, 403 SQL that
would write or a page of another origin, 404 no such stream or route, 405 wrong method,
406 no acceptable answer format, 408 a request sent too slowly, 413 body too large, 415
unsupported body type, 431 headers too large, 503 shutting down or too many request bodies
in memory (with `Retry-After`).
"""


def create_app(log: Log, settings: Settings) -> FastAPI:
    """The HTTP API over ``log``.

    Args:
        log: an open log; the caller keeps owning it (close it after the server stops).
        settings: the server's settings (``token``, ``max_body_bytes``).

    Returns:
        A FastAPI app, for uvicorn or any ASGI server.

    Example: ``uvicorn.run(create_app(log, settings), port=8080)``
    """
    app = FastAPI(
        title="arrowlog",
        version=__version__,
        description=_DESCRIPTION,
        # Served below as ordinary routes, so they sit behind the token like the rest.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.log = log
    app.state.settings = settings
    app.state.token = settings.token.encode() if settings.token else None
    app.state.tails = tail.TailHub(log.metrics)  # ArrowlogServer.stop ends them
    errors.install(app)
    # Host, Origin, and the body's time and memory limits; refusals are counted below.
    app.state.body_budget = limits.BodyBudget(settings.max_inflight_body_bytes)
    app.add_middleware(limits.RequestGuard, settings=settings, budget=app.state.body_budget)
    app.add_middleware(_RequestMetrics, metrics=log.metrics)

    app.include_router(_public)
    app.include_router(console.router)
    protected = APIRouter(dependencies=[Depends(require_token)])
    protected.include_router(ingest.router)
    protected.include_router(query.router)
    protected.include_router(streams.router)
    protected.include_router(tail.router)
    protected.include_router(_operations)
    _add_docs(app, protected)
    app.include_router(protected)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document, without the 422 answers it lists but we never send.

    Validation errors answer 400 through the one error mapping (``arrowlog.http.errors``).
    """
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


_public = APIRouter(tags=["operations"])
_operations = APIRouter(tags=["operations"])


@_public.get(
    "/healthz",
    summary="Liveness",
    responses={
        200: {"content": {"application/json": {"example": {"status": "ok", "version": "0.1.0"}}}},
        503: {"model": ErrorResponse, "description": "The log is closed (shutting down)."},
    },
)
async def healthz(log: LogDep) -> dict[str, str]:
    """`{"status": "ok"}` while the server accepts work; never needs the token."""
    if log.closed:
        raise Unavailable("the log is closed: the server is shutting down")
    return {"status": "ok", "version": __version__}


@_operations.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/plain": {
                    "example": "# HELP arrowlog_ingested_records_total Records acknowledged "
                    "(durable in the WAL).\n# TYPE arrowlog_ingested_records_total counter\n"
                    'arrowlog_ingested_records_total{stream="http_logs"} 1002.0\n'
                }
            }
        }
    },
)
def metrics(request: Request, log: LogDep) -> Response:
    """Ingest, WAL fsync, flush, query and request metrics, and storage gauges.

    Prometheus text format (OpenMetrics if `Accept` asks for it).
    """
    body, content_type = log.metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)


@_operations.get(
    "/v1/cluster",
    summary="Cluster membership",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "node": "node-a",
                        "nodes": [{"node": "node-a", "flight": "grpc://10.0.0.5:8815"}],
                        "streams": {
                            "http_logs": [
                                {"shard": 0, "partition": 0, "node": "node-a", "epoch": 3}
                            ]
                        },
                    }
                }
            }
        }
    },
)
def cluster(log: LogDep) -> dict[str, Any]:
    """Live nodes and which node writes each shard of each stream (`partition` repeats
    `shard`, under its former name).

    A single node (no `node_id`) answers `{"node": null}`.
    """
    if log.cluster is None:
        return {"node": None, "nodes": [], "streams": {}}
    return log.cluster.status()


def _add_docs(app: FastAPI, router: APIRouter) -> None:
    @router.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(_openapi(app))

    @router.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="arrowlog API")


class _RequestMetrics:
    """Counts every request by method, route template and status; times it to its last byte.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``), so streamed answers pass through
    untouched. The route template (``/v1/streams/{stream}``), not the path, labels the
    metric: stream names must not multiply the series.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before answering, the server answers 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            self._metrics.http_request(
                scope["method"], _route(scope), status, time.perf_counter() - started
            )


def _route(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
