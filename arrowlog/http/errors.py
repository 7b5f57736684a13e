"""The one mapping from arrowlog's errors to HTTP status codes, and its exception handler.

Every route raises arrowlog errors and nothing else; ``install`` registers one handler
that answers them all. The classes are all in ``arrowlog/errors.py``, those only HTTP
raises included; this module only maps them. The most specific class in ``STATUS`` wins
(the exception's MRO is walked, as in httpx's ``map_exceptions``)::

    ArrowlogError              500
    ├── InvalidInput           400  bad type (names the column), bad JSON (names the line),
    │   │                           bad stream name, bad SQL (the engine's message)
    │   ├── BatchTooLarge      413  body over max_body_bytes, batch over max_batch_bytes
    │   ├── ReadOnlyQuery      403  DDL/DML/COPY: refused by policy, as Flight's
    │   │                           PERMISSION_DENIED (not 400: the SQL itself is fine)
    │   ├── QueryLimitExceeded 400  ran past query_timeout / query_memory_limit
    │   ├── UnsupportedMediaType  415  a Content-Type/-Encoding we cannot read
    │   ├── NotAcceptable      406  no answer format the Accept header allows
    │   ├── HostNotAllowed     400  a Host header not on the allow-list
    │   ├── OriginNotAllowed   403  a browser page of another origin
    │   └── RequestTimeout     408  a body too slow; the connection is closed
    ├── StreamNotFound         404
    ├── Unauthenticated        401  with ``WWW-Authenticate: Bearer`` (RFC 6750 §3)
    ├── Unavailable            503  log closed, shutting down
    │   ├── TooManyTails       503, or 429 for the per-client limit (``http/tail.py``)
    │   ├── BodiesInFlight     503  max_inflight_body_bytes reached; Retry-After
    │   └── NotShardOwner      307  (cluster) to the node writing the shard; 503 if none
    └── StorageError           500

The body is always ``{"error": <class name>, "message": <str(e), unchanged>}``. FastAPI's
own request validation errors (a query body that is not ``{"sql": "..."}``) are turned
into ``InvalidInput`` and answered by the same handler, so clients see one error shape;
so are the framework's own errors (no such route 404, wrong method 405: the error is
the status's name, ``NotFound``, ``MethodNotAllowed``) and any unexpected exception
(500 ``InternalError``, its traceback in the server's log only). The few answers uvicorn
writes before the app sees a request (``arrowlog.http.protocol``) use the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from arrowlog.errors import (
    ArrowlogError,
    BatchTooLarge,
    BodiesInFlight,
    HostNotAllowed,
    InvalidInput,
    NotAcceptable,
    NotShardOwner,
    OriginNotAllowed,
    ReadOnlyQuery,
    RequestTimeout,
    StorageError,
    StreamNotFound,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)

__all__ = [
    "STATUS",
    "describe_errors",
    "error_body",
    "error_response",
    "install",
    "status_for",
]

logger = logging.getLogger(__name__)


# Answers after which the connection is closed: the rest of the request body is unread.
_CLOSE = (RequestTimeout, BodiesInFlight)


STATUS: dict[type[ArrowlogError], int] = {
    ArrowlogError: 500,
    InvalidInput: 400,
    BatchTooLarge: 413,
    ReadOnlyQuery: 403,
    UnsupportedMediaType: 415,
    NotAcceptable: 406,
    HostNotAllowed: 400,
    OriginNotAllowed: 403,
    RequestTimeout: 408,
    StreamNotFound: 404,
    Unauthenticated: 401,
    Unavailable: 503,
    StorageError: 500,
}


def status_for(error: ArrowlogError) -> int:
    """The status of the most specific class of ``error`` that ``STATUS`` lists."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


def error_body(error: str, message: str) -> dict[str, str]:
    """The body of every error answer."""
    return {"error": error, "message": message}


def error_response(error: ArrowlogError) -> JSONResponse:
    """The answer to ``error``: its status, ``{"error", "message"}`` and any headers it needs."""
    status = status_for(error)
    headers: dict[str, str] = {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, BodiesInFlight):
        headers["Retry-After"] = "1"
    if isinstance(error, _CLOSE):
        headers["Connection"] = "close"  # uvicorn closes the connection after the answer
    if status == 500:  # a storage failure or a bug: worth a traceback in the server's log
        logger.error("%s: %s", type(error).__name__, error, exc_info=error)
    return JSONResponse(
        error_body(type(error).__name__, str(error)), status_code=status, headers=headers or None
    )


async def _handle(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ArrowlogError)
    if isinstance(error, NotShardOwner) and error.owner.get("http"):
        return redirect_to_owner(request, error)
    return error_response(error)


def redirect_to_owner(request: Request, error: NotShardOwner) -> JSONResponse:
    """307 to the node that writes the shard (cluster mode), pinned to that shard.

    307, not 302/303: the client must repeat the POST with the same body (httpx, curl -L
    and browsers' fetch all do), and ``shard=`` in the new URL makes the owner write
    exactly the shard this node chose for it.
    """
    query = dict(request.query_params)
    query.pop("partition", None)  # the former name of shard
    query["shard"] = str(error.shard)
    location = (
        error.owner["http"].rstrip("/")
        + request.url.path
        + "?"
        + "&".join(f"{k}={v}" for k, v in query.items())
    )
    return JSONResponse(
        {"error": type(error).__name__, "message": str(error), "location": location},
        status_code=307,
        headers={"Location": location},
    )


async def _handle_validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return error_response(InvalidInput(f"invalid request: {describe_errors(error.errors())}"))


def describe_errors(errors: Sequence[Any]) -> str:
    """Validation errors (pydantic's) as one sentence, e.g. ``sql: Field required``."""
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg")))
    return "; ".join(parts)


async def _handle_http(request: Request, error: Exception) -> Response:
    # The framework's own errors: no such route (404), a method the route lacks (405).
    assert isinstance(error, StarletteHTTPException)
    status = error.status_code
    if status in (204, 304) or status < 400:
        return Response(status_code=status, headers=error.headers)
    message = error.detail if isinstance(error.detail, str) else HTTPStatus(status).phrase
    if status == 404 and error.detail == HTTPStatus.NOT_FOUND.phrase:
        message = f"no route {request.method} {request.url.path}: see /docs"
    elif status == 405:
        allowed = (error.headers or {}).get("Allow") or (error.headers or {}).get("allow")
        message = f"{request.method} is not allowed on {request.url.path}" + (
            f"; use {allowed}" if allowed else ""
        )
    return JSONResponse(
        error_body(status_name(status), message), status_code=status, headers=error.headers
    )


async def _handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    # A bug: the traceback goes to the server's log (Starlette re-raises it to uvicorn,
    # which logs it), never to the client.
    return JSONResponse(
        error_body("InternalError", "internal server error: see the server's log"),
        status_code=500,
    )


def status_name(status: int) -> str:
    """``MethodNotAllowed`` for 405: the status's phrase as a class-like name."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP{status}"
    return "".join(w[:1].upper() + w[1:] for w in phrase.replace("-", " ").split())


def install(app: FastAPI) -> None:
    """Answer every error, arrowlog's and the framework's, as ``{"error", "message"}``."""
    app.add_exception_handler(ArrowlogError, _handle)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(Exception, _handle_unexpected)
