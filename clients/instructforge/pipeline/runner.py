"""Entry points for the CLI: run or resume a run folder, report its status, summarise it.

`execute` is the whole of `iforge run` / `iforge resume` once the services are bound: the same call
does both, because resuming is replaying the run's journal (see `state`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructforge.pipeline.context import RunContext
from instructforge.pipeline.explore_instruct import run_explore_instruct
from instructforge.pipeline.protocols import CodeExecutor, Generator, NoveltyFilter, SimilarityScorer
from instructforge.pipeline.records import Record
from instructforge.pipeline.report.html import write_report
from instructforge.pipeline.self_instruct import run_self_instruct
from instructforge.pipeline.state import RunState
from instructforge.pipeline.stats import Reporter, StageStats

SUMMARY_FILE = "summary.json"


@dataclass
class RunResult:
    records: list[Record]
    summary: dict[str, Any]
    stats: list[StageStats]


async def execute(state: RunState, generator: Generator, novelty: NoveltyFilter,
                  similarity: SimilarityScorer | None = None, *, verifier: CodeExecutor | None = None,
                  reporter: Reporter | None = None, model: str | None = None, backlog: int = 0) -> RunResult:
    """Run (or resume) every stage of the run's recipe; writes dataset.jsonl, summary.json, report.html.
    `verifier` is needed only by a recipe whose `verify` stage is enabled; `backlog`: see RunContext.journaled."""
    ctx = RunContext.journaled(state, generator, novelty, similarity, verifier=verifier, reporter=reporter,
                               model=model, backlog=backlog)
    runner = run_self_instruct if state.recipe.recipe == "self_instruct" else run_explore_instruct
    try:
        records = await runner(ctx)
    except BaseException:
        await ctx.settle(cancel=True)
        raise
    await ctx.settle()  # calls sent beyond need are paid: journaled before the summary counts them
    summary = summarize(state, len(records))
    (state.folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    write_report(state, summary)
    return RunResult(records, summary, ctx.stats)


def _usage_totals(state: RunState) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for usage in state.usage().values():
        totals.update({k: v or 0 for k, v in usage.items()})
    return {k: totals.get(k, 0) for k in ("calls", "cache_hits", "failed", "prompt_tokens", "completion_tokens",
                                           "cost_usd")}


def summarize(state: RunState, examples: int) -> dict[str, Any]:
    """Records per stage, drops by reason, tokens, cost, wall time, cost per kept example."""
    stages = [s for s in state.stages() if s["stats"]]
    drops: Counter[str] = Counter()
    for s in stages:
        drops.update(s["stats"]["drops"])
    usage = _usage_totals(state)
    started = min((s["started"] for s in stages), default=None)
    finished = max((s["finished"] for s in stages if s["finished"]), default=None)
    return {
        "run_id": state.run_id, "recipe": state.recipe.recipe, "name": state.recipe.name, "examples": examples,
        "stages": [{**s["stats"], "wall_s": round((s["finished"] or 0) - (s["started"] or 0), 3)} for s in stages],
        "drops": dict(drops.most_common()), "usage": usage, "usage_by_stage": state.usage(), "models": state.models(),
        "wall_s": round(finished - started, 3) if started and finished else 0.0,
        "cost_per_example_usd": usage["cost_usd"] / examples if examples else None,
    }


def status(folder: str | Path) -> dict[str, Any]:
    """`iforge status RUN_DIR`: where a run stands, read from its folder only (no service needed)."""
    state = RunState.open(folder)
    try:
        stages = state.stages()
        finished = (state.folder / "dataset.jsonl").exists() and all(s["status"] == "done" for s in stages)
        counts: Counter[str] = Counter()
        for (_, record_status, _), n in state.record_counts().items():
            counts[record_status] += n
        return {
            "run_id": state.run_id, "recipe": state.recipe.recipe, "name": state.recipe.name,
            "state": "finished" if finished else ("not started" if not stages else "interrupted or running"),
            "stages": [{"name": s["name"], "status": s["status"],
                        "age_s": round(time.time() - s["started"], 1) if s["started"] else None,
                        **({"outputs": s["stats"]["outputs"], "drops": sum(s["stats"]["drops"].values())}
                           if s["stats"] else {})} for s in stages],
            "records": dict(counts), "usage": _usage_totals(state),
        }
    finally:
        state.close()
