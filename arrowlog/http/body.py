"""Request bodies: read under the size limit, un-gzipped, parsed into what ``Log.append`` takes.

Formats, by Content-Type:

- ``application/x-ndjson`` (also ``application/jsonl``, ``application/x-jsonlines``):
  parsed in bulk by pyarrow's multi-threaded JSON reader; no Python loop over lines.
- ``application/json``: a JSON array of objects, or NDJSON. Fluent Bit's ``json_lines``
  output sends NDJSON under this type (before 3.0.x), so a body that does not start with
  ``[`` is read as NDJSON.
- ``application/vnd.apache.arrow.stream``: an Arrow IPC stream, appended as is.

A body is refused from its Content-Length before a byte is read when that is over the
limit, otherwise as soon as the bytes read pass it; un-gzipping stops at the same limit.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
from fastapi import Request

from arrowlog.errors import BatchTooLarge, InvalidInput
from arrowlog.http.errors import UnsupportedMediaType

__all__ = ["BodyKind", "body_kind", "decode_body", "gzipped", "read_body"]

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
# Bodies up to this size are parsed as one block, on one thread: shippers send bodies of a
# few MB, several at once, so the cores are busy with concurrent requests anyway, and one
# block gives one chunk per column, which the rest of the append handles faster than many
# small ones (measured: ~1.5x the rows/s of pyarrow's default 1 MB blocks on all threads).
# Larger bodies are cut into blocks of this size and parsed on all cores.
_SINGLE_BLOCK_BYTES = 16 << 20
_ROW = re.compile(r"\s*in row (\d+)\s*$")


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

    With a Content-Length over the limit nothing is read; without one (chunked), reading
    stops at the first byte past it. A declared length is allocated once and filled in
    place: bodies are MBs, and each copy of one costs as much as parsing a good part of it.
    """
    declared = request.headers.get("content-length")
    if declared is None:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_large(f"request body of more than {limit} bytes", limit)
        return body
    if not declared.strip().isdigit():
        raise InvalidInput(f"invalid Content-Length {declared!r}")
    size = int(declared)
    if size > limit:
        raise _too_large(f"request body of {size} bytes", limit)
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    async for chunk in request.stream():
        if filled + len(chunk) > size:  # HTTP servers frame by Content-Length; be sure
            raise InvalidInput(f"the body is longer than its Content-Length of {size} bytes")
        view[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    view.release()
    if filled < size:
        del buffer[filled:]  # in place: no copy of the body
    return buffer


def _too_large(what: str, limit: int) -> BatchTooLarge:
    return BatchTooLarge(f"{what} is over the limit of {limit} bytes (max_body_bytes)")


def decode_body(
    body: bytes | bytearray | memoryview, kind: BodyKind, *, gzipped: bool = False, limit: int
) -> pa.Table | list[object]:
    """A request body as what ``Log.append`` takes: an Arrow table or a list of records.

    Raises:
        InvalidInput: malformed body; for JSON the message names the line.
        BatchTooLarge: the un-gzipped body is over ``limit`` bytes.
    """
    if gzipped:
        body = _gunzip(body, limit)
    if kind == "arrow":
        try:
            return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
        except (pa.ArrowInvalid, OSError) as e:
            raise InvalidInput(f"the body is not a valid Arrow IPC stream: {e}") from e
    if kind == "json" and bytes(body[:64]).lstrip()[:1] == b"[":
        return _read_json_array(body)
    return _read_ndjson(body)


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


def _read_json_array(body: bytes | bytearray | memoryview) -> list[object]:
    try:
        records = json.loads(body if isinstance(body, bytes | bytearray) else bytes(body))
    except json.JSONDecodeError as e:
        raise InvalidInput(f"malformed JSON on line {e.lineno}, column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the body is not UTF-8: {e}") from e
    except RecursionError:
        # json.loads recurses per nesting level: hostile bodies nest thousands deep.
        raise InvalidInput("the JSON body is nested too deeply") from None
    if not records:
        raise InvalidInput("the body holds no records")
    return records  # a list: the body starts with "["


# pyarrow's JSON parser recurses once per nesting level: a record nested ~10,000 deep
# overflows the stack and kills the whole server (SIGSEGV). Records nested deeper than
# this are refused before parsing; the schema refuses more than 64 levels anyway.
MAX_JSON_DEPTH = 256


# Every byte but the two that open a nesting level and the newline.
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b"[{\n")))


def check_json_depth(body: pa.Buffer | bytes | bytearray | memoryview) -> None:
    """Refuse NDJSON whose records nest deeper than ``MAX_JSON_DEPTH``, without parsing it.

    A record nests at most as deep as it has opening brackets, so only the rare lines with
    more than ``MAX_JSON_DEPTH`` of them are measured exactly (brackets inside strings do
    not count). The brackets per line come from one ``bytes.translate`` pass that keeps
    only brackets and newlines, about 0.5 ms per MB with the copy to ``bytes`` (whose
    ``translate`` is ~1.5x faster than bytearray's): half what numpy comparisons and index
    arrays over the whole body cost, and a tenth of what parsing costs.

    Raises:
        InvalidInput: a record is nested too deeply (the message names its line).
    """
    raw = body if isinstance(body, bytes) else bytes(body)
    structure = raw.translate(None, _NOT_STRUCTURE)
    if len(structure) - structure.count(b"\n") <= MAX_JSON_DEPTH:
        return
    marks = np.frombuffer(structure, dtype=np.uint8)
    ends = np.flatnonzero(marks == ord("\n"))
    # Openers on each line: the marks between consecutive newlines; the last line may
    # have no newline of its own.
    last = len(marks) - 1 - (int(ends[-1]) if len(ends) else -1)
    per_line = np.append(np.diff(ends, prepend=-1) - 1, last)
    suspects = np.flatnonzero(per_line > MAX_JSON_DEPTH)
    if not suspects.size:
        return
    data = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    for line in suspects:
        start = int(newlines[line - 1]) + 1 if line else 0
        end = int(newlines[line]) if line < len(newlines) else len(data)
        if _json_depth(data[start:end]) > MAX_JSON_DEPTH:
            raise InvalidInput(
                f"record on line {line + 1} is nested more than {MAX_JSON_DEPTH} levels deep"
            )


def _json_depth(line: np.ndarray) -> int:
    """The deepest bracket nesting of one JSON text, brackets inside strings excluded."""
    backslash = line == ord("\\")
    quotes = np.flatnonzero(line == ord('"'))
    if backslash.any() and len(quotes):
        # A quote is escaped when an odd number of backslashes precedes it.
        index = np.arange(len(line))
        last_other = np.maximum.accumulate(np.where(backslash, -1, index))
        before = quotes - 1
        run = np.where(before >= 0, before - last_other[np.maximum(before, 0)], 0)
        quotes = quotes[run % 2 == 0]
    toggles = np.zeros(len(line), dtype=np.int8)
    toggles[quotes] = 1
    inside = (np.cumsum(toggles, dtype=np.int64) % 2).astype(bool)
    step = np.zeros(len(line), dtype=np.int64)
    step[(line == ord("[")) | (line == ord("{"))] = 1
    step[(line == ord("]")) | (line == ord("}"))] = -1
    step[inside] = 0
    return int(np.cumsum(step).max(initial=0))


def _read_ndjson(raw: bytes | bytearray | memoryview) -> pa.Table:
    """Parse NDJSON in bulk; on failure, name the line (pyarrow names a row of a block)."""
    body = pa.py_buffer(raw)
    if body.size == 0:
        raise InvalidInput("the body holds no records")
    check_json_depth(raw)
    if body.size <= _SINGLE_BLOCK_BYTES:
        try:
            table = _pyarrow_json(body, body.size + 1, use_threads=False)
        except pa.ArrowInvalid as e:
            raise _located(e, body) from e
    else:
        try:
            table = _pyarrow_json(body, _SINGLE_BLOCK_BYTES, use_threads=True)
        except pa.ArrowInvalid:
            # Either a record is malformed, or a line is longer than a block. Parsing the
            # body as one block tells which, and makes pyarrow's row count from its start.
            try:
                table = _pyarrow_json(body, body.size + 1, use_threads=False)
            except pa.ArrowInvalid as e:
                raise _located(e, body) from e
    if table.num_rows == 0:
        raise InvalidInput("the body holds no records")
    return table


def _pyarrow_json(body: pa.Buffer, block_size: int, *, use_threads: bool) -> pa.Table:
    options = pajson.ReadOptions(block_size=block_size, use_threads=use_threads)
    return pajson.read_json(pa.BufferReader(body), read_options=options)


def _located(error: pa.ArrowInvalid, body: pa.Buffer) -> InvalidInput:
    message = str(error).removeprefix("JSON parse error: ")
    m = _ROW.search(message)
    if m is None:
        return InvalidInput(f"malformed NDJSON: {message}")
    line = _line_of_record(np.frombuffer(body, np.uint8), int(m.group(1)))
    return InvalidInput(f"malformed NDJSON on line {line}: {message[: m.start()]}")


def _line_of_record(data: np.ndarray, row: int) -> int:
    """The 1-based line of the ``row``-th record, counting only non-blank lines as pyarrow does.

    (pyarrow also accepts two objects on one line; then a later row maps one line too far,
    at worst: the answer is clamped to the last non-blank line.)
    """
    newlines = np.flatnonzero(data == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    starts = starts[starts < data.size]
    if starts.size == 0:
        return 1
    visible = ~np.isin(data, np.frombuffer(b" \t\r\n", np.uint8))
    # Non-blank lines hold at least one visible byte; an empty line's segment starts on its
    # own newline, which counts as zero.
    nonblank = np.flatnonzero(np.add.reduceat(visible, starts) > 0)
    if nonblank.size == 0:
        return 1
    return int(nonblank[min(row, nonblank.size - 1)]) + 1
