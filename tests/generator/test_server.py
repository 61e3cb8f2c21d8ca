"""The gateway served over gRPC by the shared runtime, against fake providers on loopback."""

import asyncio

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from generator.conftest import wait_until
from generator.fakes.faults import FaultPlan
from generator.fakes.openai_server import FakeOpenAI
from instructforge.generator.v1 import generator_pb2 as pb
from instructforge.generator.v1 import generator_pb2_grpc
from instructforge.runtime.metrics import Metrics


def models(url: str, **deployment) -> list[dict]:
    return [{"name": "m", "deployments": [{"backend": "openai", "model": "gpt-fake", "base_url": url,
                                            "input_cost_per_million_tokens_usd": 2.0, **deployment}]}]


def chat(text: str, **kwargs) -> pb.GenerateRequest:
    return pb.GenerateRequest(model="m", chat=pb.ChatPrompt(messages=[pb.ChatMessage(role=pb.ROLE_USER,
                                                                                     content=text)]), **kwargs)


async def serve(start_service, url: str, **overrides):
    running = await start_service("generator", models=models(url, **overrides.pop("deployment", {})),
                                  cache={"store": "memory"}, retry={"base_delay_s": 0.005, "max_delay_s": 0.02},
                                  **overrides)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return running, channel, generator_pb2_grpc.GeneratorServiceStub(channel)


def details(error: grpc.aio.AioRpcError):
    status = status_pb2.Status.FromString(dict(error.trailing_metadata())["grpc-status-details-bin"])
    out = {}
    for any_detail in status.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if any_detail.Is(cls.DESCRIPTOR):
                msg = cls()
                any_detail.Unpack(msg)
                out[cls.__name__] = msg
    return out


async def test_generate_and_usage(start_service):
    async with FakeOpenAI() as fake:
        _, channel, stub = await serve(start_service, fake.url)
        async with channel:
            r = await stub.Generate(chat("hi", sample_count=2, run_id="run-1",
                                         sampling=pb.SamplingParams(temperature=0.5, max_tokens=3)), timeout=10)
            assert [s.text for s in r.samples] == ["reply 1.0 to", "reply 1.1 to"]
            assert r.samples[0].finish_reason == pb.FINISH_REASON_LENGTH
            assert r.usage.prompt_tokens == 1 and r.usage.completion_tokens == 6
            assert r.cost_usd == pytest.approx(2e-6) and not r.cache_hit
            assert r.deployment == "m-0" and r.provider_model == "gpt-fake" and r.attempt_count == 1
            assert fake.log.calls[0].body["temperature"] == 0.5 and fake.log.calls[0].body["n"] == 2
            again = await stub.Generate(chat("hi", sample_count=2, run_id="run-1",
                                             sampling=pb.SamplingParams(temperature=0.5, max_tokens=3)))
            assert again.cache_hit and again.cost_usd == 0 and len(fake.log) == 1
            usage = await stub.GetUsage(pb.GetUsageRequest(run_id="run-1"))
            assert [(u.model, u.request_count, u.cache_hit_count, u.prompt_tokens) for u in usage.models] == [
                ("m", 2, 1, 1)]
            assert (await stub.GetUsage(pb.GetUsageRequest(run_id="other"))).models == []


async def test_the_gateway_records_no_metrics_where_nobody_reads_them(start_service):
    """`iforge up --no-metrics-enabled` (how a pipeline run embeds the gateway) serves no endpoint:
    the gateway then updates no Prometheus metric per call (they cost it ~3% of its CPU per call)."""
    async with FakeOpenAI() as fake:
        for recording in (True, False):
            metrics = Metrics(recording=recording)
            _, channel, stub = await serve(start_service, fake.url, metrics=metrics)
            async with channel:
                r = await stub.Generate(chat(f"hi {recording}", idempotency_key=f"k{recording}"), timeout=10)
                assert r.samples and not r.cache_hit
            recorded = [s for family in metrics.registry.collect() if family.name.startswith("instructforge_generator_")
                        for s in family.samples]
            assert bool(recorded) is recording


async def test_errors_are_precise_statuses_with_field_paths(start_service):
    async with FakeOpenAI(FaultPlan(script={"long": ["context_length"]})) as fake:
        _, channel, stub = await serve(start_service, fake.url)
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Generate(chat("long"))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            found = details(info.value)
            assert found["ErrorInfo"].reason == "CONTEXT_LENGTH_EXCEEDED"
            assert [v.field for v in found["BadRequest"].field_violations] == ["chat.messages"]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Generate(pb.GenerateRequest(model="nope", text="x"))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as info:  # the proto's field rules, checked by the runtime
                await stub.Generate(pb.GenerateRequest(model="m", text="x", sampling=pb.SamplingParams(top_p=2)))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in details(info.value)["BadRequest"].field_violations] == ["sampling.top_p"]


async def test_grpc_deadline_bounds_the_call_and_cancels_the_provider_request(start_service):
    async with FakeOpenAI(FaultPlan(script={"slow": ["hang"]})) as fake:
        _, channel, stub = await serve(start_service, fake.url)
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Generate(chat("slow"), timeout=0.5)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert await wait_until(lambda: fake.log.calls[0].disconnected.is_set())


async def test_client_cancellation_reaches_the_provider(start_service):
    async with FakeOpenAI(FaultPlan(script={"slow": ["hang"]})) as fake:
        _, channel, stub = await serve(start_service, fake.url)
        async with channel:
            call = stub.Generate(chat("slow"))
            assert await wait_until(lambda: len(fake.log) == 1)
            call.cancel()
            assert await wait_until(lambda: fake.log.calls[0].disconnected.is_set())


async def test_stream_generate_answers_each_item_by_correlation_id(start_service):
    plan = FaultPlan(script={"bad": ["content_policy"], "slow": [None]})
    async with FakeOpenAI(plan, delay=0.0) as fake:
        _, channel, stub = await serve(start_service, fake.url)
        async with channel:
            items = [pb.StreamGenerateRequest(correlation_id=f"c{i}", request=chat(f"q{i}")) for i in range(50)]
            items.append(pb.StreamGenerateRequest(correlation_id="bad", request=chat("bad")))
            items.append(pb.StreamGenerateRequest(correlation_id="invalid", request=pb.GenerateRequest(model="m")))
            items.append(pb.StreamGenerateRequest(correlation_id="", request=chat("no id")))

            async def requests():
                for item in items:
                    yield item

            answers = {}
            async for out in stub.StreamGenerate(requests(), timeout=30):
                assert out.correlation_id not in answers
                answers[out.correlation_id] = out
            assert len(answers) == len(items)
            for i in range(50):
                assert answers[f"c{i}"].response.samples[0].text.endswith(f"to q{i}: alpha beta gamma delta epsilon "
                                                                           "zeta eta theta")
            assert answers["bad"].error.code == code_pb2.INVALID_ARGUMENT
            assert answers["bad"].error.reason == "CONTENT_POLICY_VIOLATION"
            assert answers["invalid"].error.code == code_pb2.INVALID_ARGUMENT
            assert answers[""].error.code == code_pb2.INVALID_ARGUMENT  # correlation_id is required
            assert len(fake.log) == 51


async def test_stream_flow_control_bounds_the_requests_in_flight(start_service):
    async with FakeOpenAI(delay=0.02) as fake:
        _, channel, stub = await serve(start_service, fake.url, stream_window=4,
                                             deployment={"max_concurrency": 64})
        async with channel:
            async def requests():
                for i in range(60):
                    yield pb.StreamGenerateRequest(correlation_id=str(i), request=chat(f"q{i}"))

            seen = [out.correlation_id async for out in stub.StreamGenerate(requests())]
            assert sorted(seen, key=int) == [str(i) for i in range(60)]
            assert fake.max_active <= 4  # never more than the window at the provider, though 64 were allowed


async def test_stream_rejects_a_correlation_id_already_in_flight(start_service):
    async with FakeOpenAI(delay=0.2) as fake:
        _, channel, stub = await serve(start_service, fake.url)
        async with channel:
            async def requests():
                yield pb.StreamGenerateRequest(correlation_id="same", request=chat("a"))
                yield pb.StreamGenerateRequest(correlation_id="same", request=chat("b"))

            outs = [out async for out in stub.StreamGenerate(requests())]
            errors = [o for o in outs if o.WhichOneof("result") == "error"]
            assert len(outs) == 2 and len(errors) == 1 and errors[0].error.code == code_pb2.INVALID_ARGUMENT


async def test_stream_generate_batches_answers_every_item_and_sends_ready_answers_together(start_service):
    plan = FaultPlan(script={"bad": ["content_policy"]})
    async with FakeOpenAI(plan, delay=0.05) as fake:
        _, channel, stub = await serve(start_service, fake.url, deployment={"max_concurrency": 128})
        async with channel:
            items = [pb.StreamGenerateRequest(correlation_id=f"c{i}", request=chat(f"q{i}")) for i in range(60)]
            items += [pb.StreamGenerateRequest(correlation_id="bad", request=chat("bad")),
                      pb.StreamGenerateRequest(correlation_id="invalid", request=pb.GenerateRequest(model="m")),
                      pb.StreamGenerateRequest(correlation_id="c0", request=chat("again"))]  # c0 still in flight

            async def requests():
                yield pb.StreamGenerateBatchesRequest(items=items[:40])
                yield pb.StreamGenerateBatchesRequest()  # an empty batch is no error
                yield pb.StreamGenerateBatchesRequest(items=items[40:])

            messages = [out async for out in stub.StreamGenerateBatches(requests(), timeout=30)]
            answers = [item for message in messages for item in message.items]
            ids = [a.correlation_id for a in answers]
            assert sorted(ids) == sorted(item.correlation_id for item in items)
            by_id = {a.correlation_id: a for a in answers if a.WhichOneof("result") == "response"}
            assert all(by_id[f"c{i}"].response.samples[0].text.endswith(f"to q{i}: alpha beta gamma delta epsilon "
                                                                          "zeta eta theta") for i in range(60))
            errors = {a.correlation_id: a.error for a in answers if a.WhichOneof("result") == "error"}
            assert set(errors) == {"bad", "invalid", "c0"}  # each failed alone
            assert all(e.code == code_pb2.INVALID_ARGUMENT for e in errors.values())
            assert errors["bad"].reason == "CONTENT_POLICY_VIOLATION"
            # 63 answers, most of them finished together: far fewer messages than answers.
            assert len(messages) < 20
            assert len(fake.log) == 61


async def test_stream_generate_batches_keeps_the_window_counting_items(start_service):
    async with FakeOpenAI(delay=0.02) as fake:
        _, channel, stub = await serve(start_service, fake.url, stream_window=4, deployment={"max_concurrency": 64})
        async with channel:
            async def requests():
                yield pb.StreamGenerateBatchesRequest(
                    items=[pb.StreamGenerateRequest(correlation_id=str(i), request=chat(f"q{i}")) for i in range(30)])

            seen = [a.correlation_id async for out in stub.StreamGenerateBatches(requests()) for a in out.items]
            assert sorted(seen, key=int) == [str(i) for i in range(30)]
            assert fake.max_active <= 4


async def test_stream_generate_batches_refuses_an_oversized_batch_by_name(start_service):
    async with FakeOpenAI() as fake:
        _, channel, stub = await serve(start_service, fake.url)
        async with channel:
            async def requests():
                yield pb.StreamGenerateBatchesRequest(
                    items=[pb.StreamGenerateRequest(correlation_id=str(i), request=chat("q")) for i in range(4097)])

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stub.StreamGenerateBatches(requests(), timeout=30):
                    pass
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "items" in caught.value.details() and "4096" in caught.value.details()
            assert len(fake.log) == 0


async def test_list_models_pages(start_service):
    async with FakeOpenAI() as fake:
        many = [{"name": f"model-{i}", "deployments": [{"backend": "openai", "model": "x", "base_url": fake.url,
                                                         "requests_per_minute": 60}]} for i in range(5)]
        many[0]["fallbacks"] = ["model-1"]
        running = await start_service("generator", models=many, cache={"store": "none"})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            first = await stub.ListModels(pb.ListModelsRequest(page_size=2))
            assert [m.name for m in first.models] == ["model-0", "model-1"] and first.next_page_token
            assert first.models[0].fallbacks == ["model-1"]
            assert first.models[0].deployments[0].requests_per_minute == 60
            assert first.models[0].deployments[0].backend == "openai"
            names = [m.name for m in first.models]
            token = first.next_page_token
            while token:
                page = await stub.ListModels(pb.ListModelsRequest(page_size=2, page_token=token))
                names += [m.name for m in page.models]
                token = page.next_page_token
            assert names == [f"model-{i}" for i in range(5)]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ListModels(pb.ListModelsRequest(page_token="garbage"))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_settings_reject_a_bad_gateway_config(start_service):
    from instructforge.runtime.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as info:
        await start_service("generator", models=[{"name": "m", "deployments": [{"backend": "tgi", "model": "x"}]}])
    assert info.value.violations[0].field.startswith("models.0.deployments.0")
    with pytest.raises(InvalidArgument) as info:
        await start_service("generator", models=[{"name": "m", "fallbacks": ["ghost"],
                                                  "deployments": [{"backend": "openai", "model": "x"}]}])
    assert "ghost" in info.value.violations[0].description
    await asyncio.sleep(0)
