"""Explore-Instruct prompts: `extend` proposes new subtasks of a node, `enrich` writes examples for one.

Structure as SEED-ALGORITHMS §1.4 describes it: a base text (what to do, numbered requirements, the
required answer layout), then the target task, `###`-separated demonstrations, the existing subtasks
and peer tasks, and the closing request. The wording is ours.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from instructforge.pipeline.parsers import ParsedExample
from instructforge.pipeline.prompts import version_of
from instructforge.pipeline.prompts.domains import Domain

_SHARED_RULES = (
    "Each new subtask needs only part of the skills of the target task.",
    "A new subtask may touch on the peer tasks, but it must stay inside the target task.",
    "Prefer subtasks that people ask for often over ones tied to a narrow specialist field.",
    "The new subtasks complement each other; together they cover what matters most in the target task.",
    "Do not repeat, or reword, an existing subtask or a peer task.",
    "Write in English.",
    "Explain each new subtask in one or two sentences after \"Reason:\".",
)
_EXAMPLE_RULES = (
    "Vary the verbs and the phrasing of the instructions.",
    "A language model that only reads and writes text must be able to complete every example.",
    ("An Input is realistic and specific content of at most 200 words, never a placeholder such as "
     "<text> or (sentence)."),
    "An Output is a good, complete answer of fewer than 200 words.",
)
_NOINPUT_RULE = "When an instruction needs nothing more, write <noinput> as its Input."

_EXTEND_INTRO = (
    "You are mapping out a family of tasks. Given a target task, the subtasks it already has and its peer "
    "tasks, propose new subtasks of the target task, and write examples for each new subtask."
)
_ENRICH_INTRO = "You are writing examples for one subtask of a target task."


def _rules(domain: Domain, *, extend: bool) -> list[str]:
    rules = list(_SHARED_RULES) if extend else []
    rules += list(domain.extra_rules) + list(_EXAMPLE_RULES)
    if domain.allow_noinput:
        rules.append(_NOINPUT_RULE)
    return rules


def _layout(domain: Domain, count: int = 2) -> str:
    blocks = []
    for i in range(1, count + 1):
        prefix = f"{i}. " if domain.numbered_examples else ""
        blocks.append(f"{prefix}Instruction: ____\nInput: ____\nOutput: ____")
    return "###\n" + "\n###\n".join(blocks) + "\n###"


def base_text(domain: Domain, *, extend: bool) -> str:
    intro = _EXTEND_INTRO if extend else _ENRICH_INTRO
    rules = "\n".join(f"{i}. {rule}" for i, rule in enumerate(_rules(domain, extend=extend), 1))
    if extend:
        layout = f"New subtask: ____\nReason: ____\nExamples:\n{_layout(domain)}"
    else:
        layout = _layout(domain)
    return f"{intro}\n\nRequirements:\n{rules}\n\nWrite your answer in exactly this layout:\n{layout}\n"


def render_examples(domain: Domain, demos: Sequence[ParsedExample]) -> str:
    """The demonstrations block; instructions with whitespace collapsed and no trailing colon."""
    if not demos:
        return ""
    lines = ["Examples:"]
    for i, demo in enumerate(demos, 1):
        prefix = f"{i}. " if domain.numbered_examples else ""
        instruction = " ".join(demo.instruction.split()).rstrip(":")
        lines += ["###", f"{prefix}Instruction: {instruction}", f"Input: {demo.input or '<noinput>'}",
                  f"Output: {demo.output}"]
    lines.append("###")
    return "\n".join(lines) + "\n"


def _context(domain: Domain, target: str, demos: Sequence[ParsedExample], children: Sequence[str],
             peers: Sequence[str], *, extend: bool) -> str:
    return (base_text(domain, extend=extend) + f"\nTarget task: {target}\n" + render_examples(domain, demos)
            + f"\nThe subtasks this target task already has: {json.dumps(list(children), ensure_ascii=False)}\n"
            + f"The peer tasks of this target task: {json.dumps(list(peers), ensure_ascii=False)}\n")


def extend_prompt(domain: Domain, *, target: str, demos: Sequence[ParsedExample], children: Sequence[str],
                  peers: Sequence[str], max_child_num: int, extend_num: int, examples_per_subtask: int) -> str:
    return _context(domain, target, demos, children, peers, extend=True) + (
        f"The target task should end up with {max_child_num} diverse, complementary subtasks in total; "
        f"it has {len(children)} now. Propose {extend_num} new subtasks, each with its reason, and give "
        f"{examples_per_subtask} examples of each:"
    )


def enrich_prompt(domain: Domain, *, target: str, demos: Sequence[ParsedExample], children: Sequence[str],
                  peers: Sequence[str], subtask: str, reason: str, examples: int) -> str:
    return _context(domain, target, demos, children, peers, extend=False) + (
        f"Write {examples} examples of the following subtask:\n\nNew subtask: {subtask}\nReason: {reason}\n"
    )


def template_version(domain: Domain, *, extend: bool) -> str:
    return version_of(f"explore-{'extend' if extend else 'enrich'}-{domain.key}", base_text(domain, extend=extend))
