"""``POST /v1/streams/{stream}/records``: a request body to one ``Log.append``.

The route only decodes (``arrowlog.http.body``) and hands the whole body to
``Log.append`` as one batch, so a request is accepted or rejected whole: a rejected
request changes nothing. The answer is sent after ``Log.append`` returns, i.e.
after the WAL fsync. Reading the body is async; decoding and appending run in a worker
thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from arrowlog.http.body import BodyKind, body_kind, decode_body, gzipped, read_body
from arrowlog.http.deps import LogDep, SettingsDep
from arrowlog.http.models import AppendResponse, ErrorResponse
from arrowlog.log import Log
from arrowlog.results import AppendResult
from arrowlog.schema import pick_shard, validate_stream_name

__all__ = ["router"]

router = APIRouter(tags=["ingest"])

_NDJSON_EXAMPLE = (
    '{"ts": "2026-11-23T10:00:00Z", "level": "INFO", "status": 200, "msg": "GET /"}\n'
    '{"ts": "2026-11-23T10:00:01Z", "level": "ERROR", "status": 500, "msg": "POST /pay"}\n'
)
_ERRORS = {
    400: {
        "model": ErrorResponse,
        "description": "Malformed body (the message names the line), "
        "a type conflicting with the stream's schema (names the column), a bad stream name.",
    },
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    413: {
        "model": ErrorResponse,
        "description": "Body over max_body_bytes (also once un-gzipped).",
    },
    415: {"model": ErrorResponse, "description": "A Content-Type or Content-Encoding not listed."},
}


@router.post(
    "/v1/streams/{stream}/records",
    response_model=AppendResponse,
    summary="Append records to a stream",
    responses=_ERRORS,  # type: ignore[arg-type]
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The records, in one of three formats; `Content-Encoding: gzip` "
            "is accepted for each.",
            "content": {
                "application/x-ndjson": {
                    "schema": {"type": "string"},
                    "example": _NDJSON_EXAMPLE,
                },
                "application/json": {
                    "schema": {"type": "array", "items": {"type": "object"}},
                    "example": [
                        {"ts": "2026-11-23T10:00:00Z", "level": "INFO", "status": 200},
                        {"ts": "2026-11-23T10:00:01Z", "level": "ERROR", "status": 500},
                    ],
                },
                "application/vnd.apache.arrow.stream": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
)
async def append_records(
    stream: Annotated[
        str, Path(description="Stream name: [A-Za-z_][A-Za-z0-9_]{0,127}.", examples=["http_logs"])
    ],
    request: Request,
    log: LogDep,
    settings: SettingsDep,
    shard: Annotated[
        int | None,
        Query(
            ge=0,
            description="Cluster mode: the shard to write (default: one this node writes). "
            "A shard another node writes answers 307 to that node.",
        ),
    ] = None,
    partition: Annotated[
        int | None, Query(ge=0, description="The former name of `shard`.", deprecated=True)
    ] = None,
) -> AppendResponse:
    """Append the body's records to `stream` (created on first write) as one batch.

    The answer comes once the records are durable (WAL fsync), with their offsets. The
    whole body is one batch: if any record is rejected (malformed JSON, a type that
    conflicts with the stream's schema), nothing is appended.

    ```
    curl -X POST http://127.0.0.1:8080/v1/streams/http_logs/records \\
      -H 'Content-Type: application/x-ndjson' --data-binary @logs.ndjson
    ```
    """
    # Refuse what we cannot take before reading a byte of the body.
    validate_stream_name(stream)
    shard = pick_shard(shard, partition)
    kind = body_kind(request.headers.get("content-type"))
    is_gzip = gzipped(request.headers.get("content-encoding"))
    body = await read_body(request, settings.max_body_bytes)
    result = await run_in_threadpool(
        _decode_and_append,
        log,
        stream,
        body,
        kind,
        is_gzip,
        settings.max_body_bytes,
        shard,
    )
    return AppendResponse(**result.to_dict())


def _decode_and_append(
    log: Log,
    stream: str,
    body: bytearray | memoryview,
    kind: BodyKind,
    gzipped: bool,
    limit: int,
    shard: int | None = None,
) -> AppendResult:
    data = decode_body(body, kind, gzipped=gzipped, limit=limit)
    return log.append(stream, data, shard=shard)
