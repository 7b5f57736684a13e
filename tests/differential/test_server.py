"""``arrowlog serve`` (ADBC Flight SQL and HTTP Arrow) against a DuckDB oracle.

One server for the module; every case writes fresh streams through the Flight client
(DoPut) and moves them with the Flight actions ``flush`` and ``compact``.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from tests.differential.conftest import CI_EXAMPLES, SLOW_EXAMPLES, cases, diff_settings
from tests.differential.harness import Case, report, run_case

pytestmark = pytest.mark.filterwarnings("ignore:Cannot disable autocommit")


def _check(case: Case, remote) -> None:
    writer, targets = remote
    outcome = run_case(case, writer, targets)
    assert not outcome.disagreements, report(case, outcome)


@diff_settings(CI_EXAMPLES)
@given(case=cases())
def test_server_matches_oracle(case: Case, remote) -> None:
    _check(case, remote)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@diff_settings(SLOW_EXAMPLES)
@given(case=cases())
def test_server_matches_oracle_long(case: Case, remote) -> None:
    _check(case, remote)
