"""``arrowlog.connect()``'s Client has ``arrowlog.open()``'s verbs: same names, same
parameters, same return types, so code written against one runs against the other.

What differs is listed here, each with its reason; a new difference fails these tests.
"""

from __future__ import annotations

import inspect

import pytest

from arrowlog.client import Client
from arrowlog.log import Log

# Verbs of the embedded Log that no Flight call offers.
LOG_ONLY = {
    "create_stream",  # no action creates an empty stream with a declared schema
    "apply_retention",  # the server applies retention itself (compact_interval)
    "open_tail",  # a Tail handle of this process; remote callers use tail()
    "next_offset",  # cluster offsets count per partition; no call reports them yet
    "closed",  # a property of the local log; a Client holds only a connection
}

# Parameters of shared verbs that the Flight wire cannot carry yet.
LOG_ONLY_PARAMETERS = {
    "append": {
        "time_column",
        "shard",
        "partition",
    },  # DoPut's path descriptor holds only the stream
    "sql": {"engine", "params"},  # a SQL ticket is only the text; the server runs DataFusion
    "sql_schema": {"engine", "params"},  # GetSchema of SQL text, as for sql
}


def _public(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


SHARED = sorted(_public(Log) - LOG_ONLY)


def test_client_has_every_verb_of_log_but_the_listed_ones() -> None:
    assert _public(Client) == set(SHARED)
    assert _public(Log) >= LOG_ONLY


@pytest.mark.parametrize("name", SHARED)
def test_shared_verb_has_the_same_parameters_and_return_type(name: str) -> None:
    embedded = inspect.signature(getattr(Log, name))
    remote = inspect.signature(getattr(Client, name))
    skipped = LOG_ONLY_PARAMETERS.get(name, set())
    expected = [p for p in embedded.parameters.values() if p.name not in skipped]
    assert list(remote.parameters.values()) == expected
    assert remote.return_annotation == embedded.return_annotation


@pytest.mark.parametrize("name", sorted(LOG_ONLY_PARAMETERS))
def test_listed_parameters_are_really_log_only(name: str) -> None:
    embedded = set(inspect.signature(getattr(Log, name)).parameters)
    remote = set(inspect.signature(getattr(Client, name)).parameters)
    assert LOG_ONLY_PARAMETERS[name] <= embedded - remote
