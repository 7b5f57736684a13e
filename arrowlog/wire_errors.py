"""Which arrowlog error a server raised, told to its client: the class name and attributes.

A Flight status has a code and a message only, and several classes share a code
(``TooManyTails``, ``LeaseLost`` and ``NotShardOwner`` are all UNAVAILABLE). So
``flight_server/errors.py`` also names the class, and ``arrowlog/client.py`` raises exactly
that one, with the message and the attributes ``Log`` would have given it. Two carriers,
because pyarrow lets a server choose only some codes directly:

- A ``FlightError`` code (UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE, INTERNAL) takes
  :func:`encode`'s bytes as its ``extra_info``: the class name (``b"ReadOnlyQuery"``), or,
  for a class whose errors carry attributes, a JSON object that names it::

      {"error": "NotShardOwner", "stream": "events", "shard": 1, "owner": {"node": "b", ...}}

  gRPC sends ``extra_info`` as the binary status details (``grpc-status-details-bin``);
  ADBC and JDBC show neither it nor anything different in the status message.
- INVALID_ARGUMENT and NOT_FOUND are sent from a ``ValueError`` / ``KeyError``, which carry no
  ``extra_info``; their status detail is the class name instead (``Detail: Python exception:
  QueryLimitExceeded``), read back by :func:`name_in_detail`. No class sent this way has
  attributes.

A name is only looked up in :data:`ERRORS`, the classes of ``arrowlog/errors.py``; nothing is
imported or evaluated by name. :func:`rebuild` gives None for an unknown name, attributes
missing or of the wrong type, or a class the status code contradicts; the client then raises
the class of the status code, as clients did before names were read. So an older server
works with a newer client and the reverse: a bare name is what servers always sent, and JSON
goes only with classes an older client did not know (it falls back to ``Unavailable``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from arrowlog import errors
from arrowlog.errors import ArrowlogError, NotShardOwner, TooManyTails

__all__ = ["ERRORS", "decode", "encode", "name_in_detail", "name_of", "rebuild"]

# Every exception class of arrowlog/errors.py, by name: the only names a client maps.
ERRORS: Mapping[str, type[ArrowlogError]] = MappingProxyType(
    {
        cls.__name__: cls
        for cls in (getattr(errors, name) for name in errors.__all__)
        if isinstance(cls, type) and issubclass(cls, ArrowlogError)
    }
)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_str_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


# The attributes an error of each class carries beyond its message (its constructor's
# keyword arguments), each with the check a value from the wire must pass.
_ATTRIBUTES: dict[type[ArrowlogError], dict[str, Callable[[object], bool]]] = {
    TooManyTails: {"per_client": _is_bool},
    NotShardOwner: {"stream": _is_str, "shard": _is_int, "owner": _is_str_map},
}

_DETAIL_PREFIX = "Python exception: "  # pyarrow's, before the class name (flight_server/errors.py)


def name_of(error: ArrowlogError) -> str:
    """The name of ``error``'s class, or of its nearest base in :data:`ERRORS`."""
    for cls in type(error).__mro__:
        if ERRORS.get(cls.__name__) is cls:
            return cls.__name__
    return ArrowlogError.__name__


def encode(error: ArrowlogError) -> bytes:
    """``error``'s name, or a JSON object with its name and attributes, for ``extra_info``.

    Example: ``encode(ReadOnlyQuery("...")) == b"ReadOnlyQuery"``
    """
    name = name_of(error)
    fields = _ATTRIBUTES.get(ERRORS[name], {})
    if not fields:
        return name.encode()
    attributes = {key: getattr(error, key) for key in fields}
    return json.dumps({"error": name, **attributes}, separators=(",", ":")).encode()


def decode(info: bytes) -> tuple[str, dict[str, Any]] | None:
    """The name and attributes in an ``extra_info``; None when it holds neither.

    Example: ``decode(b'{"error": "TooManyTails", "per_client": true}')``
    """
    try:
        text = info.decode("utf-8")
        if not text.startswith("{"):
            return (text, {}) if text.isidentifier() else None
        fields = json.loads(text)
    except ValueError:  # not UTF-8 (UnicodeDecodeError), not JSON
        return None
    if not isinstance(fields, dict) or not isinstance(name := fields.pop("error", None), str):
        return None
    return name, fields


def name_in_detail(detail: str) -> str | None:
    """The class name in a status detail ``Python exception: StreamNotFound``, else None."""
    if not detail.startswith(_DETAIL_PREFIX):
        return None
    name = detail[len(_DETAIL_PREFIX) :]
    return name if name.isidentifier() else None


def rebuild(
    name: str,
    message: str,
    attributes: Mapping[str, Any],
    *,
    within: type[ArrowlogError] = ArrowlogError,
) -> ArrowlogError | None:
    """The error of class ``name`` with ``message`` and ``attributes``, as the server raised it.

    None when the name is not in :data:`ERRORS`, the class is not ``within`` (the class the
    status code stands for: a name may narrow the code, never contradict it), or an attribute
    its constructor needs is missing or of the wrong type. Unknown attributes are ignored.

    Example: ``rebuild("QueryLimitExceeded", "query exceeded ...", {}, within=InvalidInput)``
    """
    cls = ERRORS.get(name)
    if cls is None or not issubclass(cls, within):
        return None
    fields = _ATTRIBUTES.get(cls, {})
    if not all(check(attributes.get(key)) for key, check in fields.items()):
        return None
    return cls(message, **{key: attributes[key] for key in fields})
