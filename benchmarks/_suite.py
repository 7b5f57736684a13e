"""The suite's one-row-per-case summary: what each case reports, and the markdown table.

Every case module has ``summarize(records) -> list[row]``, turning the raw records of one
run (``_harness.emit``) into rows built by ``row``: the arrowlog figure and the reference
figure (median, min and max over the repetitions), their ratio, which way is better, the
target and whether it was met. ``python -m benchmarks`` collects the rows into
``results/latest.json`` and renders them with ``markdown``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["figure", "markdown", "num", "row", "throughput"]


def figure(
    what: str, unit: str, median: float, lo: float | None = None, hi: float | None = None
) -> dict[str, Any]:
    """One side of a case: what was measured, its unit, median and range."""
    return {
        "what": what,
        "unit": unit,
        "median": median,
        "min": median if lo is None else lo,
        "max": median if hi is None else hi,
    }


def throughput(what: str, amount: float, stats: Mapping[str, Any], unit: str) -> dict[str, Any]:
    """``amount`` (rows, GB) per second from a ``Stats.to_dict()``: min and max swap."""
    return figure(
        what,
        unit,
        amount / stats["median_s"],
        amount / stats["max_s"],
        amount / stats["min_s"],
    )


def row(
    case: str,
    title: str,
    path: str,
    arrowlog: Mapping[str, Any],
    reference: Mapping[str, Any] | None,
    *,
    ratio: float | None,
    ratio_of: str,
    target: str,
    met: bool | None,
    reps: int | None = None,
    record: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One case of the suite's table. ``ratio_of`` says what divides what, and which way is
    better; ``record`` (any record of the run) supplies the run id and timestamp."""
    return {
        "case": case,
        "title": title,
        "arrowlog_path": path,
        "arrowlog": dict(arrowlog),
        "reference": dict(reference) if reference is not None else None,
        "ratio": ratio,
        "ratio_of": ratio_of,
        "target": target,
        "met": met,
        "reps": reps,
        "run_id": (record or {}).get("run_id"),
        "timestamp": (record or {}).get("timestamp"),
        "details": dict(details or {}),
    }


# -- rendering ---------------------------------------------------------------------------------


def num(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e9:
        return f"{value / 1e9:.2f} G"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.2f} M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.0f} k"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _figure_text(fig: Mapping[str, Any] | None) -> str:
    if fig is None:
        return "—"
    unit = fig["unit"]
    text = f"{num(fig['median'])} {unit}".replace("  ", " ")
    if fig["min"] != fig["max"]:
        text += f" ({num(fig['min'])} to {num(fig['max'])})"
    return f"{text}<br>{fig['what']}"


def _ratio_text(r: Mapping[str, Any]) -> str:
    if r["ratio"] is None:
        return "—"
    return f"**{r['ratio']:.3g}**<br>{r['ratio_of']}"


def _met_text(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "—"}[met]


def markdown(rows: Sequence[Mapping[str, Any]], header: str = "") -> str:
    """The suite's table: one line per case; figures are median (min to max) of the reps."""
    lines = [header, ""] if header else []
    lines += [
        "| case | arrowlog path | arrowlog | reference (same run) | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            r["title"],
            r["arrowlog_path"],
            _figure_text(r["arrowlog"]),
            _figure_text(r["reference"]),
            _ratio_text(r),
            r["target"],
            _met_text(r["met"]),
        ]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
