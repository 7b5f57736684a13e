"""Stateless prepared-statement handles and statement tickets.

The SQL text (and the IPC bytes of bound parameters) live inside the handle, so any
server process can serve any handle, ClosePreparedStatement has nothing to free and a
DoGet can be retried. Also the two answers that hand a handle to the client: the
``CreatePreparedStatement`` result and the PutResult after binding parameters.
"""

from __future__ import annotations

import struct

import pyarrow as pa

from arrowlog.errors import ProtocolError
from flight_server.sql_protocol.envelope import BytesLike, pack, preview, unpack
from flight_server.sql_protocol.messages import (
    ActionCreatePreparedStatementResult,
    DoPutPreparedStatementResult,
    TicketStatementQuery,
)

__all__ = [
    "decode_prepared_handle",
    "decode_statement_ticket",
    "encode_prepared_handle",
    "encode_prepared_statement_result",
    "encode_put_prepared_result",
    "encode_statement_ticket",
]

# Layout: b"AL" | version (1 byte) | u32 BE len | SQL UTF-8 | u32 BE len | params IPC stream
# A params length of 0 means "no parameters" (an IPC stream is never empty).

_HANDLE_MAGIC = b"AL"
_HANDLE_VERSION = 1
_U32 = struct.Struct(">I")
_HANDLE_HEADER = len(_HANDLE_MAGIC) + 1


def _params_to_ipc(params: pa.RecordBatch | pa.Table) -> bytes:
    if isinstance(params, pa.Table):
        batches = params.combine_chunks().to_batches()
        params = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=params.schema)
    if not isinstance(params, pa.RecordBatch):
        raise TypeError(f"parameters must be a pyarrow RecordBatch, got {type(params).__name__}")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, params.schema) as writer:
        writer.write_batch(params)
    return sink.getvalue().to_pybytes()


def _params_from_ipc(data: bytes) -> pa.RecordBatch:
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ProtocolError(f"prepared statement handle holds corrupt parameters: {exc}") from exc
    batches = table.combine_chunks().to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0]


def encode_prepared_handle(sql: str, params: pa.RecordBatch | pa.Table | None = None) -> bytes:
    """Encode a prepared statement (SQL and optional bound parameters) into its handle.

    The handle is the whole state: no server keeps a table of open statements, so any
    server can execute it and ClosePreparedStatement has nothing to free. Parameters
    travel as Arrow IPC bytes, so keep them small (they ride in gRPC messages).

    Args:
        sql: the statement text.
        params: bound parameters, one row per execution; a Table is combined into one batch.

    Returns:
        Opaque bytes for ``prepared_statement_handle`` / ``statement_handle``.

    Example: ``decode_prepared_handle(encode_prepared_handle("SELECT 1")) == ("SELECT 1", None)``
    """
    sql_bytes = sql.encode("utf-8")
    params_bytes = b"" if params is None else _params_to_ipc(params)
    return b"".join(
        (
            _HANDLE_MAGIC,
            bytes((_HANDLE_VERSION,)),
            _U32.pack(len(sql_bytes)),
            sql_bytes,
            _U32.pack(len(params_bytes)),
            params_bytes,
        )
    )


def decode_prepared_handle(
    handle: BytesLike,
) -> tuple[str, pa.RecordBatch | None]:
    """Decode a handle made by :func:`encode_prepared_handle`.

    Returns:
        ``(sql, params)``; ``params`` is None when none were bound.

    Raises:
        ProtocolError: the handle is truncated, has trailing bytes, is not ours, has an
            unknown version, or holds invalid UTF-8 or IPC data.
    """
    data = bytes(handle)
    if len(data) < _HANDLE_HEADER or not data.startswith(_HANDLE_MAGIC):
        raise ProtocolError(f"not an arrowlog prepared statement handle: {preview(data)}")
    version = data[len(_HANDLE_MAGIC)]
    if version != _HANDLE_VERSION:
        raise ProtocolError(
            f"unsupported prepared statement handle version {version} "
            f"(this server reads version {_HANDLE_VERSION})"
        )
    pos = _HANDLE_HEADER
    sections: list[bytes] = []
    for what in ("SQL", "parameters"):
        if len(data) - pos < _U32.size:
            raise ProtocolError(
                f"prepared statement handle is truncated: the {what} length is missing "
                f"({len(data)} bytes in all)"
            )
        (length,) = _U32.unpack_from(data, pos)
        pos += _U32.size
        if len(data) - pos < length:
            raise ProtocolError(
                f"prepared statement handle is truncated: {length} bytes of {what} "
                f"expected, {len(data) - pos} remain"
            )
        sections.append(data[pos : pos + length])
        pos += length
    if pos != len(data):
        raise ProtocolError(
            f"prepared statement handle has {len(data) - pos} unexpected trailing bytes"
        )
    sql_bytes, params_bytes = sections
    try:
        sql = sql_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("prepared statement handle holds SQL that is not UTF-8") from exc
    params = _params_from_ipc(params_bytes) if params_bytes else None
    return sql, params


def encode_statement_ticket(sql: str, params: pa.RecordBatch | pa.Table | None = None) -> bytes:
    """A DoGet ticket for a statement: packed ``TicketStatementQuery`` with a stateless handle.

    The ticket can be redeemed any number of times, on any server (results are
    streamed; a retried DoGet simply runs the query again).

    Example: ``flight.Ticket(encode_statement_ticket("SELECT 1"))``
    """
    return pack(TicketStatementQuery(statement_handle=encode_prepared_handle(sql, params)))


def decode_statement_ticket(
    ticket: BytesLike,
) -> tuple[str, pa.RecordBatch | None]:
    """Decode a ticket made by :func:`encode_statement_ticket` into ``(sql, params)``.

    Raises:
        ProtocolError: not a packed ``TicketStatementQuery``, or its handle is invalid.
    """
    message = unpack(ticket, TicketStatementQuery)
    return decode_prepared_handle(message.statement_handle)


def encode_put_prepared_result(handle: bytes) -> bytes:
    """``PutResult.app_metadata`` after binding parameters: a raw ``DoPutPreparedStatementResult``.

    The client replaces its prepared-statement handle with ``handle`` (the stateless
    handle that now carries the bound parameters, see :func:`encode_prepared_handle`).
    """
    return DoPutPreparedStatementResult(prepared_statement_handle=handle).SerializeToString()


def encode_prepared_statement_result(
    handle: bytes,
    dataset_schema: pa.Schema | None = None,
    parameter_schema: pa.Schema | None = None,
    *,
    is_update: bool | None = None,
) -> bytes:
    """The ``Result.body`` answering ``CreatePreparedStatement``: a packed ``ActionCreatePreparedStatementResult``.

    Args:
        handle: the prepared-statement handle (from :func:`encode_prepared_handle`).
        dataset_schema: the result schema, if known (ADBC's ``execute_schema`` returns it).
        parameter_schema: the bind-parameter schema, if known.
        is_update: the newer spec's hint; left unset when None.

    Returns:
        The Any-packed message.
    """
    result = ActionCreatePreparedStatementResult(prepared_statement_handle=handle)
    if dataset_schema is not None:
        result.dataset_schema = dataset_schema.serialize().to_pybytes()
    if parameter_schema is not None:
        result.parameter_schema = parameter_schema.serialize().to_pybytes()
    if is_update is not None:
        result.is_update = is_update
    return pack(result)
