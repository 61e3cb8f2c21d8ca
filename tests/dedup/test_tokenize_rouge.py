"""The tokenizer and the F-measure are rouge-score's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import LCSseq

from instructforge.dedup import rouge
from instructforge.dedup.tokenize import (
    MAX_CODEPOINT_IDS,
    Vocabulary,
    ids_to_sequence,
    rouge_tokens,
    sequence_ids,
)

from .reference import rouge_l, tokens


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Résumé: C++ & naïve 3.14 — 中文", ["r", "sum", "c", "na", "ve", "3", "14"]),
        ("写一首关于大海的短诗。", []),
        ("", []),
        ("   \n\t ", []),
        ("C#", ["c"]),
        ("C++", ["c"]),
        ("It's a DOG-friendly café", ["it", "s", "a", "dog", "friendly", "caf"]),
        ("\u212a", ["k"]),  # KELVIN SIGN lowercases to an ASCII k; rouge-score keeps it
        ("\u0130stanbul", ["i", "stanbul"]),  # dotted capital I lowercases to i + combining dot
    ],
)
def test_tokenizer_pins(text, expected):
    assert rouge_tokens(text) == expected == tokens(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_tokenizer_matches_rouge_score_on_any_text(text):
    assert rouge_tokens(text) == tokens(text)


def test_seed_fixture_value():
    # SEED-ALGORITHMS.md §0.1 worked value
    assert rouge_l("Write a Python function to reverse a list.", "Write a python function that reverses the list") == 0.625


def test_c_sharp_and_c_plus_plus_are_the_same_text():
    a = 'Write a simple C# program that prints "Hello, World!".'
    b = 'Write a simple C++ program that prints "Hello, World!".'
    assert rouge_l(a, b) == 1.0


words = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h", "write", "poem", "list", "explain", "the", "of"])


@settings(max_examples=300, deadline=None)
@given(st.lists(words, max_size=25), st.lists(words, max_size=25))
def test_f_measure_matches_rouge_score(a, b):
    vocab = Vocabulary()
    sa, sb = vocab.encode(" ".join(a)), vocab.encode(" ".join(b))
    lcs = LCSseq.similarity(sa, sb)
    ours = rouge.f_measure(lcs, len(a), len(b))
    assert ours == rouge_l(a, b)  # bit-identical float, not approximately equal
    assert rouge.f_measures(np.array([lcs]), np.array([len(a)]), np.array([len(b)]))[0] == ours


def test_exact_threshold_float_cases():
    # 2*7/(8+12) is exactly 0.7, but rouge-score's expression evaluates to 0.7000000000000001,
    # so the seeds' "> 0.7" drops it; 2*21/(23+37) is exactly 0.7 too and evaluates below it.
    assert rouge.f_measure(7, 8, 12) == 0.7000000000000001
    assert rouge.f_measure(21, 23, 37) == 0.6999999999999998
    assert rouge.f_measure(7, 10, 10) == 0.7
    new = "write a short poem about the blue ocean"  # 8 tokens
    old = "please write a short poem about the ocean for my little sister"  # 12 tokens, LCS 7
    assert rouge_l(new, old) == 0.7000000000000001


def test_min_lcs_bound_never_exceeds_what_a_drop_needs():
    # For every (a, b) the bound must allow the smallest LCS whose float F drops (either comparison).
    for a in range(1, 80):
        for b in range(1, 80):
            need = int(rouge.min_lcs(np.array([a]), np.array([b]), 0.7)[0])
            for lcs in range(min(a, b) + 1):
                f = rouge.f_measure(lcs, a, b)
                if f >= 0.7:
                    assert lcs >= need, (a, b, lcs)


def test_sequences_beyond_the_code_point_space_fall_back_to_ids():
    ids = [1, MAX_CODEPOINT_IDS + 5, 0xD800, 7]
    seq = ids_to_sequence(ids)
    assert isinstance(seq, tuple) and sequence_ids(seq) == ids
    small = ids_to_sequence([1, 0xD800, 0xE000])  # ids at and past the surrogate gap
    assert isinstance(small, str) and sequence_ids(small) == [1, 0xD800, 0xE000]
    assert LCSseq.similarity(seq, ids_to_sequence([MAX_CODEPOINT_IDS + 5, 7])) == 2
    # a str sequence and a tuple sequence of the same tokens (past the surrogate gap) match fully
    as_str = ids_to_sequence([0xE000, 9])
    as_tuple = ids_to_sequence([0xE000, 9, MAX_CODEPOINT_IDS])[:2]
    assert isinstance(as_str, str) and isinstance(as_tuple, tuple)
    assert LCSseq.similarity(as_str, as_tuple) == 2



@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=12), max_size=8), st.booleans())
def test_repeat_occurrences_become_elements_in_the_order_a_token_loop_interns_them(batch, some_tuples):
    """The k-th occurrence of a token within an item is an element of its own, interned item by item
    and token by token (the ids it gets steer the element order, so it must not change)."""
    from instructforge.dedup.lexical import LexicalIndex

    loop_vocab, vocab = Vocabulary(f"t{i}" for i in range(7)), Vocabulary(f"t{i}" for i in range(7))
    expected = []
    for ids in batch:
        seen: dict[int, int] = {}
        for tok in ids:
            seen[tok] = seen.get(tok, 0) + 1
            expected.append(tok if seen[tok] == 1 else loop_vocab.id_of(f"\x00{tok}:{seen[tok]}"))
    # tuple sequences (a vocabulary past the code points) are read another way; mix some in
    seqs = [tuple(ids) if some_tuples and k % 2 else ids_to_sequence(ids) for k, ids in enumerate(batch)]
    prepared = LexicalIndex(vocab, 0.7, ">").prepare(seqs, np.zeros(len(seqs), np.int64), vocab)
    assert prepared.elems.tolist() == expected
    assert vocab.tokens == loop_vocab.tokens
