"""The names and attributes a server sends for an error, and what a client accepts of them.

The round trip through a real server and client is in tests/integration/test_client_errors.py.
"""

from __future__ import annotations

import json

import pytest

from arrowlog import errors
from arrowlog.errors import (
    ArrowlogError,
    InvalidInput,
    LeaseLost,
    NotShardOwner,
    QueryLimitExceeded,
    StreamNotFound,
    TooManyTails,
    Unavailable,
)
from arrowlog.wire_errors import ERRORS, decode, encode, name_in_detail, name_of, rebuild

# The names clients before this format knew; servers must keep sending these bare.
KNOWN_BEFORE = [
    "ArrowlogError",
    "InvalidInput",
    "BatchTooLarge",
    "ReadOnlyQuery",
    "StreamNotFound",
    "Unauthenticated",
    "Unavailable",
    "StorageError",
]

OWNER = {"node": "node-b", "flight": "grpc://10.0.0.2:8815"}


def _example(cls: type[ArrowlogError]) -> ArrowlogError:
    if cls is TooManyTails:
        return cls("too many tails", per_client=True)
    if cls is NotShardOwner:
        return cls("shard 1 is elsewhere", stream="events", shard=1, owner=OWNER)
    return cls(f"a {cls.__name__}")


def test_the_table_holds_every_class_of_errors_py_and_nothing_else() -> None:
    classes = {
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), ArrowlogError)
    }
    assert set(ERRORS.values()) == classes and len(classes) == len(errors.__all__)
    assert all(name == cls.__name__ for name, cls in ERRORS.items())
    assert "NotPartitionOwner" not in ERRORS  # a former name, never sent
    with pytest.raises(TypeError):
        ERRORS["Evil"] = ValueError  # type: ignore[index]


@pytest.mark.parametrize("cls", ERRORS.values(), ids=list(ERRORS))
def test_every_class_round_trips(cls: type[ArrowlogError]) -> None:
    error = _example(cls)
    decoded = decode(encode(error))
    assert decoded is not None
    name, attributes = decoded
    got = rebuild(name, str(error), attributes)
    assert type(got) is cls and str(got) == str(error) and vars(got) == vars(error)


def test_classes_without_attributes_are_sent_as_a_bare_name() -> None:
    for name in KNOWN_BEFORE:
        assert encode(ERRORS[name]("m")) == name.encode()
    assert encode(LeaseLost("m")) == b"LeaseLost"


def test_attributes_travel_as_json() -> None:
    assert json.loads(encode(_example(NotShardOwner))) == {
        "error": "NotShardOwner",
        "stream": "events",
        "shard": 1,
        "owner": OWNER,
    }
    assert json.loads(encode(_example(TooManyTails))) == {
        "error": "TooManyTails",
        "per_client": True,
    }


def test_a_subclass_defined_elsewhere_is_sent_as_its_nearest_class() -> None:
    class Local(NotShardOwner):
        pass

    error = Local("m", stream="s", shard=2, owner={})
    assert name_of(error) == "NotShardOwner"
    assert json.loads(encode(error))["error"] == "NotShardOwner"
    assert name_of(type("Anon", (ArrowlogError,), {})("m")) == "ArrowlogError"


@pytest.mark.parametrize(
    "info",
    [
        b"",
        b"\xff\xfe",
        b"not a name",
        b"__import__('os')",
        b"os.system",
        b"[1]",
        b'["LeaseLost"]',
        b'{"error": 1}',
        b'{"no": "error"}',
        b'{"error": "LeaseLost"',
    ],
)
def test_decode_refuses_what_is_neither_a_name_nor_an_object_naming_one(info: bytes) -> None:
    assert decode(info) is None


def test_decode() -> None:
    assert decode(b"LeaseLost") == ("LeaseLost", {})
    assert decode(b'{"error": "TooManyTails", "per_client": false}') == (
        "TooManyTails",
        {"per_client": False},
    )


@pytest.mark.parametrize(
    ("name", "attributes", "within"),
    [
        ("ValueError", {}, ArrowlogError),  # not arrowlog's
        ("Exception", {}, ArrowlogError),
        ("NotPartitionOwner", {}, Unavailable),  # an alias, not a class name
        ("StreamNotFound", {}, Unavailable),  # contradicts the status code
        ("Unavailable", {}, LeaseLost),  # wider than the status code says
        ("TooManyTails", {}, Unavailable),  # a needed attribute missing
        ("TooManyTails", {"per_client": "yes"}, Unavailable),
        ("NotShardOwner", {"stream": "s", "shard": "1", "owner": {}}, Unavailable),
        ("NotShardOwner", {"stream": "s", "shard": True, "owner": {}}, Unavailable),
        ("NotShardOwner", {"stream": "s", "shard": 1, "owner": {"node": 1}}, Unavailable),
        ("NotShardOwner", {"stream": None, "shard": 1, "owner": {}}, Unavailable),
    ],
)
def test_rebuild_refuses(name: str, attributes: dict, within: type[ArrowlogError]) -> None:
    assert rebuild(name, "m", attributes, within=within) is None


def test_rebuild() -> None:
    error = rebuild("QueryLimitExceeded", "slow", {"ignored": 1}, within=InvalidInput)
    assert type(error) is QueryLimitExceeded and str(error) == "slow" and vars(error) == {}
    error = rebuild("StreamNotFound", "gone", {}, within=StreamNotFound)
    assert type(error) is StreamNotFound
    error = rebuild("NotShardOwner", "m", {"stream": "s", "shard": 0, "owner": {}})
    assert isinstance(error, NotShardOwner) and (error.stream, error.shard, error.owner) == (
        "s",
        0,
        {},
    )


def test_name_in_detail() -> None:
    assert name_in_detail("Python exception: QueryLimitExceeded") == "QueryLimitExceeded"
    for detail in (
        "",
        "Unavailable",  # a FlightError's detail: the code's name
        "Python exception: Traceback (most recent call last):\n",
        "Python exception: os.system",
        "python exception: StreamNotFound",
    ):
        assert name_in_detail(detail) is None
