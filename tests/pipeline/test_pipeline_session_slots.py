"""How a run's LLM calls share the slots of its gateway: a cancelled waiter gives up its turn, enrich
serves an earlier node's next round before a later node's first, and a call no longer needed when
its slot comes goes unsent."""

from __future__ import annotations

import asyncio

import pytest
from pipeline_fakes import FakeLLM, enrich_answer, run_recipe

from instructforge.pipeline.calls import CallNotNeeded, JournaledGenerator, Slots
from instructforge.pipeline.protocols import GenerationRequest
from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.state import RunState


async def test_a_cancelled_waiter_gives_up_its_turn_and_a_granted_one_its_slot():
    slots = Slots(1)
    await slots.__aenter__()
    gone, next_in_line = asyncio.create_task(slots.__aenter__()), asyncio.create_task(slots.__aenter__())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    await slots.__aexit__(None, None, None)  # skips the cancelled waiter
    await asyncio.wait_for(next_in_line, 5)
    granted = asyncio.create_task(slots.__aenter__())
    await asyncio.sleep(0)
    await slots.__aexit__(None, None, None)  # hands the slot over...
    granted.cancel()  # ...to a call cancelled before it could use it: the slot comes back
    with pytest.raises(asyncio.CancelledError):
        await granted
    await asyncio.wait_for(slots.__aenter__(), 5)


async def test_enrich_serves_an_earlier_nodes_next_round_before_a_later_nodes_first(tmp_path):
    def answers(request) -> str:
        if "Write 10 examples of the following subtask:" in request.prompt:  # 6 of 10: every node tops up
            return enrich_answer(request.prompt, 6, request.idempotency_key.partition("/")[2])
        return llm.answer(request.prompt, request.idempotency_key.partition("/")[2])

    llm = FakeLLM(script=answers, delay=0.002)  # answers take a moment: calls wait for the one slot
    recipe = {"recipe": "explore_instruct", "name": "slots", "concurrency": 1, "stages": {
        "extend": {"max_depth": 1, "extend_nums": [3]}, "enrich": {"enrich_nums": [0, 20], "spare_calls": 0},
        "sample": {"example_num": 30}}}
    await run_recipe(tmp_path, recipe, llm)
    served = [key.split("/")[2:] for key in llm.arrived_keys if key.split("/")[1] == "enrich"]
    nodes = list(dict.fromkeys(task for task, _ in served))
    assert len(nodes) == 3 and all(sum(task == n for task, _ in served) == 4 for n in nodes)  # a wave of 2, a top-up of 2
    position = {(task, int(r)): i for i, (task, r) in enumerate(served)}
    # One call at a time: the first node's top-up goes before the last node's first wave (first come,
    # first served would put every first wave ahead of it).
    assert position[nodes[0], 3] < position[nodes[2], 0]


async def test_a_call_no_longer_needed_goes_unsent_and_prompts_are_built_once_a_call_has_a_slot(tmp_path):
    recipe = parse_recipe({"recipe": "explore_instruct", "name": "ahead", "concurrency": 1})
    state = RunState.create(tmp_path, recipe)
    llm = FakeLLM(delay=0.01)
    journal = JournaledGenerator(llm, state, concurrency=1)
    built: list[str] = []

    def request(n: int) -> GenerationRequest:
        return GenerationRequest(model="m", prompt="", idempotency_key=f"run/enrich/x/{n}")

    def prompt(n: int):
        return lambda: built.append(str(n)) or f"Say {n}."

    needed = True
    first = asyncio.create_task(journal.generate(request(0), prompt=prompt(0)))
    await asyncio.sleep(0)
    queued = asyncio.create_task(journal.generate(request(1), unless=lambda: not needed, prompt=prompt(1)))
    await asyncio.sleep(0.001)
    assert built == ["0"]  # the queued call has no prompt yet
    needed = False
    await first
    with pytest.raises(CallNotNeeded):
        await queued
    assert built == ["0"] and list(llm.keys) == ["run/enrich/x/0"]
    assert journal.slots.taken == 0  # the unsent calls gave their slot back
    state.close()
