"""Recipes: published defaults, presets, errors that name the key, the JSON schema, the dry-run plan."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from instructforge.pipeline import recipe as recipe_module
from instructforge.pipeline.plan import plan_recipe
from instructforge.pipeline.recipe import (
    ExploreInstructRecipe,
    SelfInstructRecipe,
    load_recipe,
    parse_recipe,
    recipe_json_schema,
)
from instructforge.pipeline.recipe_errors import RecipeError
from instructforge.pipeline.tree import DomainTree

RECIPES = Path(recipe_module.__file__).parent / "recipes"


def problems(text: str) -> list[str]:
    text = textwrap.dedent(text)
    with pytest.raises(RecipeError) as caught:
        parse_recipe(yaml.safe_load(text), text=text)
    return caught.value.problems


def test_self_instruct_defaults_are_the_hf_variants():
    r = parse_recipe({"recipe": "self_instruct"})
    assert isinstance(r, SelfInstructRecipe)
    g = r.stages.generate
    assert (r.format, r.triggers.output, r.keep_programming) == ("instruction_output", "Output", False)
    assert (g.num_instructions_to_generate, g.num_prompt_instructions, g.num_prompt_synthetic_instructions,
            g.request_batch_size, g.threshold, g.filter_variant) == (100, 8, 2, 4, 0.7, "hf")
    s = g.sampling
    assert (s.temperature, s.top_p, s.max_tokens, s.repetition_penalty, s.stop) == (
        0.2, 0.9, 4096, 1.2, ["\n20", "20.", "20 ."])
    sc = r.stages.self_consistency
    assert (sc.enabled, sc.num_trials, sc.num_prompt_instructions, sc.threshold, sc.metric) == (False, 8, 8, 0.5, "cosine")
    assert (r.stages.uniqueness.enabled, r.stages.uniqueness.threshold) == (False, 0.5)
    assert r.trigger_words == "default" and parse_recipe({"recipe": "self_instruct", "trigger_words": "better"}).triggers.output == "Solution"


def test_alpaca_preset_and_overrides_on_top_of_it():
    r = parse_recipe({"recipe": "self_instruct", "preset": "alpaca",
                      "stages": {"generate": {"sampling": {"temperature": 0.7}}}})
    g = r.stages.generate
    assert r.format == "instruction_input_output" and r.with_input
    assert (g.num_prompt_instructions, g.num_prompt_synthetic_instructions, g.request_batch_size, g.filter_variant) == (
        3, 0, 5, "alpaca")
    assert (g.sampling.temperature, g.sampling.top_p, g.sampling.max_tokens, g.sampling.repetition_penalty) == (
        0.7, 1.0, 3072, None)


def test_explore_defaults_are_the_published_ones():
    r = parse_recipe({"recipe": "explore_instruct"})
    assert isinstance(r, ExploreInstructRecipe)
    st = r.stages
    assert (st.extend.max_child_num, st.extend.min_extend_num, st.extend.examples_per_subtask, st.extend.demonstrations) == (
        12, 3, 2, 2)
    assert (st.enrich.examples_per_request, st.enrich.max_example_num, st.enrich.enrich_nums) == (10, 60000, [0, 50])
    assert (st.prune.threshold, st.filter.threshold, st.filter.scope) == (0.7, 0.7, "node")
    assert (st.sample.example_num, st.sample.max_depth, st.sample.exclude_pruned, st.sample.share_cap) == (
        50000, 3, False, 500)
    assert (r.sampling.temperature, r.sampling.top_p, r.seed, r.domain.preset) == (1.0, 1.0, 42, "rewriting")


def test_errors_name_the_key_path_and_line():
    found = problems("""\
        recipe: explore_instruct
        stages:
          extend:
            max_depth: 0
            max_rounds_per_nod: 3
          filter:
            scope: forest
            threshold: 1.5
        """)
    assert found == [
        "line 4: stages.extend.max_depth: must be ≥ 1 (got 0)",
        "line 5: stages.extend.max_rounds_per_nod: unknown key (did you mean 'max_rounds_per_node'?)",
        "line 7: stages.filter.scope: must be one of 'node' or 'tree' (got 'forest')",
        "line 8: stages.filter.threshold: must be ≤ 1 (got 1.5)",
    ]


def test_per_depth_lists_must_match_max_depth():
    assert problems("""\
        recipe: explore_instruct
        stages:
          extend: {max_depth: 3, extend_nums: [5, 3]}
        """) == ["line 3: stages.extend.extend_nums: needs one entry per depth 0..2 (max_depth is 3), got 2"]
    assert problems("""\
        recipe: explore_instruct
        stages:
          extend: {max_depth: 1, extend_nums: [5]}
          enrich: {enrich_nums: [0, 10, 20]}
        """) == ["line 4: stages.enrich.enrich_nums: needs one entry per depth 0..1 (max_depth is 1), got 3"]
    assert problems("recipe: explore_instruct\nstages: {extend: {extend_nums: [-1]}}\n") == [
        "line 2: stages.extend.extend_nums[0]: must be ≥ 0 (got -1)"]


def test_other_errors():
    assert problems("recipe: selfinstruct\n") == [
        "line 1: recipe: must be one of 'self_instruct', 'explore_instruct' (got 'selfinstruct')"]
    assert problems("recipe: self_instruct\nname: 'bad name!'\n")[0].startswith("line 2: name: must match")
    assert problems("recipe: self_instruct\nstages: {generate: {num_prompt_synthetic_instructions: 9}}\n") == [
        "line 2: stages.generate: num_prompt_synthetic_instructions (9) must be ≤ num_prompt_instructions (8)"]
    assert problems("recipe: explore_instruct\ndomain: {preset: custom}\n") == [
        "line 2: domain: a custom domain needs `name` and `description` (its root task), or a `tree`"]
    assert problems("recipe: self_instruct\nconcurrency: many\n") == ["line 2: concurrency: must be a whole number (got 'many')"]


def test_yaml_syntax_errors_and_non_mappings(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("recipe: self_instruct\nstages: [\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: invalid recipe\n  line \d+: not valid YAML"):
        load_recipe(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="cannot read the recipe"):
        load_recipe(tmp_path / "missing.yaml")


def test_relative_paths_are_relative_to_the_recipe_file(tmp_path):
    (tmp_path / "seeds.jsonl").write_text("")
    path = tmp_path / "sub" / "r.yaml"
    path.parent.mkdir()
    path.write_text("recipe: self_instruct\nseed_tasks: ../seeds.jsonl\n")
    assert load_recipe(path).seed_tasks == str((tmp_path / "seeds.jsonl").resolve())


def test_json_schema_covers_both_recipes():
    schema = recipe_json_schema()
    text = json.dumps(schema)
    assert schema["title"] == "InstructForge recipe"
    for key in ("max_rounds_per_node", "exclude_pruned", "num_prompt_synthetic_instructions", "trigger_words"):
        assert key in text
    assert {m["$ref"].rsplit("/", 1)[-1] for m in schema["oneOf"]} == {"SelfInstructRecipe", "ExploreInstructRecipe"}


def test_dry_run_plan_for_explore():
    r = parse_recipe({"recipe": "explore_instruct", "stages": {
        "extend": {"max_depth": 2, "extend_nums": [4, 3], "max_rounds_per_node": 5},
        "enrich": {"enrich_nums": [0, 100, 25], "max_rounds_factor": 2},
        "sample": {"example_num": 200}}})
    plan = plan_recipe(r)
    by_name = {s.name: s for s in plan.stages}
    assert list(by_name) == ["extend", "enrich", "prune", "filter", "sample"]
    assert (by_name["extend"].expected_calls, by_name["extend"].max_calls) == (1 + 4, 5 * 5)
    # 4 nodes at depth 1 need 10 calls each, 12 at depth 2 need 3 each; bound = ceil(2*ideal)+2 per node.
    assert by_name["enrich"].expected_calls == 4 * 10 + 12 * 3
    assert by_name["enrich"].max_calls == 4 * 22 + 12 * 8
    assert plan.expected_calls == 5 + 76 and plan.expected_examples == 200
    lines = plan.lines()
    assert lines[0] == "Plan for explore_instruct recipe 'run' (model: chosen from the environment)"
    assert "total: 81 LLM calls expected" in lines[-1]


def test_dry_run_plan_counts_an_imported_trees_nodes(tmp_path):
    tree = DomainTree.new("Root")
    for name in ("a", "b"):
        tree.add_child(tree.root, name)
    full = tree.add_child(tree.root, "full")
    for i in range(12):
        tree.add_child(full, f"f{i}")
    tree.save(tmp_path)
    r = parse_recipe({"recipe": "explore_instruct", "domain": {"tree": str(tmp_path)},
                      "stages": {"extend": {"max_depth": 2, "extend_nums": [2, 2]}, "enrich": {"enrich_nums": [0, 0, 0]}}})
    extend = plan_recipe(r).stages[0]
    # Root: 3 more children (a call asks for at least 3); depth 1: a, b, and the 3 new ones get 3
    # each, full (at the cap of 12) none.
    assert extend.expected_calls == 1 + 5
    assert extend.what == "new subtasks depth 0: +3, depth 1: +15"


def test_dry_run_plan_for_self_instruct():
    r = parse_recipe({"recipe": "self_instruct", "stages": {"generate": {"num_instructions_to_generate": 100},
                                                            "self_consistency": {"enabled": True, "num_trials": 2}}})
    plan = plan_recipe(r)
    gen, sc = plan.stages
    assert (gen.expected_calls, gen.max_calls) == (12, 200)  # ceil(100 / 11) = 10, in batches of 4
    assert (sc.expected_calls, sc.max_calls) == (200, 200)


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_example_recipes_validate_and_plan(path):
    recipe = load_recipe(path)
    plan = plan_recipe(recipe)
    assert plan.expected_calls > 0 and plan.max_calls >= plan.expected_calls
