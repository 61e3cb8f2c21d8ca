"""Decisions identical to the published rouge-score loop: generated corpora, edge cases, float ties."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from dedup_corpus import corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instructforge.dedup.collection import Item
from instructforge.dedup.config import PARTITION, CollectionConfig, LexicalConfig
from instructforge.dedup.lexical import LexicalIndex
from instructforge.dedup.tokenize import MAX_CODEPOINT_IDS, Vocabulary

from .reference import novelty_filter


def run_batches(manager, name, texts, sizes, partitions=None, scope=None):
    """Feed ``texts`` through CheckAndInsert in consecutive batches of the given sizes (cycled)."""
    out, start = [], 0
    for size in itertools.cycle(sizes):
        if start >= len(texts):
            break
        chunk = texts[start : start + size]
        parts = partitions[start : start + size] if partitions else [""] * len(chunk)
        out += manager.check_and_insert(name, [Item(t, partition=p) for t, p in zip(chunk, parts)], scope)
        start += size
    return out


@pytest.mark.slow
def test_four_thousand_generated_instructions_identical(manager):
    texts = corpus(4000, seed=11, dup_rate=0.3, edge_rate=0.03)
    manager.create("c", CollectionConfig())
    verdicts = run_batches(manager, "c", texts, [1, 37, 400, 5, 250, 1500])
    expected = novelty_filter(texts, skip_hopeless=True)
    assert [v.kept for v in verdicts] == expected
    assert 0.3 < sum(expected) / len(expected) < 0.9  # the corpus really has near-duplicates
    for v in verdicts:  # a lexical drop names a match whose F crosses the threshold
        if v.reason == "lexical":
            assert v.best.rouge_l_f > 0.7 and v.max_rouge_l_f == v.best.rouge_l_f


@pytest.mark.slow
@pytest.mark.parametrize("threshold, comparison", [(0.7, ">="), (0.5, ">"), (0.9, ">=")])
def test_other_thresholds_identical(manager, threshold, comparison):
    texts = corpus(500, seed=int(threshold * 100), dup_rate=0.35, edge_rate=0.03)
    manager.create("c", CollectionConfig(lexical=LexicalConfig(threshold, comparison)))
    verdicts = run_batches(manager, "c", texts, [50, 3, 200])
    assert [v.kept for v in verdicts] == novelty_filter(texts, threshold, comparison)


OLD = "please write a short poem about the ocean for my little sister"  # 12 tokens
NEW = "write a short poem about the blue ocean"  # 8 tokens; LCS 7 -> F evaluates to 0.7000000000000001
TEN_A = "one two three four five six seven eight nine ten"
TEN_B = "one two three four five six seven x y z"  # LCS 7 of 10 and 10 -> exactly 0.7
LONG_37 = " ".join(f"w{i}" for i in range(37))
SHORT_23 = " ".join(f"w{i}" for i in range(21)) + " q1 q2"  # LCS 21: exact 0.7, evaluates 0.6999999999999998


@pytest.mark.parametrize("comparison", [">", ">="])
@pytest.mark.parametrize(
    "texts",
    [[OLD, NEW], [NEW, OLD], [TEN_A, TEN_B], [LONG_37, SHORT_23], [SHORT_23, LONG_37]],
    ids=["0.7000000000000001", "0.7000000000000001-swapped", "exactly-0.7", "0.6999999999999998", "swapped"],
)
def test_exactly_at_threshold(manager, texts, comparison):
    manager.create("c", CollectionConfig(lexical=LexicalConfig(0.7, comparison)))
    in_one = [v.kept for v in manager.check_and_insert("c", [Item(t) for t in texts])]
    manager.create("d", CollectionConfig(lexical=LexicalConfig(0.7, comparison)))
    one_by_one = [manager.check_and_insert("d", [Item(t)])[0].kept for t in texts]
    assert in_one == one_by_one == novelty_filter(texts, 0.7, comparison)


def test_float_tie_outcomes_are_pinned(manager):
    """The known consequences, spelled out: 0.7000000000000001 drops under '>', 0.7 does not."""
    manager.create("c", CollectionConfig())
    assert [v.kept for v in manager.check_and_insert("c", [Item(OLD), Item(NEW)])] == [True, False]
    assert [v.kept for v in manager.check_and_insert("c", [Item(TEN_A), Item(TEN_B)])] == [True, True]
    manager.create("ge", CollectionConfig(lexical=LexicalConfig(0.7, ">=")))
    assert [v.kept for v in manager.check_and_insert("ge", [Item(LONG_37), Item(SHORT_23)])] == [True, True]
    assert [v.kept for v in manager.check_and_insert("ge", [Item(TEN_A), Item(TEN_B)])] == [True, False]


EDGE = ["", "", "   ", "写一首关于大海的短诗。", "写一首关于大海的短诗。", "C#", "C++", "c", "...", "Résumé: naïve",
        'Write a simple C# program that prints "Hello, World!".', 'Write a simple C++ program that prints "Hello, World!".']


def test_edge_cases_identical_by_default(manager):
    manager.create("c", CollectionConfig())
    verdicts = manager.check_and_insert("c", [Item(t) for t in EDGE])
    assert [v.kept for v in verdicts] == novelty_filter(EDGE)
    # rouge-score keeps repeated empty and non-Latin texts (they score 0), so do we by default
    assert verdicts[1].kept and verdicts[4].kept
    assert not verdicts[6].kept and verdicts[6].reason == "lexical"  # C++ after C#: F = 1.0
    assert not verdicts[11].kept and verdicts[11].best.text == EDGE[10]


def test_drop_exact_duplicates_also_catches_texts_rouge_cannot_see(manager):
    manager.create("c", CollectionConfig(drop_exact_duplicates=True))
    verdicts = manager.check_and_insert("c", [Item(t) for t in EDGE])
    assert [v.reason for v in verdicts[:5]] == ["", "exact_duplicate", "", "", "exact_duplicate"]
    assert verdicts[4].best.text == EDGE[3]


words = st.sampled_from(["a", "b", "c", "d", "e", "f", "write", "poem", "list", "explain", "the", "of", "x", "y"])
texts_st = st.lists(st.lists(words, max_size=14).map(" ".join), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=texts_st,
    threshold=st.sampled_from([0.3, 0.5, 0.7, 0.75, 0.9, 1.0]),
    comparison=st.sampled_from([">", ">="]),
    sizes=st.lists(st.integers(1, 15), min_size=1, max_size=4),
    partitioned=st.booleans(),
)
def test_random_streams_identical(tmp_path_factory, texts, threshold, comparison, sizes, partitioned):
    from instructforge.dedup.manager import CollectionManager

    m = CollectionManager(None)
    rng = random.Random(len(texts))
    parts = [rng.choice(["n1", "n2", ""]) for _ in texts] if partitioned else None
    m.create("c", CollectionConfig(lexical=LexicalConfig(threshold, comparison), default_scope=PARTITION))
    verdicts = run_batches(m, "c", texts, sizes, parts)
    assert [v.kept for v in verdicts] == novelty_filter(
        texts, threshold, comparison, partitions=parts, scope_all=False
    )


@pytest.mark.parametrize("prefill", [0xD800 - 50, MAX_CODEPOINT_IDS - 50])
def test_large_vocabularies(prefill):
    """Token ids past the surrogate gap and past the code point space (tuple sequences) stay exact."""
    vocab = Vocabulary()
    vocab._tokens.extend(f"\x01{i}" for i in range(prefill))  # ids a large collection would have used
    vocab._ids.update((t, i) for i, t in enumerate(vocab._tokens))
    texts = corpus(300, seed=5, dup_rate=0.4)
    index = LexicalIndex(vocab, 0.7, ">")
    kept = []
    for start in range(0, len(texts), 60):
        chunk = texts[start : start + 60]
        seqs = [vocab.encode(t) for t in chunk]
        prepared = index.prepare(seqs, np.zeros(len(seqs), np.int64), vocab)
        stored, within = index.check(prepared, scope_all=True)
        dropped = set(stored.q[stored.drop].tolist())
        conflicts = {}
        for q, e in zip(within.q[within.drop].tolist(), within.e[within.drop].tolist()):
            conflicts.setdefault(q, []).append(e)
        keep = []
        for j in range(len(chunk)):
            if j not in dropped and not any(e in keep for e in conflicts.get(j, ())):
                keep.append(j)
        kept += [j in keep for j in range(len(chunk))]
        index.add(prepared, np.array(keep, np.int64))
    if prefill >= MAX_CODEPOINT_IDS - 50:
        assert any(isinstance(s, tuple) for s in index.seqs) and any(isinstance(s, str) for s in index.seqs)
    assert kept == novelty_filter(texts)


def test_batches_larger_than_a_slice_are_identical(manager, monkeypatch):
    from instructforge.dedup import collection

    monkeypatch.setattr(collection, "SLICE", 64)  # many slices, so cross-slice pairs are exercised
    texts = corpus(900, seed=4, dup_rate=0.5, edge_rate=0.02)
    manager.create("c", CollectionConfig())
    verdicts = manager.check_and_insert("c", [Item(t) for t in texts[:100]])
    verdicts += manager.check_and_insert("c", [Item(t) for t in texts[100:]])
    assert [v.kept for v in verdicts] == novelty_filter(texts, skip_hopeless=True)


@pytest.mark.slow
def test_one_batch_of_near_identical_texts(manager):
    """Thousands of near-duplicates of one text in one call: each is compared with what was kept."""
    texts = [f"Write a poem about the ocean, number {k}" for k in range(6000)]
    manager.create("c", CollectionConfig())
    verdicts = manager.check_and_insert("c", [Item(t) for t in texts])
    assert [v.kept for v in verdicts] == [True] + [False] * 5999
    assert {v.best.entry for v in verdicts[1:]} == {0}


@pytest.mark.slow
@pytest.mark.parametrize("partitioned", [False, True])
def test_the_threaded_posting_scan_decides_identically(manager, monkeypatch, partitioned):
    """Large indexes split a check's posting scan over threads; forced on here for a small one."""
    from instructforge.dedup import lexical

    monkeypatch.setattr(lexical, "_PARALLEL_SCAN_ENTRIES", 0)
    starts: list[int] = []
    scan = lexical.LexicalIndex._scan

    def spy(self, batch, lo, hi, scope_all):
        starts.append(lo)
        return scan(self, batch, lo, hi, scope_all)

    monkeypatch.setattr(lexical.LexicalIndex, "_scan", spy)
    texts = corpus(3000, seed=5, dup_rate=0.3, edge_rate=0.03)
    parts = [("n1", "n2", "")[k % 3] for k in range(len(texts))] if partitioned else None
    manager.create("c", CollectionConfig(default_scope=PARTITION))
    verdicts = run_batches(manager, "c", texts, [700, 1500], parts)
    assert [v.kept for v in verdicts] == novelty_filter(texts, partitions=parts, scope_all=False, skip_hopeless=True)
    assert any(lo > 0 for lo in starts)  # the scan really was split
