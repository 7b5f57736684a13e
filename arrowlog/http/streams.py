"""``GET /v1/streams`` and ``GET /v1/streams/{stream}``: ``Log.streams()`` / ``Log.describe()``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from arrowlog.http.deps import LogDep
from arrowlog.http.models import STREAM_EXAMPLE, ErrorResponse, StreamDescription, StreamList

__all__ = ["router"]

router = APIRouter(tags=["streams"])


@router.get(
    "/v1/streams",
    response_model=StreamList,
    summary="List the streams",
    responses={
        200: {"content": {"application/json": {"example": {"streams": [STREAM_EXAMPLE]}}}},
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    },
)
def list_streams(log: LogDep) -> StreamList:
    """Every stream with its schema, row count, offset range, bytes, segments and time range."""
    # A sync route: FastAPI runs it in a worker thread, off the event loop.
    return {"streams": [info.to_dict() for info in log.streams()]}  # type: ignore[misc]


@router.get(
    "/v1/streams/{stream}",
    response_model=StreamDescription,
    summary="Describe one stream",
    responses={
        200: {"content": {"application/json": {"example": STREAM_EXAMPLE}}},
        400: {"model": ErrorResponse, "description": "Not a valid stream name."},
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
        404: {"model": ErrorResponse, "description": "No such stream."},
    },
)
def describe_stream(
    stream: Annotated[str, Path(description="The stream name.", examples=["http_logs"])],
    log: LogDep,
) -> StreamDescription:
    """The stream's schema (system columns included), rows, offsets, bytes and time range."""
    return log.describe(stream).to_dict()  # type: ignore[return-value]
