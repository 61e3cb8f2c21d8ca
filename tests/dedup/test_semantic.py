"""Semantic dedup with the real all-MiniLM-L6-v2 model (loaded offline from its PyPI package)."""

from __future__ import annotations

import numpy as np
import pytest

from instructforge.dedup.collection import Item
from instructforge.dedup.config import PARTITION, CollectionConfig, LexicalConfig, SemanticConfig
from instructforge.dedup.embedder import get_embedder
from instructforge.dedup.manager import CollectionManager
from instructforge.dedup.semantic import HNSW, IVF, IndexPolicy, VectorIndex

CAKE = "How do I bake a chocolate cake?"
CAKE2 = "What is the recipe for making a chocolate cake?"  # cosine ~0.85, ROUGE-L 0.375
SLEEP = "Give me three tips for better sleep."
SLEEP2 = "Suggest a few ways to improve the quality of my sleep."  # cosine ~0.82, ROUGE-L 0.11
VACCINE = "Explain how vaccines train the immune system."
SEMANTIC = CollectionConfig(semantic=SemanticConfig(threshold=0.8))


@pytest.fixture(scope="module")
def model():
    return get_embedder("all-MiniLM-L6-v2")


def test_model_loads_offline_from_the_package(model):
    vectors = model.encode([CAKE, CAKE2, VACCINE])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.8
    assert vectors[0] @ vectors[2] < 0.2


def test_paraphrases_are_dropped_semantically(manager, model):
    manager.create("c", SEMANTIC)
    v = manager.check_and_insert("c", [Item(CAKE), Item(SLEEP), Item(CAKE2), Item(VACCINE), Item(SLEEP2)])
    assert [(x.kept, x.reason) for x in v] == [
        (True, ""), (True, ""), (False, "semantic"), (True, ""), (False, "semantic"),
    ]
    assert v[2].best.text == CAKE and v[2].best.cosine > 0.8 and v[2].best.rouge_l_f == pytest.approx(0.375)
    assert v[2].max_cosine == v[2].best.cosine
    later = manager.check_and_insert("c", [Item(CAKE2 + " Thanks!"), Item("Name three prime numbers.")])
    assert later[0].reason == "semantic" and later[0].best.entry == 0  # against stored vectors now
    assert later[1].kept and later[1].max_cosine < 0.8
    lexical_only = manager.create("plain", CollectionConfig())
    assert [x.kept for x in manager.check_and_insert("plain", [Item(CAKE), Item(CAKE2)])] == [True, True]
    assert lexical_only.semantic is None


def test_lexical_drop_reports_the_cosine_too(manager, model):
    manager.create("c", SEMANTIC)
    v = manager.check_and_insert("c", [Item("Write a short poem about the ocean."),
                                       Item("Write a short poem about the ocean at night.")])
    assert v[1].reason == "lexical" and v[1].best.cosine == pytest.approx(v[1].max_cosine, abs=1e-6)


def test_semantic_partitions_and_references(manager, model):
    config = CollectionConfig(
        semantic=SemanticConfig(threshold=0.8), default_scope=PARTITION,
        references=(Item(SLEEP, id="seed-sleep"),),
    )
    manager.create("c", config)
    v = manager.check_and_insert("c", [Item(CAKE, partition="a"), Item(CAKE2, partition="b"),
                                       Item(CAKE2, partition="a"), Item(SLEEP2, partition="b")])
    assert [x.kept for x in v] == [True, True, False, False]
    assert v[3].best.reference and v[3].best.id == "seed-sleep"
    across = manager.check("c", [Item("Tell me how to make a chocolate cake.", partition="z")], scope="collection")
    assert not across[0].kept


def test_semantic_search_and_restart_keep_vectors(tmp_path, model):
    m = CollectionManager(tmp_path)
    m.open()
    m.create("c", CollectionConfig(semantic=SemanticConfig(threshold=0.95), lexical=LexicalConfig(1.0)))
    m.check_and_insert("c", [Item(t) for t in (CAKE, SLEEP, VACCINE, CAKE2)])
    (matches,) = m.search("c", ["chocolate cake recipe"], k=2, semantic=True)
    assert {x.text for x in matches} == {CAKE, CAKE2} and matches[0].cosine >= matches[1].cosine
    before = m.get("c").semantic.partitions[0].vectors()
    m.close()
    m2 = CollectionManager(tmp_path)
    m2.open()
    assert np.array_equal(m2.get("c").semantic.partitions[0].vectors(), before)  # replayed, not re-embedded
    m2.snapshot("c")
    m2.close()
    m3 = CollectionManager(tmp_path)
    m3.open()
    assert np.array_equal(m3.get("c").semantic.partitions[0].vectors(), before)
    assert not m3.check("c", [Item(CAKE2)])[0].kept
    m3.close()


@pytest.mark.parametrize("kind", [IVF, HNSW])
def test_large_partitions_switch_to_an_approximate_index(kind):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3000, 64)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    index = VectorIndex(64, IndexPolicy(exact_max=1000, large_kind=kind, ivf_nprobe=8))
    for start in range(0, 3000, 500):
        index.add(base[start : start + 500], np.arange(start, start + 500))
    assert index.kind == kind and len(index) == 3000
    near = base[::10] + 0.05 * rng.standard_normal((300, 64)).astype(np.float32)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    _, entries = index.search(near, 1)
    recall = np.mean(entries[:, 0] == np.arange(0, 3000, 10))
    assert recall >= 0.95  # near-duplicates are the easy case for both kinds
    assert np.allclose(index.vector(1234), base[1234], atol=1e-6)
