"""Explore-Instruct domains: the root task a tree grows from and the domain's own requirements.

Three presets mirror the published prompt bank (rewriting, brainstorming, math); `custom_domain`
builds one from a root task description. Roots and their two examples are written by us.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from instructforge.pipeline.parsers import ParsedExample


@dataclass(frozen=True)
class Domain:
    key: str
    root_name: str
    root_reason: str
    root_examples: tuple[ParsedExample, ...]
    filter_variant: str
    numbered_examples: bool = False  # rewriting numbers its example blocks (`1. Instruction:`)
    allow_noinput: bool = True
    math: bool = False  # LaTeX problems, "Explanation:" then "Answer:" with \boxed{}
    extra_rules: tuple[str, ...] = field(default_factory=tuple)


_NO_MATERIAL_IN_INSTRUCTION = (
    "An instruction describes the task only; the concrete material to work on goes in the Input, never "
    "in the Instruction."
)

REWRITING = Domain(
    key="rewriting",
    root_name="Help with rewriting text",
    root_reason="People constantly need existing text changed: clearer, shorter, friendlier, more formal, "
                "free of mistakes, or fit for a new reader.",
    root_examples=(
        ParsedExample("Make this message sound more polite.",
                      "Send me the report by tonight, I already asked twice.",
                      "Could you please send me the report by this evening? I'd really appreciate it, as I "
                      "mentioned it earlier."),
        ParsedExample("Shorten the sentence without losing its meaning.",
                      "Due to the fact that the train was delayed for a long period of time, we arrived at "
                      "the meeting at a later time than we had planned.",
                      "Because the train was badly delayed, we reached the meeting late."),
    ),
    filter_variant="explore_rewriting",
    numbered_examples=True,
    allow_noinput=False,
    extra_rules=(_NO_MATERIAL_IN_INSTRUCTION, "Every example must have a real Input: the text to rewrite."),
)

BRAINSTORMING = Domain(
    key="brainstorming",
    root_name="Brainstorming ideas",
    root_reason="Coming up with many varied options quickly (names, plans, angles, solutions) is a common "
                "request, and a good assistant offers ideas that are distinct and usable.",
    root_examples=(
        ParsedExample("Suggest five themes for a neighbourhood summer festival.", "",
                      "1. Around the world in food stalls\n2. Retro arcade night\n3. Garden and seed swap\n"
                      "4. Street music marathon\n5. Lantern walk by the river"),
        ParsedExample("List ways a small bakery could reduce food waste at the end of the day.", "",
                      "Sell day-old bread at a discount, donate leftovers to a shelter, turn stale bread into "
                      "croutons or bread pudding, and bake smaller batches late in the afternoon."),
    ),
    filter_variant="explore_brainstorming",
    extra_rules=(_NO_MATERIAL_IN_INSTRUCTION,),
)

MATH = Domain(
    key="math",
    root_name="Solving math problems",
    root_reason="Working through a problem step by step and stating a checked final answer is the core "
                "of mathematical help, from arithmetic to algebra, geometry and probability.",
    root_examples=(
        ParsedExample("Solve the equation for $x$.", "$3x + 7 = 22$",
                      "Explanation: Subtract 7 from both sides to get $3x = 15$, then divide by 3.\n"
                      "Answer: $\\boxed{5}$"),
        ParsedExample("Find the probability asked for.",
                      "A fair six-sided die is rolled once. What is the probability of rolling a number "
                      "greater than 4?",
                      "Explanation: Two of the six outcomes (5 and 6) are greater than 4, so the probability "
                      "is $\\frac{2}{6} = \\frac{1}{3}$.\nAnswer: $\\boxed{\\frac{1}{3}}$"),
    ),
    filter_variant="explore_math",
    math=True,
    extra_rules=(
        "Write every formula in LaTeX, between $ signs.",
        ("The Output first explains the solution after \"Explanation:\", then gives the final result after "
         "\"Answer:\" inside \\boxed{}."),
    ),
)

PRESETS: dict[str, Domain] = {d.key: d for d in (REWRITING, BRAINSTORMING, MATH)}
# The published CLI's names for the same presets.
ALIASES = {"rewrite": "rewriting", "write_assistance": "rewriting"}


def preset(key: str) -> Domain:
    key = ALIASES.get(key, key)
    try:
        return PRESETS[key]
    except KeyError:
        raise ValueError(f"unknown domain {key!r}; presets: {', '.join(PRESETS)}, or 'custom'") from None


def custom_domain(name: str, description: str, examples: tuple[ParsedExample, ...] = (), *,
                  filter_variant: str = "explore_rewriting", math: bool = False) -> Domain:
    """A domain grown from a root task description (the published code only knew its three)."""
    return Domain(key="custom", root_name=name, root_reason=description, root_examples=examples,
                  filter_variant=filter_variant, math=math)
