"""The envelopes Flight SQL messages travel in, and the one error for bytes that are not one.

Two envelopes, do not mix them up:

* ``FlightDescriptor.cmd``, ``Ticket.ticket``, ``Action.body`` and ``Result.body`` hold an
  Any-packed message: use :func:`pack` / :func:`unpack`.
* ``PutResult.app_metadata`` holds the *raw* message, not an Any: use
  :func:`encode_update_result` (``DoPutUpdateResult``) and
  ``handles.encode_put_prepared_result`` (``DoPutPreparedStatementResult``). The Go client
  parses these bytes directly as the message; an Any there would be misread (its
  type_url would become the new prepared-statement handle).

Plain Flight's session messages (``session_options.py``) are sent raw as well.
docs/flight-sql-clients.md says which envelope each client call uses.

Example:
    >>> from flight_server.sql_protocol.messages import CommandGetTables
    >>> cmd = unpack(pack(CommandGetTables(include_schema=True)))
    >>> type(cmd) is CommandGetTables and cmd.include_schema
    True
"""

from __future__ import annotations

from typing import TypeVar

import pyarrow as pa
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from arrowlog.errors import ProtocolError
from flight_server.sql_protocol.messages import MESSAGE_CLASSES, PACKAGE, DoPutUpdateResult

__all__ = [
    "TYPE_URL_PREFIX",
    "BytesLike",
    "decode_update_result",
    "encode_update_result",
    "pack",
    "preview",
    "unpack",
]

#: What the decoders accept: Flight hands over ``bytes`` or a ``pyarrow.Buffer``.
BytesLike = bytes | bytearray | memoryview | pa.Buffer

TYPE_URL_PREFIX = "type.googleapis.com/"


_BY_FULL_NAME = {f"{PACKAGE}.{name}": cls for name, cls in MESSAGE_CLASSES.items()}
_M = TypeVar("_M", bound=Message)


def preview(data: bytes, limit: int = 32) -> str:
    """A short, printable description of untrusted bytes for error messages."""
    shown = repr(bytes(data[:limit]))
    suffix = "..." if len(data) > limit else ""
    return f"{len(data)} bytes {shown}{suffix}"


def pack(message: Message) -> bytes:
    """Wrap a Flight SQL message in a ``google.protobuf.Any`` and serialize it.

    This is the form of ``FlightDescriptor.cmd``, ``Ticket.ticket``, ``Action.body`` and
    ``Result.body`` in Flight SQL. (``PutResult.app_metadata`` is *not* packed; see
    :func:`encode_update_result`.)

    Args:
        message: an instance of one of this module's message classes.

    Returns:
        The serialized Any, type_url ``type.googleapis.com/arrow.flight.protocol.sql.<Name>``.

    Raises:
        TypeError: ``message`` is not a Flight SQL message.

    Example: ``FlightDescriptor.for_command(pack(CommandStatementQuery(query="SELECT 1")))``
    """
    full_name = getattr(getattr(message, "DESCRIPTOR", None), "full_name", None)
    if full_name not in _BY_FULL_NAME:
        raise TypeError(f"not a Flight SQL message: {type(message).__name__}")
    envelope = any_pb2.Any(
        type_url=TYPE_URL_PREFIX + full_name,
        value=message.SerializeToString(deterministic=True),
    )
    return envelope.SerializeToString(deterministic=True)


def unpack(
    data: BytesLike,
    expect: type[_M] | tuple[type[Message], ...] | None = None,
) -> Message:
    """Parse an Any-wrapped Flight SQL message, dispatching on its type_url.

    Never raises anything but :class:`ProtocolError` for bad input: not an Any, a type_url
    that names no Flight SQL message, a body that does not decode, or (with ``expect``) a
    different message than expected. Plain-Flight tickets such as ``b"SELECT 1"`` land here
    too; callers that accept both catch ``ProtocolError`` and treat the bytes as SQL.

    Args:
        data: the serialized Any (a descriptor's ``cmd``, a ticket, an action body).
        expect: optional message class (or tuple of classes) the caller requires.

    Returns:
        A new instance of the matching message class.

    Raises:
        ProtocolError: the bytes are not the (expected) Flight SQL message.

    Example: ``cmd = unpack(descriptor.command)``; then ``isinstance(cmd, CommandGetTables)``.
    """
    raw = bytes(data)
    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(raw)
    except DecodeError as exc:
        raise ProtocolError(
            f"expected a Flight SQL command (a protobuf Any), got {preview(raw)}"
        ) from exc
    type_url = envelope.type_url
    if not type_url:
        raise ProtocolError(
            f"expected a Flight SQL command (a protobuf Any with a type_url), got {preview(raw)}"
        )
    # Any allows any URL prefix; the message name is what follows the last '/'.
    full_name = type_url.rpartition("/")[2]
    cls = _BY_FULL_NAME.get(full_name)
    if cls is None:
        raise ProtocolError(f"unsupported Flight SQL message type {type_url!r}")
    message = cls()
    try:
        message.ParseFromString(envelope.value)
    except DecodeError as exc:
        raise ProtocolError(
            f"could not decode {cls.DESCRIPTOR.name} from {preview(envelope.value)}"
        ) from exc
    if expect is not None and not isinstance(message, expect):
        wanted = expect if isinstance(expect, tuple) else (expect,)
        names = " or ".join(c.DESCRIPTOR.name for c in wanted)
        raise ProtocolError(f"expected {names}, got {cls.DESCRIPTOR.name}")
    return message


def encode_update_result(record_count: int) -> bytes:
    """``PutResult.app_metadata`` for an update or ingest: a raw ``DoPutUpdateResult``.

    Args:
        record_count: rows written; -1 means unknown.

    Returns:
        The serialized message, *not* Any-wrapped (clients parse it directly).

    Example: ``writer.write(pa.py_buffer(encode_update_result(n)))``
    """
    return DoPutUpdateResult(record_count=record_count).SerializeToString()


def decode_update_result(data: BytesLike) -> int:
    """Read ``record_count`` from a raw ``DoPutUpdateResult`` (the client side of the above).

    Raises:
        ProtocolError: the bytes do not decode.
    """
    message = DoPutUpdateResult()
    try:
        message.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise ProtocolError(
            f"could not decode DoPutUpdateResult from {preview(bytes(data))}"
        ) from exc
    return int(message.record_count)
