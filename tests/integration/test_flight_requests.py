"""Every field of every JSON ticket and action body, sent wrong, against a real ``arrowlog serve``.

Each JSON request kind has a declared schema (``ReadTicket``, ``TailTicket``, ``StreamBody``,
``EmptyBody`` in ``flight_server.json_requests``). Here every field is sent with wrong types
(strings, arrays, objects, floats, booleans: ``true`` is an int in Python), negatives,
huge integers, values just past its range, null where it is required, and unknown keys,
through ``pyarrow.flight`` DoGet / GetFlightInfo / GetSchema (a ticket is also a
descriptor command) and DoAction. Each must be INVALID_ARGUMENT with a message naming the
field and what it takes: never INTERNAL or UNKNOWN, and the server's log must not hold a
traceback for any of them. The edges that are valid are read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight_server.json_requests import (
    MAX_OFFSET,
    MAX_READ_LIMIT,
    MAX_SHARD,
    MAX_TAIL_OFFSET,
)
from tests.conftest import TEST_TOKEN
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve
from tests.reliability._support import put_table

STREAM = "base"
ROWS = 5
BEARER = flight.FlightCallOptions(
    headers=[(b"authorization", f"Bearer {TEST_TOKEN}".encode())], timeout=30
)
# What a client may see: the message, and the status detail naming arrowlog's class.
LEAKS = ("Traceback", 'File "', '.py"', "site-packages", "/work/", "/tmp/")


@dataclass
class Served:
    server: ArrowlogServe
    client: flight.FlightClient


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_arrowlog_serve(tmp_path_factory.mktemp("requests"), token=TEST_TOKEN)
    client = flight.FlightClient(server.flight_url)
    put_table(
        client, flight.FlightDescriptor.for_path(STREAM), pa.table({"n": range(ROWS)}), BEARER
    )
    yield Served(server, client)
    client.close()
    assert server.stop() == 0, server.process.output()
    log = server.process.stderr_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]
    assert "failed unexpectedly" not in log, log[-5000:]


# Values of every JSON type that are wrong for an integer field, and for a stream name.
NOT_INTEGERS = ["1", "", [1], {"n": 1}, 1.0, 1.5, -0.0, 1e300, True, False]
NOT_NAMES = [1, 0, -1, 1.5, True, False, [STREAM], {"name": STREAM}, [], {}, "", "a/b", "x" * 200]


def _integer_cases(low: int, high: int) -> list[object]:
    return [*NOT_INTEGERS, low - 1, -1, -(2**63), -(2**64), high + 1, 2**63, 2**64, 10**30]


# (ticket kind, field, required, wrong values)
TICKET_FIELDS = [
    ("read", "read", True, NOT_NAMES),
    ("read", "from_offset", False, _integer_cases(0, MAX_OFFSET)),
    ("read", "limit", False, [*_integer_cases(1, MAX_READ_LIMIT), 0]),
    ("read", "shard", False, _integer_cases(0, MAX_SHARD)),
    ("read", "partition", False, _integer_cases(0, MAX_SHARD)),  # the former name of shard
    ("tail", "tail", True, NOT_NAMES),
    ("tail", "from_offset", False, _integer_cases(0, MAX_TAIL_OFFSET)),
    ("tail", "shard", False, _integer_cases(0, MAX_SHARD)),
    ("tail", "partition", False, _integer_cases(0, MAX_SHARD)),
]
TICKET_CASES = [
    pytest.param(kind, name, value, id=f"{kind}-{name}-{json.dumps(value)[:20]}")
    for kind, name, required, wrong in TICKET_FIELDS
    for value in [*wrong, *([None] if required else [])]
]


def _refused(call: Callable[[], object], *fragments: str) -> str:
    """``call`` is refused with INVALID_ARGUMENT, its message holding every fragment."""
    with pytest.raises(pa.ArrowInvalid) as info:
        call()
    message = str(info.value)
    assert not isinstance(info.value, flight.FlightInternalError | flight.FlightServerError)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    for leak in LEAKS:
        assert leak not in message, (leak, message)
    return message


def _ticket_calls(c: flight.FlightClient, raw: bytes) -> list[Callable[[], object]]:
    descriptor = flight.FlightDescriptor.for_command(raw)
    return [
        lambda: c.do_get(flight.Ticket(raw), BEARER).read_all(),
        lambda: c.get_flight_info(descriptor, BEARER),
        lambda: c.get_schema(descriptor, BEARER),
    ]


@pytest.mark.parametrize(("kind", "name", "value"), TICKET_CASES)
def test_a_wrong_ticket_field_is_invalid_argument_naming_it(
    served: Served, kind: str, name: str, value: object
) -> None:
    ticket = {kind: STREAM, name: value}
    raw = json.dumps(ticket).encode()
    expected = "is required" if value is None else f"field {name!r}"
    for call in _ticket_calls(served.client, raw):
        _refused(call, f"{kind} ticket", expected)


@pytest.mark.parametrize("kind", ["read", "tail"])
@pytest.mark.parametrize(
    "extra", [{"Limit": 1}, {"stream": STREAM}, {"": 0}, {"from": 0}, {"limit_": None}]
)
def test_unknown_ticket_keys_are_refused_naming_them(
    served: Served, kind: str, extra: dict[str, object]
) -> None:
    raw = json.dumps({kind: STREAM, **extra}).encode()
    (key,) = extra
    for call in _ticket_calls(served.client, raw):
        _refused(call, f"unknown field {key!r}", "it takes")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"read": "base", "limit": 3, "limit": 4}', "the key 'limit' appears twice"),
        (b'{"read": "base", "from_offset": NaN}', "NaN is not a JSON number"),
        (b'{"read": "base", "from_offset": Infinity}', "Infinity is not a JSON number"),
        (b'{"read": "base", "from_offset": 1' + b"0" * 5000 + b"}", "malformed JSON"),
        (b'{"read": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "the JSON ticket is"),
        (b'{"read": "base"', "malformed JSON"),
        (b'{"read": "b\xffse"}', "not UTF-8"),
        (b"{}", 'exactly one of "tail" or "read"'),
        (b'{"read": "base", "tail": "base"}', 'exactly one of "tail" or "read"'),
        (b'{"tail": "base", "limit": 10}', "unknown field 'limit'"),
        (
            b'{"read": "base", "from_offset": 9223372036854775807, "limit": 1}',
            "from_offset + limit",
        ),
        (
            b'{"read": "base", "from_offset": 9223372036854775000, "limit": 10000}',
            "from_offset + limit",
        ),
    ],
)
def test_malformed_json_tickets(served: Served, raw: bytes, fragment: str) -> None:
    for call in _ticket_calls(served.client, raw):
        _refused(call, fragment)


def test_the_reported_tickets(served: Served) -> None:
    # The two that answered INTERNAL (a TypeError and an OverflowError in the server).
    c = served.client
    _refused(
        lambda: c.do_get(flight.Ticket(b'{"read": ["base"]}'), BEARER).read_all(),
        "read ticket: field 'read' must be a stream name (a string), got [\"base\"] (an array)",
    )
    big = b'{"read": "base", "from_offset": 9223372036854775807, "limit": 1}'
    _refused(
        lambda: c.do_get(flight.Ticket(big), BEARER).read_all(),
        f"from_offset + limit must be at most {MAX_OFFSET}",
    )


def test_the_edges_that_are_valid(served: Served) -> None:
    c = served.client

    def read(ticket: dict[str, object]) -> pa.Table:
        return c.do_get(flight.Ticket(json.dumps(ticket).encode()), BEARER).read_all()

    assert read({"read": STREAM}).num_rows == ROWS
    assert read({"read": STREAM.upper(), "from_offset": 0, "limit": 1}).num_rows == 1
    assert read({"read": STREAM, "limit": MAX_READ_LIMIT}).num_rows == ROWS
    assert read({"read": STREAM, "from_offset": MAX_OFFSET}).num_rows == 0
    assert read({"read": STREAM, "from_offset": MAX_OFFSET - 1, "limit": 1}).num_rows == 0
    assert read({"read": STREAM, "from_offset": 2, "limit": None, "shard": 0}).num_rows == 3
    assert read({"read": STREAM, "from_offset": 2, "partition": 0}).num_rows == 3
    # A shard the stream does not have is the stream's refusal, still INVALID_ARGUMENT.
    _refused(lambda: read({"read": STREAM, "shard": 1}), "has one shard (0), not 1")
    _refused(lambda: read({"read": STREAM, "partition": MAX_SHARD}), "has one shard")
    _refused(lambda: read({"read": STREAM, "shard": 0, "partition": 1}), "disagree")
    with pytest.raises(pa.ArrowKeyError, match="not found"):
        read({"read": "no_such_stream", "limit": 1})
    # A tail from the highest offset it takes: subscribed (the schema comes), nothing yet.
    tail = c.do_get(
        flight.Ticket(json.dumps({"tail": STREAM, "from_offset": MAX_TAIL_OFFSET}).encode()),
        BEARER,
    )
    assert tail.schema.names[0] == "n"
    tail.cancel()
    info = c.get_flight_info(
        flight.FlightDescriptor.for_command(json.dumps({"read": STREAM, "limit": 2}).encode()),
        BEARER,
    )
    assert c.do_get(info.endpoints[0].ticket, BEARER).read_all().num_rows == 2


# -- action bodies -------------------------------------------------------------------------------

STREAM_ACTIONS = ["flush", "compact", "describe"]


@pytest.mark.parametrize("action", STREAM_ACTIONS)
@pytest.mark.parametrize("value", NOT_NAMES, ids=lambda v: json.dumps(v)[:20])
def test_a_wrong_stream_in_an_action_body_is_invalid_argument(
    served: Served, action: str, value: object
) -> None:
    body = json.dumps({"stream": value}).encode()
    _refused(
        lambda: list(served.client.do_action(flight.Action(action, body), BEARER)),
        f"{action} action body: field 'stream'",
    )


@pytest.mark.parametrize("action", STREAM_ACTIONS)
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"stream": "base", "force": true}', "unknown field 'force'"),
        (b'{"Stream": "base"}', "unknown field 'Stream'"),
        (b'{"stream": "base", "stream": "x"}', "appears twice"),
        (b'{"stream": "base"', "malformed JSON"),
        (b'{"stream": ' + b"[" * 50_000 + b"}", "action body"),
        (b"\xff\xfe", "not UTF-8"),
        (b"a/b", "invalid stream name"),
        (b"base\x00", "invalid stream name"),
        (b"[1, 2]", "invalid stream name"),
    ],
)
def test_malformed_action_bodies(served: Served, action: str, body: bytes, fragment: str) -> None:
    _refused(lambda: list(served.client.do_action(flight.Action(action, body), BEARER)), fragment)


def test_describe_needs_a_stream(served: Served) -> None:
    for body in (b"", b"  ", b"{}", b'{"stream": null}'):
        _refused(
            lambda body=body: list(
                served.client.do_action(flight.Action("describe", body), BEARER)
            ),
            "the describe action needs a stream name",
        )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"base", "takes no body"),
        (b'{"stream": "base"}', "unknown field 'stream'"),
        (b"[]", "takes no body"),
        (b"{", "malformed JSON"),
    ],
)
def test_list_streams_takes_no_body(served: Served, body: bytes, fragment: str) -> None:
    _refused(
        lambda: list(served.client.do_action(flight.Action("list_streams", body), BEARER)),
        fragment,
    )


def test_the_action_bodies_that_are_valid(served: Served) -> None:
    c = served.client

    def act(action: str, body: bytes) -> object:
        (result,) = list(c.do_action(flight.Action(action, body), BEARER))
        return json.loads(result.body.to_pybytes())

    assert act("describe", b"base")["name"] == STREAM
    assert act("describe", b' {"stream": "BASE"} ')["rows"] == ROWS
    assert act("flush", b"") == {"flushed": "all"}
    assert act("flush", b'{"stream": null}') == {"flushed": "all"}
    assert act("flush", b'{"stream": "base"}') == {"flushed": "base"}
    assert isinstance(act("compact", b"{}"), list)
    assert [s["name"] for s in act("list_streams", b"")] == [STREAM]
    assert [s["name"] for s in act("list_streams", b" {} ")] == [STREAM]
