"""Callers' own embeddings: "client" collections, vectors that replace the model's, and bad vectors."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from instructforge.dedup.collection import Item
from instructforge.dedup.config import CollectionConfig, SemanticConfig
from instructforge.dedup.v1 import dedup_pb2 as pb
from instructforge.dedup.v1 import dedup_pb2_grpc as pb_grpc
from instructforge.runtime.errors import InvalidArgument

from .test_grpc import details

CLIENT_CONFIG = pb.CollectionConfig(semantic=pb.SemanticConfig(threshold=0.9, embedding_model="client", dimension=4))


def item(text: str, vector=None, **kw) -> pb.Item:
    out = pb.Item(text=text, **kw)
    if vector is not None:
        out.embedding.values.extend(vector)
    return out


@pytest.fixture
async def stub(start_service):
    running = await start_service("dedup")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.DedupServiceStub(channel)


async def test_a_client_collection_judges_the_callers_vectors(stub):
    created = (await stub.CreateCollection(pb.CreateCollectionRequest(name="byo", config=CLIENT_CONFIG))).collection
    assert created.config.semantic.embedding_model == "client" and created.config.semantic.dimension == 4
    items = [
        item("Plan a week of vegetarian dinners.", [2.0, 0.0, 0.0, 0.0], id="a"),  # normalised by the service
        item("Name the planets in order.", [0.0, 1.0, 0.0, 0.0], id="b"),
        item("Suggest meatless meals for seven evenings.", [0.99, 0.1, 0.0, 0.0], id="c"),
        item("List three rivers in Africa.", [0.0, 0.0, 1.0, 0.0], id="d"),
    ]
    r = (await stub.CheckAndInsert(pb.CheckAndInsertRequest(collection="byo", items=items))).results
    assert [x.verdict for x in r] == [pb.VERDICT_KEPT, pb.VERDICT_KEPT, pb.VERDICT_DROPPED, pb.VERDICT_KEPT]
    want = 0.99 / np.hypot(0.99, 0.1)
    assert r[2].drop_reason == pb.DROP_REASON_SEMANTIC and r[2].best_match.id == "a"
    assert r[2].max_cosine_similarity == pytest.approx(want, abs=1e-6)
    # against stored vectors, and Search by the caller's query vectors
    later = await stub.CheckAndInsert(pb.CheckAndInsertRequest(
        collection="byo", items=[item("Which rivers flow through Africa?", [0.05, 0.0, 1.0, 0.0])]))
    assert later.results[0].drop_reason == pb.DROP_REASON_SEMANTIC and later.results[0].best_match.id == "d"
    query = pb.Embedding(values=[0.0, 0.6, 0.8, 0.0])
    found = await stub.Search(pb.SearchRequest(collection="byo", queries=["rivers"], mode=pb.SEARCH_MODE_SEMANTIC,
                                               top_k=2, query_embeddings=[query]))
    assert [m.id for m in found.results[0].matches] == ["d", "b"]
    assert [m.cosine_similarity for m in found.results[0].matches] == pytest.approx([0.8, 0.6], abs=1e-6)
    lexical = await stub.Search(pb.SearchRequest(collection="byo", queries=["Name the planets"], top_k=1))
    assert lexical.results[0].matches[0].id == "b"  # no vectors needed to search by ROUGE-L


async def test_bad_vectors_are_named_at_once_and_nothing_is_inserted(stub):
    await stub.CreateCollection(pb.CreateCollectionRequest(name="byo", config=CLIENT_CONFIG))
    bad = [
        item("fine", [1.0, 0.0, 0.0, 0.0]),
        item("no vector"),
        item("too short", [1.0, 0.0]),
        item("not a number", [float("nan"), 0.0, 0.0, 0.0]),
        item("zero", [0.0, 0.0, 0.0, 0.0]),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CheckAndInsert(pb.CheckAndInsertRequest(collection="byo", items=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(err.value)[1] == [f"items[{k}].embedding" for k in (2, 3, 4, 1)]
    assert "has 2 values; this collection's vectors have 4" in err.value.details()
    got = (await stub.GetCollection(pb.GetCollectionRequest(name="byo"))).collection
    assert got.entry_count == 0
    cases = [
        (stub.CreateCollection, pb.CreateCollectionRequest(name="nodim", config=pb.CollectionConfig(
            semantic=pb.SemanticConfig(threshold=0.9, embedding_model="client"))), "config.semantic.dimension"),
        (stub.Insert, pb.InsertRequest(collection="byo", items=[item("x")]), "items[0].embedding"),
        (stub.Search, pb.SearchRequest(collection="byo", queries=["x"], mode=pb.SEARCH_MODE_SEMANTIC),
         "query_embeddings"),
        (stub.Search, pb.SearchRequest(collection="byo", queries=["x", "y"], mode=pb.SEARCH_MODE_SEMANTIC,
                                       query_embeddings=[pb.Embedding(values=[1, 0, 0, 0])]), "query_embeddings"),
        (stub.CompareTexts, pb.CompareTextsRequest(reference="a", candidates=["b"], semantic=True,
                                                   embedding_model="client"), "embedding_model"),
    ]
    await stub.CreateCollection(pb.CreateCollectionRequest(name="plain"))
    cases.append((stub.CheckAndInsert, pb.CheckAndInsertRequest(collection="plain", items=[item("x", [1.0])]),
                  "items[0].embedding"))
    for call, request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (request, err.value.details())
        assert details(err.value)[1] == [field], err.value.details()
    assert (await stub.GetCollection(pb.GetCollectionRequest(name="plain"))).collection.entry_count == 0


async def test_vectors_sent_to_a_model_collection_replace_the_models(stub):
    config = pb.CollectionConfig(semantic=pb.SemanticConfig(threshold=0.8))
    created = (await stub.CreateCollection(pb.CreateCollectionRequest(name="mini", config=config))).collection
    assert created.config.semantic.dimension == 384  # filled in from the model
    one = np.zeros(384, np.float32)
    one[7] = 1.0
    # Unrelated texts the model would keep, made duplicates by the caller's vectors; the third item
    # has no vector, so the model embeds it (a paraphrase of the first: dropped by the model's cosine).
    items = [item("How do I bake a chocolate cake?", one.tolist()), item("Name three prime numbers.", one.tolist()),
             item("What is the recipe for making a chocolate cake?")]
    r = (await stub.CheckAndInsert(pb.CheckAndInsertRequest(collection="mini", items=items))).results
    assert r[1].drop_reason == pb.DROP_REASON_SEMANTIC and r[1].max_cosine_similarity == pytest.approx(1.0)
    assert r[2].verdict == pb.VERDICT_KEPT  # its model vector is nowhere near the made-up one
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(pb.CheckRequest(collection="mini", items=[item("x", [1.0, 2.0])]))
    assert details(err.value)[1] == ["items[0].embedding"] and "have 384" in err.value.details()
    wrong = pb.CollectionConfig(semantic=pb.SemanticConfig(threshold=0.8, dimension=100))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateCollection(pb.CreateCollectionRequest(name="wrong", config=wrong))
    assert details(err.value)[1] == ["config.semantic.dimension"] and "384" in err.value.details()


def test_client_vectors_and_references_survive_a_restart(tmp_path):
    from instructforge.dedup.manager import CollectionManager

    rng = np.random.default_rng(0)
    seed_vec = rng.normal(size=16).astype(np.float32)
    config = CollectionConfig(
        semantic=SemanticConfig(threshold=0.95, model="client", dimension=16),
        references=(Item("the seed task", "seed", "", seed_vec),),
    )
    kept = rng.normal(size=(50, 16)).astype(np.float32)
    near = kept + 0.01 * rng.normal(size=kept.shape).astype(np.float32)

    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

    def batch(vectors, prefix):  # texts with no words in common, so only the vectors can match
        words = ["".join(rng.choice(letters, 8)) for _ in range(4 * len(vectors))]
        return [Item(f"{prefix}{k} " + " ".join(words[4 * k : 4 * k + 4]), "", "", v) for k, v in enumerate(vectors)]

    m = CollectionManager(tmp_path / "data")
    m.open()
    m.create("c", config)
    assert all(v.kept for v in m.check_and_insert("c", batch(kept[:30], "first")))
    m.snapshot("c")
    assert all(v.kept for v in m.check_and_insert("c", batch(kept[30:], "second")))  # only in the log
    m.close()

    again = CollectionManager(tmp_path / "data")
    again.open()
    try:
        assert again.get("c").config.semantic.dimension == 16
        probe = batch(near, "probe") + [Item("another seed-like task", "", "", seed_vec * 3)]
        verdicts = again.check("c", probe)
        assert [v.reason for v in verdicts] == ["semantic"] * 51
        assert verdicts[-1].best.id == "seed" and verdicts[-1].best.reference
        with pytest.raises(InvalidArgument) as err:
            again.check("c", [Item("no vector")])
        assert err.value.violations[0].field == "items[0].embedding"
    finally:
        again.close()
