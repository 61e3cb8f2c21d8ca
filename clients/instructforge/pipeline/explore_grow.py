"""Explore-Instruct's LLM stages: `extend` grows the tree, `enrich` fills its nodes with examples.

extend (§1.6): depth by depth, every node at that depth asks for new subtasks until it has
`extend_nums[depth]` new children. Nodes that existed before get *additional* children
(backtracking); new children are decomposed at the next depth (lookahead). Fixed: a node stops after
`max_rounds_per_node` calls, never exceeds `max_child_num` children (surplus subtasks are counted as
dropped), and a full node is not asked again (the published loop spun forever on both).

enrich (§1.7): each node asks for batches of examples until it has `enrich_nums[depth]` new ones.
A node starts once its parent is done (its demonstrations come from the parent's finished
examples), its calls go out in waves sized by the yield so far (top-ups with `spare_calls` more),
and at most `max_rounds` calls.
Calls waiting for a slot are served in node order (pre-order), not arrival order.

Parallel but deterministic: new node names are registered level by level in tree order, calls are
named by node and round, and every wave is applied in round order, whatever order answers arrive in.
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


async def _call(ctx: RunContext, prompt: str, key: str, version: str, sampling: SamplingConfig,
                stats: StageStats) -> Completion:
    return await ctx.complete(GenerationRequest(model=ctx.model, prompt=prompt, sampling=sampling.to_sampling(),
                                                idempotency_key=key, run_id=ctx.run_id, template_version=version),
                              stats)


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


async def enrich_node(ctx: RunContext, recipe: ExploreInstructRecipe, domain: Domain, rules: FilterRules,
                      node: Node, want: int, pool: list[dict[str, Any]], stats: StageStats) -> int:
    """Adds at least `want` examples to `node` unless its attempts run out; returns how many it added.
    Demonstrations come from `pool` (the parent's examples; the node's own for the root)."""
    cfg = recipe.stages.enrich
    version = prompts.template_version(domain, extend=False)
    parent = node.parent or node
    children = [c.task_name for c in parent.children]
    peers = [s.task_name for s in parent.siblings]
    max_rounds, added, round_ = cfg.max_rounds(want), 0, 0
    while added < want and round_ < max_rounds and len(node.examples) < cfg.max_example_num:
        per_round = max(1.0, added / round_) if round_ else cfg.examples_per_request  # yield so far
        # A top-up sized by the mean yield falls short about half the time (answers vary, some are
        # empty), and each shortfall costs a round trip while the stage's other calls have finished.
        spare = cfg.spare_calls if round_ else 0
        wave = min(math.ceil((want - added) / per_round) + spare, max_rounds - round_)

        def prompt_for(r: int) -> str:
            rng = random.Random(f"{recipe.seed}/enrich/{node.task_name}/{r}")
            return prompts.enrich_prompt(domain, target=parent.task_name,
                                         demos=demos_from(pool, cfg.demonstrations, rng), children=children,
                                         peers=peers, subtask=node.task_name, reason=node.reason,
                                         examples=cfg.examples_per_request)

        answers = await asyncio.gather(*(
            _call(ctx, prompt_for(r), ctx.key("enrich", node.task_name, r), version, cfg.sampling or recipe.sampling,
                  stats)
            for r in range(round_, round_ + wave)))
        for completion in answers:  # in round order, whatever order they arrived in
            for text, finish in completion.samples():
                parsed = parse_examples(text, finish_reason=finish)
                stats.drop_all(d.reason for d in parsed.drops)
                rows = accept(parsed.examples, rules, domain, stats)
                room = cfg.max_example_num - len(node.examples)
                stats.drop("node_full", max(0, len(rows) - room))
                node.examples.extend(rows[:room])
                added += min(len(rows), room)
                ctx.reporter.advance("enrich", min(len(rows), room))
        round_ += wave
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
            await enrich_node(ctx, recipe, domain, rules, node, want, pool, stats)
        done[id(node)].set()
        if after_node is not None:
            await after_node(node)

    # Pre-order puts every parent before its children, so waiting on a parent never starves.
    await gather_bounded([lambda i=i, n=n: one(i, n) for i, n in enumerate(nodes)], len(nodes))
    return tree
