"""Query results as bytes: JSON, NDJSON, CSV and Arrow IPC, written one batch at a time.

Shared by the CLI (``arrowlog query --format``) and the HTTP API (``POST /v1/query`` by
``Accept``), so both spell a value the same way: timestamps and dates in ISO 8601, NaN
and ±inf as null (JSON has no spelling for them), decimals as strings, binary as hex.

Every encoder is a generator of chunks, one per batch, and never holds more than one
batch: results stream. The first chunk carries what precedes the rows (the
CSV header, the IPC schema, the JSON object's opening), so a caller can produce it before
committing to a response and still report a failure properly.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from arrowlog.errors import InvalidInput

__all__ = ["Format", "encode", "json_default", "ndjson_lines"]

Format = Literal["json", "ndjson", "csv", "arrow"]


def encode(fmt: Format, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """The result as ``fmt``: a first chunk with the header and first batch, then a chunk per batch.

    Raises:
        InvalidInput: the format cannot hold the result (CSV and nested types).

    Example: ``b"".join(encode("csv", result.schema, result))``
    """
    if fmt == "json":
        return _json_document(schema, batches)
    if fmt == "ndjson":
        return (ndjson_lines(batch) for batch in _at_least_one(schema, batches))
    if fmt == "csv":
        return _csv(schema, batches)
    return _arrow(schema, batches)


def _at_least_one(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    # An empty result still has a first chunk (a header, or nothing), so callers can
    # always pull one chunk before answering.
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        yield pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def _json_document(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """``{"columns": [{"name", "type"}...], "rows": [[...], ...]}``, written incrementally."""
    columns = [{"name": f.name, "type": str(f.type)} for f in schema]
    head = (
        '{"columns":' + json.dumps(columns, ensure_ascii=False, separators=(",", ":")) + ',"rows":['
    )
    separator = ""
    for batch in _at_least_one(schema, batches):
        rows = _json_rows(batch)
        chunk = head + (separator + rows if rows else "")
        if rows:
            separator = ","
        head = ""
        yield chunk.encode()
    yield b"]}\n"


def _json_rows(batch: pa.RecordBatch) -> str:
    """The batch's rows as JSON arrays, comma-separated (no brackets around them)."""
    if batch.num_rows == 0:
        return ""
    columns = [column.to_pylist() for column in _finite(batch).columns]
    rows = list(zip(*columns, strict=True)) if columns else [()] * batch.num_rows
    text = json.dumps(rows, default=json_default, ensure_ascii=False, separators=(",", ":"))
    return text[1:-1]


def ndjson_lines(batch: pa.RecordBatch) -> bytes:
    """One JSON object per row, each ending in a newline."""
    lines = [
        json.dumps(row, default=json_default, ensure_ascii=False)
        for row in _finite(batch).to_pylist()
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _csv(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    sink = io.BytesIO()
    try:
        writer = pacsv.CSVWriter(sink, schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InvalidInput(
            f"CSV cannot hold this result ({e}): use JSON or Arrow IPC instead"
        ) from e
    with writer:
        for batch in _at_least_one(schema, batches):
            writer.write_batch(batch)
            yield _drain(sink)
    yield _drain(sink)


def _arrow(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in _at_least_one(schema, batches):
            writer.write_batch(batch)
            yield _drain(sink)
    yield _drain(sink)  # the end-of-stream marker


def _drain(sink: io.BytesIO) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return data


def _finite(batch: pa.RecordBatch) -> pa.RecordBatch:
    """NaN and ±inf as null: JSON has no spelling for them."""
    columns = [
        pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
        if pa.types.is_floating(col.type)
        else col
        for col in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for the Python values Arrow columns turn into."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")
