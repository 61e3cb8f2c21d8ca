"""How a run's LLM calls share the slots of its gateway: waiting calls go in `call_priority` order, and
enrich serves earlier nodes first, so one node's dependent rounds do not wait behind every other
node's first ones."""

from __future__ import annotations

import asyncio

import pytest
from pipeline_fakes import FakeLLM, enrich_answer, run_recipe

from instructforge.pipeline.calls import CallNotNeeded, JournaledGenerator, Slots, call_priority
from instructforge.pipeline.protocols import GenerationRequest
from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.state import RunState


async def _hold(slots: Slots, name: str, priority: tuple[int, ...], order: list[str], go: asyncio.Event) -> None:
    call_priority.set(priority)
    async with slots:
        order.append(name)
        await go.wait()


async def test_waiting_calls_get_a_slot_lowest_priority_first_then_first_come():
    slots, order, go = Slots(1), [], asyncio.Event()
    first = asyncio.create_task(_hold(slots, "first", (5,), order, go))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(_hold(slots, name, priority, order, go))
               for name, priority in [("late-2", (2,)), ("early", (1,)), ("late-2b", (2,)), ("none", ())]]
    await asyncio.sleep(0)
    go.set()
    await asyncio.gather(first, *waiting)
    assert order == ["first", "none", "early", "late-2", "late-2b"]


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


async def test_the_idle_flag_is_up_only_while_a_slot_is_free_and_nobody_waits():
    slots = Slots(2)
    assert slots.idle.is_set() and slots.try_acquire() and slots.idle.is_set()
    assert slots.try_acquire() and not slots.idle.is_set() and not slots.try_acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # straight to the waiter: still nothing free
    await asyncio.wait_for(waiter, 5)
    assert not slots.idle.is_set()
    slots.release()
    assert slots.idle.is_set() and slots.try_acquire()


async def test_with_a_backlog_the_idle_flag_follows_the_providers_slots_not_all_of_them():
    slots = Slots(4, idle_below=2)  # 2 at the provider, 2 more waiting at the gateway
    assert slots.try_acquire() and slots.idle.is_set()
    assert slots.try_acquire() and not slots.idle.is_set()  # the provider's slots are all taken
    assert slots.try_acquire() and slots.try_acquire() and slots.taken == 4 and not slots.try_acquire()
    slots.release()
    slots.release()
    assert not slots.idle.is_set()  # two still out: the provider is busy
    slots.release()
    assert slots.idle.is_set() and slots.taken == 1


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
    assert journal.slots.idle.is_set()  # the unsent calls gave their slot back
    state.close()
