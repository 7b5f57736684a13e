"""Request bodies: read under the size limit, un-gzipped, parsed into what ``Log.append`` takes.

Formats, by Content-Type:

- ``application/x-ndjson`` (also ``application/jsonl``, ``application/x-jsonlines``):
  parsed in bulk by pyarrow's multi-threaded JSON reader; no Python loop over lines.
- ``application/json``: a JSON array of objects, or NDJSON. Fluent Bit's ``json_lines``
  output sends NDJSON under this type (before 3.0.x), so a body that does not start with
  ``[`` is read as NDJSON.

Both JSON kinds are decoded under one policy (``arrowlog.json_records``), the one
``arrowlog ingest`` applies to files: the same records are accepted or refused alike.
- ``application/vnd.apache.arrow.stream``: an Arrow IPC stream, appended as is.

A body is refused from its Content-Length before a byte is read when that is over the
limit, otherwise as soon as the bytes read pass it; un-gzipping stops at the same limit.
The body is never allocated from its Content-Length: it grows as bytes arrive.
"""

from __future__ import annotations

import logging
import zlib
from typing import Literal

import pyarrow as pa
from fastapi import Request

from arrowlog.arrow_input import read_ipc_stream
from arrowlog.errors import BatchTooLarge, InvalidInput, UnsupportedMediaType
from arrowlog.json_records import MAX_JSON_DEPTH, check_json_depth, parse_json_array, parse_ndjson

__all__ = [
    "MAX_JSON_DEPTH",
    "BodyKind",
    "body_kind",
    "check_json_depth",
    "decode_body",
    "gzipped",
    "read_body",
]

logger = logging.getLogger(__name__)

BodyKind = Literal["ndjson", "json", "arrow"]

_CONTENT_TYPES: dict[str, BodyKind] = {
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "application/json": "json",
    "application/vnd.apache.arrow.stream": "arrow",
}
_ACCEPTED = "application/x-ndjson, application/json or application/vnd.apache.arrow.stream"


def body_kind(content_type: str | None) -> BodyKind:
    """The body format a Content-Type names. Raises UnsupportedMediaType."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _CONTENT_TYPES:
        return _CONTENT_TYPES[media]
    if not media:
        raise UnsupportedMediaType(f"missing Content-Type: send {_ACCEPTED}")
    raise UnsupportedMediaType(f"unsupported Content-Type {media!r}: send {_ACCEPTED}")


def gzipped(content_encoding: str | None) -> bool:
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return False
    if codings in (["gzip"], ["x-gzip"]):
        return True
    raise UnsupportedMediaType(
        f"unsupported Content-Encoding {content_encoding!r}: send gzip or identity"
    )


async def read_body(request: Request, limit: int) -> bytearray:
    """The whole body, refused (BatchTooLarge) as soon as it is known to exceed ``limit``.

    With a Content-Length over the limit nothing is read; otherwise the body grows as its
    bytes arrive, and reading stops at the first byte past the limit. Nothing is allocated
    from the Content-Length a client declares: a client may declare 60 MB and send none
    (growing a bytearray costs no more than filling one: large ones grow by mremap). How
    long the body may take and how much all bodies may hold at once is bounded below the
    route (``arrowlog.http.limits``).
    """
    declared = request.headers.get("content-length")
    size: int | None = None
    if declared is not None:
        if not declared.strip().isdigit():
            raise InvalidInput(f"invalid Content-Length {declared!r}")
        size = int(declared)
        if size > limit:
            raise _too_large(f"request body of {size} bytes", limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if size is not None and len(body) > size:  # servers frame by Content-Length; be sure
            raise InvalidInput(f"the body is longer than its Content-Length of {size} bytes")
        if len(body) > limit:
            raise _too_large(f"request body of more than {limit} bytes", limit)
    return body


def _too_large(what: str, limit: int) -> BatchTooLarge:
    return BatchTooLarge(f"{what} is over the limit of {limit} bytes (max_body_bytes)")


def decode_body(
    body: bytes | bytearray | memoryview, kind: BodyKind, *, gzipped: bool = False, limit: int
) -> pa.Table:
    """A request body as the Arrow table ``Log.append`` takes.

    Raises:
        InvalidInput: malformed body, or JSON the policy refuses; for JSON the message
            names the line (NDJSON) or the record (array).
        BatchTooLarge: the un-gzipped body is over ``limit`` bytes.
    """
    if gzipped:
        body = _gunzip(body, limit)
    if kind == "arrow":
        return read_ipc_stream(body)
    if kind == "json" and bytes(body[:64]).lstrip()[:1] == b"[":
        return parse_json_array(body)
    return parse_ndjson(body)


def _gunzip(data: bytes | bytearray | memoryview, limit: int) -> bytearray:
    """Decompress gzip (all members) without ever holding more than ``limit`` + 1 bytes."""
    out = bytearray()
    pending = bytes(data)
    try:
        while pending:
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
            out += d.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise _too_large("request body, un-gzipped,", limit)
            if not d.eof:
                raise InvalidInput("the gzip body is truncated")
            pending = d.unused_data  # a further gzip member, if any
    except zlib.error as e:
        raise InvalidInput(f"the body is not valid gzip: {e}") from e
    return out
