"""A run's generations over one StreamGenerate call: answers correlated, failures kept to their own items."""

from __future__ import annotations

import asyncio

import pytest

from generator.fakes.faults import FaultPlan
from generator.fakes.openai_server import FakeOpenAI
from instructforge.client import ApiError, GeneratorClient
from instructforge.pipeline.bindings import GatewayGenerator, generate_request
from instructforge.pipeline.generation_stream import GenerationStream
from instructforge.pipeline.protocols import (
    GenerationRequest,
    PermanentError,
    RunRefused,
    Sampling,
    TransientError,
)


async def gateway(start_service, url: str, port: int = 0, **settings):
    models = [{"name": "m", "deployments": [{"backend": "openai", "model": "gpt-fake", "base_url": url,
                                             "http_client": "direct"}]}]
    return await start_service("generator", port=port, models=models, cache={"store": "memory"},
                               retry={"max_attempts": 1}, **settings)


def ask(i: int, **sampling) -> GenerationRequest:
    return GenerationRequest(model="m", prompt=f"question {i}", idempotency_key=f"run/{i}", run_id="run",
                             sampling=Sampling(**sampling))


async def test_many_generations_in_flight_on_one_stream_each_get_their_own_answer(start_service):
    async with FakeOpenAI(delay=0.05) as fake:
        running = await gateway(start_service, fake.url)
        async with GeneratorClient.connect(f"127.0.0.1:{running.port}") as client:
            generator = GatewayGenerator(client, stream=True)
            answers = await asyncio.gather(*(generator.generate(ask(i)) for i in range(200)))
            for i, answer in enumerate(answers):
                assert answer.texts[0].endswith(f"to question {i}: alpha beta gamma delta epsilon zeta eta theta")
                assert answer.prompt_tokens == 2 and not answer.cache_hit
            assert fake.max_active > 50  # really concurrent, not one after another
            await generator.aclose()


async def test_a_bad_item_fails_alone_and_permanently(start_service):
    async with FakeOpenAI(FaultPlan(script={"question 1": ["context_length"]})) as fake:
        running = await gateway(start_service, fake.url)
        async with GeneratorClient.connect(f"127.0.0.1:{running.port}") as client:
            generator = GatewayGenerator(client, stream=True)
            good, bad, invalid = await asyncio.gather(
                generator.generate(ask(0)), generator.generate(ask(1)), generator.generate(ask(2, temperature=-1.0)),
                return_exceptions=True)
            assert good.texts[0].endswith("to question 0: alpha beta gamma delta epsilon zeta eta theta")
            assert isinstance(bad, PermanentError) and "CONTEXT_LENGTH_EXCEEDED" in str(bad)
            assert isinstance(invalid, PermanentError) and "sampling.temperature" in str(invalid)
            again = await generator.generate(ask(3))  # the stream carries on after failed items
            assert again.texts[0].endswith("to question 3: alpha beta gamma delta epsilon zeta eta theta")
            await generator.aclose()


async def test_a_gateway_that_refuses_the_token_refuses_the_run_with_its_reason_not_each_call(start_service):
    async with FakeOpenAI() as fake:
        running = await gateway(start_service, fake.url, auth_tokens=["right-token"])
        async with GeneratorClient.connect(f"127.0.0.1:{running.port}", token="wrong-token") as client:
            generator = GatewayGenerator(client, stream=True)
            failures = await asyncio.gather(*(generator.generate(ask(i)) for i in range(50)), return_exceptions=True)
            for failure in failures:  # not one PermanentError (a drop each), nor grpc's local INTERNAL
                assert isinstance(failure, RunRefused), failure
                assert "UNAUTHENTICATED" in str(failure) and "bearer token" in str(failure)
            assert len(fake.log) == 0
            await generator.aclose()


async def test_a_stream_ended_by_anything_but_a_refusal_fails_its_calls_as_temporary(start_service):
    # The gateway refuses this stream as it starts; the requests sent meanwhile fail locally, and grpc
    # may report that as INTERNAL in place of the gateway's status. Neither judged a request.
    async with FakeOpenAI() as fake:
        running = await gateway(start_service, fake.url, auth_tokens=["right-token"])
        async with GeneratorClient.connect(f"127.0.0.1:{running.port}", token="wrong-token") as client:
            stream = GenerationStream(client)
            request = generate_request(ask(0))
            failures = await asyncio.gather(*(stream.call(request, 10, f"call {i}") for i in range(50)),
                                            return_exceptions=True)
            for failure in failures:
                assert isinstance(failure, TransientError) or (
                    isinstance(failure, ApiError) and failure.refuses_caller), failure
            await stream.close()


async def test_a_lost_stream_fails_what_waits_on_it_as_temporary_and_the_next_call_opens_a_new_one(
        start_service):
    async with FakeOpenAI(delay=5.0) as slow, FakeOpenAI() as fast:
        first = await gateway(start_service, slow.url, shutdown_grace_s=0.1)
        port = first.port
        async with GeneratorClient.connect(f"127.0.0.1:{port}") as client:
            generator = GatewayGenerator(client, stream=True)
            waiting = asyncio.ensure_future(generator.generate(ask(0)))
            await asyncio.sleep(0.5)
            await first.stop()  # the gateway goes away with the answer still owed
            with pytest.raises(TransientError):
                await asyncio.wait_for(waiting, 10)
            await gateway(start_service, fast.url, port=port)  # back, on the same address
            # The channel may still be backing off from the refused reconnects: the run's bounded
            # retries then meet a temporary error or two before a fresh stream gets through.
            for attempt in range(20):
                try:
                    answer = await generator.generate(ask(1))
                    break
                except TransientError:
                    assert attempt < 19, "no fresh stream got through after the gateway came back"
                    await asyncio.sleep(0.5)
            assert answer.texts[0].endswith("to question 1: alpha beta gamma delta epsilon zeta eta theta")
            await generator.aclose()


async def test_requests_ready_together_go_in_one_message_and_answers_come_back_together(start_service):
    async with FakeOpenAI(delay=0.05) as fake:
        running = await gateway(start_service, fake.url)
        async with GeneratorClient.connect(f"127.0.0.1:{running.port}") as client:
            sent, received = [], []
            stream_batches = client.stream_generate_batches

            def counting(requests):
                async def counted():
                    async for message in requests:
                        sent.append(len(message.items))
                        yield message

                async def answers():
                    async for message in stream_batches(counted()):
                        received.append(len(message.items))
                        yield message
                return answers()

            client.stream_generate_batches = counting
            generator = GatewayGenerator(client, stream=True)
            answers = await asyncio.gather(*(generator.generate(ask(i)) for i in range(100)))
            assert [a.texts[0].split(" to ")[1].split(":")[0] for a in answers] == [f"question {i}" for i in range(100)]
            assert sum(sent) == sum(received) == 100
            assert len(sent) <= 25 and len(received) <= 50  # not one message per request or answer
            await generator.aclose()


async def test_a_gateway_without_batches_gets_one_request_per_message(tmp_path):
    import grpc

    from instructforge.generator.server import create_servicer
    from instructforge.generator.settings import GeneratorSettings
    from instructforge.generator.v1 import generator_pb2 as pb
    from instructforge.runtime.metrics import Metrics
    from instructforge.runtime.settings import load_settings

    async with FakeOpenAI() as fake:
        # A gateway from before StreamGenerateBatches: it serves StreamGenerate only.
        settings = load_settings(GeneratorSettings, overrides={
            "port": 0, "state_dir": tmp_path, "metrics_enabled": False, "cache": {"store": "memory"},
            "models": [{"name": "m", "deployments": [{"backend": "openai", "model": "gpt-fake", "base_url": fake.url}]}]})
        servicer = await create_servicer(settings, Metrics())
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "instructforge.generator.v1.GeneratorService", {"StreamGenerate": grpc.stream_stream_rpc_method_handler(
                servicer.StreamGenerate, request_deserializer=pb.StreamGenerateRequest.FromString,
                response_serializer=pb.StreamGenerateResponse.SerializeToString)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with GeneratorClient.connect(f"127.0.0.1:{port}") as client:
                generator = GatewayGenerator(client, stream=True)
                # Every call of the first stream meets UNIMPLEMENTED and goes again over StreamGenerate.
                answers = await asyncio.gather(*(generator.generate(ask(i)) for i in range(5)))
                for i, answer in enumerate(answers):
                    assert answer.texts[0].endswith(f"to question {i}: alpha beta gamma delta epsilon zeta eta theta")
                assert len(fake.log) == 5
                assert (await generator.generate(ask(5))).texts[0].endswith("to question 5: alpha beta gamma delta "
                                                                              "epsilon zeta eta theta")
                await generator.aclose()
        finally:
            await server.stop(None)
            await servicer.close()


async def test_calls_beyond_the_concurrency_wait_at_the_gateway_which_lets_only_the_concurrency_through(
        start_service, tmp_path):
    from generator.conftest import wait_until
    from instructforge.pipeline.calls import JournaledGenerator
    from instructforge.pipeline.recipe import parse_recipe
    from instructforge.pipeline.state import RunState

    async with FakeOpenAI(delay=0.3) as fake:
        models = [{"name": "m", "deployments": [{"backend": "openai", "model": "gpt-fake", "base_url": fake.url,
                                                 "http_client": "direct", "max_concurrency": 4}]}]
        running = await start_service("generator", models=models, cache={"store": "memory"}, retry={"max_attempts": 1})
        async with GeneratorClient.connect(f"127.0.0.1:{running.port}") as client:
            generator = GatewayGenerator(client, stream=True)
            state = RunState.create(tmp_path / "run", parse_recipe({"recipe": "explore_instruct", "name": "backlog"}))
            journal = JournaledGenerator(generator, state, concurrency=4, backlog=4)
            calls = [asyncio.ensure_future(journal.generate(ask(i))) for i in range(16)]
            assert await wait_until(lambda: fake.active == 4)
            await asyncio.sleep(0.1)
            assert journal.slots.taken == 8 and fake.active == 4  # four more wait at the gateway, ready to go
            answers = await asyncio.gather(*calls)
            assert [a.texts[0].split(" to ")[1].split(":")[0] for a in answers] == [f"question {i}" for i in range(16)]
            assert fake.max_active == 4
            await generator.aclose()
            state.close()
