"""How the enrich stage hands out call slots, on a virtual clock: every answer takes exactly one
latency, so the stage's length counts round trips, and how many a schedule wastes is exact."""

from __future__ import annotations

import asyncio
import math

from layout_openai import LayoutOpenAI  # puts tests/generator (fakes.*) on the path
from pipeline_fakes import VirtualClock

from instructforge.pipeline.context import RunContext
from instructforge.pipeline.explore_grow import YieldEstimate, enrich_stage, extend_stage
from instructforge.pipeline.explore_instruct import initial_tree, resolve_domain
from instructforge.pipeline.filters import get_rules
from instructforge.pipeline.protocols import Completion, FinishReason
from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.state import RunState
from instructforge.pipeline.stats import StageStats

LATENCY_S = 0.5


class Provider:
    """A model with `concurrency` slots that answers in the layout the prompts ask for, after LATENCY_S."""

    def __init__(self, concurrency: int):
        from fakes.faults import apply_limits  # the fake server's max_tokens and stop handling

        self.slots = asyncio.Semaphore(concurrency)
        self.respond, self.limit = LayoutOpenAI()._respond, apply_limits

    async def generate(self, request):
        async with self.slots:
            await asyncio.sleep(LATENCY_S)
        text, finish = self.limit(self.respond(request.prompt, {"seed": request.sampling.seed}, 0),
                                    request.sampling.max_tokens, list(request.sampling.stop))
        return Completion((text,), (FinishReason(finish),))


def _enrich_in_lockstep(tmp_path, concurrency: int, per_leaf: int) -> tuple[float, StageStats]:
    recipe = parse_recipe({
        "recipe": "explore_instruct", "name": "lockstep", "concurrency": concurrency,
        "domain": {"preset": "custom", "name": "Packing lists", "description": "Packing lists for trips."},
        "stages": {"extend": {"max_depth": 2, "extend_nums": [12, 12]}, "enrich": {"enrich_nums": [0, 0, per_leaf]}}})

    async def run() -> tuple[float, StageStats]:
        state = RunState.create(tmp_path / "run", recipe)
        ctx = RunContext.journaled(state, Provider(concurrency), None)
        domain = resolve_domain(recipe)
        rules = get_rules(domain.filter_variant)
        tree = await extend_stage(ctx, recipe, initial_tree(recipe, domain), domain, rules, StageStats("extend"))
        stats, start = StageStats("enrich"), asyncio.get_running_loop().time()
        await enrich_stage(ctx, recipe, tree, domain, rules, stats)
        took = asyncio.get_running_loop().time() - start
        state.close()
        return took, stats

    with asyncio.Runner(loop_factory=VirtualClock) as runner:
        return runner.run(run())


def test_in_lockstep_the_stage_takes_no_round_trip_beyond_what_its_kept_calls_need(tmp_path):
    # 144 leaves of 20 examples, 128 slots. The calls a node keeps are fixed by the answers (407 of
    # them here), so no schedule takes fewer than ceil(407 / 128) = 4 round trips; one more would be
    # the schedule's fault: a node whose first calls went out late, or whose last wave fell short with
    # the provider nearly idle. (Before the stage-wide scheduler, with every node sizing its own
    # waves, this took 5.)
    took, stats = _enrich_in_lockstep(tmp_path, concurrency=128, per_leaf=20)
    kept = stats.calls - stats.notes.get("unused_calls", 0)
    assert stats.outputs >= 144 * 20
    assert took <= math.ceil(kept / 128) * LATENCY_S
    assert stats.notes.get("unused_calls", 0) < 128  # paid beyond need: less than the round trip it saves


def test_calls_beyond_need_go_only_where_a_short_answer_is_possible():
    yields = YieldEstimate(10)
    assert yields.chance_short(20, 2) == 0.0  # no answer seen yet: no spread to judge by
    for _ in range(10):
        yields.seen(10)
    assert yields.chance_short(20, 2) == 0.0 and yields.chance_short(21, 2) == 1.0  # every answer alike
    for rows in (0, 10, 8, 10, 0, 10):
        yields.seen(rows)
    assert 0.01 < yields.chance_short(15, 3) < yields.chance_short(15, 2) < 0.5 < yields.chance_short(30, 2)
