"""Ingest: turn whatever a producer sends into one Arrow table in the stream's schema.

This is the first step of the data flow: ``log.append(stream, data)`` calls

    to_table(data)                     any Arrow-ish input -> one pa.Table
    normalize(table, ...)              types Delta Lake/Parquet can store, UTF-8, size limits
    choose_time_column(table)          only when the stream is created
    coerce(table, schema, ...)         cast to the stream schema, evolve it, add _ingested_at
    with_offsets(table, first)         under the log's lock, once offsets are known

Everything here is a pure function over pyarrow: no I/O, no threads, no per-row Python on
the accepting path. A rejected batch is rejected whole with an ``InvalidInput``
that names the column and, for conflicts, both types.

Schema evolution: new columns are appended as nullable; a batch may widen its own values
(int32 -> int64, int -> float64, a time string -> timestamp) to fit the stream, and the
time column also reads epoch numbers (see the Time section below); a number wider than
its column widens the column (int -> wider int -> float64, float32 -> float64;
``widens``), which the log applies to segments already written. Nothing else changes a
column's type: strings, numbers and booleans never mix.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arrowlog.errors import BatchTooLarge, InvalidInput

__all__ = [
    "INGESTED_AT",
    "OFFSET",
    "PARTITION",
    "RESERVED",
    "SHARD_COLUMN",
    "STREAM_NAME_RE",
    "TIME_CANDIDATES",
    "TIME_TYPE",
    "TIME_TYPE_NS",
    "choose_time_column",
    "coerce",
    "mark_untyped",
    "merge_schemas",
    "normalize",
    "pick_shard",
    "system_schema",
    "to_table",
    "validate_stream_name",
    "widens",
    "with_offsets",
]

logger = logging.getLogger(__name__)

OFFSET = "_offset"
INGESTED_AT = "_ingested_at"
# The day partition of a segment file (Hive-style ``day=YYYY-MM-DD``); retention drops whole days.
PARTITION = "day"
# The shard a record belongs to (cluster mode; offsets count per shard), present only in
# streams of several shards. The stored column keeps its original name, ``_partition``,
# so existing tables and queries keep working.
SHARD_COLUMN = "_partition"
RESERVED = frozenset({OFFSET, INGESTED_AT, PARTITION, SHARD_COLUMN})

TIME_TYPE = pa.timestamp("us", tz="UTC")
# A column of nanosecond timestamps keeps them (see _leaf_target).
TIME_TYPE_NS = pa.timestamp("ns", tz="UTC")
TIME_CANDIDATES = ("timestamp", "ts", "time", "@timestamp", "date")

STREAM_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

_OFFSET_FIELD = pa.field(OFFSET, pa.int64(), nullable=False)
_INGESTED_AT_FIELD = pa.field(INGESTED_AT, TIME_TYPE, nullable=False)
_INT64_MAX = np.iinfo(np.int64).max

# A string carries a zone offset when its time part ends in Z or ±HH[[:]MM]. Arrow parses
# zoned and naive ISO-8601 strings only into tz-aware and naive timestamps respectively, so
# the two kinds are parsed separately; requiring the [T ]hh before the offset keeps the
# "-23" of a bare date ("2026-11-23") from passing for a zone.
_ZONED_RE = r"[T ]\d{2}(:?\d{2}){0,2}([.,]\d+)?(Z|[+-]\d{2}(:?\d{2})?)$"

_SIGNED_INTS = (pa.int8(), pa.int16(), pa.int32(), pa.int64())

# Unsigned integers have no Delta Lake type: each goes to the narrowest signed type that
# holds all its values (uint64 shares int64 and is checked for overflow).
_UNSIGNED_TARGET = {
    pa.uint8(): pa.int16(),
    pa.uint16(): pa.int32(),
    pa.uint32(): pa.int64(),
    pa.uint64(): pa.int64(),
}


# ---------------------------------------------------------------------------------------
# Stream names


# A stream directory named like this confuses delta-rs (its path ends in a Delta log).
_RESERVED_STREAM_NAMES = frozenset({"_delta_log"})


def pick_shard(shard: int | None, partition: int | None) -> int | None:
    """The shard a caller named: ``shard``, or ``partition``, its former name.

    Raises:
        InvalidInput: both were given, with different values.

    Example: ``pick_shard(None, 1) == 1``
    """
    if partition is None:
        return shard
    if shard is not None and shard != partition:
        raise InvalidInput(
            f"shard {shard} and partition {partition} disagree: pass shard alone "
            "(partition is its former name)"
        )
    return partition


def validate_stream_name(name: object) -> str:
    """Check a stream name before it becomes a table name and a directory.

    The name ends up in a file system path and in SQL, so only ``[A-Za-z_][A-Za-z0-9_]*``
    up to 128 characters is allowed: no separators, dots, NULs or look-alike
    unicode letters can slip through.

    Args:
        name: whatever the caller sent as the stream name.

    Returns:
        The name, unchanged.

    Raises:
        InvalidInput: the name is not a string, does not match ``STREAM_NAME_RE``, or is
            reserved (``_delta_log``: the stream's directory would pass for a Delta log).

    Example: ``validate_stream_name("http_logs")``
    """
    if isinstance(name, str) and STREAM_NAME_RE.fullmatch(name):
        if name.lower() in _RESERVED_STREAM_NAMES:
            raise InvalidInput(f"stream name {name!r} is reserved: choose another name")
        return name
    raise InvalidInput(
        f"invalid stream name {_short_repr(name)}: use 1-128 letters, digits or '_', "
        "not starting with a digit"
    )


# ---------------------------------------------------------------------------------------
# Any input -> one table


def to_table(data: object) -> pa.Table:
    """Convert one append's payload into a single ``pa.Table``.

    Accepts a list of dicts (one per record), a dict of column lists, a pyarrow Table,
    RecordBatch or RecordBatchReader, a pandas or polars DataFrame, or any object exporting
    the Arrow C stream or C array interface. pandas and polars are recognised by their
    module, so neither is imported here.

    Args:
        data: the payload given to ``log.append``.

    Returns:
        A table with at least one row and one column, not yet normalized.

    Raises:
        InvalidInput: an unsupported type, a record that is not a dict, values that cannot
            be converted (naming the field when it can be found), or an empty batch.

    Example: ``to_table([{"level": "INFO", "msg": "up"}])``
    """
    table = _to_table(data)
    if table.num_rows == 0:
        raise InvalidInput("empty batch: it holds no records")
    if table.num_columns == 0:
        raise InvalidInput("empty batch: its records have no fields")
    return mark_untyped(table) if isinstance(data, list | dict) else table


def _to_table(data: object) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, list):
        return _records_to_table(data)
    if isinstance(data, dict):
        return _columns_to_table(data)
    kind = _dataframe_kind(data)
    if kind == "pandas":
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError) as e:
            raise InvalidInput(f"cannot convert the pandas DataFrame: {e}") from e
    if kind == "polars":
        return data.to_arrow()  # type: ignore[attr-defined]
    try:
        if hasattr(data, "__arrow_c_stream__"):
            return pa.table(data)
        if hasattr(data, "__arrow_c_array__"):
            return pa.Table.from_batches([pa.record_batch(data)])
    except (pa.ArrowException, ValueError, TypeError) as e:
        raise InvalidInput(f"cannot read a value of type {_type_name(data)} as a table: {e}") from e
    raise InvalidInput(
        f"cannot append a value of type {_type_name(data)}: send a list of dicts, a dict of lists, a "
        "pyarrow Table, RecordBatch or RecordBatchReader, a pandas or polars DataFrame, or "
        "an object with __arrow_c_stream__"
    )


def _records_to_table(records: list[Any]) -> pa.Table:
    """Convert a list of dicts in one vectorised ``pa.array`` call.

    ``pa.Table.from_pylist`` takes its column names from the first record only and silently
    drops keys that appear later; inferring a struct array instead takes the union of all
    keys, in order of first appearance.
    """
    if not records:
        return pa.table({})
    try:
        rows = pa.array(records)
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as e:
        raise _explain_records_error(records, e) from e
    if not pa.types.is_struct(rows.type) or rows.null_count:
        raise _not_a_record(records)  # e.g. all ints (no struct), or a None among the dicts
    return pa.Table.from_struct_array(rows)


# Schema metadata marking a table decoded from untyped records (JSON, a list of dicts).
_UNTYPED = {b"arrowlog.untyped": b"true"}


def mark_untyped(table: pa.Table) -> pa.Table:
    """Mark a table as decoded from untyped records (JSON, lists of dicts).

    In such records a field that is null in every record of a batch says no more than a
    missing field and has no type: ``coerce`` adds no column for it (a known column takes
    its nulls). A typed producer sending an Arrow ``null`` column for a new column is
    refused instead: it asked for a column that cannot be stored.
    """
    return table.replace_schema_metadata(_UNTYPED)


def _is_untyped_source(table: pa.Table) -> bool:
    return (table.schema.metadata or {}).get(b"arrowlog.untyped") == b"true"


def _explain_records_error(records: list[Any], error: Exception) -> InvalidInput:
    """Find the record or field behind a failed conversion (error path only)."""
    if not all(isinstance(r, dict) for r in records):
        return _not_a_record(records)
    fields = dict.fromkeys(key for r in records for key in r)
    for key in fields:
        if not isinstance(key, str | bytes):
            return InvalidInput(f"field names must be strings, got {key!r} ({_type_name(key)})")
        try:
            pa.array([r.get(key) for r in records])
        except OverflowError:
            return InvalidInput(
                f"field {_field_name(key)!r} holds an integer outside the int64 range"
            )
        except (pa.ArrowException, ValueError, TypeError) as e:
            return InvalidInput(f"field {_field_name(key)!r} cannot be stored: {e}")
    return InvalidInput(f"cannot convert the records: {error}")


def _not_a_record(records: list[Any]) -> InvalidInput:
    index, item = next((i, r) for i, r in enumerate(records) if not isinstance(r, dict))
    return InvalidInput(f"records must be dicts; item {index} has type {_type_name(item)}")


def _columns_to_table(columns: dict[Any, Any]) -> pa.Table:
    try:
        return pa.table(columns)
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as e:
        raise InvalidInput(
            f"cannot read the dict as columns ({e}): a dict must map column names to lists "
            "of values; to send one record, wrap it in a list"
        ) from e


def _dataframe_kind(data: object) -> str | None:
    cls = type(data)
    if cls.__name__ != "DataFrame":
        return None
    root = cls.__module__.partition(".")[0]
    return root if root in ("pandas", "polars") else None


# ---------------------------------------------------------------------------------------
# Storable, uniform types


# Deepest nesting of lists, structs and maps a column may have: Arrow IPC (the WAL)
# refuses schemas nested 64 deep, and every layer recurses; nothing real needs more.
MAX_NESTING = 32


def _nesting_depth(t: pa.DataType) -> int:
    """How many list/struct/map levels ``t`` has, without recursion (any depth is safe)."""
    deepest, level = 0, [t]
    while level:
        deepest += 1
        level = [t.field(i).type for t in level for i in range(t.num_fields)]
        if deepest > MAX_NESTING + 1:
            break
    return deepest - 1


def normalize(table: pa.Table, *, max_string_bytes: int) -> pa.Table:
    """Rewrite a table into the small set of types every stream is stored in.

    Parquet segments in a Delta table cannot hold unsigned or 16-bit-float columns, the
    various string/list encodings would make equal data look like a schema conflict, and a
    timestamp must compare with every other timestamp, so each type maps to one canonical
    type (recursively through lists, structs and maps). A top-level column of Arrow type
    null is kept as it is, for ``coerce`` to decide; a struct field of type null is dropped.

    Args:
        table: the output of ``to_table``.
        max_string_bytes: the largest string or binary value accepted, in bytes.

    Returns:
        A table with the same rows, nullable fields, no schema metadata, one chunk per
        column.

    Raises:
        InvalidInput: duplicate, empty or reserved column names, names that differ only in
            case (Delta Lake, DuckDB and SQL identifiers fold case), a type Delta cannot store,
            a column nested deeper than ``MAX_NESTING``, an unsigned value too large for
            int64, or a string that is not UTF-8.
        BatchTooLarge: a string or binary value longer than ``max_string_bytes``.

    Example: ``normalize(to_table(df), max_string_bytes=1 << 20)``
    """
    _check_column_names(table.column_names)
    fields: list[pa.Field] = []
    arrays: list[pa.Array] = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        # Checked before the recursive rewrite below: hostile JSON nests thousands deep.
        depth = _nesting_depth(column.type)
        if depth > MAX_NESTING:
            raise InvalidInput(
                f"column {name!r} is nested {depth} levels deep; at most {MAX_NESTING} "
                "levels of lists, structs and maps are accepted"
            )
        array = _one_chunk(column)
        if not pa.types.is_null(array.type):
            array = _normalize_array(name, array, top=True)
        if array is None:
            logger.debug("dropping column %r: every field of its struct is null", name)
            continue
        _check_strings(name, array, max_string_bytes)
        fields.append(pa.field(name, array.type))
        arrays.append(array)
    # Only the untyped-source mark survives: coerce decides what a null column means.
    metadata = _UNTYPED if _is_untyped_source(table) else None
    if not arrays:
        # from_arrays would make a 0-row table; select keeps the row count.
        return table.select([]).replace_schema_metadata(metadata)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))


def _check_column_names(names: list[str], path: str = "") -> None:
    seen: dict[str, str] = {}
    for name in names:
        if not path and not name:
            raise InvalidInput("column names must be non-empty strings")
        if not path and name in RESERVED:
            raise InvalidInput(
                f"column {name!r} is reserved: arrowlog adds {OFFSET!r}, {INGESTED_AT!r} and "
                f"{PARTITION!r} itself; rename the column"
            )
        other = seen.get(name.lower())
        if other == name:
            raise InvalidInput(f"column {path + name!r} appears more than once")
        if other is not None:
            raise InvalidInput(
                f"columns {path + other!r} and {path + name!r} differ only in case; column "
                "names are case-insensitive: send one of them"
            )
        seen[name.lower()] = name


def _normalize_array(path: str, array: pa.Array, *, top: bool = False) -> pa.Array | None:
    """Return ``array`` in its canonical type, the same object if nothing changes.

    None means the array has type null and should be dropped. ``path`` names the value in
    messages: ``req.status`` for a struct field, ``tags[]`` for list elements. ``top`` is
    True for a table's column (not a value nested in one).
    """
    t = array.type
    if pa.types.is_null(t):
        return None
    if pa.types.is_dictionary(t):
        return _normalize_array(path, array.dictionary_decode(), top=top)
    if pa.types.is_struct(t):
        return _normalize_struct(path, array)
    if pa.types.is_map(t):
        return _normalize_map(path, array)
    if _is_list_like(t):
        return _normalize_list(path, array)
    target = _leaf_target(path, t, top=top)
    if target == t:
        return array
    return _cast_leaf(path, array, target)


def _is_list_like(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
        or pa.types.is_fixed_size_list(t)
    )


def _normalize_struct(path: str, array: pa.StructArray) -> pa.Array | None:
    # flatten() applies the slice offset and folds the struct's nulls into its children.
    _check_column_names([f.name for f in array.type.fields], f"{path}.")
    fields: list[pa.Field] = []
    children: list[pa.Array] = []
    unchanged = True
    for field, child in zip(array.type.fields, array.flatten(), strict=True):
        new = _normalize_array(f"{path}.{field.name}", child)
        if new is None:
            unchanged = False
            continue
        unchanged = unchanged and new is child and field.nullable
        fields.append(pa.field(field.name, new.type))
        children.append(new)
    if not children:
        return None  # a struct of only null fields stores nothing, like a null column
    if unchanged:
        return array
    mask = array.is_null() if array.null_count else None
    return pa.StructArray.from_arrays(children, fields=fields, mask=mask)


def _normalize_list(path: str, array: pa.Array) -> pa.Array:
    # list_view/fixed_size_list/large_list all become list. pyarrow 26 casts list_view to
    # list into a corrupt array, so every variant is rebuilt from its values and lengths.
    values = array.flatten()
    new = _normalize_array(f"{path}[]", values)
    if new is None:
        new = values  # list<null>: kept, so coerce can still tell [] from a missing value
    if pa.types.is_list(array.type) and new is values and array.type.value_field.nullable:
        return array
    lengths = pc.fill_null(pc.list_value_length(array), 0).cast(pa.int64())
    offsets = _offsets_from_lengths(path, lengths)
    mask = array.is_null() if array.null_count else None
    return pa.ListArray.from_arrays(offsets, new, mask=mask)


def _normalize_map(path: str, array: pa.MapArray) -> pa.Array:
    offsets, keys, items = _map_parts(array)
    new_keys = _normalize_array(f"{path}.key", keys)
    new_items = _normalize_array(f"{path}.value", items)
    if new_items is None:
        new_items = items  # map<k, null>: untyped, handled like list<null>
    if new_keys is keys and new_items is items and array.type.item_field.nullable:
        return array
    mask = array.is_null() if array.null_count else None
    return pa.MapArray.from_arrays(offsets, new_keys, new_items, mask=mask)


def _map_parts(array: pa.MapArray) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The offsets (starting at 0), keys and items of exactly the entries ``array`` spans.

    ``MapArray.keys``/``items`` are the whole child arrays even when ``array`` is a slice.
    """
    offsets = array.offsets
    start = offsets[0].as_py()
    stop = offsets[-1].as_py()
    rebased = pc.subtract(offsets, pa.scalar(start, offsets.type))
    return rebased, array.keys.slice(start, stop - start), array.items.slice(start, stop - start)


def _offsets_from_lengths(path: str, lengths: pa.Array) -> pa.Array:
    ends = pc.cumulative_sum(lengths)
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), ends])
    try:
        return offsets.cast(pa.int32())
    except pa.ArrowInvalid as e:
        raise BatchTooLarge(
            f"column {path!r} holds more than 2**31 list elements in one batch; "
            "send it in smaller batches"
        ) from e


def _leaf_target(path: str, t: pa.DataType, *, top: bool = False) -> pa.DataType:
    """The canonical type of a non-nested type, or InvalidInput if Delta cannot store it.

    Every timestamp becomes UTC so all compare with each other. A column of nanoseconds
    stays nanoseconds (Vector, OpenTelemetry and Arrow clients send them, and cutting them
    would lose data); the catalog records the unit, as Delta has no nanosecond timestamp
    most readers know. Inside lists, structs and maps there is nowhere to record it, so
    nested timestamps are microseconds, and ``_cast_leaf`` refuses finer values.
    """
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return pa.binary()
    if pa.types.is_boolean(t) or t in _SIGNED_INTS:
        return t
    if t in _UNSIGNED_TARGET:
        return _UNSIGNED_TARGET[t]
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_float32(t) or pa.types.is_float64(t):
        return t
    if pa.types.is_date32(t) or pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_timestamp(t):
        return TIME_TYPE_NS if top and t.unit == "ns" else TIME_TYPE
    # Delta's decimal is at most 38 digits, which decimal128 always fits, with a scale of
    # 0 or more: a negative scale (123E+2) becomes scale 0 with as many more digits. A
    # scale above the precision (which Arrow IPC carries) has no Delta type.
    if pa.types.is_decimal(t) and t.precision - min(t.scale, 0) <= 38 and t.scale <= t.precision:
        return pa.decimal128(t.precision - min(t.scale, 0), max(t.scale, 0))
    raise InvalidInput(
        f"column {path!r} has type {t}, which arrowlog cannot store; "
        "send it as a string or a timestamp"
    )


def _cast_leaf(path: str, array: pa.Array, target: pa.DataType) -> pa.Array:
    # Truncation is allowed only for date64: it is a date, so any milliseconds past
    # midnight carry no meaning. A timestamp is never cut (nested ns -> us must be exact).
    truncate = pa.types.is_date64(array.type)
    options = pc.CastOptions(target, allow_time_truncate=truncate)
    try:
        return pc.cast(array, options=options)
    except pa.ArrowInvalid as e:
        if pa.types.is_timestamp(array.type) and array.type.unit == "ns":
            raw = np.asarray(pc.fill_null(array.cast(pa.int64()), 0))
            index = int(np.flatnonzero(raw % 1000)[0])
            raise InvalidInput(
                f"column {path!r} has a value with nanoseconds, {_time_text(array, index)}; "
                "timestamps inside lists, structs and maps are stored to the microsecond: "
                "send whole microseconds, or the value as a column of its own"
            ) from e
        if pa.types.is_uint64(array.type):
            raise InvalidInput(
                f"column {path!r} has a value {pc.max(array).as_py()} that is larger than "
                f"int64 allows ({_INT64_MAX})"
            ) from e
        raise InvalidInput(f"column {path!r} has a value outside the range of {target}: {e}") from e


def _check_strings(name: str, array: pa.Array, max_string_bytes: int) -> None:
    """Reject invalid UTF-8 and oversized values before they reach the WAL.

    Parquet and every reader assume valid UTF-8 in string columns, and one huge value can
    blow the buffer's memory budget, so both are refused whole here.
    """
    if not any(_walk_types(array.type, _is_bytes_like)):
        return
    try:
        array.validate(full=True)
    except pa.ArrowInvalid as e:
        raise InvalidInput(f"column {name!r} holds a value that is not valid UTF-8") from e
    if array.nbytes <= max_string_bytes:
        return  # no single value can be longer than the whole column
    for path, leaf in _bytes_leaves(name, array):
        longest = pc.max(pc.binary_length(leaf)).as_py()
        if longest is not None and longest > max_string_bytes:
            raise BatchTooLarge(
                f"column {path!r} holds a value of {longest} bytes; the limit is "
                f"{max_string_bytes} bytes (setting max_string_bytes)"
            )


def _one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array; a single chunk is returned as is, without a copy."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _is_bytes_like(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_binary(t)


def _walk_types(t: pa.DataType, predicate: Callable[[pa.DataType], bool]) -> Iterator[bool]:
    """Yield True for every type nested in ``t`` (``t`` included) matching ``predicate``."""
    if predicate(t):
        yield True
    for i in range(t.num_fields):
        yield from _walk_types(t.field(i).type, predicate)


def _bytes_leaves(path: str, array: pa.Array) -> Iterator[tuple[str, pa.Array]]:
    """Every string/binary array nested in a normalized ``array``, with its path."""
    t = array.type
    if _is_bytes_like(t):
        yield path, array
    elif pa.types.is_struct(t):
        for field, child in zip(t.fields, array.flatten(), strict=True):
            yield from _bytes_leaves(f"{path}.{field.name}", child)
    elif pa.types.is_map(t):
        _, keys, items = _map_parts(array)
        yield from _bytes_leaves(f"{path}.key", keys)
        yield from _bytes_leaves(f"{path}.value", items)
    elif pa.types.is_list(t):
        yield from _bytes_leaves(f"{path}[]", array.flatten())


def _is_untyped(t: pa.DataType) -> bool:
    """True for types that still contain null, such as the list<null> of ``[]``."""
    return any(_walk_types(t, pa.types.is_null))


# ---------------------------------------------------------------------------------------
# Time
#
# What a time value may look like, and how it becomes an instant (README, "Time column"):
#
# * a timestamp: kept; nanoseconds stay nanoseconds at the top level (see _leaf_target).
# * a number of seconds, milliseconds, microseconds or nanoseconds since the epoch. The
#   unit is read from each value's magnitude (_EPOCH_LIMITS), per value rather than per
#   batch: a record's time then never depends on the records it was sent with, and one
#   request may mix shippers (Fluent Bit's float seconds, a Java app's milliseconds).
#   Integers are exact; floats carry ~16 significant digits, so they are rounded to the
#   nearest microsecond (finer digits of a float epoch today are noise).
# * a string: ISO-8601 / RFC 3339 (offsets Z, +02:00, +0200, +02; naive means UTC), RFC
#   2822 (weekday optional; +hhmm, GMT, UT, UTC or Z), nginx/Apache $time_local, or an
#   epoch number written as a string.

# An epoch number below the first limit (in absolute value) counts seconds, below the
# second milliseconds, below the third microseconds, and anything larger nanoseconds. Each
# limit is the same instant in two units (1e11 s and 1e14 ms are both in the year 5138, 1e11
# ms and 1e8 s both 1973-03-03), so every unit covers 1973-5138 and only milliseconds before
# 1973-03-03 are misread (as seconds: send those as strings).
_EPOCH_LIMITS = (10**11, 10**14, 10**17)
_NS_PER_UNIT = (10**9, 10**6, 10**3, 1)  # seconds, ms, µs, ns
# A candidate column of numbers becomes the time column on its own only if every value is
# at least this (1973-03-03 in every unit): counters and durations are not times.
_PLAUSIBLE_EPOCH = 10**8


# ISO-8601 starts with a full date; the rest of the string is checked by Arrow's parser.
_ISO_RE = r"^\d{4}-\d{2}-\d{2}([T ]|$)"
# More than six fractional digits: only a nanosecond column holds them exactly.
_ISO_NS_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}[.,]\d{7}"
_EPOCH_INT_RE = r"^[+-]?\d+$"
_EPOCH_FLOAT_RE = r"^[+-]?(\d+\.\d*|\.\d+)$"
# The other string formats: which strings look like each (a cheap regex), and the strptime
# formats tried in order on those still unparsed. RFC 2822's named zones for UTC are
# rewritten as +0000 first (strptime's %z wants digits).
_RFC2822_RE = r"^\s*([A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d{2}:\d{2}"
_RFC2822_UTC_NAMES = (" GMT", " UTC", " UT", " Z")  # " UTC" before " UT"
_RFC2822_FORMATS = (
    "%a, %d %b %Y %H:%M:%S %z",  # "Fri, 04 Dec 2026 08:00:00 +0000"
    "%d %b %Y %H:%M:%S %z",
    "%a, %d %b %Y %H:%M %z",  # seconds are optional in RFC 2822
    "%d %b %Y %H:%M %z",
)
_TIME_LOCAL_RE = r"^\d{1,2}/[A-Za-z]{3}/\d{4}:"
_TIME_LOCAL_FORMATS = ("%d/%b/%Y:%H:%M:%S %z",)  # nginx/Apache $time_local


def choose_time_column(table: pa.Table, declared: str | None = None) -> str:
    """Pick the column a new stream is sorted, partitioned and pruned by.

    Args:
        table: the stream's first batch, normalized.
        declared: the column the user named, if any.

    Returns:
        ``declared`` once checked; else the first of ``TIME_CANDIDATES`` holding timestamps,
        strings that all parse as times, or epoch numbers that are all at least 1e8
        (1973-03-03 in any unit: smaller numbers are more likely counters than times); else
        ``INGESTED_AT``.

    Raises:
        InvalidInput: ``declared`` is missing from the batch, has a type that cannot hold
            times, or holds a value that is not a time.

    Example: ``choose_time_column(table)  # -> "ts"``
    """
    if declared is not None:
        if declared == INGESTED_AT:
            return declared
        if declared not in table.column_names:
            raise InvalidInput(
                f"time column {declared!r} is not in the batch, whose columns are "
                f"{_names(table.column_names)}"
            )
        column = _one_chunk(table.column(declared))
        if not _can_hold_times(column.type):
            raise InvalidInput(
                f"time column {declared!r} has type {column.type}; it must be a timestamp, "
                "a time string or an epoch number"
            )
        _to_timestamps(declared, column)
        return declared
    for name in TIME_CANDIDATES:
        if name not in table.column_names:
            continue
        column = _one_chunk(table.column(name))
        if pa.types.is_timestamp(column.type):
            return name
        if _can_hold_times(column.type) and _all_plausible_times(name, column):
            return name
        logger.debug("column %r (%s) is not a time column", name, column.type)
    return INGESTED_AT


def _can_hold_times(t: pa.DataType) -> bool:
    return (
        pa.types.is_timestamp(t) or pa.types.is_date32(t) or pa.types.is_string(t) or _is_number(t)
    )


def _is_number(t: pa.DataType) -> bool:
    return t in _SIGNED_INTS or pa.types.is_float32(t) or pa.types.is_float64(t)


def _all_plausible_times(name: str, column: pa.Array) -> bool:
    """True if every value is a time, and every epoch number (or string of one) >= 1e8."""
    try:
        _to_timestamps(name, column)
    except InvalidInput:
        return False
    if pa.types.is_string(column.type):
        epoch = pc.match_substring_regex(column, f"{_EPOCH_INT_RE}|{_EPOCH_FLOAT_RE}")
        numbers = _where(epoch, column)
    elif _is_number(column.type):
        numbers = column
    else:
        return True  # timestamps and dates
    low = pc.min(numbers.cast(pa.float64())).as_py()
    return low is None or low >= _PLAUSIBLE_EPOCH


def _to_timestamps(name: str, array: pa.Array) -> pa.Array:
    """Read a column of times in any supported form as UTC timestamps, µs or ns.

    Raises InvalidInput quoting the first value that is not a time.
    """
    t = array.type
    if pa.types.is_timestamp(t):
        return array
    if pa.types.is_date32(t):
        return array.cast(TIME_TYPE)
    if pa.types.is_string(t):
        return _parse_timestamps(name, array)
    try:
        return _epoch_to_timestamps(array)
    except pa.ArrowInvalid as e:
        raise InvalidInput(f"column {name!r} has a value that is not a timestamp: {e}") from None


def _epoch_to_timestamps(numbers: pa.Array) -> pa.Array:
    """Epoch numbers -> UTC timestamps, each value's unit read from its magnitude.

    Integers give microseconds, or nanoseconds when any value is in nanoseconds (then
    every value must fit the nanosecond range, 1677-2262). Floats give microseconds,
    rounded. Raises ArrowInvalid whose message is the offending value.
    """
    mask = np.asarray(numbers.is_null()) if numbers.null_count else None
    if pa.types.is_floating(numbers.type):
        values = np.asarray(pc.fill_null(numbers.cast(pa.float64()), 0.0))
        finite = np.isfinite(values)
        if not finite.all():
            raise pa.ArrowInvalid(repr(float(values[np.argmin(finite)])))
        size = np.abs(values)
        micros = np.rint(
            np.select(
                [size < limit for limit in _EPOCH_LIMITS],
                [values * 1e6, values * 1e3, values],
                values / 1e3,
            )
        )
        too_big = np.abs(micros) >= 2.0**63
        if too_big.any():
            raise pa.ArrowInvalid(repr(float(values[np.argmax(too_big)])))
        return pa.array(micros.astype(np.int64), pa.int64(), mask=mask).cast(TIME_TYPE)
    values = np.asarray(pc.fill_null(numbers.cast(pa.int64()), 0))
    below = [(values > -limit) & (values < limit) for limit in _EPOCH_LIMITS]
    per_unit = np.select(below, _NS_PER_UNIT[:3], _NS_PER_UNIT[3])
    if below[2].all():
        micros = values * (per_unit // 1000)  # |values| < 1e11 s, so at most 1e17 µs
        return pa.array(micros, pa.int64(), mask=mask).cast(TIME_TYPE)
    bound = _INT64_MAX // per_unit
    overflow = (values > bound) | (values < -bound)
    if mask is not None:
        overflow &= ~mask
    if overflow.any():
        bad = int(values[np.argmax(overflow)])
        raise pa.ArrowInvalid(
            f"{bad} (with epoch nanoseconds in the same column, every value must lie in "
            "the years 1677-2262)"
        )
    return pa.array(values * per_unit, pa.int64(), mask=mask).cast(TIME_TYPE_NS)


def _parse_timestamps(name: str, strings: pa.Array) -> pa.Array:
    """Parse time strings (any supported format) into UTC timestamps; naive means UTC.

    The unit is µs, or ns when an ISO-8601 string has more than six fractional digits or an
    epoch string counts nanoseconds. Raises InvalidInput quoting the first value that does
    not parse.
    """
    try:
        # The common case, and a tenth of the cost of the regexes below: every string is
        # ISO-8601 with a zone and at most six fractional digits. Arrow's parser accepts
        # exactly those in an aware cast (naive strings and finer fractions fail it), and
        # reads them as ``_parse_iso`` would; anything else takes the general path.
        return strings.cast(TIME_TYPE)
    except pa.ArrowInvalid:
        pass
    unit = "ns" if pc.any(pc.match_substring_regex(strings, _ISO_NS_RE)).as_py() else "us"
    try:
        return _try_parse_timestamps(strings, unit)
    except pa.ArrowInvalid:
        bad = _first_failure(strings, lambda part: _try_parse_timestamps(part, unit))
        raise InvalidInput(
            f"column {name!r} has a value that is not a timestamp: {_short_repr(bad)}"
        ) from None


def _try_parse_timestamps(strings: pa.Array, unit: str) -> pa.Array:
    """Parse ``strings`` at ``unit``; ArrowInvalid if any non-null string does not parse.

    ISO-8601, by far the most common, goes first and alone when every string is ISO; the
    other formats are tried, each vectorised, only on the strings still unparsed.
    """
    iso = pc.match_substring_regex(strings, _ISO_RE)
    if pc.all(iso).as_py() is not False:
        return _parse_iso(strings, unit)
    parts = [_parse_iso(_where(iso, strings), unit)] if pc.any(iso).as_py() else []
    rest = _where(pc.invert(iso), strings)
    for pattern, parse in _OTHER_FORMATS:
        if rest.null_count == len(rest):
            break
        looks = pc.match_substring_regex(rest, pattern)
        if not pc.any(looks).as_py():
            continue
        parts.append(parse(_where(looks, rest), unit))
        rest = _where(pc.invert(looks), rest)
    if any(p.type.unit == "ns" for p in parts):
        parts = [p.cast(TIME_TYPE_NS) for p in parts]  # range-checked: ArrowInvalid
    else:
        parts = [p.cast(pa.timestamp(unit, tz="UTC")) for p in parts]
    parsed = pc.coalesce(*parts)
    if parsed.null_count > strings.null_count:
        raise pa.ArrowInvalid("a string is not a time in any supported format")
    return parsed


def _where(mask: pa.Array, strings: pa.Array) -> pa.Array:
    """``strings`` where ``mask`` is true, null elsewhere."""
    return pc.if_else(mask, strings, pa.scalar(None, pa.string()))


def _strptime_any(strings: pa.Array, formats: tuple[str, ...], unit: str) -> pa.Array:
    """UTC timestamps from the first of ``formats`` each string matches (null if none);
    each format only sees the strings the ones before it left unparsed."""
    parsed = pc.strptime(strings, formats[0], unit, error_is_null=True)
    for fmt in formats[1:]:
        todo = pc.if_else(pc.is_null(parsed), strings, pa.scalar(None, pa.string()))
        if todo.null_count == len(todo):
            break
        parsed = pc.coalesce(parsed, pc.strptime(todo, fmt, unit, error_is_null=True))
    return parsed


def _parse_rfc2822(strings: pa.Array, unit: str) -> pa.Array:
    for zone in _RFC2822_UTC_NAMES:  # literal replaces: a regex anchored at $ is 4x slower
        if pc.any(pc.ends_with(strings, zone)).as_py():
            strings = pc.replace_substring(strings, zone, " +0000")
    return _strptime_any(strings, _RFC2822_FORMATS, unit)


def _parse_time_local(strings: pa.Array, unit: str) -> pa.Array:
    return _strptime_any(strings, _TIME_LOCAL_FORMATS, unit)


def _parse_epoch_ints(strings: pa.Array, unit: str) -> pa.Array:
    return _epoch_to_timestamps(strings.cast(pa.int64()))


def _parse_epoch_floats(strings: pa.Array, unit: str) -> pa.Array:
    return _epoch_to_timestamps(strings.cast(pa.float64()))


# After ISO-8601: what each other format looks like, and its parser (on those strings).
_OTHER_FORMATS: tuple[tuple[str, Callable[[pa.Array, str], pa.Array]], ...] = (
    (_TIME_LOCAL_RE, _parse_time_local),
    (_RFC2822_RE, _parse_rfc2822),
    (_EPOCH_INT_RE, _parse_epoch_ints),
    (_EPOCH_FLOAT_RE, _parse_epoch_floats),
)


def _parse_iso(strings: pa.Array, unit: str) -> pa.Array:
    """ISO-8601 strings at ``unit``, UTC. Zoned and naive strings are parsed apart because
    Arrow parses them only into tz-aware and naive timestamps respectively."""
    zoned = pc.match_substring_regex(strings, _ZONED_RE)
    none = pa.scalar(None, pa.string())
    aware = pc.if_else(zoned, strings, none).cast(pa.timestamp(unit, tz="UTC"))
    # A naive timestamp relabelled as UTC keeps its wall time: that is the UTC reading.
    naive = pc.if_else(zoned, none, strings).cast(pa.timestamp(unit))
    return pc.if_else(zoned, aware, naive.cast(pa.timestamp(unit, tz="UTC")))


def _first_failure(array: pa.Array, convert: Callable[[pa.Array], object]) -> object:
    """The first value of ``array`` that ``convert`` rejects, found by bisection.

    Runs only after ``convert(array)`` failed; O(log n) vectorised calls instead of a
    Python loop over the values.
    """
    lo, hi = 0, len(array)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(array.slice(lo, mid - lo))
        except pa.ArrowInvalid:
            hi = mid
        else:
            lo = mid
    return array[lo].as_py()


def _ingested_scalar(ingested_at: pa.Scalar | _dt.datetime) -> pa.Scalar:
    if isinstance(ingested_at, pa.Scalar):
        scalar = ingested_at.cast(TIME_TYPE)
    elif isinstance(ingested_at, _dt.datetime):
        scalar = pa.scalar(ingested_at, type=TIME_TYPE)  # naive datetimes are read as UTC
    else:
        raise TypeError(
            f"ingested_at must be a datetime or a pyarrow scalar, not {_type_name(ingested_at)}"
        )
    if not scalar.is_valid:
        raise ValueError("ingested_at must not be null")
    return scalar


# ---------------------------------------------------------------------------------------
# Stream schema: coercion and evolution


def coerce(
    table: pa.Table,
    stream_schema: pa.Schema | None,
    time_column: str,
    ingested_at: pa.Scalar | _dt.datetime,
    *,
    stream: str,
) -> tuple[pa.Table, pa.Schema]:
    """Fit a normalized batch to its stream's schema, evolving the schema.

    Columns the stream knows are cast to the stream's type when the cast only widens
    (see ``_can_widen``) or, for integers, when every value fits; a number wider than its
    column widens the column (``_fit``); new columns are appended, nullable, in batch
    order; columns the batch lacks become nulls. The time column always ends up a UTC
    timestamp (µs, or ns: see ``_leaf_target``), read from any form of time
    ``_to_timestamps`` knows; a record without a time keeps a null one, and its
    ``_ingested_at`` places it in a day partition.

    Args:
        table: a normalized batch (``normalize``).
        stream_schema: the stream's user schema (no system columns), None for a new stream.
        time_column: the stream's time column (``choose_time_column``), or ``INGESTED_AT``.
        ingested_at: when the batch was accepted; naive datetimes are UTC.
        stream: the stream's name, for messages.

    Returns:
        ``(batch, schema)``: the batch with the user columns in ``schema`` order, then
        ``_ingested_at``; and the stream's user schema after this batch, all nullable.
        For columns the stream knows, the result does not depend on the batch's column order.

    Raises:
        InvalidInput: a column whose type conflicts with the stream's (naming the column and
            both types), a value that does not fit the widened type, or a time column that
            cannot hold timestamps.

    Example: ``batch, schema = coerce(t, None, "ts", datetime.now(UTC), stream="http_logs")``
    """
    ingested = _ingested_scalar(ingested_at)
    rows = table.num_rows
    known = list(stream_schema) if stream_schema is not None else []
    if time_column in RESERVED and time_column != INGESTED_AT:
        raise InvalidInput(f"time column {time_column!r} is a reserved name")
    for field in known:
        if field.name in RESERVED:
            raise InvalidInput(f"column {field.name!r} of stream {stream!r} is reserved")
    batch = {name: _one_chunk(table.column(name)) for name in table.column_names}
    untyped = _is_untyped_source(table)

    fields: list[pa.Field] = []
    arrays: list[pa.Array] = []
    for field in known:
        if field.name in batch and pa.types.is_timestamp(field.type):
            epoch = field.name == time_column
            array = _to_time(field.name, batch[field.name], stream, field.type, epoch=epoch)
        elif field.name in batch:
            array = _fit(field.name, batch[field.name], field.type, stream)
        else:
            array = pa.nulls(rows, field.type)
        fields.append(pa.field(field.name, array.type))
        arrays.append(array)
    known_names = {f.name for f in known}
    known_folded = {f.name.lower(): f.name for f in known}
    for name, array in batch.items():
        if name in known_names:
            continue
        if name.lower() in known_folded:
            raise InvalidInput(
                f"column {name!r} differs only in case from column "
                f"{known_folded[name.lower()]!r} of stream {stream!r}; column names are "
                "case-insensitive: use the stream's spelling"
            )
        if pa.types.is_null(array.type) and untyped:
            logger.debug("stream %r: not adding column %r: no values yet", stream, name)
            continue
        if pa.types.is_null(array.type):
            raise InvalidInput(
                f"column {name!r} has Arrow type null (no values, so no type to store): "
                "cast it to the type it will hold, or leave it out until it has values"
            )
        if _is_untyped(array.type):
            # e.g. [] in every record: nothing says what the elements are, so wait for a
            # batch that does rather than fix the column to an arbitrary type.
            logger.debug("stream %r: not adding column %r of type %s yet", stream, name, array.type)
            continue
        if name == time_column:
            array = _to_time(name, array, stream)
        fields.append(pa.field(name, array.type))
        arrays.append(array)
    if time_column != INGESTED_AT:
        _ensure_time(time_column, fields, arrays, rows, stream)

    schema = pa.schema(fields)
    arrays.append(pa.repeat(ingested, rows))
    result = pa.Table.from_arrays(arrays, schema=schema.append(_INGESTED_AT_FIELD))
    if stream_schema is None or len(schema) != len(stream_schema):
        logger.debug("stream %r schema is now %s", stream, schema.names)
    return result, schema


def _ensure_time(
    name: str, fields: list[pa.Field], arrays: list[pa.Array], rows: int, stream: str
) -> None:
    """Make sure the time column is there and holds timestamps, adding it if nobody sent it.

    Null times stay null: a record without a time is stored as sent, not with an invented
    one. ``prepare_segment`` places such a row (day partition, sort order) by its
    ``_ingested_at`` instead.
    """
    index = next((i for i, f in enumerate(fields) if f.name == name), None)
    if index is None:
        fields.append(pa.field(name, TIME_TYPE))
        arrays.append(pa.nulls(rows, TIME_TYPE))
    elif not pa.types.is_timestamp(fields[index].type):
        raise InvalidInput(
            f"time column {name!r} of stream {stream!r} has type {fields[index].type}; "
            "it must be a timestamp"
        )


def _to_time(
    name: str,
    array: pa.Array,
    stream: str,
    target: pa.DataType | None = None,
    *,
    epoch: bool = True,
) -> pa.Array:
    """A batch column as timestamps: of type ``target`` for a column the stream has, else
    (a new column) in the unit its values call for.

    Timestamps, dates and time strings fit any timestamp column; numbers only the time
    column (``epoch``): that a number counts time since the epoch is a reading only a time
    column's name justifies, so elsewhere a number is a type conflict as before.
    """
    source = array.type
    if target is not None and (source == target or array.null_count == len(array)):
        return array if source == target else pa.nulls(len(array), target)
    if not _can_hold_times(source) or (_is_number(source) and not epoch):
        if target is None:
            raise InvalidInput(
                f"column {name!r} has type {source}, but the time column of stream {stream!r} "
                "must be a timestamp, a time string or an epoch number"
            )
        raise InvalidInput(f"column {name!r} has type {source}, but stream {stream!r} has {target}")
    times = _to_timestamps(name, array)
    return times if target is None else _to_unit(name, times, target, stream)


def _to_unit(name: str, times: pa.Array, target: pa.DataType, stream: str) -> pa.Array:
    """Cast timestamps to the column's unit exactly, or refuse the batch naming the value.

    A column's unit is fixed when it is created, so a later batch may bring a finer or
    wider value than the column holds: nanoseconds are never cut to fit a microsecond
    column, and a microsecond value outside 1677-2262 cannot become nanoseconds.
    """
    if times.type == target:
        return times
    try:
        return times.cast(target)  # a safe cast: it refuses to lose data or overflow
    except pa.ArrowInvalid:
        pass
    raw = np.asarray(pc.fill_null(times.cast(pa.int64()), 0))
    if target.unit == "us" and times.type.unit == "ns":
        index = int(np.flatnonzero(raw % 1000)[0])
        raise InvalidInput(
            f"column {name!r} of stream {stream!r} holds microseconds, but the batch has "
            f"{_time_text(times, index)}: arrowlog does not drop the nanoseconds; send "
            "whole microseconds"
        ) from None
    first, last = (_time_text(times, int(i)) for i in np.argsort(raw)[[0, -1]])
    raise InvalidInput(
        f"column {name!r} of stream {stream!r} holds nanoseconds, which reach only the years "
        f"1677-2262, but the batch has values from {first} to {last}"
    ) from None


def _time_text(times: pa.Array, index: int) -> str:
    """One timestamp as ISO-8601 with every fractional digit its unit has."""
    return pc.strftime(times.slice(index, 1), format="%Y-%m-%dT%H:%M:%SZ")[0].as_py()


def _fit(name: str, array: pa.Array, target: pa.DataType, stream: str) -> pa.Array:
    """A batch column in the stream column's type, or in a wider one the column widens to.

    Producers send ``12`` and ``12.5`` for the same field all the time: a number wider than
    the column (int -> double, int32 -> int64, float32 -> float64) widens the column
    rather than being refused. An int that fits the column's narrower int type keeps the
    column's type (JSON always infers int64). The result's type is the column's new type.
    """
    source = array.type
    wider = _numeric_wider(source, target)
    if wider is None or wider == target or array.null_count == len(array):
        return _cast_to(name, array, target, stream)
    if source in _SIGNED_INTS and target in _SIGNED_INTS:
        try:
            return array.cast(target)  # every value fits: the column keeps its type
        except pa.ArrowInvalid:
            pass
    return _cast_to(name, array, wider, stream)


def _numeric_wider(x: pa.DataType, y: pa.DataType) -> pa.DataType | None:
    """The narrowest type holding both numeric types' values; None unless both are numbers."""
    numbers = (*_SIGNED_INTS, pa.float32(), pa.float64())
    if x not in numbers or y not in numbers:
        return None
    if x in _SIGNED_INTS and y in _SIGNED_INTS:
        return x if x.bit_width >= y.bit_width else y
    if x == y == pa.float32():
        return x
    return pa.float64()


def widens(source: pa.DataType, target: pa.DataType) -> bool:
    """True when a column of type ``source`` may become ``target`` (a widening).

    Example: ``widens(pa.int64(), pa.float64())  # True``
    """
    return source != target and _numeric_wider(source, target) == target


def _cast_to(name: str, array: pa.Array, target: pa.DataType, stream: str) -> pa.Array:
    """Cast a batch column to the stream's type, allowing only widening casts."""
    source = array.type
    if source == target:
        return array
    if array.null_count == len(array):
        # Nulls fit any type: an all-null column means the same as a missing one.
        return pa.nulls(len(array), target)
    conflict = InvalidInput(
        f"column {name!r} has type {source}, but stream {stream!r} has {target}"
    )
    if _is_untyped(source):
        # list<null> etc. (only empty or null elements): fits any list of the same shape.
        try:
            return array.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise conflict from e
    # A narrower int column is accepted value by value (the cast is range-checked): JSON and
    # NDJSON always infer int64, so a stream declared with int32 could take no JSON otherwise.
    narrowing = source in _SIGNED_INTS and target in _SIGNED_INTS
    if not (narrowing or _can_widen(source, target)):
        raise conflict
    if pa.types.is_string(source):
        return _parse_timestamps(name, array)
    try:
        return array.cast(target)
    except pa.ArrowInvalid as e:
        raise InvalidInput(
            f"column {name!r} has a value that stream {stream!r} cannot store as {target}: {e}"
        ) from e


def _can_widen(source: pa.DataType, target: pa.DataType) -> bool:
    """The casts a batch may make to fit a stream: none lose information or change meaning.

    int -> wider int, int -> float64 (checked per value: beyond 2**53 it is refused),
    float32 -> float64, and string or date32 -> timestamp. Nothing becomes a string, floats
    never become ints, and nested types must match exactly.
    """
    if source in _SIGNED_INTS and target in _SIGNED_INTS:
        return source.bit_width < target.bit_width
    if source in _SIGNED_INTS or pa.types.is_float32(source):
        return pa.types.is_float64(target)
    if target == TIME_TYPE:
        return pa.types.is_string(source) or pa.types.is_date32(source)
    return False


def merge_schemas(a: pa.Schema, b: pa.Schema) -> pa.Schema:
    """Union two user schemas of one stream, e.g. the catalog's and the WAL's.

    Fields of ``a`` come first, in order, then the fields only ``b`` has. A column typed
    differently takes the type both can be widened to (``int32`` and ``int64`` give
    ``int64``, ``int64`` and ``float32`` give ``float64``).

    Args:
        a: the schema whose order wins.
        b: the schema whose new fields are appended.

    Returns:
        The merged schema, all fields nullable, without metadata.

    Raises:
        InvalidInput: a column whose two types have no common widening.

    Example: ``merge_schemas(catalog_schema, wal_schema)``
    """
    b_types = {f.name: f.type for f in b}
    fields = []
    for field in a:
        other = b_types.get(field.name, field.type)
        fields.append(pa.field(field.name, _wider(field.name, field.type, other)))
    a_names = set(a.names)
    fields.extend(pa.field(f.name, f.type) for f in b if f.name not in a_names)
    return pa.schema(fields)


def _wider(name: str, x: pa.DataType, y: pa.DataType) -> pa.DataType:
    # Numbers meet where a column widens on append (``_numeric_wider``, used by ``_fit``).
    numeric = _numeric_wider(x, y)
    if numeric is not None:
        return numeric
    if x == y or _can_widen(y, x) or _is_untyped(y):
        return x
    if _can_widen(x, y) or _is_untyped(x):
        return y
    raise InvalidInput(f"column {name!r} has type {x} in one schema and {y} in the other")


# ---------------------------------------------------------------------------------------
# System columns


def system_schema(user_schema: pa.Schema) -> pa.Schema:
    """The stored schema: user columns, then ``_offset`` and ``_ingested_at``, both not null.

    Args:
        user_schema: the stream's user schema, as returned by ``coerce``.

    Returns:
        ``user_schema`` plus the two system fields.

    Example: ``system_schema(pa.schema([("msg", pa.string())]))``
    """
    return pa.schema([*user_schema, _OFFSET_FIELD, _INGESTED_AT_FIELD])


def with_offsets(table: pa.Table, first_offset: int) -> pa.Table:
    """Number a coerced batch's rows ``first_offset, first_offset + 1, ...``.

    Called by the log under its lock, once the batch's place in the stream is known;
    ``_offset`` goes just before ``_ingested_at`` so the result has ``system_schema``.

    Args:
        table: the first element of ``coerce``'s result.
        first_offset: the offset of the batch's first row.

    Returns:
        The table with an ``_offset`` column.

    Raises:
        ValueError: ``table`` is not a ``coerce`` result, or ``first_offset`` is negative.

    Example: ``with_offsets(batch, next_offset)``
    """
    if first_offset < 0:
        raise ValueError(f"offsets start at 0, got {first_offset}")
    index = table.schema.get_field_index(INGESTED_AT)
    if index < 0 or OFFSET in table.column_names:
        raise ValueError("with_offsets needs a coerce() result: one _ingested_at and no _offset")
    offsets = pa.array(np.arange(first_offset, first_offset + table.num_rows, dtype=np.int64))
    return table.add_column(index, _OFFSET_FIELD, offsets)


# ---------------------------------------------------------------------------------------
# Message helpers


def _type_name(value: object) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _field_name(key: str | bytes) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(items: Iterable[str]) -> str:
    return ", ".join(map(repr, items))


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder ``table`` to ``schema``, adding null columns the table predates and casting
    columns written before their type widened (int64 -> double: exact, checked on append)."""
    if table.schema.equals(schema):
        return table
    columns = []
    for f in schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table.column(f.name)
        columns.append(column if column.type == f.type else column.cast(f.type))
    return pa.Table.from_arrays(columns, schema=schema)
