"""``POST /v1/query``: one ``Log.sql`` call, streamed back in the format ``Accept`` asks for.

The query is planned, and its first batch encoded, before the answer starts: bad SQL,
an unknown stream, a read-only violation or a format that cannot hold the result get a
proper status (400/404/403/400). After that the answer streams one encoded batch at a
time (never a whole result in memory); each batch is pulled from the engine in
a worker thread, never on the event loop. An error after the first batch can only cut
the answer short: the connection is closed mid-body, which every client sees as a
truncated response (and JSON as unparsable), never as a complete one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from arrowlog._formats import Format, encode
from arrowlog.errors import ArrowlogError, InvalidInput, NotAcceptable, UnsupportedMediaType
from arrowlog.http.body import read_body
from arrowlog.http.deps import LogDep, SettingsDep
from arrowlog.http.errors import describe_errors
from arrowlog.http.models import ErrorResponse, QueryRequest
from arrowlog.sql.result import QueryResult
from arrowlog.sql.workers import planning_stop

__all__ = ["MEDIA_TYPES", "negotiate", "router"]

logger = logging.getLogger(__name__)

MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
    "arrow": "application/vnd.apache.arrow.stream",
}
_ACCEPT: dict[str, Format] = {
    **{media: fmt for fmt, media in MEDIA_TYPES.items()},
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "*/*": "json",
    "application/*": "json",
    "text/*": "csv",
}

router = APIRouter(tags=["query"])

_DISCONNECT_POLL = 0.25  # seconds between checks that the client is still there
T = TypeVar("T")


@router.post(
    "/v1/query",
    summary="Run a read-only SQL query",
    response_class=StreamingResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "JSON (`Content-Type: application/json`).",
            "content": {"application/json": {"schema": QueryRequest.model_json_schema()}},
        }
    },
    responses={
        200: {
            "description": "The result, streamed in the format the `Accept` header asks for "
            "(default JSON).",
            "content": {
                "application/json": {
                    "example": {
                        "columns": [
                            {"name": "level", "type": "string"},
                            {"name": "n", "type": "int64"},
                        ],
                        "rows": [["INFO", 7512], ["ERROR", 488]],
                    }
                },
                "application/x-ndjson": {
                    "example": '{"level": "INFO", "n": 7512}\n{"level": "ERROR", "n": 488}\n'
                },
                "text/csv": {"example": '"level","n"\n"INFO",7512\n"ERROR",488\n'},
                "application/vnd.apache.arrow.stream": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        },
        400: {"model": ErrorResponse, "description": "SQL the engine rejects (its message)."},
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
        403: {"model": ErrorResponse, "description": "DDL, DML, COPY: SQL is read-only."},
        404: {
            "model": ErrorResponse,
            "description": "The query names a stream that does not exist.",
        },
        406: {"model": ErrorResponse, "description": "`Accept` allows none of the four formats."},
        415: {"model": ErrorResponse, "description": "A Content-Type other than JSON."},
    },
)
async def query(request: Request, log: LogDep, settings: SettingsDep) -> StreamingResponse:
    """Run `sql` over the streams (each is a table of the same name) and stream the result.

    Answer format by `Accept`: `application/json` (default:
    `{"columns": [{"name", "type"}...], "rows": [[...]...]}`), `application/x-ndjson` (one
    object per row), `text/csv`, or `application/vnd.apache.arrow.stream` (Arrow IPC).
    The query sees every record acknowledged before it started.

    ```
    curl http://127.0.0.1:8080/v1/query -H 'Accept: text/csv' \\
      -H 'Content-Type: application/json' \\
      -d '{"sql": "SELECT level, count(*) AS n FROM http_logs GROUP BY level"}'
    ```
    """
    fmt = negotiate(request.headers.get("accept"))
    body = await _query_request(request, settings.max_body_bytes)
    gone = threading.Event()  # set when the client has left: the query is stopped
    # Seen by a query worker pool (copied into the thread with the context): a query
    # waiting for a worker, or being planned, stops when the client leaves.
    token = planning_stop.set(gone.is_set)
    try:
        result = await _while_connected(
            request, gone, functools.partial(log.sql, body.sql, engine=body.engine)
        )
    finally:
        planning_stop.reset(token)
    result.stop_when(gone.is_set)
    chunks = encode(fmt, result.schema, result)
    # Plan, execute and encode up to the first batch before answering: errors found so far
    # still get their status code.
    try:
        first = await _while_connected(request, gone, functools.partial(next, chunks))
    except BaseException:
        result.close()
        raise
    return StreamingResponse(_stream(first, chunks, result), media_type=MEDIA_TYPES[fmt])


async def _while_connected(request: Request, gone: threading.Event, call: Callable[[], T]) -> T:
    """``call()`` in a worker thread, setting ``gone`` if the client leaves meanwhile."""
    pending = asyncio.ensure_future(run_in_threadpool(call))
    while True:
        done, _ = await asyncio.wait({pending}, timeout=_DISCONNECT_POLL)
        if done:
            return pending.result()
        if not gone.is_set() and await request.is_disconnected():
            gone.set()  # the thread's wait for the query ends within a moment


async def _stream(
    first: bytes, chunks: Iterator[bytes], result: QueryResult
) -> AsyncIterator[bytes]:
    # Starlette cancels the response's task when the client disconnects. The wait for the
    # next chunk is abandoned then (the thread may be waiting for a query that computes
    # for minutes), and closing the result stops the query: the thread ends soon after.
    rest = _rest(chunks)
    try:
        yield first
        while True:
            chunk = await anyio.to_thread.run_sync(next, rest, None, abandon_on_cancel=True)
            if chunk is None:
                return
            yield chunk
    finally:
        result.close()


async def _query_request(request: Request, limit: int) -> QueryRequest:
    # Only a JSON Content-Type: a browser page of another site may send text/plain or a
    # form without asking first (no CORS preflight), never application/json.
    json_media_type(request.headers.get("content-type"))
    body = await read_body(request, limit)
    try:
        return QueryRequest.model_validate_json(bytes(body))
    except ValidationError as e:
        raise InvalidInput(f"invalid query request: {describe_errors(e.errors())}") from e


def json_media_type(content_type: str | None) -> None:
    """Refuse (UnsupportedMediaType) a Content-Type other than JSON (``application/*+json`` too)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    got = f"Content-Type {media!r}" if media else "no Content-Type"
    raise UnsupportedMediaType(
        f"the query must be sent as application/json, not {got} "
        "(curl: -H 'Content-Type: application/json')"
    )


def _rest(chunks: Iterator[bytes]) -> Iterator[bytes]:
    # Pulled in a worker thread, chunk by chunk.
    try:
        yield from chunks
    except ArrowlogError as e:
        logger.warning("query failed after its answer started; cutting it short: %s", e)
        raise


def negotiate(accept: str | None) -> Format:
    """The answer format for an Accept header: the acceptable type with the highest q wins.

    Raises:
        NotAcceptable: none of JSON, NDJSON, CSV or Arrow IPC is acceptable.
    """
    if not accept or not accept.strip():
        return "json"
    ranked: list[tuple[float, int, Format]] = []
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        q = _quality(params)
        fmt = _ACCEPT.get(media.lower())
        if fmt is not None and q > 0:
            ranked.append((-q, position, fmt))
    if not ranked:
        raise NotAcceptable(
            f"cannot answer in any type of Accept: {accept!r}: ask for application/json "
            "(default), application/x-ndjson, text/csv or application/vnd.apache.arrow.stream"
        )
    return min(ranked)[2]


def _quality(params: list[Any]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0
