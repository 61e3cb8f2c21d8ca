"""Runs for the report tests, made by the real pipeline over the in-memory fakes of its services,
and a synthetic tree of the size a long Explore-Instruct run reaches."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipeline_fakes import FakeLLM, run_recipe

from instructforge.pipeline.report.data import TreeNode

# A subtask name and reason as a hostile (or just unlucky) model might write them.
PAYLOAD_NAME = '<img src=x onerror="window.__pwned=1">Translate idioms & <b>tone</b>'
PAYLOAD_REASON = "<script>window.__pwned=2</script> idioms"
ROOT = "help_with_rewriting_text"

HOSTILE_RECIPE = {"recipe": "explore_instruct", "name": "hostile", "stages": {
    "extend": {"max_depth": 2, "extend_nums": [3, 2]}, "enrich": {"enrich_nums": [0, 20, 10]},
    "sample": {"example_num": 100}}}


def hostile(request) -> str:
    """The root gets two near-identical subtasks (one is pruned) and the payload; the payload node's
    examples all share one instruction (the filter drops most of them); everything else is the fake's."""
    key = request.idempotency_key
    _, stage, subject, _ = key.split("/", 3)
    if stage == "extend" and subject == ROOT:
        block = "Examples:\nInstruction: Rephrase the line.\nInput: a b\nOutput: b a\n"
        return (f"New subtask: Paraphrase short texts quickly\nReason: r\n{block}\n"
                f"New subtask: Paraphrase short texts\nReason: r\n{block}\n"
                f"New subtask: {PAYLOAD_NAME}\nReason: {PAYLOAD_REASON}\n{block}")
    if stage == "enrich" and subject.startswith("img_"):
        items = (f"Instruction: Say it again.\nInput: x\nOutput: y{i}" for i in range(10))
        return "###\n" + "\n###\n".join(items) + "\n###"
    return FakeLLM().answer(request.prompt, key.partition("/")[2])


def big_tree(children: int, grandchildren: int) -> TreeNode:
    """A synthetic tree of 1 + children * (1 + grandchildren) nodes with realistic names and reasons."""
    def node(i: str, depth: int) -> TreeNode:
        return TreeNode(f"Subtask {i} about rewriting things", f"subtask_{i.replace('.', '_')}",
                        f"Because node {i} covers a distinct kind of rewriting request people make.",
                        examples=(7 * len(i)) % 30 + 10, dropped=len(i) % 4, in_dataset=depth)

    root = node("0", 0)
    for c in range(children):
        child = node(f"{c}", 1)
        child.children = [node(f"{c}.{g}", 2) for g in range(grandchildren)]
        root.children.append(child)
    return root


def barren_run(folder: Path) -> Path:
    """A Self-Instruct run whose model never helps: it stops stalled, keeping nothing."""
    recipe = {"recipe": "self_instruct", "name": "barren", "stages": {
        "generate": {"num_instructions_to_generate": 10, "stall_batches": 2}}}
    asyncio.run(run_recipe(folder, recipe, FakeLLM(script=lambda r: "As an AI, I would rather not.")))
    return folder

