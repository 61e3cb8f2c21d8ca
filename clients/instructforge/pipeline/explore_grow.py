"""Explore-Instruct's LLM stages: `extend` grows the tree, `enrich` fills its nodes with examples.

extend (§1.6): depth by depth, every node at that depth asks for new subtasks until it has
`extend_nums[depth]` new children. Nodes that existed before get *additional* children
(backtracking); new children are decomposed at the next depth (lookahead). Fixed: a node stops after
`max_rounds_per_node` calls, never exceeds `max_child_num` children (surplus subtasks are counted as
dropped), and a full node is not asked again (the published loop spun forever on both).

enrich (§1.7): each node asks for batches of examples until it has `enrich_nums[depth]` new ones.
A node starts once its parent is done (its demonstrations come from the parent's finished
examples), its calls go out in waves sized by the yield so far (top-ups with `spare_calls` more;
while a slot would sit idle, up to `calls_ahead` more), and at most `max_rounds` calls.
Calls waiting for a slot are served in node order (pre-order), not arrival order; calls sent ahead
of need after every other, until the rest of their wave is back (then they join the node's next
wave, in its place). A prompt is built only once its call has a slot.

Parallel but deterministic: new node names are registered level by level in tree order, calls are
named by node and round, and a node keeps its answers in round order up to the round that completes
its need, whatever order answers arrive in and however many calls went out ahead of it.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from instructforge.pipeline.calls import call_priority
from instructforge.pipeline.context import RunContext, gather_bounded
from instructforge.pipeline.filters import FilterRules, ensure_boxed
from instructforge.pipeline.parsers import ParsedExample, parse_examples, parse_subtasks
from instructforge.pipeline.prompts import explore as prompts
from instructforge.pipeline.prompts.domains import Domain
from instructforge.pipeline.protocols import Completion, GenerationRequest
from instructforge.pipeline.recipe import ExploreInstructRecipe, SamplingConfig
from instructforge.pipeline.stats import StageStats
from instructforge.pipeline.tree import DomainTree, Node


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

    def seen(self, rows: int) -> None:
        self.calls, self.rows = self.calls + 1, self.rows + rows

    def per_call(self, node_calls: int = 0, node_rows: int = 0) -> float:
        stage = (self.rows + self.WEIGHT * self.prior) / (self.calls + self.WEIGHT)
        return max(0.5, (node_rows + self.WEIGHT * stage) / (node_calls + self.WEIGHT))


async def enrich_node(ctx: RunContext, recipe: ExploreInstructRecipe, domain: Domain, rules: FilterRules,
                      node: Node, want: int, pool: list[dict[str, Any]], stats: StageStats,
                      yields: YieldEstimate, surplus: set[asyncio.Task]) -> int:
    """Adds at least `want` examples to `node` unless its attempts run out; returns how many it added.
    Demonstrations come from `pool` (the parent's examples; the node's own for the root).

    Calls are named by round (0, 1, ...). The node keeps the answers of rounds 0..K in round order, K
    being the first round by which it has `want`: whatever order answers arrive in, and however many
    calls went out ahead of need, the same rounds give the same examples (calls beyond K are paid but
    unused, and left in `surplus`). A wave asks for what the yield so far says is missing, and the next
    wave waits until all of it is back. While the node waits and a call slot would sit idle, it adds up
    to `calls_ahead` calls beyond that to the wave, behind every other call waiting for a slot, so that
    a short answer does not cost it another round trip."""
    cfg = recipe.stages.enrich
    version = prompts.template_version(domain, extend=False)
    parent = node.parent or node
    children = [c.task_name for c in parent.children]
    peers = [s.task_name for s in parent.siblings]
    max_rounds = cfg.max_rounds(want)
    sampling = cfg.sampling or recipe.sampling
    slots = ctx.call_slots()
    priority = call_priority.get()

    def prompt_for(r: int) -> str:
        rng = random.Random(f"{recipe.seed}/enrich/{node.task_name}/{r}")
        return prompts.enrich_prompt(domain, target=parent.task_name, demos=demos_from(pool, cfg.demonstrations, rng),
                                     children=children, peers=peers, subtask=node.task_name, reason=node.reason,
                                     examples=cfg.examples_per_request)

    def finished() -> bool:
        return added >= want or applied >= max_rounds or len(node.examples) >= cfg.max_example_num

    async def one(r: int) -> tuple[list[dict[str, str]], StageStats]:
        """Round `r`'s kept rows, and its counts, held apart until the node knows it keeps the round."""
        completion = await _call(ctx, lambda: sent.add(r) or prompt_for(r), ctx.key("enrich", node.task_name, r),
                                 version, sampling, stats, unless=finished)
        rows, counts = [], StageStats("enrich")
        for text, finish in completion.samples():
            parsed = parse_examples(text, finish_reason=finish)
            counts.drop_all(d.reason for d in parsed.drops)
            rows += accept(parsed.examples, rules, domain, counts)
        return rows, counts

    in_flight: dict[asyncio.Task, int] = {}
    sent: set[int] = set()  # rounds whose call went out (a replayed or unsent one does not)
    ahead_of_need: set[int] = set()  # rounds asked for beyond need, queued behind every other call
    answered: dict[int, tuple[list[dict[str, str]], StageStats]] = {}
    added = applied = rounds = node_calls = node_rows = 0

    def launch(r: int, behind_others: bool) -> None:
        token = call_priority.set((int(behind_others), *priority))
        try:
            in_flight[asyncio.ensure_future(one(r))] = r
        finally:
            call_priority.reset(token)
        (ahead_of_need.add if behind_others else ahead_of_need.discard)(r)

    def send(count: int, behind_others: bool = False) -> None:
        nonlocal rounds
        while count > 0 and rounds < max_rounds:
            launch(rounds, behind_others)
            rounds, count = rounds + 1, count - 1

    def still_queued_ahead(r: int) -> bool:
        return r in ahead_of_need and r not in sent

    def requeue_ahead() -> int:
        """Calls sent ahead of need that still wait for a slot when the rest of their wave is back become
        the next wave's first calls, queued in its place: left behind every other call, they would hold
        the node's next wave back for as long as the whole queue takes. Returns how many."""
        waiting = [(task, r) for task, r in in_flight.items() if still_queued_ahead(r)]
        for task, r in waiting:
            del in_flight[task]
            task.cancel()  # it has no slot yet, so nothing was sent: the same round is queued again
            surplus.add(task)
            launch(r, behind_others=False)
        return len(waiting)

    try:
        while not finished():
            per_call = yields.per_call(node_calls, node_rows)
            ahead = sum(len(rows) for rows, _ in answered.values())
            if all(map(still_queued_ahead, in_flight.values())):
                # The wave is back: ask for what is still missing, at the yield so far.
                missing = math.ceil((want - added - ahead) / per_call) + (cfg.spare_calls if node_calls else 0)
                send(missing - requeue_ahead())
                if not in_flight:
                    break
            waits: set[asyncio.Future] = set(in_flight)
            idle = None
            if slots is not None and rounds < max_rounds and \
                    want - added - ahead - per_call * len(in_flight) > -per_call * cfg.calls_ahead:
                idle = asyncio.ensure_future(slots.idle.wait())
                waits.add(idle)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if idle is not None:
                if idle in done:
                    done.discard(idle)
                    send(1, behind_others=True)  # a slot would sit idle: use it on a likely top-up
                else:
                    idle.cancel()
            for task in done:
                answered[in_flight.pop(task)] = result = task.result()
                yields.seen(len(result[0]))
                node_calls, node_rows = node_calls + 1, node_rows + len(result[0])
            while applied in answered and not finished():  # in round order, whatever order they arrived in
                rows, counts = answered.pop(applied)
                stats.inputs += counts.inputs
                stats.drops.update(counts.drops)
                room = cfg.max_example_num - len(node.examples)
                stats.drop("node_full", max(0, len(rows) - room))
                node.examples.extend(rows[:room])
                added += min(len(rows), room)
                ctx.reporter.advance("enrich", min(len(rows), room))
                applied += 1
    finally:
        surplus.update(in_flight)
    unused = sum(1 for r in sent if r >= applied)  # paid for, past the rounds the node kept
    if unused:
        stats.notes["unused_calls"] = stats.notes.get("unused_calls", 0) + unused
    if added < want:
        stats.notes.setdefault("nodes_short_of_examples", []).append(node.task_name)
    stats.outputs += added
    return added


async def enrich_stage(ctx: RunContext, recipe: ExploreInstructRecipe, tree: DomainTree, domain: Domain,
                       rules: FilterRules, stats: StageStats,
                       after_node: Callable[[Node], Awaitable[None]] | None = None) -> DomainTree:
    """Every node enriched; `after_node` runs on each as soon as its examples are final."""
    cfg = recipe.stages.enrich
    nums = cfg.enrich_nums or []
    nodes = list(tree.nodes())
    done = {id(n): asyncio.Event() for n in nodes}
    beyond = [n.task_name for n in nodes if n.depth >= len(nums)]
    if beyond:
        stats.notes["deeper_than_enrich_nums"] = beyond
    ctx.reporter.advance("enrich", 0, total=sum(nums[n.depth] for n in nodes if n.depth < len(nums)))

    # Published order: a parent is enriched before its children, whose demonstrations it then
    # supplies. "parent_explored" draws them from what the parent had before enrich instead, so every
    # node can start at once (more parallelism, less varied demonstrations).
    wait_for_parent = cfg.demo_pool == "parent_enriched"
    before = {} if wait_for_parent else {id(n): list(n.examples) for n in nodes}
    yields = YieldEstimate(cfg.examples_per_request)
    surplus: set[asyncio.Task] = set()

    async def one(index: int, node: Node) -> None:
        # Calls waiting for a slot go earlier nodes first: a node's top-up then runs beside later
        # nodes' first waves instead of queueing behind all of them, so nodes finish one after the
        # other and only the last few leave their dependent rounds for the end of the stage.
        call_priority.set((index,))
        source = node.parent or node
        if wait_for_parent and node.parent is not None:
            await done[id(node.parent)].wait()
        want = nums[node.depth] if node.depth < len(nums) else 0
        if want:
            pool = source.examples if wait_for_parent else before[id(source)]
            await enrich_node(ctx, recipe, domain, rules, node, want, pool, stats, yields, surplus)
        done[id(node)].set()
        if after_node is not None:
            await after_node(node)

    # Pre-order puts every parent before its children, so waiting on a parent never starves.
    try:
        await gather_bounded([lambda i=i, n=n: one(i, n) for i, n in enumerate(nodes)], len(nodes))
    finally:
        # Calls a finished node sent ahead of need: unsent ones give way (CallNotNeeded); answers on
        # their way are not waited for (the gateway still keeps them under their keys).
        for task in surplus:
            task.cancel()
        await asyncio.gather(*surplus, return_exceptions=True)
    return tree
