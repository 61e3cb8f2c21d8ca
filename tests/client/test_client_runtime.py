"""Every client against the real server runtime: health, field-named errors, domain errors, streams."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from grpc_health.v1 import health_pb2

from instructforge.client import (
    CLIENTS,
    DedupClient,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    ServiceClient,
    TrainerClient,
    UnimplementedError,
    VerifierClient,
)
from instructforge.client.rpc import server_stream
from instructforge.dedup.v1 import dedup_pb2 as dd
from instructforge.dedup.v1 import dedup_pb2_grpc
from instructforge.generator.v1 import generator_pb2 as gen
from instructforge.runtime.errors import FieldViolation, InvalidArgument, NotFound, ResourceExhausted
from instructforge.tagger.v1 import tagger_pb2 as tg
from instructforge.trainer.v1 import trainer_pb2 as tr
from instructforge.verifier.v1 import verifier_pb2 as vf
from instructforge.verifier.v1 import verifier_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING

# One request per service that breaks field rules of its contract, and the fields it breaks. The
# runtime checks them before any handler runs, so this holds whatever the service implements.
MALFORMED = {
    "generator": ("generate", gen.GenerateRequest(sample_count=500), {"model", "sample_count"}),
    "dedup": (
        "create_collection",
        dd.CreateCollectionRequest(name="Bad Name", config={"lexical": {"threshold": 2}}),
        {"name", "config.lexical.threshold"},
    ),
    "verifier": ("execute", vf.ExecuteRequest(program="print(1)"), {"language"}),
    "tagger": ("select_items", tg.SelectItemsRequest(), {"candidates", "budget"}),
    "trainer": ("watch_fine_tune_job", tr.WatchFineTuneJobRequest(), {"name"}),
}


async def _first_error(call):
    """Await a unary call, or drain a streaming one, and return what it raised."""
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize("name", sorted(CLIENTS))
async def test_each_client_reaches_its_real_service_and_learns_every_bad_field(start_service, name):
    running = await start_service(name)
    async with CLIENTS[name].connect(running.address, timeout=10) as client:
        assert await client.health() == SERVING
        assert await client.health(client.service.full_name) == SERVING
        method, request, fields = MALFORMED[name]
        error = await _first_error(getattr(client, method)(request))
    assert isinstance(error, InvalidArgumentError)
    assert {v.field for v in error.field_violations} == fields
    assert all(v.description for v in error.field_violations)
    assert error.reason == "INVALID_ARGUMENT" and error.domain == "instructforge" and not error.temporary


async def test_health_of_an_unknown_service_is_not_found(serve_runtime):
    running = await serve_runtime("tagger")
    async with ServiceClient.connect(running.address, timeout=10) as client:
        with pytest.raises(NotFoundError):
            await client.health("instructforge.nothing.v1.NothingService")


@pytest.mark.parametrize(
    "name, call",
    [
        ("dedup", lambda c: c.check(dd.CheckRequest(collection="seeds", items=[dd.Item(text="hi")]))),
        ("trainer", lambda c: c.watch_fine_tune_job(tr.WatchFineTuneJobRequest(name="ftjob-1"))),
        ("generator", lambda c: c.stream_generate([gen.StreamGenerateRequest(correlation_id="1")])),
    ],
)
async def test_an_rpc_not_built_yet_says_so_for_unary_and_streaming_calls(serve_runtime, name, call):
    running = await serve_runtime(name)
    async with CLIENTS[name].connect(running.address, timeout=10) as client:
        error = await _first_error(call(client))
    assert isinstance(error, UnimplementedError)
    assert error.reason == "NOT_IMPLEMENTED_YET"
    assert "not implemented" in error.message and not error.temporary


class ScriptedDedup(dedup_pb2_grpc.DedupServiceServicer):
    """Each RPC answers or fails the way a real service would, through the runtime's error mapping."""

    async def ListCollections(self, request, context):
        return dd.ListCollectionsResponse(collections=[dd.Collection(name="seeds", entry_count=3)])

    async def GetCollection(self, request, context):
        raise NotFound(
            f"collection {request.name!r} does not exist",
            reason="COLLECTION_NOT_FOUND",
            metadata={"collection": request.name},
        )

    async def Check(self, request, context):
        raise InvalidArgument(
            violations=[
                FieldViolation("items[1].text", "is a duplicate of items[0].text"),
                FieldViolation("items[2].id", "is used twice"),
            ]
        )

    async def Insert(self, request, context):
        raise ResourceExhausted("the index is full; retry later", reason="INDEX_FULL")

    async def Search(self, request, context):
        raise KeyError("internal detail")


async def test_domain_errors_arrive_typed_with_reason_metadata_and_violations(serve_runtime):
    running = await serve_runtime("dedup", ScriptedDedup())
    items = [dd.Item(text=t) for t in ("a", "b", "c")]
    async with DedupClient.connect(running.address, timeout=10) as dedup:
        listed = await dedup.list_collections(dd.ListCollectionsRequest())
        not_found = await _first_error(dedup.get_collection(dd.GetCollectionRequest(name="seeds")))
        invalid = await _first_error(dedup.check(dd.CheckRequest(collection="seeds", items=items)))
        exhausted = await _first_error(dedup.insert(dd.InsertRequest(collection="seeds", items=items)))
        internal = await _first_error(dedup.search(dd.SearchRequest(collection="seeds", queries=["a"])))
    assert isinstance(listed, dd.ListCollectionsResponse) and listed.collections[0].entry_count == 3
    assert isinstance(not_found, NotFoundError)
    assert (not_found.reason, not_found.metadata) == ("COLLECTION_NOT_FOUND", {"collection": "seeds"})
    assert "'seeds' does not exist" in not_found.message
    assert isinstance(invalid, InvalidArgumentError)
    assert [(v.field, v.description) for v in invalid.field_violations] == [
        ("items[1].text", "is a duplicate of items[0].text"),
        ("items[2].id", "is used twice"),
    ]
    assert isinstance(exhausted, ResourceExhaustedError) and exhausted.temporary
    assert exhausted.reason == "INDEX_FULL"
    assert isinstance(internal, InternalError) and internal.reason == "INTERNAL"
    assert "error_id=" in internal.message and "internal detail" not in internal.message


class EchoVerifier(verifier_pb2_grpc.VerifierServiceServicer):
    """Answers each streamed request with its correlation id; notes when its stream ended."""

    def __init__(self):
        self.ended = asyncio.Event()

    async def ExecuteStream(self, request_iterator, context):
        try:
            async for request in request_iterator:
                yield vf.ExecuteStreamResponse(
                    correlation_id=request.correlation_id,
                    response=vf.ExecuteResponse(outcome=vf.OUTCOME_PASSED),
                )
        finally:
            self.ended.set()


async def test_bidi_stream_sends_requests_and_yields_responses(serve_runtime):
    running = await serve_runtime("verifier", EchoVerifier())

    async def requests():
        for i in range(3):
            yield vf.ExecuteStreamRequest(correlation_id=f"r{i}")

    async with VerifierClient.connect(running.address) as verifier:
        answers = [r.correlation_id async for r in verifier.execute_stream(requests())]
        again = [
            r.correlation_id
            async for r in verifier.execute_stream([vf.ExecuteStreamRequest(correlation_id="x")])
        ]
    assert answers == ["r0", "r1", "r2"] and again == ["x"]


async def test_leaving_a_stream_early_cancels_it_on_the_server(serve_runtime):
    servicer = EchoVerifier()
    running = await serve_runtime("verifier", servicer)

    async def endless():
        i = 0
        while True:
            yield vf.ExecuteStreamRequest(correlation_id=str(i))
            i += 1
            await asyncio.sleep(0.01)

    # The requests never end, so the server's side of the stream ends only if the client tears it down.
    async with VerifierClient.connect(running.address) as verifier:
        async with aclosing(verifier.execute_stream(endless())) as responses:
            async for response in responses:
                assert response.correlation_id == "0"
                break
        await asyncio.wait_for(servicer.ended.wait(), timeout=10)


class HealthClient(ServiceClient):
    """A client of the standard health service, declared the same way as the InstructForge ones."""

    service = health_pb2.DESCRIPTOR.services_by_name["Health"]
    watch = server_stream(health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse)


async def test_server_stream_yields_each_message_as_it_comes(serve_runtime):
    running = await serve_runtime("trainer")
    full_name = TrainerClient.service.full_name
    statuses = []
    request = health_pb2.HealthCheckRequest(service=full_name)
    async with HealthClient.connect(running.address) as client, aclosing(client.watch(request)) as updates:
        async for update in updates:
            statuses.append(update.status)
            if len(statuses) == 1:
                await running.health.set(full_name, health_pb2.HealthCheckResponse.NOT_SERVING)
            else:
                break
    assert statuses == [SERVING, health_pb2.HealthCheckResponse.NOT_SERVING]
