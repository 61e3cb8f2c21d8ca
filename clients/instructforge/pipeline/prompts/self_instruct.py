"""Self-Instruct prompts (HF-hub variant and Alpaca): a header, numbered demonstrations, an open item.

Structure as SEED-ALGORITHMS §4.2/4.3 describe it: a header asking for a list of 20 tasks, then the
demonstrations `k. <Instruction>: ...` separated by `###`, then `n+1. <Instruction>:` for the model to
continue. Two layouts: instruction-input-output ("tri", Alpaca's), and instruction-output ("bi", the
HF variant's default for code models, which fold the input into the instruction block). The
wording is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from instructforge.pipeline.parsers import Triggers
from instructforge.pipeline.prompts import version_of

LIST_LENGTH = 20
SEPARATOR = "\n###\n"
NOINPUT = "<noinput>"


@dataclass(frozen=True)
class Demo:
    instruction: str
    input: str
    output: str


_COMMON_RULES = (
    "Use many different verbs; do not start every task the same way.",
    "Mix the form of the tasks: some are questions, others are commands.",
    ("Cover many kinds of work, for instance open-ended writing, classification, editing, rewriting, "
     "reasoning, coding and answering questions."),
    ("Every task must be doable by a language model that only reads and writes text: it cannot produce "
     "pictures or sound, and it cannot act in the world (no sending emails, no setting reminders)."),
    "Write in English.",
    "Keep each {I} to one or two sentences.",
)

_HEADER_TRI = (
    "We are collecting {count} varied tasks to teach an assistant to follow instructions. Each task has "
    "an {I}, an {In} and an {O}.\n\nGuidelines:\n{rules}\n\nList of {count} tasks:"
)
_RULES_TRI = (
    "Where a task needs material to work on, give a concrete and realistic {In} of at most 100 words; "
    "when it needs none, write " + NOINPUT + " as its {In}.",
    "The {O} is a correct and fitting answer of fewer than 100 words.",
)
_HEADER_BI = (
    "We are collecting {count} varied tasks to teach an assistant to follow instructions. Each task has "
    "an {I} and an {O}.\n\nGuidelines:\n{rules}\n\nList of {count} tasks:"
)
_RULES_BI = (
    ("When a task needs material to work on (a passage, a piece of code, a list of numbers), put it "
     "under the {I}, on its own lines."),
    "The {O} is a complete and correct answer to the {I}.",
)
_HEADER_INVERSE = (
    "Below are {count} outputs of tasks, each followed by the {I} that produced it. We will use them "
    "to check whether a model can tell which {I} an {O} answers.\n\nGuidelines:\n"
    "1. Read each {O} carefully before writing its {I}.\n"
    "2. The {I} must be specific enough that the {O} is a fitting answer to it.\n"
    "3. Write in English, in one or two sentences.\n"
    "4. Do not copy the {O} into the {I}.\n\nList of {count} outputs and their tasks:"
)


def _fill(text: str, t: Triggers) -> str:
    return text.replace("{I}", t.instruction).replace("{In}", t.input).replace("{O}", t.output)


def header(triggers: Triggers, *, with_input: bool) -> str:
    rules = _COMMON_RULES + (_RULES_TRI if with_input else _RULES_BI)
    numbered = "\n".join(f"{i}. {rule}" for i, rule in enumerate(rules, 1))
    base = _HEADER_TRI if with_input else _HEADER_BI
    return _fill(base.replace("{rules}", numbered).replace("{count}", str(LIST_LENGTH)), triggers)


def render_demo(k: int, demo: Demo, triggers: Triggers, *, with_input: bool, inverse: bool = False) -> str:
    """One numbered demonstration. Bi layout folds a non-empty input under the instruction."""
    t = triggers
    if with_input and not inverse:
        return (f"{k}. {t.instruction}:\n{demo.instruction}\n\n{k}. {t.input}:\n{demo.input or NOINPUT}\n\n"
                f"{k}. {t.output}:\n{demo.output}")
    instruction = demo.instruction + (f"\n{demo.input}" if demo.input else "")
    if inverse:
        return f"{k}. {t.output}:\n{demo.output}\n\n{k}. {t.instruction}:\n{instruction}"
    return f"{k}. {t.instruction}:\n{instruction}\n\n{k}. {t.output}:\n{demo.output}"


def generation_prompt(demos: Sequence[Demo], triggers: Triggers, *, with_input: bool) -> str:
    """Header, the demos numbered 1..n, and the opened item n+1 the model continues."""
    blocks = [render_demo(k, d, triggers, with_input=with_input) for k, d in enumerate(demos, 1)]
    opened = f"{len(demos) + 1}. {triggers.instruction}:\n"
    return header(triggers, with_input=with_input) + SEPARATOR + SEPARATOR.join(blocks) + SEPARATOR + opened


def back_translation_prompt(demos: Sequence[Demo], output: str, triggers: Triggers) -> str:
    """Self-consistency: demos output-first, then the generated output and an open instruction."""
    blocks = [render_demo(k, d, triggers, with_input=False, inverse=True) for k, d in enumerate(demos, 1)]
    n = len(demos) + 1
    last = f"{n}. {triggers.output}:\n{output}\n\n{n}. {triggers.instruction}:\n"
    base = _fill(_HEADER_INVERSE.replace("{count}", str(LIST_LENGTH)), triggers)
    return base + SEPARATOR + SEPARATOR.join(blocks) + SEPARATOR + last


def stop_words(next_item: int = LIST_LENGTH) -> tuple[str, ...]:
    """Stop before the model starts item `next_item` (the published `\\n20`, `20.`, `20 .`)."""
    return (f"\n{next_item}", f"{next_item}.", f"{next_item} .")


def template_version(triggers: Triggers, *, with_input: bool, inverse: bool = False) -> str:
    if inverse:
        return version_of("self-instruct-inverse", _fill(_HEADER_INVERSE, triggers))
    return version_of("self-instruct-" + ("tri" if with_input else "bi"), header(triggers, with_input=with_input))
