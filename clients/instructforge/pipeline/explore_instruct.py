"""The Explore-Instruct recipe: extend → enrich → prune → filter → sample, each checkpointed.

prune (§1.8) and filter (§1.9) are ordered CheckAndInsert calls to the dedup service instead of the
published O(n²) loops with a process pool per example: task names against the root's and the kept
names (pruned nodes are only flagged, as published), and instructions against the kept ones of the
same node (published; one call per node, made while enrich is still running) or of the whole tree
(`scope: tree`). The tree is checkpointed in the published folder layout after every stage, and the
final one is written to the run's `tree/`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace

from instructforge.pipeline.context import RunContext, gather_bounded, load_records, save_records
from instructforge.pipeline.explore_grow import as_example, enrich_stage, extend_stage
from instructforge.pipeline.filters import get_rules
from instructforge.pipeline.parsers import ParsedExample
from instructforge.pipeline.prompts.domains import Domain, custom_domain, preset
from instructforge.pipeline.protocols import CollectionSpec, NoveltyItem, NoveltyVerdict, Scope
from instructforge.pipeline.recipe import ExploreInstructRecipe
from instructforge.pipeline.records import Record
from instructforge.pipeline.sampling import sample_tree
from instructforge.pipeline.stats import StageStats
from instructforge.pipeline.tree import DomainTree, Node


def resolve_domain(recipe: ExploreInstructRecipe) -> Domain:
    cfg = recipe.domain
    if cfg.preset == "custom":
        examples = tuple(ParsedExample(e.instruction, e.input, e.output) for e in cfg.examples)
        domain = custom_domain(cfg.name or "Custom domain", cfg.description or "", examples, math=cfg.math)
    else:
        domain = preset(cfg.preset)
    return replace(domain, filter_variant=cfg.filter_variant) if cfg.filter_variant else domain


def initial_tree(recipe: ExploreInstructRecipe, domain: Domain) -> DomainTree:
    """The imported tree, or a root made from the domain (name, reason, its examples)."""
    if recipe.domain.tree:
        return DomainTree.load(recipe.domain.tree)
    examples = [as_example(e) for e in domain.root_examples]
    if recipe.domain.examples:
        examples = [e.model_dump() for e in recipe.domain.examples]
    return DomainTree.new(domain.root_name, domain.root_reason, examples)


async def prune_stage(ctx: RunContext, recipe: ExploreInstructRecipe, tree: DomainTree,
                      stats: StageStats) -> DomainTree:
    collection = ctx.collection("tasks")
    await ctx.novelty.ensure_collection(collection, CollectionSpec(
        lexical_threshold=recipe.stages.prune.threshold, references=(tree.root.raw_task_name,)))
    nodes = list(tree.level_order())[1:]
    items = [NoveltyItem(n.task_name, n.raw_task_name) for n in nodes]
    verdicts = await ctx.check_novelty(collection, items, "prune", "tasks")
    for node, verdict in zip(nodes, verdicts, strict=True):
        node.pruned = not verdict.kept
        if node.pruned:
            stats.drop("similar_task_name")
    stats.inputs, stats.outputs = len(nodes), sum(v.kept for v in verdicts)
    stats.notes["pruned"] = tree.pruned_names
    return tree


def filter_items(node: Node) -> list[NoveltyItem]:
    return [NoveltyItem(f"{node.task_name}#{i}", str(example.get("instruction", "")), node.task_name)
            for i, example in enumerate(node.examples)]


async def filter_collection(ctx: RunContext, recipe: ExploreInstructRecipe) -> str:
    cfg = recipe.stages.filter
    collection = ctx.collection("examples")
    scope = Scope.PARTITION if cfg.scope == "node" else Scope.COLLECTION
    await ctx.novelty.ensure_collection(collection, CollectionSpec(lexical_threshold=cfg.threshold,
                                                                   default_scope=scope))
    return collection


async def node_filter_verdicts(ctx: RunContext, recipe: ExploreInstructRecipe, node: Node) -> list[NoveltyVerdict]:
    """One node's verdicts under `scope: node`, which no other node's examples affect (journaled by node)."""
    collection = await filter_collection(ctx, recipe)
    return await ctx.check_novelty(collection, filter_items(node), "filter", f"node-{node.task_name}")


async def filter_stage(ctx: RunContext, recipe: ExploreInstructRecipe, tree: DomainTree,
                       stats: StageStats, asked: Collection[asyncio.Future] = ()) -> DomainTree:
    """`asked`: node verdicts already on their way (see run_explore_instruct), awaited first."""
    nodes = list(tree.level_order())
    if recipe.stages.filter.scope == "node":
        # Usually judged already, node by node as enrich finished them (see run_explore_instruct):
        # then every answer here comes from the run's journal.
        await asyncio.gather(*asked)
        per_node = await gather_bounded([lambda n=n: node_filter_verdicts(ctx, recipe, n) for n in nodes], 8)
        verdicts = iter([v for node_verdicts in per_node for v in node_verdicts])
    else:  # across the whole tree: one ordered sequence, level order
        collection = await filter_collection(ctx, recipe)
        items = [item for node in nodes for item in filter_items(node)]
        verdicts = iter(await ctx.check_novelty(collection, items, "filter", "examples"))
    dropped: list[tuple[Record, str]] = []
    inputs = 0
    for node in nodes:
        kept = []
        for example in node.examples:
            inputs += 1
            if next(verdicts).kept:
                kept.append(example)
            else:
                dropped.append((Record.from_dict(example, task=node.path), "near_duplicate_instruction"))
        node.examples = kept
    stats.inputs, stats.outputs = inputs, inputs - len(dropped)
    stats.drop("near_duplicate_instruction", len(dropped))
    ctx.state.put_dropped("filter", dropped)
    return tree


def sample_stage(recipe: ExploreInstructRecipe, tree: DomainTree, stats: StageStats) -> list[Record]:
    cfg = recipe.stages.sample
    result = sample_tree(tree, cfg.example_num, random.Random(recipe.seed), max_depth=cfg.max_depth,
                         exclude_pruned=cfg.exclude_pruned, share_cap=cfg.share_cap)
    records: dict[str, Record] = {}
    for node, example in result.picked:
        record = Record.from_dict(example, task=node.path).with_meta(node=node.task_name, depth=node.depth)
        if record.id in records:
            stats.drop("duplicate_example")
        else:
            records[record.id] = record
    stats.inputs = sum(len(n.examples) for n in tree.nodes())
    stats.outputs = len(records)
    stats.drop("not_sampled", stats.inputs - len(result.picked))
    stats.notes.update(eligible_nodes=result.eligible_nodes, excluded_pruned=result.excluded_pruned,
                       cut_to_n=result.cut, topped_up_from_root=result.topped_up_from_root,
                       topped_up_from_others=result.topped_up_from_others, shortfall=result.shortfall)
    return list(records.values())


def _tree_records(tree: DomainTree) -> list[Record]:
    return [Record.from_dict(e, task=n.path) for n in tree.nodes() for e in n.examples]


async def run_explore_instruct(ctx: RunContext) -> list[Record]:
    """All enabled stages; returns the final dataset (also in `dataset.jsonl`, the tree in `tree/`)."""
    recipe = ctx.state.recipe
    assert isinstance(recipe, ExploreInstructRecipe)
    domain = resolve_domain(recipe)
    rules = get_rules(domain.filter_variant)
    stages = recipe.stages
    # The starting tree is built only when a stage needs it: a resumed run starts from its latest
    # checkpoint, and the folder a tree was imported from may be gone by then.
    tree: DomainTree | None = None

    async def tree_stage(name: str, body: Callable[[DomainTree, StageStats], Awaitable[DomainTree]],
                         done: Collection[Node] = ()) -> None:
        """`done`: nodes whose checkpoint file the stage already wrote (see DomainTree.save)."""
        nonlocal tree
        tree = await ctx.stage(name, lambda s: body(tree if tree is not None else initial_tree(recipe, domain), s),
                               lambda t, path: t.save(path, done), DomainTree.load)

    if stages.extend.enabled:
        await tree_stage("extend", lambda t, s: extend_stage(ctx, recipe, t, domain, rules, s))
    # Under `scope: node` a node's filter verdicts depend on that node alone, so each is asked for
    # once enrich finishes the node, in a lull while other nodes still wait on the LLM; the filter
    # stage waits for those still on their way, then finds them all in the journal. Enrich does not
    # wait for them: the verdicts of the nodes it finished last (~6 ms of the dedup service each,
    # 30-70 ms in all at 10k examples, pipeline_bench) would only hold up its end, and prune needs
    # none of them. (Prune only flags nodes: it changes no examples.)
    prefilter = stages.filter.enabled and stages.filter.scope == "node"
    asked: list[asyncio.Future] = []
    enriched: set[Node] = set()

    async def after_enrich(node: Node) -> None:
        # Its checkpoint file too, while the stage waits on the LLM (a lull: see enrich_stage), not
        # with every other node's after the last answer (~40 ms for 10k examples).
        DomainTree.save_node(ctx.state.checkpoint_path("enrich"), node)
        enriched.add(node)
        if prefilter:
            asked.append(asyncio.ensure_future(node_filter_verdicts(ctx, recipe, node)))

    try:
        if stages.enrich.enabled:
            await tree_stage("enrich", lambda t, s: enrich_stage(ctx, recipe, t, domain, rules, s,
                                                                 after_node=after_enrich), enriched)
            ctx.state.put_records("enrich", _tree_records(tree), "kept")
        if stages.prune.enabled:
            await tree_stage("prune", lambda t, s: prune_stage(ctx, recipe, t, s))
        if stages.filter.enabled:
            await tree_stage("filter", lambda t, s: filter_stage(ctx, recipe, t, s, asked))
    finally:  # only after a failure is one still on its way: the journal has what came back
        for task in asked:
            task.cancel()
        await asyncio.gather(*asked, return_exceptions=True)
    if tree is None:
        tree = initial_tree(recipe, domain)
    if stages.sample.enabled:
        async def sample(s: StageStats) -> list[Record]:
            return sample_stage(recipe, tree, s)

        records = await ctx.stage("sample", sample, save_records, load_records)
    else:
        records = _tree_records(tree)
    tree.save(ctx.state.folder / "tree")
    ctx.state.put_records("final", records, "final")
    save_records(records, ctx.state.folder / "dataset")
    return records
