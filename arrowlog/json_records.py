"""JSON records in: NDJSON and JSON arrays, decoded under one policy for HTTP and the CLI.

A log store must not change a record on its way in without saying so. pyarrow's JSON
reader (NDJSON) and Python's ``json`` module (JSON arrays) each accept things the other
refuses, and each quietly alters some values, so both are held to one policy here:

- Every record is a JSON object. An NDJSON line holds exactly one (blank lines, ``\\r\\n``,
  indentation and a leading UTF-8 BOM are fine); a JSON array holds only objects. A
  ``null`` line is refused before pyarrow sees it: pyarrow 26 crashes the process (SIGSEGV)
  when a parse block starts with ``null``, and a later ``null`` would become a record of
  nulls.
- A key appears once per object: no "last one wins".
- A number too large for a double (``1e400``) is refused, not stored as infinity; ``NaN``
  and ``Infinity`` are not JSON and are refused too.
- A field whose type differs between records is refused, however far apart they are:
  pyarrow's own multi-block reading crashes or converts in that case, so large bodies
  are parsed in pieces here (``_parse_pieces``).
- An integer outside int64 is refused (send it as a string to keep it exact), and so is an
  integer beyond 2^53 in a field that other values make a double (it would be rounded).
- A number with a fraction or an exponent is a double, rounded to the nearest one as any
  decimal is (``1e-400`` becomes 0.0).

Every refusal names the line (NDJSON) or the record (array) and the field. The checks add
no Python work per record to a body that follows the policy: the line shapes come from
numpy over the bytes (about 0.3 ms per MB), the numbers from Arrow kernels over the parsed
double columns, and only the few lines those point at are parsed again in Python.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from arrowlog.errors import InvalidInput
from arrowlog.schema import mark_untyped, to_table

__all__ = [
    "MAX_JSON_DEPTH",
    "SINGLE_BLOCK_BYTES",
    "check_json_depth",
    "parse_json_array",
    "parse_ndjson",
]

# Bodies up to this size are parsed as one block, on one thread: shippers send bodies of a
# few MB, several at once, so the cores are busy with concurrent requests anyway, and one
# block gives one chunk per column, which the rest of the append handles faster than many
# small ones (measured: ~1.5x the rows/s of pyarrow's default 1 MB blocks on all threads).
# Larger bodies are cut at newlines into pieces of this size, parsed on all cores.
SINGLE_BLOCK_BYTES = 16 << 20

# pyarrow's JSON parser recurses once per nesting level: a record nested ~10,000 deep
# overflows the stack and kills the whole server (SIGSEGV). Records nested deeper than
# this are refused before parsing; the schema refuses more than 64 levels anyway.
MAX_JSON_DEPTH = 256

_BOM = b"\xef\xbb\xbf"
# Line scans go window by window, so their index arrays stay a few MB even for a body of
# tiny lines, and each window stays in cache.
_WINDOW = 4 << 20
_OPEN, _CLOSE = ord("{"), ord("}")
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\r\n")] = True
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_EXACT = 1 << 53  # doubles hold every integer up to this, and not all beyond
_ROW = re.compile(r"\s*in row (\d+)\s*$")

_ONE_OBJECT = "each NDJSON line must be one JSON object"
_AN_OBJECT = "each NDJSON line must be a JSON object"
_NOT_JSON = "which is not JSON (JSON has no NaN or Infinity)"
_TOO_BIG = "which is too large for a double"
_OUTSIDE_INT64 = "an integer outside the int64 range (send it as a string to keep it exact)"


# -- NDJSON --------------------------------------------------------------------------------


def parse_ndjson(
    body: bytes | bytearray | memoryview,
    *,
    first_line: int = 1,
    single_block_bytes: int | None = None,
) -> pa.Table:
    """Parse NDJSON in bulk under the policy above.

    Args:
        body: the NDJSON text.
        first_line: the number of the body's first line, for messages (the CLI parses a
            file a chunk at a time).
        single_block_bytes: bodies up to this size are parsed as one block on one thread,
            larger ones in pieces of this size on all cores (default ``SINGLE_BLOCK_BYTES``).

    Raises:
        InvalidInput: the body breaks the policy or is malformed; the message names the line.
    """
    raw = body if isinstance(body, bytes | bytearray) else bytes(body)
    if not raw:
        raise InvalidInput("the body holds no records")
    _check_utf8(raw, first_line)
    check_json_depth(raw, first_line=first_line)
    records, partial = _check_lines(raw, first_line)
    if records == 0:
        raise InvalidInput("the body holds no records")
    table = _parse(raw, first_line, single_block_bytes or SINGLE_BLOCK_BYTES)
    if partial is not None or table.num_rows != records:
        raise _not_one_object_per_line(raw, first_line, partial)
    _check_numbers(table, raw, first_line)
    return mark_untyped(table)  # a field null in every record adds no column


def _check_utf8(raw: bytes | bytearray, first_line: int) -> None:
    """Refuse a body that is not UTF-8, as JSON arrays are: pyarrow does not check, and
    keeps invalid bytes in strings and in column names (which then fail far from here).
    Arrow's validation costs about 0.1 ms per MB."""
    buffer = pa.py_buffer(raw)
    offsets = pa.array([0, buffer.size], pa.int64()).buffers()[1]
    try:
        pa.Array.from_buffers(pa.large_utf8(), 1, [None, offsets, buffer]).validate(full=True)
    except pa.ArrowInvalid:
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            line = first_line + raw.count(b"\n", 0, e.start)
            raise InvalidInput(
                f"malformed NDJSON on line {line}: the text is not UTF-8 ({e.reason})"
            ) from None
        raise InvalidInput("malformed NDJSON: the text is not UTF-8") from None


def _parse(raw: bytes | bytearray, first_line: int, single_block_bytes: int) -> pa.Table:
    """pyarrow's reader; on failure, name the line (pyarrow names a row of a block)."""
    body = pa.py_buffer(raw)
    try:
        if body.size <= single_block_bytes:
            table = _pyarrow_json(body)
        else:
            table = _parse_pieces(raw, body, single_block_bytes)
    except pa.ArrowInvalid as e:
        raise _located(e, raw, first_line) from e
    try:
        table.validate()  # O(columns); the UTF-8 the full check would add is checked
    except pa.ArrowInvalid:
        # pyarrow 26 builds lists whose first item is null one child short while it infers
        # their type ({"a": [null, 1]}: offsets past the values); with the type given, it
        # reads them right. An invalid table must never reach the WAL.
        table = _pyarrow_json(body, schema=table.schema)
        try:
            table.validate(full=True)
        except pa.ArrowInvalid as e:
            raise InvalidInput(f"pyarrow read the NDJSON wrongly: {e}") from e
    return table


def _parse_pieces(raw: bytes | bytearray, body: pa.Buffer, size: int) -> pa.Table:
    """A large body cut at newlines into pieces of about ``size``, each parsed as one block,
    on all cores, and the pieces joined when their types agree.

    Not pyarrow's own blocks: when a field's type differs between two of its blocks,
    pyarrow 26 crashes (a number in one, a list or an object or a boolean in the other),
    or converts silently (a number after a string becomes a string; after an object, it
    is dropped). Pieces whose types differ beyond nulls and missing fields are parsed
    again as one block, which infers one type or names the conflicting row.
    """
    pieces = [body.slice(lo, hi - lo) for lo, hi in _windows(raw, size)]
    try:
        with ThreadPoolExecutor(max_workers=min(len(pieces), os.cpu_count() or 1)) as pool:
            tables = list(pool.map(_pyarrow_json, pieces))
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A conflict between pieces, or a malformed record: as one block, pyarrow's row
        # count starts at the body's start.
        return _pyarrow_json(body)


def _pyarrow_json(body: pa.Buffer, schema: pa.Schema | None = None) -> pa.Table:
    """``body`` parsed as one block, on this thread."""
    options = pajson.ReadOptions(block_size=body.size + 1, use_threads=False)
    parse = pajson.ParseOptions(explicit_schema=schema)
    return pajson.read_json(pa.BufferReader(body), read_options=options, parse_options=parse)


def _located(error: pa.ArrowInvalid, raw: bytes | bytearray, first_line: int) -> InvalidInput:
    """pyarrow's error with its line; the policy's own words when the line breaks it."""
    message = str(error).removeprefix("JSON parse error: ")
    m = _ROW.search(message)
    if m is None:
        return InvalidInput(f"malformed NDJSON: {message}")
    record = int(m.group(1))
    span = next(_record_spans(raw, first_line, [record]), None)
    if span is None:  # pyarrow counted more rows than there are lines: say the last
        span = _last_span(raw, first_line)
    _, line, lo, hi = span
    reason = _violation(_literals(_text(raw, lo, hi)), None) or message[: m.start()]
    return InvalidInput(f"malformed NDJSON on line {line}: {reason}")


def _windows(raw: bytes | bytearray, size: int = _WINDOW) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive pieces of ``raw`` of about ``size`` bytes, each ending
    just after a newline (or at the end), so no line spans two."""
    start = 0
    while start < len(raw):
        newline = raw.find(b"\n", start + size - 1)
        end = len(raw) if newline < 0 else newline + 1
        yield start, end
        start = end


def _segments(d: np.ndarray, separators: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The start and end (exclusive) of each piece of ``d`` between separators."""
    starts = np.concatenate(([0], separators + 1))
    ends = np.append(separators, len(d))
    return starts, ends


def _check_lines(raw: bytes | bytearray, first_line: int) -> tuple[int, int | None]:
    """Refuse a line that does not start with ``{``; count the records.

    pyarrow splits its blocks at ``\\n`` and at ``\\r``, so each piece between them is a
    record here; pieces holding only whitespace are blank and skipped, as pyarrow does.

    Returns:
        the number of records, and the index of the first one whose piece does not end
        with ``}`` (it holds more than one value, or part of one), or None.

    Raises:
        InvalidInput: a record that is not a JSON object (a crash for pyarrow if ``null``).
    """
    fast = _count_plain_lines(raw)
    if fast is not None:
        return fast, None
    # The general case: strip spaces and tabs, so a piece's first and last bytes are its
    # first and last non-blank ones; ``\r`` and ``\n`` both end a piece.
    text = raw.translate(None, b" \t")
    view = memoryview(text)
    records = 0
    partial: int | None = None
    skip = len(_BOM) if raw.startswith(_BOM) else 0
    for lo, hi in _windows(text):
        d = np.frombuffer(view[lo:hi], dtype=np.uint8)
        if lo == 0 and skip:
            d = d[skip:]
        starts, ends = _segments(d, np.flatnonzero((d == 10) | (d == 13)))
        filled = ends > starts
        starts, ends = starts[filled], ends[filled]
        not_object = np.flatnonzero(d[starts] != _OPEN)
        if not_object.size:
            record = records + int(not_object[0])
            raise _not_an_object(raw, first_line, record)
        if partial is None:
            open_ended = np.flatnonzero(d[ends - 1] != _CLOSE)
            if open_ended.size:
                partial = records + int(open_ended[0])
        records += len(starts)
    return records, partial


def _count_plain_lines(raw: bytes | bytearray) -> int | None:
    """The number of lines when every line is exactly ``{...}`` (no blank line, no
    whitespace around, no ``\\r``): the common case, from the newlines' positions and the
    bytes on either side of them (~0.25 ms per MB). Else None."""
    if b"\r" in raw:
        return None
    skip = len(_BOM) if raw.startswith(_BOM) else 0
    view = memoryview(raw)
    lines = 0
    for lo, hi in _windows(raw):
        d = np.frombuffer(view[lo + (skip if lo == 0 else 0) : hi], dtype=np.uint8)
        if not d.size or d[0] != _OPEN:
            return None
        newlines = np.flatnonzero(d == 10)
        last = d[-1]
        inner = newlines[:-1] if last == 10 else newlines
        # Each newline closes a "}" and, but the body's last, opens a "{": no blank line.
        if not ((d[newlines - 1] == _CLOSE).all() and (d[inner + 1] == _OPEN).all()):
            return None
        if last != 10 and last != _CLOSE:
            return None
        lines += len(inner) + 1
    return lines


def _record_spans(
    raw: bytes | bytearray, first_line: int, records: list[int] | np.ndarray | None
) -> Iterator[tuple[int, int, int, int]]:
    """(record, line, start, end) of the given records (ascending; None: all), in ``raw``.

    Only used to word a refusal or to look closer at a few records, so it may build index
    arrays per window; it still never loops in Python over records not asked for.
    """
    wanted = None if records is None else np.unique(np.asarray(records, dtype=np.int64))
    bom = raw.startswith(_BOM)
    view = memoryview(raw)
    seen = 0
    lines = first_line
    for lo, hi in _windows(raw):
        if wanted is not None and (not wanted.size or wanted[-1] < seen):
            return
        d = np.frombuffer(view[lo:hi], dtype=np.uint8)
        separators = np.flatnonzero((d == 10) | (d == 13))
        starts, ends = _segments(d, separators)
        filled = np.flatnonzero(_filled(d, starts, ends, bom and lo == 0))
        newlines_before = np.concatenate(([0], np.cumsum(d[separators] == 10)))
        if wanted is None:
            picks = np.arange(seen, seen + len(filled))
        else:
            picks = wanted[(wanted >= seen) & (wanted < seen + len(filled))]
        for record in picks.tolist():
            piece = int(filled[record - seen])
            line = lines + int(newlines_before[piece])
            yield record, line, lo + int(starts[piece]), lo + int(ends[piece])
        seen += len(filled)
        lines += int(newlines_before[-1])


def _filled(d: np.ndarray, starts: np.ndarray, ends: np.ndarray, bom: bool) -> np.ndarray:
    """Which pieces hold more than whitespace (pyarrow skips the others, and a leading BOM).

    A piece starting with a visible byte is filled; only the rare ones starting with
    whitespace are looked at one by one.
    """
    first = starts.copy()
    if bom:
        first[0] += len(_BOM)
    filled = ends > first
    led = np.flatnonzero(filled)
    led = led[_WHITESPACE[d[first[led]]]]
    for piece in led.tolist():
        filled[piece] = bool(bytes(d[first[piece] : ends[piece]]).strip(b" \t\r\n"))
    return filled


def _last_span(raw: bytes | bytearray, first_line: int) -> tuple[int, int, int, int]:
    records, _ = _check_lines(raw, first_line)
    return next(_record_spans(raw, first_line, [max(records - 1, 0)]), (0, first_line, 0, len(raw)))


def _text(raw: bytes | bytearray, lo: int, hi: int) -> bytes:
    piece = bytes(raw[lo:hi]).strip()
    return piece[len(_BOM) :] if lo == 0 and piece.startswith(_BOM) else piece


def _not_an_object(raw: bytes | bytearray, first_line: int, record: int) -> InvalidInput:
    _, line, lo, hi = next(_record_spans(raw, first_line, [record]))
    piece = _text(raw, lo, hi)
    try:
        what = _kind(json.loads(piece))
    except (ValueError, RecursionError):
        excerpt = piece[:40].decode("utf-8", "replace")
        what = f"not one (it starts with {excerpt!r})"
    return InvalidInput(f"{_AN_OBJECT}; line {line} is {what}")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _not_one_object_per_line(
    raw: bytes | bytearray, first_line: int, partial: int | None
) -> InvalidInput:
    """Word the refusal of a body pyarrow read as more (or fewer) records than lines."""
    if partial is not None:
        _, line, lo, hi = next(_record_spans(raw, first_line, [partial]))
    else:
        lo, hi = _first_line_of_several_values(raw)
        line = first_line + raw.count(b"\n", 0, lo)
    text = _text(raw, lo, hi).decode("utf-8", "replace")
    try:
        _, end = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return InvalidInput(f"{_ONE_OBJECT}; line {line} is not a whole one")
    if text[end:].strip():
        return InvalidInput(f"{_ONE_OBJECT}; line {line} holds more than one JSON value")
    return InvalidInput(f"{_ONE_OBJECT}; the body holds more values than lines")


def _first_line_of_several_values(raw: bytes | bytearray) -> tuple[int, int]:
    """The span of the first line holding more than one value, by halving the body.

    Whole lines parse alike alone or together, and rows add up, so the half whose rows
    outnumber its records holds such a line: about two parses of the body in all, where
    a Python loop over the lines could take seconds per MB of tiny lines.
    """
    lo, hi = 0, len(raw)
    while True:
        mid = raw.find(b"\n", (lo + hi) // 2) + 1
        if mid <= lo or mid >= hi:
            mid = raw.find(b"\n", lo) + 1
            if mid <= lo or mid >= hi:
                return lo, hi
        left = pa.py_buffer(raw)[lo:mid]
        records, _ = _check_lines(raw[lo:mid], 1)
        if records and _pyarrow_json(left).num_rows != records:
            hi = mid
        else:
            lo = mid


# -- numbers in the parsed table -------------------------------------------------------------


def _double_leaves(
    array: pa.Array, path: tuple[str, ...], lists: tuple[pa.Array, ...]
) -> Iterator[tuple[tuple[str, ...], pa.Array, tuple[pa.Array, ...]]]:
    """(path, values, enclosing lists) of every double inside ``array``; lists are "[]"."""
    t = array.type
    if pa.types.is_floating(t):
        yield path, array, lists
    elif pa.types.is_struct(t):
        for field, child in zip(t, array.flatten(), strict=True):
            yield from _double_leaves(child, (*path, field.name), lists)
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        yield from _double_leaves(pc.list_flatten(array), (*path, "[]"), (*lists, array))


def _suspect_rows(
    table: pa.Table, *, large_integers: bool
) -> tuple[dict[tuple[str, ...], np.ndarray], tuple[int, tuple[str, ...], float] | None]:
    """By Arrow kernels only: per double leaf, the rows holding a double of 2^53 or more
    (where an integer may have been rounded; only with ``large_integers``), and the first
    row holding NaN or an infinity, with its path and value."""
    large: dict[tuple[str, ...], list[np.ndarray]] = {}
    first: tuple[int, tuple[str, ...], float] | None = None
    for name, column in zip(table.column_names, table.columns, strict=True):
        offset = 0
        for chunk in column.chunks:
            for path, values, lists in _double_leaves(chunk, (name,), ()):
                not_finite = pc.invert(pc.is_finite(values))
                if pc.any(not_finite).as_py():
                    nf = np.flatnonzero(not_finite.fill_null(False).to_numpy(zero_copy_only=False))
                    row = int(_rows_of(nf[:1], lists)[0]) + offset
                    if first is None or row < first[0]:
                        first = (row, path, values[int(nf[0])].as_py())
                if not large_integers:
                    continue
                big = pc.greater_equal(pc.abs(values), float(_EXACT))
                if pc.any(big).as_py():
                    positions = np.flatnonzero(big.fill_null(False).to_numpy(zero_copy_only=False))
                    large.setdefault(path, []).append(_rows_of(positions, lists) + offset)
            offset += len(chunk)
    return {path: np.unique(np.concatenate(rows)) for path, rows in large.items()}, first


def _rows_of(positions: np.ndarray, lists: tuple[pa.Array, ...]) -> np.ndarray:
    """The top-level rows of positions in a column's values nested in ``lists``."""
    for lst in reversed(lists):
        positions = pc.list_parent_indices(lst).to_numpy()[positions]
    return positions


def _double_paths(schema: pa.Schema) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()

    def visit(t: pa.DataType, path: tuple[str, ...]) -> None:
        if pa.types.is_floating(t):
            paths.add(path)
        elif pa.types.is_struct(t):
            for field in t:
                visit(field.type, (*path, field.name))
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            visit(t.value_type, (*path, "[]"))

    for field in schema:
        visit(field.type, (field.name,))
    return paths


def _check_numbers(table: pa.Table, raw: bytes | bytearray, first_line: int) -> None:
    """Refuse what pyarrow read leniently: NaN and Infinity literals, integers it widened
    to a double past int64 or past 2^53.

    Arrow kernels find the rows with a non-finite double (the first is refused) or one of
    2^53 or more (none, in the common case); RE2 over those rows' text keeps the ones
    where that field is written as an integer of 16 digits or more; only those few are
    parsed again, in Python, to see the literals.
    """
    large, first_not_finite = _suspect_rows(table, large_integers=True)
    rows: list[np.ndarray] = []
    if large:
        lines = _record_texts(raw)
        for path, found in large.items():
            texts = lines.take(pa.array(found))
            hits = pc.match_substring_regex(texts, _integer_pattern(path)).to_numpy(
                zero_copy_only=False
            )
            rows.append(found[hits])
    if first_not_finite is not None:
        rows.append(np.array([first_not_finite[0]]))
    candidates = np.unique(np.concatenate(rows)) if rows else np.empty(0, dtype=np.int64)
    if not candidates.size:
        return
    doubles = _double_paths(table.schema)
    for record, line, lo, hi in _record_spans(raw, first_line, candidates):
        reason = _violation(_literals(_text(raw, lo, hi)), doubles)
        if reason is None and first_not_finite is not None and record == first_not_finite[0]:
            # A literal Python's json does not know either (pyarrow also reads "Inf").
            _, path, value = first_not_finite
            reason = f"field {_name(path)!r} holds {_constant(value)}, {_NOT_JSON}"
        if reason is not None:
            raise InvalidInput(f"malformed NDJSON on line {line}: {reason}")


def _record_texts(raw: bytes | bytearray) -> pa.LargeStringArray:
    """Each record's text (with what follows it up to the next record), zero-copy."""
    bom = raw.startswith(_BOM)
    view = memoryview(raw)
    starts: list[np.ndarray] = []
    for lo, hi in _windows(raw):
        d = np.frombuffer(view[lo:hi], dtype=np.uint8)
        begins, ends = _segments(d, np.flatnonzero((d == 10) | (d == 13)))
        starts.append(begins[_filled(d, begins, ends, bom and lo == 0)] + lo)
    offsets = np.append(np.concatenate(starts), len(raw)).astype(np.int64)
    return pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(raw)
    )


def _integer_pattern(path: tuple[str, ...]) -> str:
    """RE2 for "this field written as an integer of 16 digits or more" in a record's text.

    Keyed on the field's own name where it is plain (so an int64 field of nanosecond
    timestamps on the same line does not count); any such integer otherwise.
    """
    integer = r"-?[0-9]{16,}\s*"
    keys = [p for p in path if p != "[]"]
    key = keys[-1] if keys else ""
    plain = re.fullmatch(r"[A-Za-z0-9_@.$-]+", key) is not None
    if plain and path[-1] != "[]":
        return rf'"{re.escape(key)}"\s*:\s*{integer}[,}}]'
    if plain and path[-2:] == (key, "[]"):
        return rf'"{re.escape(key)}"\s*:\s*\[(?:[^\]]*,)?\s*{integer}[,\]]'
    return rf"[:\[,]\s*{integer}[,}}\]]"


def _constant(value: float) -> str:
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


# -- the literals of one record, in Python (a few records only) ------------------------------


class _Number:
    """A number as written: what the policy judges, before any conversion."""

    __slots__ = ("kind", "text")

    def __init__(self, text: str, kind: str) -> None:
        self.text = text
        self.kind = kind


class _Object(dict):  # type: ignore[type-arg]
    """An object that remembers a key it held twice."""

    duplicate: str | None = None


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        obj.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
    return obj


def _literals(text: bytes | str) -> Any:
    """``text`` parsed with every number kept as written and duplicate keys noted; None if
    Python's json cannot parse it."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_int=lambda s: _Number(s, "int"),
            parse_float=lambda s: _Number(s, "float"),
            parse_constant=lambda s: _Number(s, "constant"),
        )
    except (ValueError, RecursionError):
        return None


def _violation(
    value: Any, doubles: set[tuple[str, ...]] | None, path: tuple[str | int, ...] = ()
) -> str | None:
    """The first thing in ``value`` (from ``_literals``) the policy refuses, as a clause.

    ``doubles``: the paths that are double columns, where an integer beyond 2^53 would be
    rounded (None: not known, not checked).
    """
    try:
        return _first_violation(value, doubles, path)
    except RecursionError:
        return None


def _first_violation(
    value: Any, doubles: set[tuple[str, ...]] | None, path: tuple[str | int, ...]
) -> str | None:
    if isinstance(value, _Object):
        if value.duplicate is not None:
            return f"the key {_name((*path, value.duplicate))!r} appears twice in one object"
        for key, item in value.items():
            found = _first_violation(item, doubles, (*path, key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_violation(item, doubles, (*path, index))
            if found:
                return found
    elif isinstance(value, _Number):
        return _number_violation(value, path, doubles)
    return None


def _number_violation(
    number: _Number, path: tuple[str | int, ...], doubles: set[tuple[str, ...]] | None
) -> str | None:
    name = _name(path)
    if number.kind == "constant":
        return f"field {name!r} holds {number.text}, {_NOT_JSON}"
    if number.kind == "float":
        if math.isinf(float(number.text)):
            return f"field {name!r} holds {_short(number.text)}, {_TOO_BIG}"
        return None
    digits = number.text.lstrip("-")
    if len(digits) > 19 or not _INT64_MIN <= int(number.text) <= _INT64_MAX:
        return f"field {name!r} holds {_short(number.text)}, {_OUTSIDE_INT64}"
    if doubles is not None and abs(int(number.text)) > _EXACT and _leaf(path) in doubles:
        return (
            f"field {name!r} holds {number.text}, which a double cannot hold exactly "
            f"(other values of {_name(_leaf(path))!r} have a fraction or exponent, "
            "which makes it a double)"
        )
    return None


def _leaf(path: tuple[str | int, ...]) -> tuple[str, ...]:
    return tuple("[]" if isinstance(p, int) else p for p in path)


def _name(path: tuple[str | int, ...]) -> str:
    """A field's path as users write it: ``user.ids[1]`` (``[]`` for any index)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[]":
            out += "[]"
        else:
            out += f".{part}" if out else part
    return out


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:31]}…({len(text)} characters)"


# -- JSON arrays ---------------------------------------------------------------------------


class _Refused(Exception):
    """Raised by the parse hooks; the error path then finds and words the problem."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Refused
    return obj


def _no_constant(text: str) -> float:
    raise _Refused


def parse_json_array(body: bytes | bytearray | memoryview, *, empty_ok: bool = False) -> pa.Table:
    """A JSON array of objects as one table, under the policy above.

    Python's ``json`` parses it, with hooks that cost nothing per number: a duplicate key
    or a NaN/Infinity literal stops it; ``to_table`` refuses integers outside int64 and
    those a double would round; a number that overflowed to infinity is found in the
    table's double columns. Only then is the body parsed again to name record and field.

    Args:
        body: the JSON text, an array.
        empty_ok: ``[]`` is a table of no rows (a file may hold none), not an error (a
            request that appends nothing is a mistake).

    Raises:
        InvalidInput: malformed JSON (naming line and column) or a record the policy
            refuses (naming the record and the field).
    """
    raw = body if isinstance(body, bytes | bytearray) else bytes(body)
    try:
        # Decoded here, as UTF-8: json.loads would guess UTF-16 or -32 from the first bytes.
        text = raw.decode("utf-8")
        records = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
    except _Refused:
        raise _array_violation(raw) or InvalidInput("malformed JSON") from None
    except json.JSONDecodeError as e:
        raise InvalidInput(f"malformed JSON on line {e.lineno}, column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the body is not UTF-8: {e}") from e
    except RecursionError:
        # json.loads recurses per nesting level: hostile bodies nest thousands deep.
        raise InvalidInput("the JSON body is nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise _array_violation(raw) or InvalidInput(f"malformed JSON: {e}") from e
    if not isinstance(records, list):
        raise InvalidInput(f"a JSON array was expected, not {_kind(records)}")
    if not records:
        if empty_ok:
            return pa.table({})
        raise InvalidInput("the body holds no records")
    if set(map(type, records)) != {dict}:
        index, item = next((i, r) for i, r in enumerate(records) if type(r) is not dict)
        raise InvalidInput(
            "each record of a JSON array must be a JSON object; "
            f"record {index + 1} is {_kind(item)}"
        )
    try:
        table = to_table(records)
    except InvalidInput as e:
        violation = _array_violation(raw)
        if violation is None:
            raise
        raise violation from e
    _, not_finite = _suspect_rows(table, large_integers=False)
    if not_finite is not None:
        raise _array_violation(raw) or InvalidInput(
            f"malformed JSON in record {not_finite[0] + 1}: a number is not finite"
        )
    if b"true" in raw or b"false" in raw:
        _check_booleans(table, records)
    return table


def _check_booleans(table: pa.Table, records: list[dict[str, Any]]) -> None:
    """Refuse a boolean in a field of doubles: ``to_table`` stores ``[0.5, true]`` as
    [0.5, 1.0], where pyarrow's NDJSON reader refuses the change of type.

    Arrow kernels find the records holding 0.0 or 1.0 in a double; only that field of
    those records is looked at.
    """
    for name, column in zip(table.column_names, table.columns, strict=True):
        offset = 0
        for chunk in column.chunks:
            for path, values, lists in _double_leaves(chunk, (name,), ()):
                hit = pc.or_(pc.equal(values, 0.0), pc.equal(values, 1.0))
                if not pc.any(hit).as_py():
                    continue
                positions = np.flatnonzero(hit.fill_null(False).to_numpy(zero_copy_only=False))
                for row in np.unique(_rows_of(positions, lists) + offset).tolist():
                    found = _boolean_at(records[row], path, ())
                    if found is not None:
                        raise InvalidInput(
                            f"malformed JSON in record {row + 1}: field {_name(found)!r} holds "
                            f"a boolean, where other values of {_name(path)!r} are numbers"
                        )
            offset += len(chunk)


def _boolean_at(
    value: Any, path: tuple[str, ...], at: tuple[str | int, ...]
) -> tuple[str | int, ...] | None:
    """Where a boolean sits at ``path`` ("[]": any item) in ``value``, if anywhere."""
    if not path:
        return at if isinstance(value, bool) else None
    step, rest = path[0], path[1:]
    if step == "[]":
        if isinstance(value, list):
            for index, item in enumerate(value):
                found = _boolean_at(item, rest, (*at, index))
                if found is not None:
                    return found
        return None
    if isinstance(value, dict) and step in value:
        return _boolean_at(value[step], rest, (*at, step))
    return None


def _array_violation(raw: bytes | bytearray) -> InvalidInput | None:
    """The first record of the array the policy refuses, parsed again to find it."""
    records = _literals(raw.decode("utf-8", "replace"))
    if not isinstance(records, list):
        return None
    doubles: set[tuple[str, ...]] = set()
    for record in records:
        _collect_doubles(record, (), doubles)
    for index, record in enumerate(records):
        reason = _violation(record, doubles)
        if reason is not None:
            return InvalidInput(f"malformed JSON in record {index + 1}: {reason}")
    return None


def _collect_doubles(value: Any, path: tuple[str, ...], into: set[tuple[str, ...]]) -> None:
    """The paths where some value has a fraction or an exponent: pyarrow makes them doubles."""
    if isinstance(value, dict):
        for key, item in value.items():
            _collect_doubles(item, (*path, key), into)
    elif isinstance(value, list):
        for item in value:
            _collect_doubles(item, (*path, "[]"), into)
    elif isinstance(value, _Number) and value.kind != "int":
        into.add(path)


# -- nesting depth -------------------------------------------------------------------------

# Every byte but the two that open a nesting level and the newline.
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b"[{\n")))


def check_json_depth(
    body: pa.Buffer | bytes | bytearray | memoryview, *, first_line: int = 1
) -> None:
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
                f"record on line {line + first_line} is nested more than {MAX_JSON_DEPTH} "
                "levels deep"
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
