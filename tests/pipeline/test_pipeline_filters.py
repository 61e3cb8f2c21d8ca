"""The instruction heuristics per system (SEED-ALGORITHMS §0.2): each variant keeps and drops what its
original did, and every drop carries its reason."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructforge.pipeline.filters import VARIANTS, ensure_boxed, get_rules


def reason(variant: str, instruction: str, input: str = "", output: str | None = "ok") -> str | None:
    drop = get_rules(variant).check(instruction, input, output)
    return drop.reason if drop else None


@pytest.mark.parametrize("variant", ["self_instruct", "alpaca", "hf"])
def test_three_words_are_too_short_for_self_instruct_lineage(variant):
    assert reason(variant, "Summarize the text.") == "too_short"
    assert reason(variant, "Summarize the following text.") is None


@pytest.mark.parametrize("variant", ["explore_rewriting", "explore_brainstorming"])
def test_explore_keeps_three_word_instructions_and_drops_two(variant):
    assert reason(variant, "Summarize the text.") is None
    assert reason(variant, "Summarize text.") == "too_short"


def test_length_upper_bound_and_math_has_none():
    long = "word " * 151
    assert reason("alpaca", long) == "too_long"
    assert reason("alpaca", "word " * 150) is None
    assert reason("explore_math", long) is None
    assert reason("explore_math", "Solve.") is None


def test_blacklists_differ_per_system():
    assert reason("self_instruct", "Describe the image below in detail.") == "blacklisted_word"
    # The 5 media words are Alpaca's and Explore's additions, not yizhongw's or ArmelRandy's.
    assert reason("self_instruct", "Describe the music you like most.") is None
    assert reason("hf", "Describe the music you like most.") is None
    assert reason("alpaca", "Describe the music you like most.") == "blacklisted_word"
    # Explore brainstorming drops map/maps; math also graph/graphs.
    assert reason("explore_rewriting", "Suggest a map of ideas for a party.") == "blacklisted_word"
    assert reason("explore_brainstorming", "Suggest a map of ideas for a party.") is None
    assert reason("explore_brainstorming", "Sketch a graph of three ideas.") == "blacklisted_word"
    assert reason("explore_math", "Find where the graph of $y=x^2$ meets $y=4$.") is None


def test_blacklist_is_whole_word_and_case_insensitive():
    assert reason("alpaca", "Explain why maple trees turn red in autumn.") is None  # "map" inside "maple"
    assert reason("alpaca", "Explain how to GO TO the station by bus.") == "blacklisted_word"
    drop = get_rules("alpaca").check("Please Draw a cat for the children.")
    assert drop is not None and drop.detail == "draw"


def test_the_blacklist_folds_case_as_unicode_does_beyond_ascii():
    # Case-blind matching also takes the dotless i and the long s for i and s: the quick ASCII
    # screen must leave such text to the full match.
    assert get_rules("alpaca").blacklisted("Describe the \u0131MAGE in one line.") == "\u0131mage"
    assert get_rules("alpaca").blacklisted("Name three MAP\u017f of Europe.") == "map\u017f"
    assert get_rules("alpaca").blacklisted("Name three maple trees.") is None


_PIECES = st.sampled_from(["image", "IMAGES", "Map", "maple", "go to", "GO  TO", "draw", "drawing", "plot", "video",
                           "\u0131mage", "map\u017f", "\u212a", "\u0130", " ", ".", "-", "_", "a", "s", "x", "\u00e9"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=8).map("".join), st.sampled_from(sorted(VARIANTS)))
def test_the_blacklist_screen_agrees_with_a_case_blind_whole_word_search(text, variant):
    rules = get_rules(variant)
    if not rules.blacklist:
        return
    plain = re.search(r"\b(" + "|".join(map(re.escape, rules.blacklist)) + r")\b", text, re.IGNORECASE)
    assert rules.blacklisted(text) == (plain.group(1).lower() if plain else None)


def test_programming_prefixes():
    assert reason("alpaca", "Write a program that prints the primes.") == "programming_task"
    assert reason("alpaca", "Write a function that returns the primes.") is None
    assert reason("hf", "Write a function that returns the primes.") == "programming_task"
    assert reason("hf_keep_programming", "Write a program that prints the primes.") is None


def test_leading_punctuation_and_non_ascii():
    assert reason("alpaca", '"Quote" this sentence back to me please.') == "leading_punctuation"
    assert reason("alpaca", "¿Cómo estás? Answer in Spanish please.") == "leading_non_ascii"
    assert reason("alpaca", "") == "empty_instruction"


def test_placeholder_inputs_only_matter_to_explore():
    assert reason("explore_rewriting", "Rewrite the sentence more formally.", "<sentence>") == "placeholder_input"
    assert reason("explore_rewriting", "Rewrite the sentence more formally.", "(your text here)") == "placeholder_input"
    assert reason("explore_rewriting", "Rewrite the sentence more formally.", "(a) first, (b) second") is None
    assert reason("alpaca", "Rewrite the sentence more formally.", "<sentence>") is None


def test_empty_output_is_dropped_but_can_be_skipped():
    assert reason("alpaca", "Name three primary colours please.", output="  ") == "empty_output"
    assert reason("alpaca", "Name three primary colours please.", output=None) is None


def test_every_variant_is_reachable_by_name():
    assert set(VARIANTS) >= {"self_instruct", "alpaca", "hf", "explore_rewriting", "explore_brainstorming",
                             "explore_math"}
    with pytest.raises(ValueError, match="unknown filter variant"):
        get_rules("nope")


@pytest.mark.parametrize(("output", "expected"), [
    ("Explanation: 2+3.\nAnswer: $5$", "Explanation: 2+3.\nAnswer: $\\boxed{5}$"),
    ("Answer: $\\frac{1}{2}$.", "Answer: $\\boxed{\\frac{1}{2}}$."),
    ("Answer: 42", "Answer: $\\boxed{42}$"),  # the published rewrite produced "4\\boxed{}2"
    ("Answer: $\\boxed{7}$", "Answer: $\\boxed{7}$"),
    ("No final answer line.", "No final answer line."),
])
def test_ensure_boxed(output, expected):
    assert ensure_boxed(output) == expected
