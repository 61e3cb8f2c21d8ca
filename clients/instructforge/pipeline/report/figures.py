"""The figures of a run's summary, formatted once for both the terminal table and the HTML report.

Both show the same rows (records per stage, drops by reason, tokens, cost, wall time, cost per kept
example), so they are computed here from `runner.summarize`'s dict and nowhere else: a person who
compares the terminal with the report sees the same numbers written the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# What a stage's inputs/outputs count; every other stage counts examples.
STAGE_UNITS = {"extend": "subtasks", "prune": "subtasks"}


def unit_of(stage: str) -> str:
    return STAGE_UNITS.get(stage, "examples")


def fmt_int(value: float | None) -> str:
    return "–" if value is None else f"{int(value):,}"


def fmt_cost(value: float | None) -> str:
    """Dollars: cents for sums that big, three significant digits below (a per-example cost)."""
    if value is None:
        return "–"
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 10 else f"${value:.3g}" if value < 0.01 else f"${value:.4f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def fmt_share(part: float, whole: float) -> str:
    return "–" if not whole else f"{100 * part / whole:.1f}%"


@dataclass(frozen=True)
class StageRow:
    name: str
    unit: str
    inputs: int
    outputs: int
    dropped: int
    calls: int
    tokens: int
    cost_usd: float
    wall_s: float
    notes: str = ""

    @property
    def kept_share(self) -> float:
        return self.outputs / self.inputs if self.inputs else 0.0


@dataclass(frozen=True)
class DropRow:
    stage: str
    reason: str
    count: int


def stage_rows(summary: Mapping[str, Any]) -> list[StageRow]:
    by_stage = summary.get("usage_by_stage") or {}
    rows = []
    for s in summary.get("stages", []):
        usage = by_stage.get(s["name"], {})
        rows.append(StageRow(
            s["name"], unit_of(s["name"]), s.get("inputs", 0), s.get("outputs", 0), sum(s.get("drops", {}).values()),
            s.get("calls", 0), int((usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)),
            float(usage.get("cost_usd") or 0.0), float(s.get("wall_s") or 0.0), fmt_notes(s.get("notes") or {})))
    return rows


def fmt_notes(notes: Mapping[str, Any]) -> str:
    """A stage's notes in a line: values as they are, lists and maps by their length (they can be long)."""
    parts = []
    for key, value in notes.items():
        if isinstance(value, (list, tuple, dict)):
            value = f"{len(value):,}"
        elif value is True or value is False or value is None:
            value = {True: "yes", False: "no", None: "–"}[value]
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts)


def drop_rows(summary: Mapping[str, Any]) -> list[DropRow]:
    """Every (stage, reason) with its count, biggest first; ties in stage order."""
    rows = [DropRow(s["name"], reason, n) for s in summary.get("stages", [])
            for reason, n in s.get("drops", {}).items() if n]
    return sorted(rows, key=lambda r: -r.count)


def totals(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The end-of-run figures as (label, value) pairs, in the order both displays show them."""
    usage = summary.get("usage") or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    calls, hits, failed = (int(usage.get(k) or 0) for k in ("calls", "cache_hits", "failed"))
    return [
        ("Kept examples", fmt_int(summary.get("examples", 0))),
        ("LLM calls", f"{calls:,}" + (f" ({hits:,} from cache, {failed:,} failed)" if hits or failed else "")),
        ("Tokens", f"{prompt + completion:,} ({prompt:,} prompt + {completion:,} completion)"),
        ("Cost", fmt_cost(float(usage.get("cost_usd") or 0.0))),
        ("Cost per kept example", fmt_cost(summary.get("cost_per_example_usd"))),
        ("Wall time", fmt_duration(summary.get("wall_s"))),
    ]
