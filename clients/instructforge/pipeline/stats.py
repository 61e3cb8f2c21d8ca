"""Per-stage counts with drop reasons, and the hook a progress display plugs into.

Every example a stage does not pass on is counted under a reason (datatrove's rule: drops are data,
not exceptions), so the summary and the report can show the funnel and why it narrows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class StageStats:
    name: str
    inputs: int = 0  # examples (or nodes) the stage looked at
    outputs: int = 0  # examples (or nodes) it passed on
    calls: int = 0  # LLM calls it made or replayed
    drops: Counter[str] = field(default_factory=Counter)
    notes: dict[str, Any] = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        if count:
            self.drops[reason] += count

    def drop_all(self, reasons: Iterable[str]) -> None:
        self.drops.update(reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "inputs": self.inputs, "outputs": self.outputs, "calls": self.calls,
                "drops": dict(sorted(self.drops.items())), "notes": self.notes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        return cls(data["name"], data.get("inputs", 0), data.get("outputs", 0), data.get("calls", 0),
                   Counter(data.get("drops", {})), dict(data.get("notes", {})))


class Reporter(Protocol):
    """What stage logic tells a progress display; totals may be unknown (None) or grow."""

    def stage_started(self, stage: str, total: int | None) -> None: ...
    def advance(self, stage: str, amount: int = 1, *, total: int | None = None) -> None: ...
    def stage_finished(self, stage: str, stats: StageStats) -> None: ...


class NullReporter:
    def stage_started(self, stage: str, total: int | None) -> None:
        pass

    def advance(self, stage: str, amount: int = 1, *, total: int | None = None) -> None:
        pass

    def stage_finished(self, stage: str, stats: StageStats) -> None:
        pass
