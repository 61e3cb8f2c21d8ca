"""How the enrich stage hands out call slots, on a virtual clock: every answer takes exactly one
latency, so the stage's length counts round trips, and how many a schedule wastes is exact."""

from __future__ import annotations

import asyncio
import math

import pytest
from layout_openai import LayoutOpenAI  # puts tests/generator (fakes.*) on the path
from pipeline_fakes import VirtualClock

from instructforge.pipeline import explore_grow
from instructforge.pipeline.context import RunContext
from instructforge.pipeline.explore_grow import (
    HANDOVER_PER_TURN,
    MIN_RISK,
    SURE_AFTER,
    NodeFill,
    YieldEstimate,
    enrich_stage,
    extend_stage,
)
from instructforge.pipeline.explore_instruct import initial_tree, resolve_domain
from instructforge.pipeline.filters import get_rules
from instructforge.pipeline.lulls import QUIET_S
from instructforge.pipeline.protocols import Completion, FinishReason
from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.state import RunState
from instructforge.pipeline.stats import StageStats
from instructforge.pipeline.tree import Node

LATENCY_S = 0.5


class Provider:
    """A model with `concurrency` slots that answers in the layout the prompts ask for, after LATENCY_S.

    `answer_gap_s`: answers reach the stage one at a time, that far apart (a client handling each
    before the next: the answers of a round trip no longer arrive together)."""

    def __init__(self, concurrency: int, answer_gap_s: float = 0.0):
        from fakes.faults import apply_limits  # the fake server's max_tokens and stop handling

        self.slots = asyncio.Semaphore(concurrency)
        self.respond, self.limit = LayoutOpenAI()._respond, apply_limits
        self.answer_gap_s, self.handing_back = answer_gap_s, asyncio.Lock()
        self.sent_at: list[float] = []  # when each call came in, in that order

    async def generate(self, request):
        self.sent_at.append(asyncio.get_running_loop().time())
        async with self.slots:
            await asyncio.sleep(LATENCY_S)
        if self.answer_gap_s:
            async with self.handing_back:
                await asyncio.sleep(self.answer_gap_s)
        text, finish = self.limit(self.respond(request.prompt, {"seed": request.sampling.seed}, 0),
                                    request.sampling.max_tokens, list(request.sampling.stop))
        return Completion((text,), (FinishReason(finish),))


class Wire:
    """Between the stage and `provider`, as the run's stream to the gateway is: each call queues its
    request, and a sender task of its own takes them on (`generation_stream.py`). Records how many
    calls the enrich stage had made when the sender first ran, i.e. when its first request left."""

    def __init__(self, provider: Provider):
        self.provider, self.made, self.first_departure = provider, 0, None
        self.queue: asyncio.Queue | None = None

    async def generate(self, request):
        if self.queue is None:
            self.queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._send())
        self.made += 1
        answer = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((request, answer))
        return await answer

    def enrich_starts(self) -> None:
        self.made, self.first_departure = 0, None

    async def _send(self) -> None:
        while True:
            request, answer = await self.queue.get()
            if self.first_departure is None:
                self.first_departure = self.made
            call = asyncio.ensure_future(self.provider.generate(request))
            call.add_done_callback(lambda done, answer=answer: answer.set_result(done.result()))


def _enrich_in_lockstep(tmp_path, concurrency: int, per_leaf: int, *, answer_gap_s: float = 0.0, backlog: int = 0,
                        seed: int = 42, provider=None, after_node=None) -> tuple[float, StageStats]:
    recipe = parse_recipe({
        "recipe": "explore_instruct", "name": "lockstep", "concurrency": concurrency, "seed": seed,
        "domain": {"preset": "custom", "name": "Packing lists", "description": "Packing lists for trips."},
        "stages": {"extend": {"max_depth": 2, "extend_nums": [12, 12]}, "enrich": {"enrich_nums": [0, 0, per_leaf]}}})

    async def run() -> tuple[float, StageStats]:
        state = RunState.create(tmp_path / "run", recipe)
        ctx = RunContext.journaled(state, provider or Provider(concurrency, answer_gap_s), None, backlog=backlog)
        domain = resolve_domain(recipe)
        rules = get_rules(domain.filter_variant)
        tree = await extend_stage(ctx, recipe, initial_tree(recipe, domain), domain, rules, StageStats("extend"))
        if isinstance(provider, Wire):
            provider.enrich_starts()
        stats, start = StageStats("enrich"), asyncio.get_running_loop().time()
        await enrich_stage(ctx, recipe, tree, domain, rules, stats, after_node=after_node)
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


@pytest.mark.parametrize("seed", [1, 2])
def test_answers_coming_one_at_a_time_cost_no_round_trip_at_the_gateway(tmp_path, seed):
    # As above, but the answers of a round trip reach the stage 1 ms apart, and 16 calls beyond the
    # provider's 128 slots may wait at the gateway (gateway_backlog). A call the stage sends while
    # that queue is full is answered a round trip late. When speculative calls (top-ups sized by the
    # yield, calls beyond need) filled it at the end of the stage, the top-ups the last answers asked
    # for waited behind them: these seeds took 2.5 s, a round trip more than their kept calls need.
    took, stats = _enrich_in_lockstep(tmp_path, concurrency=128, per_leaf=20, answer_gap_s=0.001, backlog=16,
                                      seed=seed)
    kept = stats.calls - stats.notes.get("unused_calls", 0)
    assert stats.outputs >= 144 * 20
    # The last answers arrive up to 128 x 1 ms after the first of their round trip.
    assert took <= math.ceil(kept / 128) * LATENCY_S + 128 * 0.001


def test_the_first_calls_leave_while_the_rest_of_the_wave_is_still_being_prepared(tmp_path):
    # 128 slots free at once at the start of the stage. Handed over in one turn of the event loop,
    # every call was prepared before the stream's sender could take the first (128 made when the
    # first left; 288 in the benchmark, 40-70 ms with the provider idle). A turn hands over at most
    # HANDOVER_PER_TURN, so the first leave after that many, and the stage's outcome is unchanged.
    wire = Wire(Provider(128))
    took, stats = _enrich_in_lockstep(tmp_path, concurrency=128, per_leaf=20, provider=wire)
    assert wire.first_departure is not None and wire.first_departure <= HANDOVER_PER_TURN
    plain_took, plain = _enrich_in_lockstep(tmp_path / "plain", concurrency=128, per_leaf=20)
    assert (took, stats.calls, stats.outputs) == (plain_took, plain.calls, plain.outputs)


def test_finished_nodes_are_filtered_between_bursts_of_calls_not_during_them(tmp_path):
    # The answers of a round trip reach the stage 1 ms apart, each turned into the next call. A node's
    # filter verdicts (`after_node`) asked for as it finished, in the middle of such a burst, delayed
    # every call behind them (in the benchmark, the last round trip's calls left over 0.3 s). Now a
    # node waits for a lull (QUIET_S without a call sent), or for the end of the stage's calls; each
    # runs once, and the stage's calls and examples are what they were without the hook.
    provider = Provider(128, answer_gap_s=0.001)
    started: list[tuple[float, str]] = []

    async def after_node(node) -> None:
        started.append((asyncio.get_running_loop().time(), node.task_name))
        await asyncio.sleep(0.005)  # the dedup service's round trip

    took, stats = _enrich_in_lockstep(tmp_path, concurrency=128, per_leaf=20, answer_gap_s=0.001,
                                      provider=provider, after_node=after_node)
    names = [name for _, name in started]
    assert len(names) == len(set(names)) == 1 + 12 + 144
    last_call = provider.sent_at[-1]
    in_lulls = 0
    for at, name in started:
        if at < last_call:  # calls still to go out: only in a lull
            latest = max(t for t in provider.sent_at if t <= at)
            assert at - latest >= QUIET_S - 1e-9, (name, at, latest)
            in_lulls += 1
    assert in_lulls > 100  # most nodes are done while the stage still runs, not all left to its end
    plain_took, plain = _enrich_in_lockstep(tmp_path / "plain", concurrency=128, per_leaf=20, answer_gap_s=0.001)
    assert (stats.calls, stats.outputs) == (plain.calls, plain.outputs)
    assert took <= plain_took + 0.01  # the last nodes are filtered as their answers come in


def test_the_slots_of_answers_just_in_are_refilled_before_the_answers_are_read(tmp_path, monkeypatch):
    # A round trip's answers come in together; reading each (parsing, filtering) took the run's one
    # thread ~0.1 ms before any of their slots went to the next call. A free slot's sure call does
    # not depend on what the answer brought (the node counts it as in flight until it is read), so
    # the calls leave first and the answers are read after: only top-ups wait for them.
    events: list[tuple[float, str]] = []
    read = explore_grow.parse_examples

    def reading(text, **kwargs):
        events.append((asyncio.get_running_loop().time(), "read"))
        return read(text, **kwargs)

    class Watched(Provider):
        async def generate(self, request):
            events.append((asyncio.get_running_loop().time(), "sent"))
            return await super().generate(request)

    monkeypatch.setattr(explore_grow, "parse_examples", reading)
    _, stats = _enrich_in_lockstep(tmp_path, concurrency=128, per_leaf=20, provider=Watched(128))
    assert stats.outputs >= 144 * 20
    start = next(t for t, what in events if what == "read")  # the first answers of the stage are in
    after = [what for t, what in events if t >= start]
    assert after.index("sent") < HANDOVER_PER_TURN  # not 128 answers read before a call left
    assert after[:after.index("read", after.index("sent"))].count("sent") >= HANDOVER_PER_TURN


def test_sure_calls_are_sized_by_what_the_nodes_answers_bring_once_a_few_are_in():
    # 90 wanted, 56 in, 4 calls out. At 10 a call those 4 could still bring the 34 missing, so no
    # call was sure; this node's answers never brought more than 8 (the filters drop the same two of
    # each), so it needs a fifth, and gets it among the sure calls instead of waiting as a top-up
    # while other nodes' sure calls take every slot (pipeline_bench, recipe seed 42: that node's last
    # calls then left one round trip at a time, and the stage took an eighth round trip).
    fill = NodeFill(0, Node("t", "T"), want=90, max_rounds=30, max_examples=1000)
    fill.added, fill.in_flight, fill.rounds = 56, 4, 13
    fill.calls, fill.most = SURE_AFTER - 1, 8
    assert fill.sure_calls(10) == 0  # too few answers to go by
    fill.calls = SURE_AFTER
    assert fill.sure_calls(10) == 1
    assert fill.sure_calls(6) == fill.calls_for(6)  # never more per call than a request asks for
    fill.most = 0  # every answer so far empty: nothing to size by, so the request size
    assert fill.sure_calls(10) == 0


def test_calls_beyond_need_go_only_where_a_short_answer_is_possible():
    yields = YieldEstimate(10)
    assert yields.chance_short(20, 2) == 0.0  # no answer seen yet: no spread to judge by
    for _ in range(10):
        yields.seen(10)
    assert yields.chance_short(20, 2) == 0.0 and yields.chance_short(21, 2) == 1.0  # every answer alike
    for rows in (0, 10, 8, 10, 0, 10):
        yields.seen(rows)
    assert 0.01 < yields.chance_short(15, 3) < yields.chance_short(15, 2) < 0.5 < yields.chance_short(30, 2)


def test_empty_answers_in_a_row_count_as_the_risk_they_are():
    # A sixth of the answers bring nothing (off the layout), the rest exactly 10 rows. A node missing
    # 2 rows with 3 calls out falls short only if all 3 come back empty: (1/6)^3 = 0.46%, above
    # MIN_RISK, so it is worth a call beyond need at the end of the stage. A normal approximation of
    # the sum (mean 8.3, 3 calls ~ 25 +- 6.5 rows) put it near 1e-4 and sent none.
    yields = YieldEstimate(10)
    for i in range(60):
        yields.seen(0 if i % 6 == 0 else 10)
    assert yields.chance_short(2, 3) == pytest.approx((1 / 6) ** 3, rel=0.01)
    assert yields.chance_short(2, 3) > MIN_RISK > yields.chance_short(2, 5)
    assert yields.chance_short(15, 2) == pytest.approx(1 - (5 / 6) ** 2, rel=0.01)  # one empty of two is short

