"""The anthropic backend (official SDK, Messages API) against a fake speaking Anthropic's wire protocol."""

import pytest

from generator.conftest import counter
from generator.fakes.anthropic_server import FakeAnthropic
from generator.fakes.faults import FaultPlan
from instructforge.generator.request import FinishReason, GenerateRequest, Message, Sampling
from instructforge.runtime.errors import InvalidArgument, PermissionDenied, Unauthenticated


def config(url: str, **deployment) -> dict:
    dep = {"backend": "anthropic", "model": "claude-fake", "base_url": url, **deployment}
    return {"models": [{"name": "claude", "deployments": [dep]}], "cache": {"store": "memory"},
            "retry": {"base_delay_s": 0.005, "max_delay_s": 0.05}}


def chat(text: str, **kwargs) -> GenerateRequest:
    return GenerateRequest(model="claude", messages=(Message("system", "be brief"), Message("user", text)), **kwargs)


async def test_messages_api_with_system_prompt_and_samples(make_gateway, monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "ak-1")
    async with FakeAnthropic(api_key="ak-1") as fake:
        gw = await make_gateway(config(fake.url, api_key_env="FAKE_ANTHROPIC_KEY",
                                       input_cost_per_million_tokens_usd=3, output_cost_per_million_tokens_usd=15))
        r = await gw.generate(chat("hello", sample_count=2, sampling=Sampling(temperature=0.5, top_k=3)))
        # No `n` in the Messages API: one call per sample.
        assert len(fake.log) == 2 and r.attempt_count == 2
        body = fake.log.calls[0].body
        assert body["system"] == "be brief" and body["messages"] == [{"role": "user", "content": "hello"}]
        assert body["max_tokens"] == 4096 and body["temperature"] == 0.5 and body["top_k"] == 3
        assert fake.log.calls[0].headers["anthropic-version"] == "2023-06-01"
        assert sorted(s.text for s in r.samples) == sorted(c.reply_text[0] for c in fake.log.calls)
        assert r.usage.prompt_tokens == 2 * 3 and r.usage.completion_tokens == 2 * 12
        assert r.cost_usd == pytest.approx((6 * 3 + 24 * 15) / 1e6)


async def test_stop_sequences_and_max_tokens_map_to_finish_reasons(make_gateway):
    async with FakeAnthropic() as fake:
        gw = await make_gateway(config(fake.url))
        r = await gw.generate(chat("x", sampling=Sampling(max_tokens=3)))
        assert r.samples[0].finish_reason is FinishReason.LENGTH and r.samples[0].text == "reply 1 to"
        r = await gw.generate(GenerateRequest(model="claude", text="y", sampling=Sampling(stop=(" beta",))))
        assert r.samples[0].text.endswith("alpha") and r.samples[0].finish_reason is FinishReason.STOP
        assert fake.log.calls[1].body["stop_sequences"] == [" beta"]
        assert fake.log.calls[1].body["messages"] == [{"role": "user", "content": "y"}]


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "unavailable", "reset", "malformed", "truncated",
                                   "truncated_stream"])
async def test_retryable_faults(make_gateway, fault):
    async with FakeAnthropic(FaultPlan(script={"q": [fault, None]}, retry_after=0.01)) as fake:
        gw = await make_gateway(config(fake.url, stream=fault == "truncated_stream"))
        r = await gw.generate(chat("q"))
        assert len(fake.log) == 2 and r.samples[0].text == fake.log.calls[1].reply_text[0]
        assert counter(gw.metrics, "instructforge_generator_retries_total") == 1


@pytest.mark.parametrize("fault,error,reason", [
    ("context_length", InvalidArgument, "CONTEXT_LENGTH_EXCEEDED"),
    ("bad_request", InvalidArgument, "PROVIDER_REJECTED_REQUEST"),
    ("auth", Unauthenticated, "PROVIDER_UNAUTHENTICATED"),
    ("forbidden", PermissionDenied, "PROVIDER_PERMISSION_DENIED"),
])
async def test_non_retryable_faults(make_gateway, fault, error, reason):
    async with FakeAnthropic(FaultPlan(script={"q": [fault, None]})) as fake:
        gw = await make_gateway(config(fake.url))
        with pytest.raises(error) as info:
            await gw.generate(chat("q"))
        assert info.value.reason == reason and len(fake.log) == 1


async def test_streaming_reads_message_events(make_gateway):
    async with FakeAnthropic() as fake:
        gw = await make_gateway(config(fake.url, stream=True))
        r = await gw.generate(chat("streamed", sampling=Sampling(max_tokens=4)))
        assert r.samples[0].text == "reply 1 to streamed:" and r.samples[0].finish_reason is FinishReason.LENGTH
        assert r.usage.prompt_tokens == 3 and r.usage.completion_tokens == 4
        assert fake.log.calls[0].body["stream"] is True


async def test_overloaded_529_backs_the_concurrency_limit_off(make_gateway):
    async with FakeAnthropic(FaultPlan(script={"q": ["unavailable", None]})) as fake:
        gw = await make_gateway(config(fake.url, max_concurrency=8))
        await gw.generate(chat("q"))
        assert fake.log.calls[0].status == 529
        state = gw.states["claude-0"]
        assert state.concurrency.decreases == 1 and 4 <= state.concurrency.limit < 5
