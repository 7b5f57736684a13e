"""Known arrowlog bugs the differential suite can steer around, in one place.

Each entry is a feature of generated data or queries that currently makes arrowlog
disagree with the oracle because of a bug being fixed elsewhere. While a feature is listed
here (and not re-enabled), the generators avoid it, so the suite stays green and keeps
finding *new* disagreements. When a fix lands, delete its entry (or run with the variable
below) and the generators start producing it again.

``ARROWLOG_DIFF_KNOWN_BUGS=all`` (or a comma-separated list of names) re-enables them, e.g.
to check whether a fix works: ``ARROWLOG_DIFF_KNOWN_BUGS=<name> pytest ...``.
"""

from __future__ import annotations

import os

KNOWN_BUGS: dict[str, str] = {
    # None open. An entry is a name and what goes wrong, e.g.
    # "nan_after_flush": "NaN turns into another value after flush"; the generators ask
    # avoid(name) and steer around it until the fix lands.
}


def _enabled_by_env() -> set[str]:
    raw = os.environ.get("ARROWLOG_DIFF_KNOWN_BUGS", "").strip()
    if raw == "all":
        return set(KNOWN_BUGS)
    return {name.strip() for name in raw.split(",") if name.strip()}


def avoid(name: str) -> bool:
    """True while the generators must steer around known bug ``name``."""
    if name not in KNOWN_BUGS:
        raise KeyError(f"unknown known-bug name {name!r}")
    return name not in _enabled_by_env()
