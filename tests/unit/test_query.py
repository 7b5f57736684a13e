"""Query-room helpers that need no data directory."""

from __future__ import annotations

import pytest

from arrowlog.query import number_placeholders


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT * FROM t WHERE a = ? AND b > ?", "SELECT * FROM t WHERE a = $1 AND b > $2"),
        ("SELECT '?', 'it''s ?' FROM t WHERE x = ?", "SELECT '?', 'it''s ?' FROM t WHERE x = $1"),
        ('SELECT "we?ird" FROM t WHERE x = ?', 'SELECT "we?ird" FROM t WHERE x = $1'),
        (
            "SELECT 1 -- what?\nWHERE y = ? /* and ? */ AND z = ?",
            "SELECT 1 -- what?\nWHERE y = $1 /* and ? */ AND z = $2",
        ),
        ("SELECT 'unterminated ?", "SELECT 'unterminated ?"),
        ("no placeholders", "no placeholders"),
    ],
)
def test_positional_placeholders_are_numbered_outside_literals(query: str, expected: str) -> None:
    assert number_placeholders(query) == expected
