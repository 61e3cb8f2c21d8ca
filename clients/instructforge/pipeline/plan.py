"""`iforge run --dry-run`: what a recipe will do and how many LLM calls it will make, calling nothing.

Two numbers per stage: `expected` assumes every answer is fully usable (the fewest calls that can
do the job), `at_most` is the bound the attempt limits enforce, so a run can never cost more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from instructforge.pipeline.prompts.self_instruct import LIST_LENGTH
from instructforge.pipeline.recipe import ExploreInstructRecipe, SelfInstructRecipe
from instructforge.pipeline.recipe_errors import RecipeError
from instructforge.pipeline.tree import DomainTree, TreeFormatError


@dataclass
class StagePlan:
    name: str
    what: str
    expected_calls: int = 0
    max_calls: int = 0


@dataclass
class Plan:
    recipe: str
    name: str
    model: str
    stages: list[StagePlan] = field(default_factory=list)
    expected_examples: int = 0

    @property
    def expected_calls(self) -> int:
        return sum(s.expected_calls for s in self.stages)

    @property
    def max_calls(self) -> int:
        return sum(s.max_calls for s in self.stages)

    def lines(self) -> list[str]:
        out = [f"Plan for {self.recipe} recipe {self.name!r} (model: {self.model})"]
        width = max(len(s.name) for s in self.stages) if self.stages else 0
        for s in self.stages:
            calls = (f"LLM calls: {s.expected_calls:,} expected, at most {s.max_calls:,}" if s.max_calls
                     else "no LLM calls")
            out.append(f"  {s.name:<{width}}  {s.what}  [{calls}]")
        out.append(f"  total: {self.expected_calls:,} LLM calls expected (every answer fully usable), "
                   f"at most {self.max_calls:,}; about {self.expected_examples:,} examples out")
        return out


def plan_recipe(recipe: SelfInstructRecipe | ExploreInstructRecipe) -> Plan:
    plan = Plan(recipe.recipe, recipe.name, recipe.model or "chosen from the environment")
    if isinstance(recipe, SelfInstructRecipe):
        _plan_self_instruct(recipe, plan)
    else:
        _plan_explore(recipe, plan)
    return plan


def _plan_self_instruct(recipe: SelfInstructRecipe, plan: Plan) -> None:
    g = recipe.stages.generate
    per_prompt = max(1, LIST_LENGTH - 1 - g.num_prompt_instructions)
    expected = math.ceil(g.num_instructions_to_generate / per_prompt)
    expected = min(g.request_limit, math.ceil(expected / g.request_batch_size) * g.request_batch_size)
    plan.stages.append(StagePlan(
        "generate", f"{g.num_instructions_to_generate:,} instructions, {g.num_prompt_instructions} demonstrations "
        f"per prompt, batches of {g.request_batch_size}, ROUGE-L > {g.threshold} dropped", expected, g.request_limit))
    target = g.num_instructions_to_generate
    if recipe.stages.uniqueness.enabled:
        plan.stages.append(StagePlan("uniqueness", f"embedding cosine ≥ {recipe.stages.uniqueness.threshold} dropped"))
    if (v := recipe.stages.verify).enabled:
        limit = f"{v.timeout_ms:,} ms" if v.timeout_ms else "the verifier's default time limit"
        keep = "failing ones dropped" if v.keep == "passed" else "every record kept, verdict recorded"
        plan.stages.append(StagePlan("verify", f"code in {v.code_field} run against {v.test_form} tests from "
                                     f"{v.tests_field} in the verifier ({limit}); {keep}"))
    if (sc := recipe.stages.self_consistency).enabled:
        plan.stages.append(StagePlan("self_consistency", f"{sc.num_trials} back-translations per instruction, "
                                     f"keep when best {sc.metric} ≥ {sc.threshold}",
                                     sc.num_trials * target, sc.num_trials * target))
    plan.expected_examples = target


def _plan_explore(recipe: ExploreInstructRecipe, plan: Plan) -> None:
    st = recipe.stages
    # Child counts per node, by depth, of the tree the run starts from.
    levels: list[list[int]] = [[0]]
    if recipe.domain.tree:
        try:
            tree = DomainTree.load(recipe.domain.tree)
        except TreeFormatError as e:
            raise RecipeError("recipe", [f"domain.tree: {e}"]) from None
        levels = []
        for node in tree.level_order():
            while len(levels) <= node.depth:
                levels.append([])
            levels[node.depth].append(len(node.children))
    if st.extend.enabled:
        cfg, expected, most, steps = st.extend, 0, 0, []
        for depth in range(cfg.max_depth):
            want, new = cfg.extend_nums[depth], 0
            for children in levels[depth] if depth < len(levels) else []:
                # A call asks for at least min_extend_num, and all it returns is kept (up to the cap).
                adds = min(max(want, cfg.min_extend_num), max(0, cfg.max_child_num - children)) if want else 0
                new += adds
                expected += 1 if adds else 0
                most += cfg.max_rounds_per_node if adds else 0
            while len(levels) <= depth + 1:
                levels.append([])
            levels[depth + 1] += [0] * new
            steps.append(f"depth {depth}: +{new}")
        plan.stages.append(StagePlan("extend", "new subtasks " + ", ".join(steps), expected, most))
    nodes = sum(len(level) for level in levels)
    examples = 0
    if st.enrich.enabled:
        nums, expected, most = st.enrich.enrich_nums or [], 0, 0
        for depth, level in enumerate(levels):
            want = nums[depth] if depth < len(nums) else 0
            if want:
                examples += want * len(level)
                expected += len(level) * math.ceil(want / st.enrich.examples_per_request)
                most += len(level) * st.enrich.max_rounds(want)
        plan.stages.append(StagePlan("enrich", f"{nodes:,} nodes, {examples:,} new examples", expected, most))
    if st.prune.enabled:
        plan.stages.append(StagePlan("prune", f"task names with ROUGE-L > {st.prune.threshold} flagged"))
    if st.filter.enabled:
        plan.stages.append(StagePlan("filter", f"instructions with ROUGE-L > {st.filter.threshold} within "
                                     f"each {'node' if st.filter.scope == 'node' else 'tree'} dropped"))
    if st.sample.enabled:
        plan.stages.append(StagePlan("sample", f"{st.sample.example_num:,} examples from depths ≤ "
                                     f"{st.sample.max_depth}{', pruned nodes left out' if st.sample.exclude_pruned else ''}"))
        examples = min(examples, st.sample.example_num) if examples else st.sample.example_num
    plan.expected_examples = examples
