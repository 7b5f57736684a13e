"""Arrow data from a client: decoded and checked before anything reads its values.

Arrow's IPC reader (an HTTP ``application/vnd.apache.arrow.stream`` body, a Flight DoPut)
checks the framing and the metadata of what it reads, but not the values: an offset past
the end of its buffer, a dictionary index out of range or broken UTF-8 come through as a
batch that fails, or crashes the process, later, in whatever reads it (normalising,
writing the WAL, a flush, a query). ``checked`` runs Arrow's full validation on each
decoded batch (about 5 GB/s), and the readers here turn every way a client's bytes can
fail to decode into ``InvalidInput``: a corrupt message is an ``IOError`` status, a
length past the body an ``Invalid``, an impossible buffer size a ``MemoryError``, a
dictionary batch for an id the schema lacks a ``KeyError``, and so on.
"""

from __future__ import annotations

from typing import TypeVar

import pyarrow as pa

from arrowlog.errors import InvalidInput

__all__ = ["DECODE_ERRORS", "checked", "checked_schema", "read_ipc_stream"]

# What decoding a client's Arrow bytes raises when they are wrong (pyarrow's exceptions
# are all ArrowException; an IOError status arrives as OSError, a failed allocation for
# a claimed size as ArrowMemoryError, a field name that is not UTF-8 as
# UnicodeDecodeError when anything asks for it).
DECODE_ERRORS = (pa.ArrowException, OSError, UnicodeDecodeError)

Data = TypeVar("Data", pa.Table, pa.RecordBatch)


def checked(data: Data, what: str) -> Data:
    """``data`` after Arrow's full validation; InvalidInput naming ``what`` if it fails."""
    checked_schema(data.schema, what)
    try:
        data.validate(full=True)
    except DECODE_ERRORS as e:
        raise InvalidInput(f"{what} is not valid Arrow data: {e}") from None
    for name, column in zip(data.schema.names, data.columns, strict=True):
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        if any(_short_offsets(chunk) for chunk in chunks):
            raise InvalidInput(
                f"{what}: column {name!r} holds an empty array without offsets (a list or "
                "string array of length 0 needs one offset, 0)"
            )
    return data


# Offsets per type with offsets (an array of length n needs n + 1 of them).
_OFFSET_BYTES = {pa.types.is_string: 4, pa.types.is_binary: 4, pa.types.is_list: 4,
                 pa.types.is_map: 4, pa.types.is_large_string: 8,
                 pa.types.is_large_binary: 8, pa.types.is_large_list: 8}  # fmt: skip


def _short_offsets(array: pa.Array) -> bool:
    """Whether ``array`` or a child has fewer offsets than its length needs.

    Full validation lets an array of length 0 have an empty offsets buffer (some writers
    send one), but ``Array.nbytes`` (pyarrow 26's ``ReferencedBufferSize``) still reads
    its first offset: out of bounds, a crash when that memory is not mapped.
    """
    t = array.type
    if isinstance(t, pa.ExtensionType):
        array, t = array.storage, t.storage_type
    width = next((n for is_type, n in _OFFSET_BYTES.items() if is_type(t)), 0)
    if width:
        offsets = array.buffers()[1]
        if offsets is None or offsets.size < (array.offset + len(array) + 1) * width:
            return True
    if pa.types.is_dictionary(t):
        return _short_offsets(array.dictionary)
    if pa.types.is_struct(t):
        return any(_short_offsets(array.field(i)) for i in range(t.num_fields))
    if hasattr(array, "values") and not pa.types.is_dictionary(t):
        return _short_offsets(array.values)
    return False


def checked_schema(schema: pa.Schema, what: str) -> pa.Schema:
    """``schema`` if every field name in it, nested ones too, is UTF-8.

    The IPC reader takes names as bytes; pyarrow decodes one each time it is asked for,
    and raises ``UnicodeDecodeError`` (a ``ValueError``) wherever that happens.
    """
    try:
        for field in schema:
            _check_names(field)
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} has a field name that is not UTF-8") from None
    return schema


def _check_names(field: pa.Field) -> None:
    field.name  # noqa: B018 - decoding it is the check
    t = field.type
    if isinstance(t, pa.ExtensionType):
        t = t.storage_type
    if isinstance(t, pa.DictionaryType):
        t = t.value_type
    if isinstance(t, pa.MapType):
        _check_names(t.key_field)
        _check_names(t.item_field)
    elif hasattr(t, "value_field"):  # lists, large lists, fixed-size lists, list views
        _check_names(t.value_field)
    elif isinstance(t, pa.StructType | pa.UnionType):
        for i in range(t.num_fields):
            _check_names(t.field(i))
    elif isinstance(t, pa.RunEndEncodedType):
        _check_names(pa.field("values", t.value_type))


def read_ipc_stream(data: bytes | bytearray | memoryview, what: str = "the body") -> pa.Table:
    """A whole Arrow IPC stream as a table, validated; InvalidInput if it is not one.

    Example: ``read_ipc_stream(body)`` for an HTTP body sent as Arrow.
    """
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except DECODE_ERRORS as e:
        raise InvalidInput(f"{what} is not a valid Arrow IPC stream: {e}") from None
    return checked(table, what)
