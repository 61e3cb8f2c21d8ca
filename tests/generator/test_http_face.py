"""The OpenAI-compatible HTTP API, driven by the official openai SDK as an unchanged client would."""

import openai
import pytest

from generator.conftest import wait_until
from generator.fakes.faults import FaultPlan
from generator.fakes.openai_server import FakeOpenAI

TOKEN = "gateway-token-1"


async def face(start_service, fake: FakeOpenAI, **overrides):
    models = [{"name": "m", "deployments": [{"backend": "openai", "model": "gpt-fake", "base_url": fake.url}]},
              {"name": "other", "deployments": [{"backend": "openai", "model": "gpt-fake", "base_url": fake.url}]}]
    running = await start_service("generator", models=models, cache={"store": "memory"}, http_port=0,
                                  retry={"base_delay_s": 0.005, "max_delay_s": 0.02}, **overrides)
    port = running.servicer.http.port
    return openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=TOKEN, max_retries=0)


async def test_chat_completions_and_completions(start_service):
    async with FakeOpenAI() as fake:
        client = await face(start_service, fake)
        r = await client.chat.completions.create(
            model="m", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            n=2, max_tokens=3, temperature=0.2, stop=["zzz"], seed=5)
        assert [c.message.content for c in r.choices] == ["reply 1.0 to", "reply 2.0 to"]
        assert [c.finish_reason for c in r.choices] == ["length", "length"]
        assert r.model == "m" and r.usage.completion_tokens == 6
        # A seed makes each sample its own call (seed + i); the body reached the provider intact.
        assert sorted(c.body["seed"] for c in fake.log.calls) == [5, 6]
        assert fake.log.calls[0].body["messages"][0] == {"role": "system", "content": "be brief"}
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            n=2, max_tokens=3, temperature=0.2, stop=["zzz"], seed=5)
        assert raw.headers["x-iforge-cache"] == "hit" and len(fake.log) == 2

        c = await client.completions.create(model="m", prompt="plain text", max_tokens=50)
        assert c.choices[0].text.startswith("reply 3.0 to plain text") and c.choices[0].finish_reason == "stop"
        models = await client.models.list()
        assert [m.id for m in models.data] == ["m", "other"]
        assert (await client.models.retrieve("other")).id == "other"


async def test_streaming_chat_in_openai_chunks(start_service):
    async with FakeOpenAI() as fake:
        client = await face(start_service, fake)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "stream me"}], n=2, stream=True,
            stream_options={"include_usage": True})
        texts, finishes, usage = {}, {}, None
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
                if choice.finish_reason:
                    finishes[choice.index] = choice.finish_reason
        assert texts == {0: fake.log.calls[0].reply_text[0], 1: fake.log.calls[0].reply_text[1]}
        assert finishes == {0: "stop", 1: "stop"}
        assert usage.completion_tokens == sum(len(t.split()) for t in texts.values())

        plain = await client.completions.create(model="m", prompt="p", stream=True)
        pieces = [chunk.choices[0].text async for chunk in plain if chunk.choices]
        assert "".join(pieces).startswith("reply 2.0 to p")


async def test_errors_arrive_as_the_sdks_exceptions(start_service):
    # A Retry-After beyond retry.max_retry_after_s (60 s) means "not now": the caller is told at once.
    plan = FaultPlan(script={"long": ["context_length"], "busy": ["rate_limit"] * 10}, retry_after=120)
    async with FakeOpenAI(plan) as fake:
        client = await face(start_service, fake)
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "long"}])
        assert info.value.code == "context_length_exceeded" and info.value.param == "messages"
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                                 temperature=50)
        assert info.value.param == "temperature"
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="ghost", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "busy"}])
        assert info.value.response.headers["retry-after"] == "120" and len(fake.log.by_tag()["busy"]) == 1
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="m", messages=[{"role": "tool", "content": "x"}])
        assert info.value.param == "messages"


async def test_bearer_tokens_guard_the_http_api(start_service):
    async with FakeOpenAI() as fake:
        client = await face(start_service, fake, auth_tokens=TOKEN)
        r = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ok"}])
        assert r.choices[0].message.content
        wrong = client.with_options(api_key="nope")
        with pytest.raises(openai.AuthenticationError):
            await wrong.chat.completions.create(model="m", messages=[{"role": "user", "content": "ok"}])
        assert len(fake.log) == 1


async def test_cache_and_idempotency_headers(start_service):
    async with FakeOpenAI() as fake:
        client = await face(start_service, fake)
        ask = {"model": "m", "messages": [{"role": "user", "content": "same"}]}
        await client.chat.completions.create(**ask)
        await client.chat.completions.create(**ask, extra_headers={"X-IForge-Cache": "refresh"})
        assert len(fake.log) == 2
        key = {"Idempotency-Key": "run/rec/1", "X-IForge-Cache": "bypass"}
        first = await client.chat.completions.create(**ask, extra_headers=key)
        again = await client.chat.completions.create(**ask, extra_headers=key)
        assert len(fake.log) == 3 and again.choices[0].message.content == first.choices[0].message.content
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(**ask, extra_headers={"X-IForge-Cache": "sometimes"})
        assert info.value.param == "X-IForge-Cache"


async def test_client_timeout_cancels_the_provider_request(start_service):
    async with FakeOpenAI(FaultPlan(script={"slow": ["hang"]})) as fake:
        client = await face(start_service, fake)
        with pytest.raises(openai.APITimeoutError):
            await client.with_options(timeout=0.5).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "slow"}])
        assert await wait_until(lambda: fake.log.calls[0].disconnected.is_set())
