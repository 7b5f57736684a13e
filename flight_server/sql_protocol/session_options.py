"""Plain Flight's session options: where ADBC reads the current catalog and schema.

The messages of ``format/Flight.proto`` (package ``arrow.flight.protocol``) that the
session actions carry. They travel as the raw message in ``Action.body`` /
``Result.body``, never in an Any (docs/flight-sql-clients.md, "Current catalog and
schema").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from google.protobuf.message import DecodeError, Message

from arrowlog.errors import ProtocolError
from flight_server.sql_protocol.descriptors import Field, Msg, build_messages
from flight_server.sql_protocol.envelope import BytesLike, preview

__all__ = [
    "ACTION_CLOSE_SESSION",
    "ACTION_GET_SESSION_OPTIONS",
    "ACTION_SET_SESSION_OPTIONS",
    "SESSION_MESSAGE_CLASSES",
    "SESSION_PACKAGE",
    "CloseSessionRequest",
    "CloseSessionResult",
    "GetSessionOptionsRequest",
    "GetSessionOptionsResult",
    "SessionOption",
    "SessionOptionValue",
    "SetSessionOptionError",
    "SetSessionOptionsRequest",
    "SetSessionOptionsResult",
    "decode_session_options",
    "decode_set_session_options",
    "encode_session_options",
    "encode_set_session_options_result",
]

SESSION_PACKAGE = "arrow.flight.protocol"

# Plain Flight's session actions; their bodies are raw messages (no Any).
ACTION_GET_SESSION_OPTIONS = "GetSessionOptions"
ACTION_SET_SESSION_OPTIONS = "SetSessionOptions"
ACTION_CLOSE_SESSION = "CloseSession"

_SESSION_MESSAGES: tuple[Msg, ...] = (
    Msg(
        "SessionOptionValue",
        (
            Field("string_value", 1, "string", "oneof:option_value"),
            Field("bool_value", 2, "bool", "oneof:option_value"),
            Field("int64_value", 3, "sfixed64", "oneof:option_value"),
            Field("double_value", 4, "double", "oneof:option_value"),
            Field(
                "string_list_value",
                5,
                "msg:SessionOptionValue.StringListValue",
                "oneof:option_value",
            ),
        ),
        nested=(Msg("StringListValue", (Field("values", 1, "string", "repeated"),)),),
    ),
    Msg(
        "SetSessionOptionsRequest",
        (Field("session_options", 1, "msg:SessionOptionValue", "map"),),
    ),
    Msg(
        "SetSessionOptionsResult",
        (Field("errors", 1, "msg:SetSessionOptionsResult.Error", "map"),),
        enums=(
            (
                "ErrorValue",
                (("UNSPECIFIED", 0), ("INVALID_NAME", 1), ("INVALID_VALUE", 2), ("ERROR", 3)),
            ),
        ),
        nested=(Msg("Error", (Field("value", 1, "enum:SetSessionOptionsResult.ErrorValue"),)),),
    ),
    Msg("GetSessionOptionsRequest"),
    Msg(
        "GetSessionOptionsResult",
        (Field("session_options", 1, "msg:SessionOptionValue", "map"),),
    ),
    Msg("CloseSessionRequest"),
    Msg(
        "CloseSessionResult",
        (Field("status", 1, "enum:CloseSessionResult.Status"),),
        enums=(
            (
                "Status",
                (("UNSPECIFIED", 0), ("CLOSED", 1), ("CLOSING", 2), ("NOT_CLOSEABLE", 3)),
            ),
        ),
    ),
)


_CLASSES = build_messages("arrowlog/flight_session.proto", SESSION_PACKAGE, _SESSION_MESSAGES)

SessionOptionValue = _CLASSES["SessionOptionValue"]
SetSessionOptionsRequest = _CLASSES["SetSessionOptionsRequest"]
SetSessionOptionsResult = _CLASSES["SetSessionOptionsResult"]
GetSessionOptionsRequest = _CLASSES["GetSessionOptionsRequest"]
GetSessionOptionsResult = _CLASSES["GetSessionOptionsResult"]
CloseSessionRequest = _CLASSES["CloseSessionRequest"]
CloseSessionResult = _CLASSES["CloseSessionResult"]

#: Plain Flight's session messages, by short name. Sent raw, never in an Any.
SESSION_MESSAGE_CLASSES: Mapping[str, type[Message]] = dict(_CLASSES)

#: A session option's value as Python sees it; None is an option without a value.
SessionOption = str | bool | int | float | list[str] | None


class SetSessionOptionError(enum.IntEnum):
    """``SetSessionOptionsResult.ErrorValue``: why one option was not set."""

    UNSPECIFIED = 0
    INVALID_NAME = 1
    INVALID_VALUE = 2
    ERROR = 3


def _option_value(value: SessionOption) -> Message:
    message = SessionOptionValue()
    if value is None:
        pass
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int):
        message.int64_value = value
    elif isinstance(value, float):
        message.double_value = value
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        message.string_list_value.values.extend(value)
    else:
        raise TypeError(f"a session option cannot hold a {type(value).__name__}")
    return message


def _option_python(message: Message) -> SessionOption:
    which = message.WhichOneof("option_value")
    if which is None:
        return None
    if which == "string_list_value":
        return list(message.string_list_value.values)
    return getattr(message, which)


def encode_session_options(options: Mapping[str, SessionOption]) -> bytes:
    """The ``Result.body`` answering ``GetSessionOptions``: a raw ``GetSessionOptionsResult``.

    Example: ``encode_session_options({"catalog": "arrowlog", "schema": "public"})``
    """
    result = GetSessionOptionsResult()
    for name, value in options.items():
        result.session_options[name].CopyFrom(_option_value(value))
    return result.SerializeToString(deterministic=True)


def decode_session_options(data: BytesLike) -> dict[str, SessionOption]:
    """The options of a raw ``GetSessionOptionsResult`` (the client side of the above).

    Raises:
        ProtocolError: the bytes do not decode.
    """
    return _decode_options(data, GetSessionOptionsResult)


def decode_set_session_options(data: BytesLike) -> dict[str, SessionOption]:
    """The options a raw ``SetSessionOptionsRequest`` (a ``SetSessionOptions`` body) asks for.

    Raises:
        ProtocolError: the bytes do not decode.
    """
    return _decode_options(data, SetSessionOptionsRequest)


def _decode_options(data: BytesLike, cls: type[Message]) -> dict[str, SessionOption]:
    message = cls()
    try:
        message.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise ProtocolError(
            f"could not decode {cls.DESCRIPTOR.name} from {preview(bytes(data))}"
        ) from exc
    return {name: _option_python(value) for name, value in message.session_options.items()}


def encode_set_session_options_result(errors: Mapping[str, SetSessionOptionError]) -> bytes:
    """The ``Result.body`` answering ``SetSessionOptions``: one error per option not set.

    Example: ``encode_set_session_options_result({"catalog": SetSessionOptionError.INVALID_VALUE})``
    """
    result = SetSessionOptionsResult()
    for name, error in errors.items():
        result.errors[name].value = int(error)
    return result.SerializeToString(deterministic=True)
