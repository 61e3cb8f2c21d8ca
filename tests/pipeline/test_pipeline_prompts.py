"""Prompts follow the published structures, and what they show the model our parsers read back."""

from __future__ import annotations

import re

import pytest

from instructforge.pipeline.parsers import ParsedExample, Triggers, parse_examples, parse_numbered_tasks
from instructforge.pipeline.prompts import explore, self_instruct
from instructforge.pipeline.prompts.domains import PRESETS, custom_domain, preset
from instructforge.pipeline.protocols import FinishReason
from instructforge.pipeline.seed_tasks import load_seed_tasks

DEMOS = [self_instruct.Demo(t.instruction, t.input, t.output) for t in load_seed_tasks()[:8]]


@pytest.mark.parametrize("with_input", [True, False])
def test_self_instruct_prompt_layout(with_input):
    t = Triggers("Instruction", "Input", "Output")
    prompt = self_instruct.generation_prompt(DEMOS, t, with_input=with_input)
    header, *blocks = prompt.split("\n###\n")
    assert "List of 20 tasks:" in header
    assert len(blocks) == 9 and blocks[-1] == "9. Instruction:\n"
    for k, block in enumerate(blocks[:-1], 1):
        assert block.startswith(f"{k}. Instruction:\n")
        assert (f"{k}. Input:\n" in block) is with_input
        assert f"{k}. Output:\n" in block


def test_bi_prompt_folds_the_input_under_the_instruction():
    demo = self_instruct.Demo("Fix the bug.", "x = 1 +", "x = 1 + 1")
    assert self_instruct.render_demo(3, demo, Triggers(), with_input=False) == (
        "3. Instruction:\nFix the bug.\nx = 1 +\n\n3. Output:\nx = 1 + 1")
    assert "<noinput>" in self_instruct.render_demo(1, self_instruct.Demo("Hi.", "", "Hello"), Triggers(),
                                                    with_input=True)


def test_trigger_words_reach_header_demos_and_the_open_item():
    t = Triggers("Problem", "Data", "Solution")
    prompt = self_instruct.generation_prompt(DEMOS[:2], t, with_input=True)
    assert prompt.endswith("3. Problem:\n")
    assert "1. Solution:\n" in prompt and "1. Data:\n" in prompt
    assert "Instruction" not in prompt


@pytest.mark.parametrize("with_input", [True, False])
def test_demonstrations_parse_back(with_input):
    """The prompt's own demonstrations, read as if a model had written them, come back intact."""
    prompt = self_instruct.generation_prompt(DEMOS, Triggers(), with_input=with_input)
    body = prompt.split("\n###\n", 1)[1]
    parsed = parse_numbered_tasks(body, first_index=1, finish_reason=FinishReason.STOP, with_input=with_input)
    assert len(parsed.examples) == 8
    for demo, example in zip(DEMOS, parsed.examples, strict=True):
        if with_input:
            assert example == ParsedExample(demo.instruction, demo.input, demo.output)
        else:
            assert example.instruction == demo.instruction + (f"\n{demo.input}" if demo.input else "")
            assert example.output == demo.output


def test_back_translation_prompt_puts_the_output_first():
    prompt = self_instruct.back_translation_prompt(DEMOS[:4], "42", Triggers())
    assert prompt.endswith("5. Output:\n42\n\n5. Instruction:\n")
    assert "1. Output:" in prompt and prompt.index("1. Output:") < prompt.index("1. Instruction:")
    assert self_instruct.stop_words() == ("\n20", "20.", "20 .")


def test_template_versions_change_with_the_template():
    t = Triggers()
    versions = {self_instruct.template_version(t, with_input=True), self_instruct.template_version(t, with_input=False),
                self_instruct.template_version(Triggers(output="Solution"), with_input=True),
                self_instruct.template_version(t, with_input=False, inverse=True)}
    versions |= {explore.template_version(d, extend=e) for d in PRESETS.values() for e in (True, False)}
    assert len(versions) == 4 + 2 * len(PRESETS)


ROOT_DEMOS = preset("rewriting").root_examples


def test_extend_prompt_sections_in_the_published_order():
    prompt = explore.extend_prompt(preset("rewriting"), target="help_with_rewriting_text", demos=ROOT_DEMOS,
                                   children=["paraphrase"], peers=[], max_child_num=12, extend_num=5,
                                   examples_per_subtask=2)
    order = ["Requirements:", "New subtask: ____", "Target task: help_with_rewriting_text", "Examples:\n###\n1. Instruction:",
             'already has: ["paraphrase"]', "peer tasks of this target task: []", "12 diverse", "has 1 now",
             "Propose 5 new subtasks", "give 2 examples of each:"]
    at = 0
    for part in order:  # each part found after the previous one
        at = prompt.index(part, at) + len(part)


def test_enrich_prompt_ends_with_the_subtask():
    prompt = explore.enrich_prompt(preset("brainstorming"), target="brainstorming_ideas", demos=[],
                                   children=["party_themes", "gift_ideas"], peers=["x"], subtask="gift_ideas",
                                   reason="Gifts are hard.", examples=10)
    assert prompt.endswith("Write 10 examples of the following subtask:\n\nNew subtask: gift_ideas\n"
                           "Reason: Gifts are hard.\n")
    assert "Examples:\n###" not in prompt  # no demonstrations, no demonstration block
    assert "<noinput>" in prompt  # brainstorming allows instructions without input


def test_domain_specific_rules():
    math = explore.base_text(preset("math"), extend=False)
    assert "LaTeX" in math and "\\boxed{}" in math and "Explanation:" in math
    rewriting = explore.base_text(preset("rewriting"), extend=True)
    assert "<noinput>" not in rewriting.split("layout")[0].replace("never a placeholder", "")
    assert re.search(r"^1\. Instruction: ____", rewriting, re.MULTILINE)  # rewriting numbers its blocks
    assert not re.search(r"^1\. Instruction", explore.base_text(preset("brainstorming"), extend=True), re.MULTILINE)
    custom = custom_domain("Legal drafting", "Clauses for contracts.")
    assert explore.template_version(custom, extend=True).startswith("explore-extend-custom@")


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_explore_demonstrations_parse_back(key):
    domain = preset(key)
    block = explore.render_examples(domain, domain.root_examples)
    parsed = parse_examples(block, finish_reason=FinishReason.STOP)
    assert parsed.examples == list(domain.root_examples)


def test_preset_aliases_and_unknown_domains():
    assert preset("rewrite") is preset("rewriting")
    with pytest.raises(ValueError, match="unknown domain"):
        preset("poetry")
