"""The service over gRPC on loopback: the whole API, bad input, errors with field paths, metrics."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import generate_latest

from instructforge.dedup.v1 import dedup_pb2 as pb
from instructforge.dedup.v1 import dedup_pb2_grpc as pb_grpc
from instructforge.runtime.metrics import Metrics

POEM = "Write a short poem about the ocean."
POEM2 = "Write a short poem about the ocean at night."
TOPIC = "Explain the difference between cats and dogs."


@pytest.fixture
async def dedup(start_service):
    metrics = Metrics()
    running = await start_service("dedup", metrics=metrics)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.DedupServiceStub(channel), channel, metrics


def details(error: grpc.aio.AioRpcError) -> tuple[str, list[str]]:
    """(ErrorInfo reason, BadRequest field paths) of a failed call."""
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    status = status_pb2.Status.FromString(raw)
    reason, fields = "", []
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            reason = info.reason
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return reason, fields


async def test_the_whole_api(dedup):
    stub, _, metrics = dedup
    config = pb.CollectionConfig(
        lexical=pb.LexicalConfig(threshold=0.7), default_scope=pb.SCOPE_PARTITION,
        references=[pb.Item(id="seed-0", text=TOPIC)],
    )
    created = (await stub.CreateCollection(pb.CreateCollectionRequest(name="seeds.v1", config=config))).collection
    assert created.name == "seeds.v1" and created.reference_count == 1 and created.entry_count == 0
    assert created.config.lexical.comparison == pb.COMPARISON_GREATER and created.create_time.seconds > 0
    items = [pb.Item(id="a", text=POEM, partition="n1"), pb.Item(text=POEM2, partition="n1"),
             pb.Item(text=POEM2, partition="n2"), pb.Item(text=TOPIC + "!", partition="n2")]
    reply = await stub.CheckAndInsert(pb.CheckAndInsertRequest(collection="seeds.v1", items=items, request_id="r1"))
    r = reply.results
    assert [x.verdict for x in r] == [pb.VERDICT_KEPT, pb.VERDICT_DROPPED, pb.VERDICT_KEPT, pb.VERDICT_DROPPED]
    assert r[1].drop_reason == pb.DROP_REASON_LEXICAL and r[1].best_match.id == "a"
    assert r[1].best_match.rouge_l_f == r[1].max_rouge_l_f > 0.7 and not r[1].HasField("max_cosine_similarity")
    assert r[3].drop_reason == pb.DROP_REASON_LEXICAL and r[3].best_match.reference
    assert r[1].id and r[1].id != "a"  # generated from the content
    retried = await stub.CheckAndInsert(pb.CheckAndInsertRequest(collection="seeds.v1", items=items, request_id="r1"))
    assert retried == reply
    got = (await stub.GetCollection(pb.GetCollectionRequest(name="seeds.v1"))).collection
    assert got.entry_count == 2 and got.partition_count == 2 and got.memory_bytes > 0
    checked = await stub.Check(pb.CheckRequest(collection="seeds.v1", items=[pb.Item(text=POEM, partition="n2")],
                                               scope=pb.SCOPE_COLLECTION))
    assert checked.results[0].drop_reason == pb.DROP_REASON_EXACT_DUPLICATE
    inserted = await stub.Insert(pb.InsertRequest(collection="seeds.v1", items=[pb.Item(text=POEM)]))
    assert inserted.inserted_count == 1
    found = await stub.Search(pb.SearchRequest(collection="seeds.v1", queries=["poem about the ocean"], top_k=2))
    assert [m.text for m in found.results[0].matches] == [POEM, POEM]
    snap = await stub.SnapshotCollection(pb.SnapshotCollectionRequest(name="seeds.v1"))
    assert snap.entry_count == 3 and snap.size_bytes > 0 and snap.snapshot_time.seconds > 0
    for n in range(3):
        await stub.CreateCollection(pb.CreateCollectionRequest(name=f"c{n}"))
    page1 = await stub.ListCollections(pb.ListCollectionsRequest(page_size=3))
    page2 = await stub.ListCollections(pb.ListCollectionsRequest(page_size=3, page_token=page1.next_page_token))
    assert [c.name for c in page1.collections] + [c.name for c in page2.collections] == ["c0", "c1", "c2", "seeds.v1"]
    assert page2.next_page_token == ""
    await stub.DeleteCollection(pb.DeleteCollectionRequest(name="c1"))
    scraped = generate_latest(metrics.registry).decode()
    assert 'iforge_dedup_items_dropped_total{collection="seeds.v1",reason="lexical"} 2.0' in scraped
    assert 'iforge_dedup_entries{collection="seeds.v1"} 3.0' in scraped
    assert "iforge_dedup_snapshot_age_seconds" in scraped and "iforge_dedup_lcs_pairs_total" in scraped


@pytest.mark.parametrize(
    "call, request_, code, reason, fields",
    [
        ("CheckAndInsert", pb.CheckAndInsertRequest(collection="nope", items=[pb.Item(text="x")]),
         grpc.StatusCode.NOT_FOUND, "COLLECTION_NOT_FOUND", []),
        ("CheckAndInsert", pb.CheckAndInsertRequest(collection="c"), grpc.StatusCode.INVALID_ARGUMENT, None,
         ["items"]),
        ("CheckAndInsert", pb.CheckAndInsertRequest(collection="c", items=[pb.Item(text="ok"),
                                                                            pb.Item(text="x" * 70000)]),
         grpc.StatusCode.INVALID_ARGUMENT, None, ["items[1].text"]),
        ("CheckAndInsert", pb.CheckAndInsertRequest(collection="c", items=[pb.Item(text="ok")], scope=9),
         grpc.StatusCode.INVALID_ARGUMENT, None, ["scope"]),
        ("CreateCollection", pb.CreateCollectionRequest(
            name="t", config=pb.CollectionConfig(lexical=pb.LexicalConfig(threshold=1.5))),
         grpc.StatusCode.INVALID_ARGUMENT, None, ["config.lexical.threshold"]),
        ("CreateCollection", pb.CreateCollectionRequest(
            name="t", config=pb.CollectionConfig(semantic=pb.SemanticConfig(threshold=-3))),
         grpc.StatusCode.INVALID_ARGUMENT, None, ["config.semantic.threshold"]),
        ("CreateCollection", pb.CreateCollectionRequest(
            name="t", config=pb.CollectionConfig(lexical=pb.LexicalConfig(comparison=5))),
         grpc.StatusCode.INVALID_ARGUMENT, None, ["config.lexical.comparison"]),
        ("CreateCollection", pb.CreateCollectionRequest(
            name="t", config=pb.CollectionConfig(semantic=pb.SemanticConfig(threshold=0.9,
                                                                            embedding_model="missing-model"))),
         grpc.StatusCode.INVALID_ARGUMENT, None, ["config.semantic.model"]),
        ("CreateCollection", pb.CreateCollectionRequest(name="Has Spaces"), grpc.StatusCode.INVALID_ARGUMENT, None,
         ["name"]),
        ("CreateCollection", pb.CreateCollectionRequest(name="c"), grpc.StatusCode.ALREADY_EXISTS,
         "COLLECTION_EXISTS", []),
        ("Search", pb.SearchRequest(collection="c", queries=["x"], mode=pb.SEARCH_MODE_SEMANTIC),
         grpc.StatusCode.FAILED_PRECONDITION, "SEMANTIC_DISABLED", []),
        ("ListCollections", pb.ListCollectionsRequest(page_token="!!"), grpc.StatusCode.INVALID_ARGUMENT, None,
         ["page_token"]),
    ],
)
async def test_bad_input_gets_a_clear_error_and_the_service_stays_healthy(dedup, call, request_, code, reason,
                                                                          fields):
    stub, channel, _ = dedup
    await stub.CreateCollection(pb.CreateCollectionRequest(name="c"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, call)(request_)
    assert err.value.code() == code
    got_reason, got_fields = details(err.value)
    assert got_fields == fields
    if reason:
        assert got_reason == reason
    assert "Traceback" not in err.value.details()
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    ok = await stub.CheckAndInsert(pb.CheckAndInsertRequest(collection="c", items=[pb.Item(text=POEM)]))
    assert ok.results[0].verdict == pb.VERDICT_KEPT
