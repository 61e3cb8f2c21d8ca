"""Lazily built posting lists: write-once partitions cost no index, and every later scan still sees them."""

from __future__ import annotations

import random

import pytest
from dedup_corpus import corpus

from instructforge.dedup.collection import Item
from instructforge.dedup.config import PARTITION, CollectionConfig
from instructforge.dedup.lexical import LexicalIndex
from instructforge.dedup.manager import CollectionManager

from .reference import novelty_filter

NODES = 60  # x 30 items (~70% kept): past the first re-ranking (1,024 entries) while nothing is indexed
TEXTS = {f"node-{k}": corpus(30, seed=700 + k, dup_rate=0.3) for k in range(NODES)}


def _open(path) -> CollectionManager:
    m = CollectionManager(path)
    m.open()
    return m


def _probes(stored: list[str]) -> list[str]:
    """Edits of stored texts (some near-duplicates, some not) and a few fresh texts."""
    rng = random.Random(5)
    out = []
    for text in rng.sample(stored, 60):
        words = text.split()
        del words[rng.randrange(len(words))]
        out.append(" ".join(words) + rng.choice(["", " today", " for children, in detail"]))
    return out + corpus(20, seed=99)


def _expect_collection_scope(m: CollectionManager, probes: list[str]) -> None:
    coll = m.get("tree")
    verdicts = m.check("tree", [Item(p, partition="elsewhere") for p in probes], scope="collection")
    assert [v.kept for v in verdicts] == novelty_filter(probes, references=list(coll.texts))


def test_write_once_partitions_are_found_by_later_checks_and_after_restarts(tmp_path):
    m = _open(tmp_path)
    m.create("tree", CollectionConfig(default_scope=PARTITION))
    for node, texts in TEXTS.items():
        m.check_and_insert("tree", [Item(t, partition=node) for t in texts], request_id=node)
    lexical = m.get("tree").lexical
    assert len(lexical) > 1024 and lexical.stats.rebuilds >= 1
    assert lexical.postings.rows == 0  # no check scanned the stored entries: nothing was indexed
    stored = list(m.get("tree").texts)
    probes = _probes(stored)
    _expect_collection_scope(m, probes)
    assert lexical.postings.rows > 0

    # a later batch into a stored partition sees that partition (and only it)
    node, texts = "node-3", TEXTS["node-3"]
    again = m.check_and_insert("tree", [Item(texts[0], partition=node), Item(texts[0], partition="node-new")])
    assert [v.kept for v in again] == [False, True]
    m.close()

    m = _open(tmp_path)  # the log replays; the lists are stale until a scan needs them
    assert m.get("tree").lexical.postings.rows == 0
    _expect_collection_scope(m, probes)
    m.snapshot("tree")
    m.close()

    m = _open(tmp_path)  # from the snapshot
    assert m.get("tree").lexical.postings.rows == 0
    _expect_collection_scope(m, probes)
    m.close()


@pytest.mark.parametrize("scope_all", [False, True])
def test_catching_up_late_scores_the_same_pairs_as_indexing_at_once(scope_all):
    """Lists built when first scanned hold what lists kept up to date at every add would hold."""
    from instructforge.dedup.tokenize import Vocabulary

    def run(eager: bool) -> list:
        vocab = Vocabulary()
        index = LexicalIndex(vocab, 0.7, ">")
        out = []
        for k, node in enumerate(TEXTS):
            seqs = [vocab.encode(t) for t in TEXTS[node]]
            prepared = index.prepare(seqs, [k % 7] * len(seqs), vocab)
            if k % 5 == 4:  # now and then a check of the stored entries
                stored, _ = index.check(prepared, scope_all)
                out.append((stored.q.tolist(), stored.e.tolist(), stored.f.tolist()))
            index.add(prepared, list(range(0, len(seqs), 2)))
            if eager:
                index._catch_up()
        return out

    assert run(eager=True) == run(eager=False)
