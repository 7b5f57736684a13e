"""arrowlog embedded (DataFusion and DuckDB engines) against a DuckDB oracle."""

from __future__ import annotations

import pytest
from hypothesis import given

from tests.differential.conftest import CI_EXAMPLES, SLOW_EXAMPLES, cases, diff_settings
from tests.differential.harness import Case, report, run_case


def _check(case: Case, embedded) -> None:
    writer, targets = embedded
    outcome = run_case(case, writer, targets)
    assert not outcome.disagreements, report(case, outcome)


@diff_settings(CI_EXAMPLES)
@given(case=cases())
def test_embedded_matches_oracle(case: Case, embedded) -> None:
    _check(case, embedded)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@diff_settings(SLOW_EXAMPLES)
@given(case=cases())
def test_embedded_matches_oracle_long(case: Case, embedded) -> None:
    _check(case, embedded)
