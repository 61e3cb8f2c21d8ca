"""Explore-Instruct's LLM stages: `extend` grows the tree, `enrich` fills its nodes with examples.

extend (§1.6): depth by depth, every node at that depth asks for new subtasks until it has
`extend_nums[depth]` new children. Nodes that existed before get *additional* children
(backtracking); new children are decomposed at the next depth (lookahead). Fixed: a node stops after
`max_rounds_per_node` calls, never exceeds `max_child_num` children (surplus subtasks are counted as
dropped), and a full node is not asked again (the published loop spun forever on both).

enrich (§1.7): each node asks for batches of examples until it has `enrich_nums[depth]` new ones.
A node starts once its parent is done (its demonstrations come from the parent's finished
examples) and makes at most `max_rounds` calls. One scheduler for the whole stage decides which node
gets each free call slot (see `enrich_stage`): calls a node surely needs first, then those the yield
so far says it needs (the likeliest to fall short first), and only when a slot would otherwise sit
idle, up to `calls_ahead` more.

Parallel but deterministic: new node names are registered level by level in tree order, calls are
named by node and round, and a node keeps its answers in round order up to the round that completes
its need, whatever order answers arrive in and however many calls went out beyond need.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import heapq
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from instructforge.pipeline.calls import CallNotNeeded
from instructforge.pipeline.context import RunContext, gather_bounded
from instructforge.pipeline.filters import FilterRules, ensure_boxed
from instructforge.pipeline.lulls import LullRunner
from instructforge.pipeline.parsers import ParsedExample, parse_examples, parse_subtasks
from instructforge.pipeline.prompts import explore as prompts
from instructforge.pipeline.prompts.domains import Domain
from instructforge.pipeline.protocols import Completion, GenerationRequest
from instructforge.pipeline.recipe import ExploreInstructRecipe, SamplingConfig
from instructforge.pipeline.stats import StageStats
from instructforge.pipeline.tree import DomainTree, Node


class Finished:
    """Tasks in the order they finish, each reported once by its own done-callback.

    `asyncio.wait(FIRST_COMPLETED)` over every call in flight adds and removes a callback on each of
    them at every wake-up: with 256 calls out and answers coming a few at a time, that was a fifth
    of the scheduler's CPU per call."""

    def __init__(self) -> None:
        self._done: collections.deque[asyncio.Future] = collections.deque()
        self._ready = asyncio.Event()

    def watch(self, task: asyncio.Future) -> asyncio.Future:
        task.add_done_callback(self._finish)
        return task

    def _finish(self, task: asyncio.Future) -> None:
        self._done.append(task)
        self._ready.set()

    async def next(self) -> list[asyncio.Future]:
        """Every task finished since the last call, waiting for one if there is none."""
        while not self._done:
            self._ready.clear()
            await self._ready.wait()
        return self.take()

    def take(self) -> list[asyncio.Future]:
        """Every task finished since the last call (none waited for)."""
        done = list(self._done)
        self._done.clear()
        return done


@dataclass
class Proposal:
    task_name: str
    raw_task_name: str
    reason: str
    examples: list[dict[str, Any]] = field(default_factory=list)


def as_example(example: ParsedExample) -> dict[str, str]:
    return {"instruction": example.instruction, "input": example.input, "output": example.output}


def accept(examples: list[ParsedExample] | tuple[ParsedExample, ...], rules: FilterRules, domain: Domain,
           stats: StageStats) -> list[dict[str, str]]:
    """The domain's filters, with every rejection counted; math answers get their \\boxed{}."""
    kept = []
    for example in examples:
        stats.inputs += 1
        if (drop := rules.check(example.instruction, example.input, example.output)) is not None:
            stats.drop(drop.reason)
            continue
        row = as_example(example)
        if domain.math:
            row["output"] = ensure_boxed(row["output"])
        kept.append(row)
    return kept


def demos_from(pool: list[dict[str, Any]], count: int, rng: random.Random) -> list[ParsedExample]:
    """Up to `count` distinct demonstrations (the published sample of 2 crashed on a pool of 1)."""
    picked = rng.sample(pool, min(count, len(pool)))
    return [ParsedExample(str(d.get("instruction", "")), str(d.get("input", "") or ""), str(d.get("output", "")))
            for d in picked]


async def _call(ctx: RunContext, prompt: str | Callable[[], str], key: str, version: str, sampling: SamplingConfig,
                stats: StageStats, unless: Callable[[], bool] | None = None) -> Completion:
    """One call of a stage; a callable `prompt` is built only once the call has a slot (see ctx.complete)."""
    lazy = prompt if callable(prompt) else None
    return await ctx.complete(GenerationRequest(model=ctx.model, prompt="" if lazy else prompt,
                                                sampling=sampling.to_sampling(), idempotency_key=key,
                                                run_id=ctx.run_id, template_version=version),
                              stats, unless=unless, prompt=lazy)


async def extend_node(ctx: RunContext, recipe: ExploreInstructRecipe, tree: DomainTree, domain: Domain,
                      rules: FilterRules, node: Node, want: int, stats: StageStats) -> list[Proposal]:
    cfg = recipe.stages.extend
    version = prompts.template_version(domain, extend=True)
    pool = node.parent.examples if node.parent is not None else node.examples
    room = cfg.max_child_num - len(node.children)
    collected: list[Proposal] = []
    for round_ in range(cfg.max_rounds_per_node):
        if len(collected) >= want or len(collected) >= room:
            break
        ask = min(max(want - len(collected), cfg.min_extend_num), room - len(collected))
        rng = random.Random(f"{recipe.seed}/extend/{node.task_name}/{round_}")
        prompt = prompts.extend_prompt(
            domain, target=node.task_name, demos=demos_from(pool, cfg.demonstrations, rng),
            children=[c.task_name for c in node.children] + [p.task_name for p in collected],
            peers=[s.task_name for s in node.siblings], max_child_num=cfg.max_child_num, extend_num=ask,
            examples_per_subtask=cfg.examples_per_subtask)
        completion = await _call(ctx, prompt, ctx.key("extend", node.task_name, round_), version,
                                 cfg.sampling or recipe.sampling, stats)
        found = 0
        for text, finish in completion.samples():
            parsed = parse_subtasks(text, finish_reason=finish)
            stats.drop_all(d.reason for d in parsed.drops)
            for subtask in parsed.subtasks:
                if len(collected) >= room:
                    stats.drop("child_cap")
                    continue
                found += 1
                taken = {p.task_name for p in collected}
                collected.append(Proposal(tree.unique_name(subtask.name, taken), subtask.name, subtask.reason,
                                          accept(subtask.examples, rules, domain, stats)))
        if not found:
            stats.drop("round_without_subtasks")
    if len(collected) < min(want, room):
        stats.notes.setdefault("nodes_short_of_children", []).append(node.task_name)
    return collected


async def extend_stage(ctx: RunContext, recipe: ExploreInstructRecipe, tree: DomainTree, domain: Domain,
                       rules: FilterRules, stats: StageStats) -> DomainTree:
    cfg = recipe.stages.extend
    for depth in range(cfg.max_depth):
        level = [n for n in tree.level_order() if n.depth == depth]
        want = cfg.extend_nums[depth]
        found = await gather_bounded(
            [lambda n=n, w=want: extend_node(ctx, recipe, tree, domain, rules, n, w, stats) for n in level],
            len(level) or 1)
        for node, proposals in zip(level, found, strict=True):  # registered in tree order: names are stable
            for p in proposals:
                tree.add_child(node, p.raw_task_name, p.reason, p.examples, task_name=p.task_name)
                stats.outputs += 1
        ctx.reporter.advance("extend", sum(map(len, found)))
    return tree


class YieldEstimate:
    """Examples one enrich call is expected to add, to size how many calls go out before answers are in
    (which answers a node keeps never depends on it). The stage's mean so far, drawn towards the
    request size while it has seen few answers; for a node, its own mean drawn towards the stage's the
    same way, so one empty answer does not make it ask for a flood."""

    WEIGHT = 2  # how many answers the fallback counts as

    def __init__(self, prior: float):
        self.prior, self.calls, self.rows = prior, 0, 0
        self.empty = 0  # answers that brought nothing (cut off, off the layout, every item filtered)
        self.squares = 0  # of the rows of the answers that brought some

    def seen(self, rows: int) -> None:
        self.calls, self.rows, self.squares = self.calls + 1, self.rows + rows, self.squares + rows * rows
        self.empty += rows == 0

    def per_call(self, node_calls: int = 0, node_rows: int = 0) -> float:
        stage = (self.rows + self.WEIGHT * self.prior) / (self.calls + self.WEIGHT)
        return max(0.5, (node_rows + self.WEIGHT * stage) / (node_calls + self.WEIGHT))

    def chance_short(self, missing: int, calls: int) -> float:
        """The chance that `calls` answers bring fewer than `missing` examples (0 before any answer).

        Why not a normal approximation of the sum: answers are often empty outright (a reply off the
        layout brings nothing), and several empty ones in a row are far likelier than the normal tail
        says; that is how a node falls short on its last round trip. So: each answer is empty at the
        stage's empty rate, and the others spread around their own mean (normal, by their count)."""
        if missing <= 0 or not self.calls:
            return 0.0
        empty = self.empty / self.calls
        some = self.calls - self.empty
        mean = self.rows / some if some else 0.0
        spread = math.sqrt(max(0.0, self.squares / some - mean * mean)) if some else 0.0
        chance = 0.0
        for full in range(calls + 1):  # answers that brought some: binomial
            weight = math.comb(calls, full) * empty ** (calls - full) * (1 - empty) ** full
            if weight:
                chance += weight * _below(missing - 0.5, full * mean, spread * math.sqrt(full))
        return min(1.0, chance)


def _below(limit: float, mean: float, spread: float) -> float:
    """P(X < limit) for X normal(mean, spread); a step where there is no spread."""
    if spread == 0:
        return float(mean < limit)
    return 0.5 * (1 + math.erf((limit - mean) / (spread * math.sqrt(2))))


# Calls beyond need go only to nodes at least this likely to fall short without them.
MIN_RISK = 0.001
# Answers of a node after which its sure calls are sized by the most any of them brought (see NodeFill.sure_calls).
SURE_AFTER = 3
# Calls handed over per turn of the event loop (a stream message's worth, see generation_stream.py).
# Each call is prepared (journal, prompt) in a task of its own and the stream's writer only runs once
# every task ahead of it has had its turn: 288 calls handed over at once at the start of the stage
# left the first for the gateway only after the last was prepared (40-70 ms), with both the gateway's
# and the provider's slots idle meanwhile.
HANDOVER_PER_TURN = 16


class NodeFill:
    """One node's enrich progress. Calls are named by round (0, 1, ...); the node keeps the answers of
    rounds 0..K in round order, K being the first round by which it has `want`: whatever order answers
    arrive in, and however many calls went out beyond need, the same rounds give the same examples
    (calls past K are paid but unused)."""

    def __init__(self, index: int, node: Node, want: int, max_rounds: int, max_examples: int):
        self.index, self.node, self.want, self.max_rounds, self.max_examples = index, node, want, max_rounds, max_examples
        self.pool: list[dict[str, Any]] = []
        self.rounds = 0  # rounds asked for so far: the next call is round `rounds`
        self.in_flight = 0
        self.sent: set[int] = set()  # rounds whose call went out (a replayed or unsent one did not)
        self.answered: dict[int, tuple[list[dict[str, str]], StageStats]] = {}  # past `applied`, held apart
        self.answered_rows = 0
        self.applied = self.added = 0
        self.calls = self.rows = 0  # answers seen and the rows in them: the node's own yield
        self.most = 0  # the most rows one of its answers brought
        self.closed = False

    def finished(self) -> bool:
        return self.added >= self.want or self.applied >= self.max_rounds or len(self.node.examples) >= self.max_examples

    def missing(self) -> int:
        """Examples still to come beyond those already answered (in rounds not yet applied)."""
        return self.want - self.added - self.answered_rows

    def sure_calls(self, examples_per_request: int) -> int:
        """Calls the node needs even if every call in flight brought the most an answer can: all
        `examples_per_request`, or once SURE_AFTER of its answers are in, the most any of them brought.

        Why not `examples_per_request` throughout: a node whose answers each lose the same items to the
        filters (8 of 10, say) is never short by that measure until its last calls are back, so its
        follow-ups went out as top-ups, which wait while other nodes' sure calls take every slot; its
        last calls then left one round trip at a time, and the stage took a round trip more."""
        most = examples_per_request
        if self.calls >= SURE_AFTER and self.most:
            most = min(most, self.most)
        return self.calls_for(most)

    def calls_for(self, per_call: float, beyond: float = 0.0) -> int:
        """Calls to add so that those in flight are expected to bring what is missing (plus `beyond` calls)."""
        if self.finished():
            return 0
        wanted = math.ceil(max(0, self.missing()) / per_call + beyond - 1e-9)
        return max(0, min(wanted - self.in_flight, self.max_rounds - self.rounds))


async def enrich_stage(ctx: RunContext, recipe: ExploreInstructRecipe, tree: DomainTree, domain: Domain,
                       rules: FilterRules, stats: StageStats,
                       after_node: Callable[[Node], Awaitable[None]] | None = None) -> DomainTree:
    """Every node enriched; `after_node` runs on each once its examples are final, in a lull between
    bursts of answers (see lulls.py), and the stage ends when it has run on every node.

    One scheduler hands out the call slots, a call at a time and only when a slot is free, so every
    choice is made with every answer so far. A slot is free as soon as its answer is in; the answers
    are read (parsed, filtered) once no other answer waits, so the calls that refill their slots leave
    first. Until then a node counts an answer in as still in flight: only surely needed calls go out.

    A free slot goes, in this order, to (1) a call a node surely needs (short even if every call in
    flight brought the most an answer can, see `NodeFill.sure_calls`), earlier nodes (pre-order)
    first, (2) a call the yield so far says a node needs (top-ups with `spare_calls` more), (3) while
    a slot would otherwise sit idle, up to `calls_ahead` calls beyond that; (2) and (3) to the node likeliest to fall short first (judged by
    how often answers so far came back empty and how the rest spread; (3) only while that chance is
    above `MIN_RISK`). Sure calls first keep the provider busy with calls that are (all but) never
    wasted while the answers that size the rest come in; the calls beyond need are spent only at the
    end of the stage, where a short answer would otherwise cost a round trip with the provider nearly
    idle. Only sure calls may wait at the gateway beyond the provider's slots (`gateway_backlog`): at
    the end of the stage a call queued there is answered a round trip late, and so is every top-up
    the last answers ask for behind it."""
    cfg = recipe.stages.enrich
    nums = cfg.enrich_nums or []
    nodes = list(tree.nodes())
    beyond = [n.task_name for n in nodes if n.depth >= len(nums)]
    if beyond:
        stats.notes["deeper_than_enrich_nums"] = beyond
    ctx.reporter.advance("enrich", 0, total=sum(nums[n.depth] for n in nodes if n.depth < len(nums)))
    version = prompts.template_version(domain, extend=False)
    sampling = cfg.sampling or recipe.sampling
    slots = ctx.call_slots()
    capacity = slots.size if slots is not None else recipe.concurrency
    provider_slots = min(capacity, recipe.concurrency)  # the rest wait at the gateway (gateway_backlog)

    # Published order: a parent is enriched before its children, whose demonstrations it then
    # supplies. "parent_explored" draws them from what the parent had before enrich instead, so every
    # node can start at once (more parallelism, less varied demonstrations).
    wait_for_parent = cfg.demo_pool == "parent_enriched"
    before = {} if wait_for_parent else {id(n): list(n.examples) for n in nodes}
    yields = YieldEstimate(cfg.examples_per_request)
    fills = {}
    for i, n in enumerate(nodes):
        want = nums[n.depth] if n.depth < len(nums) else 0
        fills[id(n)] = NodeFill(i, n, want, cfg.max_rounds(want), cfg.max_example_num)
    live: list[NodeFill] = []  # started and not finished, in pre-order
    calls: dict[asyncio.Future, tuple[NodeFill, int]] = {}
    unread: list[tuple[NodeFill, int, Completion]] = []  # answers in, still counted in flight by their node
    # `after_node` waits for the lulls between bursts of answers (see lulls.py); `hooks` holds its runner.
    lulls = LullRunner(after_node) if after_node is not None else None
    hooks: set[asyncio.Future] = set()
    finished = Finished()
    handover = HANDOVER_PER_TURN  # calls this turn of the event loop may still hand over

    def prompt_for(fill: NodeFill, r: int) -> str:
        node = fill.node
        parent = node.parent or node
        rng = random.Random(f"{recipe.seed}/enrich/{node.task_name}/{r}")
        return prompts.enrich_prompt(domain, target=parent.task_name, demos=demos_from(fill.pool, cfg.demonstrations, rng),
                                     children=[c.task_name for c in parent.children],
                                     peers=[s.task_name for s in parent.siblings], subtask=node.task_name,
                                     reason=node.reason, examples=cfg.examples_per_request)

    async def one(fill: NodeFill, r: int) -> Completion:
        return await _call(ctx, lambda: fill.sent.add(r) or prompt_for(fill, r),
                           ctx.key("enrich", fill.node.task_name, r), version, sampling, stats, unless=fill.finished)

    def kept_rows(completion: Completion) -> tuple[list[dict[str, str]], StageStats]:
        """An answer's kept rows, and its counts, held apart until the node knows it keeps the round."""
        rows, counts = [], StageStats("enrich")
        for text, finish in completion.samples():
            parsed = parse_examples(text, finish_reason=finish)
            counts.drop_all(d.reason for d in parsed.drops)
            rows += accept(parsed.examples, rules, domain, counts)
        return rows, counts

    def start(fill: NodeFill) -> None:
        source = fill.node.parent or fill.node
        fill.pool = source.examples if wait_for_parent else before[id(source)]
        if fill.finished() or fill.max_rounds <= 0:
            close(fill)
        else:
            bisect.insort(live, fill, key=lambda f: f.index)

    def close(fill: NodeFill) -> None:
        fill.closed = True
        if fill in live:
            live.remove(fill)
        unused = sum(1 for r in fill.sent if r >= fill.applied)  # paid for, past the rounds the node kept
        if unused:
            stats.notes["unused_calls"] = stats.notes.get("unused_calls", 0) + unused
        # The answers the node kept (rounds 0..K): with `unused_calls`, every call the stage sent,
        # including those still on the way when it ends (which its `calls` counts only once answered).
        stats.notes["answers_used"] = stats.notes.get("answers_used", 0) + fill.applied
        if fill.added < fill.want:
            stats.notes.setdefault("nodes_short_of_examples", []).append(fill.node.task_name)
        stats.outputs += fill.added
        if lulls is not None:
            lulls.add(fill.node)
        if wait_for_parent:
            for child in fill.node.children:
                start(fills[id(child)])

    def launch(fill: NodeFill, count: int, free: int) -> int:
        """Up to `count` calls for `fill`; the slots still free, 0 once this turn has handed over its share."""
        nonlocal handover
        count = min(count, free, handover)
        handover -= count
        if count and lulls is not None:
            lulls.busy()
        for _ in range(count):
            calls[finished.watch(asyncio.ensure_future(one(fill, fill.rounds)))] = (fill, fill.rounds)
            fill.rounds += 1
            fill.in_flight += 1
        return free - count if handover else 0

    def hand_out_slots() -> None:
        free = capacity - len(calls)
        for fill in live:  # (1) surely needed
            if free <= 0:
                return
            free = launch(fill, fill.sure_calls(cfg.examples_per_request), free)
        if unread:  # what else is needed waits for what the answers in bring
            return
        # Only surely needed calls wait at the gateway for a provider slot: one that waits there when
        # a round trip's last answers are in is answered a round trip late, and so is every call
        # sent after it, however needed.
        free = min(free, provider_slots - len(calls))
        if free <= 0:
            return
        # (2) needed at the yield so far, the node likeliest to fall short first
        wanting = [(-yields.chance_short(fill.missing(), fill.in_flight), fill.index, count, fill)
                   for fill in live if (count := calls_at_yield(fill))]
        for _, _, count, fill in sorted(wanting, key=lambda w: w[:2]):
            if free <= 0:
                return
            free = launch(fill, count, free)
        if free <= 0:  # the last top-up took the last slot: no risk to weigh
            return
        # (3) beyond need: each to the node whose calls in flight are likeliest to leave it short
        risks = [(-risk, fill.index, fill) for fill in live if (risk := chance_short(fill)) > MIN_RISK]
        heapq.heapify(risks)
        while risks and free > 0:
            _, _, fill = heapq.heappop(risks)
            free = launch(fill, 1, free)
            if (risk := chance_short(fill)) > MIN_RISK:
                heapq.heappush(risks, (-risk, fill.index, fill))

    def calls_at_yield(fill: NodeFill, beyond: float = 0.0) -> int:
        """Calls the node's yield so far says it still needs (top-ups with `spare_calls` more), plus `beyond`."""
        spare = cfg.spare_calls if fill.calls else 0
        return fill.calls_for(yields.per_call(fill.calls, fill.rows), spare + beyond)

    def chance_short(fill: NodeFill) -> float:
        """0 for a node at its `calls_ahead` limit."""
        if not calls_at_yield(fill, cfg.calls_ahead):
            return 0.0
        return yields.chance_short(fill.missing(), fill.in_flight)

    def answered(fill: NodeFill, r: int, result: tuple[list[dict[str, str]], StageStats]) -> None:
        fill.answered[r] = result
        fill.answered_rows += len(result[0])
        yields.seen(len(result[0]))
        fill.calls, fill.rows = fill.calls + 1, fill.rows + len(result[0])
        fill.most = max(fill.most, len(result[0]))
        while fill.applied in fill.answered and not fill.finished():  # in round order
            rows, counts = fill.answered.pop(fill.applied)
            fill.answered_rows -= len(rows)
            stats.inputs += counts.inputs
            stats.drops.update(counts.drops)
            room = fill.max_examples - len(fill.node.examples)
            stats.drop("node_full", max(0, len(rows) - room))
            fill.node.examples.extend(rows[:room])
            fill.added += min(len(rows), room)
            ctx.reporter.advance("enrich", min(len(rows), room))
            fill.applied += 1

    def collect(tasks: list[asyncio.Future]) -> None:
        """Answers in: their slots are free at once; what they bring is read once none is waiting."""
        for task in tasks:
            if task in hooks:
                hooks.discard(task)
                task.result()
                continue
            fill, r = calls.pop(task)
            try:
                unread.append((fill, r, task.result()))
            except CallNotNeeded:
                fill.in_flight -= 1

    def read_answers() -> None:
        for fill, r, completion in unread:
            fill.in_flight -= 1
            if fill.closed:
                continue
            answered(fill, r, kept_rows(completion))
            if fill.finished():
                close(fill)
        unread.clear()

    for n in nodes:
        if n.parent is None or not wait_for_parent:
            start(fills[id(n)])
    if lulls is not None:
        hooks.add(finished.watch(asyncio.ensure_future(lulls.run())))

    try:
        while True:
            handover = HANDOVER_PER_TURN
            hand_out_slots()
            if not handover:  # slots may be left: let the calls just handed over leave first
                await asyncio.sleep(0)
                continue
            if more := finished.take():
                collect(more)
                continue
            if unread:
                read_answers()
                continue
            for fill in [f for f in live if not f.in_flight and (f.rounds >= f.max_rounds or not calls)]:
                close(fill)  # attempts spent, nothing more to come
            if not live and lulls is not None:
                lulls.finish()  # no answer left to wait for: the nodes' hooks run now
            if not live and not hooks:
                # Calls still out are past need: the stage does not wait for them, the run does
                # (they are paid, so it journals them before its summary).
                ctx.settling.update(calls)
                calls.clear()
                break
            collect(await finished.next())
    finally:  # only after a failure: what is still out is cancelled
        for task in [*calls, *hooks]:
            task.cancel()
        await asyncio.gather(*calls, *hooks, return_exceptions=True)
    return tree
