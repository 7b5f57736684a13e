"""What a JSON ticket or action body may hold, declared once and checked before any handler runs.

The plain-Flight side of the server (``flight_server/server.py``'s docstring lists it) takes
JSON for replay and tail tickets (``{"read": ...}``, ``{"tail": ...}``) and for the body of
the ``flush``, ``compact``, ``describe`` and ``list_streams`` actions.

Each kind of request is a frozen dataclass whose fields declare what they take (the
``spec`` in their metadata); ``_parse`` checks a decoded JSON object against it: no
unknown or duplicate keys, the required fields present, each value of its JSON type and
in its range (``true`` is not an integer, ``1.0`` is not an integer, ``null`` is the same
as leaving an optional field out), then the kind's own rules across fields. Anything
else is refused with INVALID_ARGUMENT naming the field, what it takes and what came.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

from arrowlog.errors import InvalidInput
from arrowlog.schema import pick_shard, validate_stream_name
from arrowlog.tails import MAX_OFFSET as TAIL_MAX_OFFSET

__all__ = [
    "MAX_JSON_REQUEST_BYTES",
    "MAX_OFFSET",
    "MAX_READ_LIMIT",
    "MAX_SHARD",
    "MAX_TAIL_OFFSET",
    "EmptyBody",
    "ReadTicket",
    "StreamBody",
    "TailTicket",
    "no_body",
    "parse_ticket",
    "stream_from_body",
]

MAX_OFFSET = 2**63 - 1  # offsets are int64
MAX_READ_LIMIT = 10_000_000  # a read with a limit is answered as one table, held in memory
MAX_SHARD = 2**31 - 1
# A tail starts at most here (arrowlog.tails: the largest integer every JSON client reads).
MAX_TAIL_OFFSET = TAIL_MAX_OFFSET
MAX_JSON_REQUEST_BYTES = 64 * 1024
_JSON_TYPES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


@dataclasses.dataclass(frozen=True)
class _Integer:
    """A JSON integer from ``low`` to ``high`` (booleans and floats are not integers)."""

    low: int
    high: int

    @property
    def expected(self) -> str:
        return f"an integer from {self.low} to {self.high}"

    def problem(self, value: object) -> str | None:
        ok = type(value) is int and self.low <= value <= self.high  # type: ignore[operator]
        return None if ok else f" must be {self.expected}, got {_describe(value)}"


@dataclasses.dataclass(frozen=True)
class _StreamName:
    """A JSON string naming a stream (``validate_stream_name`` says which names are valid)."""

    expected = "a stream name (a string)"

    def problem(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f" must be {self.expected}, got {_describe(value)}"
        try:
            validate_stream_name(value)
        except InvalidInput as e:
            return f": {e}"
        return None


def _spec(spec: _Integer | _StreamName, **kwargs: Any) -> Any:
    return dataclasses.field(metadata={"spec": spec}, **kwargs)


@dataclasses.dataclass(frozen=True)
class ReadTicket:
    """``{"read": STREAM, "from_offset": N, "limit": M, "shard": P}``: replay records."""

    read: str = _spec(_StreamName())
    from_offset: int = _spec(_Integer(0, MAX_OFFSET), default=0)
    limit: int | None = _spec(_Integer(1, MAX_READ_LIMIT), default=None)
    shard: int | None = _spec(_Integer(0, MAX_SHARD), default=None)
    partition: int | None = _spec(_Integer(0, MAX_SHARD), default=None)  # former name

    def check(self) -> None:
        pick_shard(self.shard, self.partition)
        if self.limit is not None and self.from_offset + self.limit > MAX_OFFSET:
            raise InvalidInput(
                f"read ticket: from_offset + limit must be at most {MAX_OFFSET} (offsets are "
                f"int64), got {self.from_offset} + {self.limit}"
            )


@dataclasses.dataclass(frozen=True)
class TailTicket:
    """``{"tail": STREAM, "from_offset": N, "shard": P}``: follow a stream live."""

    tail: str = _spec(_StreamName())
    from_offset: int = _spec(_Integer(0, MAX_TAIL_OFFSET), default=0)
    shard: int | None = _spec(_Integer(0, MAX_SHARD), default=None)
    partition: int | None = _spec(_Integer(0, MAX_SHARD), default=None)  # former name

    def check(self) -> None:
        pick_shard(self.shard, self.partition)


@dataclasses.dataclass(frozen=True)
class StreamBody:
    """The JSON body of ``flush``, ``compact`` and ``describe``: ``{"stream": NAME}``."""

    stream: str | None = _spec(_StreamName(), default=None)

    def check(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class EmptyBody:
    """The body of ``list_streams``: nothing (empty, or ``{}``)."""

    def check(self) -> None:
        pass


_Request = TypeVar("_Request", ReadTicket, TailTicket, StreamBody, EmptyBody)


def _parse(kind: type[_Request], obj: object, what: str) -> _Request:
    """``obj`` (decoded JSON) as a ``kind``, or InvalidInput naming what is wrong."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    takes = ", ".join(f'"{name}"' for name in fields) or "no fields"
    if not isinstance(obj, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {_describe(obj)}")
    unknown = [key for key in obj if key not in fields]
    if unknown:
        raise InvalidInput(f"{what}: unknown field {unknown[0]!r}; it takes {takes}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        spec = field.metadata["spec"]
        value = obj.get(name)
        if value is None:
            if field.default is dataclasses.MISSING:
                raise InvalidInput(f"{what}: field {name!r} is required: {spec.expected}")
            continue
        problem = spec.problem(value)
        if problem is not None:
            raise InvalidInput(f"{what}: field {name!r}{problem}")
        values[name] = value
    request = kind(**values)
    request.check()
    return request


def _describe(value: object) -> str:
    """A JSON value for an error message: short, with its JSON type."""
    if value is None:
        return "null"
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = "..."
    if len(text) > 60:
        text = text[:57] + "..."
    kind = (
        "an array" if isinstance(value, list) else "an object" if isinstance(value, dict) else None
    )
    return f"{text} ({kind or _JSON_TYPES.get(type(value), type(value).__name__)})"


def _load_json(data: bytes, what: str) -> object:
    """Decode a JSON request: UTF-8, no duplicate keys, no NaN/Infinity, bounded size."""
    if len(data) > MAX_JSON_REQUEST_BYTES:
        raise InvalidInput(
            f"the {what} is {len(data)} bytes, over the limit of {MAX_JSON_REQUEST_BYTES}"
        )
    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constant,
        )
    except UnicodeDecodeError:
        raise InvalidInput(f"the {what} is not UTF-8") from None
    except RecursionError:
        raise InvalidInput(f"the {what} is nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, the above, an integer of too many digits
        raise InvalidInput(f"malformed JSON in the {what}: {e}") from None


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(f"the key {key!r} appears twice")
    return obj


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


# ---------------------------------------------------------------------------------------
# The entry points: a ticket, an action body.


def parse_ticket(data: bytes) -> dict[str, Any]:
    """A JSON ticket, checked against its schema (``ReadTicket`` or ``TailTicket``).

    Returned as a dict of the fields given (``from_offset`` defaulted to 0): what the
    server's handlers take, and, as JSON again, the ticket a FlightInfo hands out.
    """
    obj = _load_json(data, "JSON ticket")
    if not isinstance(obj, dict) or ("tail" in obj) == ("read" in obj):
        raise InvalidInput(
            'a JSON ticket needs exactly one of "tail" or "read": '
            '{"tail": STREAM, "from_offset": N} or {"read": STREAM, "from_offset": N, "limit": M}'
        )
    if "tail" in obj:
        ticket: ReadTicket | TailTicket = _parse(TailTicket, obj, "tail ticket")
    else:
        ticket = _parse(ReadTicket, obj, "read ticket")
    return {k: v for k, v in dataclasses.asdict(ticket).items() if v is not None}


def stream_from_body(body: bytes, *, required: bool, action: str) -> str | None:
    """An action body: empty, a bare stream name, or JSON ``{"stream": NAME}``."""
    what = f"{action} action body"
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidInput(
            f'the {what} is not UTF-8: send a stream name or {{"stream": NAME}}'
        ) from None
    if text.startswith("{"):
        stream = _parse(StreamBody, _load_json(body, what), what).stream
    elif text:
        stream = _parse(StreamBody, {"stream": text}, what).stream
    else:
        stream = None
    if stream is None and required:
        raise InvalidInput(
            f'the {action} action needs a stream name as its body, or {{"stream": NAME}}'
        )
    return stream


def no_body(body: bytes, action: str) -> None:
    """An action that takes no body: empty, blank, or ``{}``."""
    what = f"{action} action body"
    text = body.strip()
    if text.startswith(b"{"):
        _parse(EmptyBody, _load_json(body, what), what)
    elif text:
        raise InvalidInput(f"the {action} action takes no body, got {len(body)} bytes")
