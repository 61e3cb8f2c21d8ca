"""Tokens and cost per logical model, overall and per pipeline run.

Cost is what the provider bills: prompt and completion tokens times the deployment's prices. A
cache hit costs nothing and is counted apart, with the cost it saved, so a run's summary shows both
what it paid and what re-use spared it. Runs are kept in memory, the most recent `max_runs` of
them; the Prometheus counters keep the all-time totals.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class ModelUsage:
    model: str
    request_count: int = 0
    cache_hit_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    saved_cost_usd: float = 0.0


def call_cost(prompt_tokens: int, completion_tokens: int, input_per_million: float, output_per_million: float) -> float:
    return (prompt_tokens * input_per_million + completion_tokens * output_per_million) / 1_000_000


class Ledger:
    def __init__(self, max_runs: int = 10_000):
        self.max_runs = max_runs
        self.total: dict[str, ModelUsage] = {}
        self.runs: OrderedDict[str, dict[str, ModelUsage]] = OrderedDict()

    def _rows(self, run_id: str, model: str) -> tuple[ModelUsage, ModelUsage | None]:
        total = self.total.get(model)
        if total is None:
            total = self.total[model] = ModelUsage(model)
        if not run_id:
            return total, None
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = {}
            if len(self.runs) > self.max_runs:
                self.runs.popitem(last=False)
        else:
            self.runs.move_to_end(run_id)
        row = run.get(model)
        if row is None:
            row = run[model] = ModelUsage(model)
        return total, row

    def paid(self, run_id: str, model: str, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
        """A provider call that succeeded (and was billed), whether or not its request succeeded in the end."""
        for row in self._rows(run_id, model):
            if row is not None:
                row.prompt_tokens += prompt_tokens
                row.completion_tokens += completion_tokens
                row.cost_usd += cost

    def answered(self, run_id: str, model: str, *, cache_hit: bool, saved_cost: float = 0.0) -> None:
        """A request answered; a full cache hit also records the cost it saved."""
        for row in self._rows(run_id, model):
            if row is not None:
                row.request_count += 1
                if cache_hit:
                    row.cache_hit_count += 1
                    row.saved_cost_usd += saved_cost

    def usage(self, run_id: str = "") -> list[ModelUsage]:
        """Per-model usage of one run, or of everything since start when `run_id` is empty."""
        rows = self.total if not run_id else self.runs.get(run_id, {})
        return [ModelUsage(**{f: getattr(r, f) for f in ModelUsage.__slots__}) for r in sorted(rows.values(),
                                                                                              key=lambda r: r.model)]
