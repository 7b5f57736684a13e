"""A 10 s version of ``benchmarks/load.py``: mixed Flight DoPut, HTTP NDJSON and ADBC query
clients against one ``arrowlog serve``. Asserts zero errors and nothing lost or duplicated;
no timing assertions (latencies and RSS are the benchmark's to report).
"""

from __future__ import annotations

import pytest

from benchmarks import load


def _assert_clean(result: dict) -> None:
    assert result["errors"] == 0, result["error_samples"]
    assert result["lost"] == 0 and result["duplicated"] == 0, result
    assert result["unacknowledged_present"] == 0, result  # no failed write came back either
    assert all(v for k, v in result.items() if k.endswith("_offsets_gap_free")), result
    assert result["server_exit_code"] == 0
    for role, ops in result["operations"].items():
        assert ops["count"] > 0, f"no {role} operation completed"
    rows = sum(v for k, v in result.items() if k.endswith("_rows"))
    assert rows == result["acked_records"] > 0


def _summary(result: dict) -> str:
    ops = {k: (v["count"], v["p50_ms"], v["p99_ms"]) for k, v in result["operations"].items()}
    return f"load: {result['acked_records']} acked, {result['errors']} errors, ops {ops}"


def test_ten_seconds_of_mixed_clients_lose_nothing() -> None:
    result = load.run(clients=10, duration=10.0, token="load-test-token")
    _assert_clean(result)
    print(_summary(result))


@pytest.mark.slow
def test_fifty_clients_for_a_minute_lose_nothing() -> None:
    result = load.run(clients=50, duration=60.0)
    _assert_clean(result)
    print(_summary(result))
