"""Collections: partitions and scopes, references, verdict contents, read-only checks, bad input."""

from __future__ import annotations

import pytest

from instructforge.dedup.collection import Item, content_id
from instructforge.dedup.config import PARTITION, CollectionConfig, LexicalConfig, SemanticConfig
from instructforge.dedup.tokenize import Vocabulary
from instructforge.runtime.errors import AlreadyExists, InvalidArgument, NotFound

from .reference import novelty_filter, rouge_l

POEM = "Write a short poem about the ocean."
POEM2 = "Write a short poem about the ocean at night."  # F = 0.875 (0.8750000000000001) against POEM
TOPIC = "Explain the difference between cats and dogs."


def test_partition_scope_only_looks_inside_the_partition(manager):
    manager.create("tree", CollectionConfig(default_scope=PARTITION))
    first = manager.check_and_insert("tree", [Item(POEM, partition="rewrite/poems")])
    assert first[0].kept
    other_node = manager.check_and_insert("tree", [Item(POEM2, partition="brainstorm")])
    assert other_node[0].kept  # Explore-Instruct filters within one tree node
    same_node = manager.check_and_insert("tree", [Item(POEM2, partition="rewrite/poems")])
    assert not same_node[0].kept and same_node[0].best.partition == "rewrite/poems"
    # the same collection, asked across all partitions
    across = manager.check("tree", [Item(POEM2 + " Please.", partition="new-node")], scope="collection")
    assert not across[0].kept


def test_partition_scope_within_one_batch(manager):
    manager.create("tree", CollectionConfig(default_scope=PARTITION))
    items = [Item(POEM, partition="a"), Item(POEM2, partition="b"), Item(POEM2, partition="a")]
    assert [v.kept for v in manager.check_and_insert("tree", items)] == [True, True, False]
    expected = novelty_filter([i.text for i in items], partitions=["a", "b", "a"], scope_all=False)
    assert expected == [True, True, False]


def test_a_batch_in_a_new_partition_scans_no_other_partition(manager):
    # Explore-Instruct's filter sends each tree node once, in a partition of its own: nothing stored
    # can match it, so judging it walks no posting list of the index (only its own items' pairs).
    manager.create("tree", CollectionConfig(default_scope=PARTITION))
    node = [Item(f"{POEM[:-1]} number {k}.", partition="node-1") for k in range(6)]
    manager.check_and_insert("tree", node)
    stats = manager.get("tree").lexical.stats
    alone = stats.postings_scanned  # node-1 against itself, the index empty
    again = manager.check_and_insert("tree", [Item(i.text, partition="node-2") for i in node])
    assert [v.kept for v in again] == [True, False, False, False, False, False]  # as for node-1
    assert stats.postings_scanned - alone == alone  # node-1's postings were not walked
    both = manager.check_and_insert("tree", [Item(POEM2, partition="node-1"), Item(POEM2, partition="node-9")])
    assert [v.kept for v in both] == [False, True]  # a stored partition is still looked into


def test_a_kept_item_is_tokenized_once(manager, monkeypatch):
    manager.create("tree", CollectionConfig(default_scope=PARTITION))
    seen = []
    encode = Vocabulary.encode
    monkeypatch.setattr(Vocabulary, "encode", lambda vocab, text: seen.append(text) or encode(vocab, text))
    items = [Item(POEM, partition="a"), Item(TOPIC, partition="a")]
    assert all(v.kept for v in manager.check_and_insert("tree", items))
    assert sorted(seen) == sorted([POEM, TOPIC])  # judged and stored from one tokenization


def test_references_count_as_kept_but_are_not_entries(manager):
    refs = (Item(POEM, id="seed-1"), Item(TOPIC, id="seed-2", partition="node-x"))
    coll = manager.create("seeded", CollectionConfig(references=refs, default_scope=PARTITION))
    assert coll.entry_count == 0 and coll.n_references == 2
    verdicts = manager.check_and_insert(
        "seeded", [Item(POEM2, partition="node-y"), Item(TOPIC, partition="node-y"), Item(TOPIC, partition="node-x")]
    )
    assert not verdicts[0].kept and verdicts[0].best.reference and verdicts[0].best.id == "seed-1"
    assert verdicts[1].kept  # a partitioned reference is seen only from its partition
    assert not verdicts[2].kept and verdicts[2].reason == "exact_duplicate" and verdicts[2].best.id == "seed-2"
    assert coll.entry_count == 1


def test_verdict_contents(manager):
    manager.create("c", CollectionConfig())
    v = manager.check_and_insert("c", [Item(POEM, id="p1"), Item(POEM2), Item(TOPIC), Item(POEM)])
    assert [x.kept for x in v] == [True, False, True, False]
    assert v[0].entry == 0 and v[2].entry == 1 and v[1].entry == -1
    assert v[1].id == content_id(POEM2)  # ids default to a hash of the text
    assert v[1].reason == "lexical" and v[1].best.text == POEM and v[1].best.id == "p1"
    assert v[1].best.entry == 0 and v[1].best.rouge_l_f == v[1].max_rouge_l_f == rouge_l(POEM2, POEM)
    assert v[3].reason == "exact_duplicate" and v[3].best.rouge_l_f == 1.0
    assert v[2].best is None and v[2].max_rouge_l_f == 0.0  # nothing in scope came near
    assert v[0].max_cosine is None  # semantic dedup is off


def test_check_inserts_nothing_and_learns_no_tokens(manager):
    coll = manager.create("c", CollectionConfig())
    manager.check_and_insert("c", [Item(POEM)])
    vocab_before = len(coll.vocab)
    v = manager.check("c", [Item("zebra quagga okapi"), Item("zebra quagga okapi"), Item(POEM2)])
    assert [x.kept for x in v] == [True, False, False]  # judged against earlier items of the batch too
    assert len(coll) == 1 and len(coll.vocab) == vocab_before


def test_request_id_returns_the_first_answer(manager):
    manager.create("c", CollectionConfig())
    first = manager.check_and_insert("c", [Item(POEM), Item(POEM2)], request_id="r1")
    again = manager.check_and_insert("c", [Item(POEM), Item(POEM2)], request_id="r1")
    assert [(v.kept, v.reason, v.entry) for v in again] == [(v.kept, v.reason, v.entry) for v in first]
    assert again[1].best.text == POEM and len(manager.get("c")) == 1
    fresh = manager.check_and_insert("c", [Item(POEM)], request_id="r2")
    assert not fresh[0].kept
    assert manager.insert("c", [Item(TOPIC)], request_id="i1") == 1
    assert manager.insert("c", [Item(TOPIC)], request_id="i1") == 1 and len(manager.get("c")) == 2


def test_insert_and_lexical_search(manager):
    manager.create("c", CollectionConfig())
    assert manager.insert("c", [Item(POEM), Item(POEM), Item(TOPIC, partition="p")]) == 3
    (matches,) = manager.search("c", ["a short poem about the ocean"], k=2, semantic=False)
    assert [m.text for m in matches] == [POEM, POEM] and matches[0].entry == 0
    assert matches[0].rouge_l_f == rouge_l("a short poem about the ocean", POEM)
    (only_p,) = manager.search("c", [TOPIC], k=5, semantic=False, partition="p")
    assert [m.text for m in only_p] == [TOPIC]


@pytest.mark.parametrize(
    "config, field",
    [
        (CollectionConfig(lexical=LexicalConfig(1.5)), "config.lexical.threshold"),
        (CollectionConfig(lexical=LexicalConfig(float("nan"))), "config.lexical.threshold"),
        (CollectionConfig(lexical=LexicalConfig(0.7, "=>")), "config.lexical.comparison"),
        (CollectionConfig(lexical=LexicalConfig(0.0, ">=")), "config.lexical.threshold"),
        (CollectionConfig(semantic=SemanticConfig(threshold=2.0)), "config.semantic.threshold"),
        (CollectionConfig(semantic=SemanticConfig(model="no/such-model")), "config.semantic.model"),
        (CollectionConfig(default_scope="tree"), "config.default_scope"),
        (CollectionConfig(references=(Item("x" * 300_000),)), "config.references[0].text"),
    ],
)
def test_invalid_configs_name_the_field(manager, config, field):
    with pytest.raises(InvalidArgument) as err:
        manager.create("c", config)
    assert field in [v.field for v in err.value.violations]
    assert manager.names() == []


def test_bad_requests_name_the_field(manager):
    manager.create("c", CollectionConfig())
    with pytest.raises(NotFound):
        manager.check_and_insert("missing", [Item(POEM)])
    with pytest.raises(AlreadyExists):
        manager.create("c", CollectionConfig())
    with pytest.raises(InvalidArgument) as err:
        manager.create("Bad Name!", CollectionConfig())
    assert err.value.violations[0].field == "name"
    with pytest.raises(InvalidArgument) as err:
        manager.check_and_insert("c", [])
    assert err.value.violations[0].field == "items"
    with pytest.raises(InvalidArgument) as err:
        manager.check_and_insert("c", [Item(POEM), Item("x" * 300_000), Item("\ud800 lone surrogate")])
    assert [v.field for v in err.value.violations] == ["items[1].text", "items[2].text"]
    assert len(manager.get("c")) == 0  # a bad batch changes nothing
    assert manager.check_and_insert("c", [Item(POEM)])[0].kept  # and the collection still works


def test_delete(manager):
    manager.create("c", CollectionConfig())
    manager.check_and_insert("c", [Item(POEM)])
    manager.delete("c")
    with pytest.raises(NotFound):
        manager.check("c", [Item(POEM)])
    manager.create("c", CollectionConfig())
    assert manager.check_and_insert("c", [Item(POEM)])[0].kept
