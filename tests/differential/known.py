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
    # An entry is a name and what goes wrong; the generators ask avoid(name) and steer
    # around it until the fix lands.
    #
    # DataFusion 55 (the latest release): grouped min/max over a float group whose values
    # are all -inf (max) or all +inf (min), or NaN, answers -1.79e308 / 1.79e308, values
    # the data never held; ungrouped min/max and the DuckDB engine are right. Upstream:
    # apache/datafusion#24432, fixed after 55. The generator then leaves min/max of float
    # columns out of GROUP BY queries. README, "Development", lists it.
    "datafusion_grouped_float_minmax": "DataFusion: grouped min/max of ±inf/NaN-only groups",
    # DataFusion 55: a window's PARTITION BY over a float column puts -0.0 and 0.0 in two
    # partitions, where GROUP BY, DISTINCT and = (fixed upstream in 54, apache/datafusion
    # #22826) treat them as one value, as DuckDB and PostgreSQL do. The generator then
    # partitions windows by non-float columns only. README, "Development", lists it.
    "datafusion_window_float_zero": "DataFusion: window PARTITION BY splits -0.0 from 0.0",
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
