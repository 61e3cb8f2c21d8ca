"""Every LLM call of a run carries a seed of its own, so identical prompts stay distinct samples."""

from __future__ import annotations

from pipeline_fakes import FakeLLM, MemoryNovelty

from instructforge.pipeline.context import RunContext
from instructforge.pipeline.protocols import GenerationRequest, Sampling
from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.state import RunState
from instructforge.pipeline.stats import StageStats


class Recording(FakeLLM):
    def __init__(self):
        super().__init__()
        self.seen: list[GenerationRequest] = []

    async def generate(self, request):
        self.seen.append(request)
        return await super().generate(request)


async def _seeds(folder, run_id: str, keys: list[str], recipe_seed: int = 42, sampling_seed=None) -> list[int]:
    state = RunState.create(folder, parse_recipe({"recipe": "self_instruct", "seed": recipe_seed}), run_id=run_id)
    llm = Recording()
    ctx = RunContext.journaled(state, llm, MemoryNovelty())
    for key in keys:
        await ctx.complete(GenerationRequest(model="m", prompt="Same prompt.", sampling=Sampling(seed=sampling_seed),
                                             idempotency_key=f"{run_id}/{key}"), StageStats("s"))
    state.close()
    return [r.sampling.seed for r in llm.seen]


async def test_calls_with_the_same_prompt_get_different_seeds(tmp_path):
    seeds = await _seeds(tmp_path / "a", "run-a", ["enrich/node/0", "enrich/node/1", "enrich/other/0"])
    assert len(set(seeds)) == 3 and all(s is not None for s in seeds)


async def test_the_seed_is_the_same_in_another_run_of_the_recipe(tmp_path):
    keys = ["enrich/node/0", "extend/root/2"]
    assert await _seeds(tmp_path / "a", "run-a", keys) == await _seeds(tmp_path / "b", "run-b", keys)


async def test_the_recipe_seed_and_an_explicit_sampling_seed_change_the_call_seeds(tmp_path):
    keys = ["enrich/node/0"]
    base = await _seeds(tmp_path / "a", "run-a", keys)
    assert await _seeds(tmp_path / "b", "run-b", keys, recipe_seed=7) != base
    assert await _seeds(tmp_path / "c", "run-c", keys, sampling_seed=123) != base
