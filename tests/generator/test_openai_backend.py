"""The openai backend against a fake that speaks OpenAI's wire protocol, through the whole gateway.

Every test runs over both of the backend's HTTP clients, the official SDK and the direct one
(`http_client: direct`), which must behave the same to the gateway: same bodies, same faults.
"""

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generator.conftest import counter, openai_config, wait_until
from generator.fakes.faults import NON_RETRYABLE, RETRYABLE, FaultPlan
from generator.fakes.openai_server import FakeOpenAI
from instructforge.generator.request import FinishReason, GenerateRequest, Message, Sampling
from instructforge.runtime.errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)


@pytest.fixture(params=["sdk", "direct"])
def config(request):
    """`openai_config` with the deployment on one HTTP client; streaming is the SDK's alone."""

    def make(url: str, **deployment) -> dict:
        if deployment.get("stream"):
            if request.param == "direct":
                pytest.skip("the direct client reads whole answers; streaming goes through the SDK")
        else:
            deployment.setdefault("http_client", request.param)
        return openai_config(url, **deployment)

    return make


def chat(text: str, **kwargs) -> GenerateRequest:
    return GenerateRequest(model="m", messages=(Message("user", text),), **kwargs)


async def test_chat_and_completion_with_samples_stop_and_length(config, make_gateway):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(config(fake.url, input_cost_per_million_tokens_usd=1.0,
                                              output_cost_per_million_tokens_usd=2.0))
        r = await gw.generate(chat("hello", sample_count=3))
        assert [s.index for s in r.samples] == [0, 1, 2]
        assert r.samples[1].text.endswith("to hello: alpha beta gamma delta epsilon zeta eta theta")
        assert {s.finish_reason for s in r.samples} == {FinishReason.STOP}
        assert r.usage.prompt_tokens == 1 and r.usage.completion_tokens == 36
        assert r.cost_usd == pytest.approx((1 * 1.0 + 36 * 2.0) / 1e6)
        assert r.deployment == "m-0" and r.provider_model == "gpt-fake" and r.attempt_count == 1
        assert fake.log.calls[0].body["n"] == 3

        r = await gw.generate(GenerateRequest(model="m", text="plain", sampling=Sampling(max_tokens=2)))
        assert r.samples[0].text == "reply 2.0" and r.samples[0].finish_reason is FinishReason.LENGTH
        assert "prompt" in fake.log.calls[1].body and "messages" not in fake.log.calls[1].body

        r = await gw.generate(chat("stops", sampling=Sampling(stop=(" gamma",))))
        assert r.samples[0].text.endswith("beta") and r.samples[0].finish_reason is FinishReason.STOP


async def test_every_sampling_parameter_reaches_the_wire(config, make_gateway):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(config(fake.url, defaults={"temperature": 0.3, "max_tokens": 50}))
        sampling = Sampling(top_p=0.9, top_k=5, stop=("x", "y"), seed=11, presence_penalty=0.5,
                            frequency_penalty=-0.5, repetition_penalty=1.2, logit_bias={"42": -100.0})
        await gw.generate(chat("params", sampling=sampling))
        body = fake.log.calls[0].body
        assert body == {"model": "gpt-fake", "messages": [{"role": "user", "content": "params"}], "max_tokens": 50,
                        "temperature": 0.3, "top_p": 0.9, "seed": 11, "presence_penalty": 0.5,
                        "frequency_penalty": -0.5, "stop": ["x", "y"], "logit_bias": {"42": -100.0}, "top_k": 5,
                        "repetition_penalty": 1.2}


async def test_seeded_samples_use_seed_plus_index(config, make_gateway):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(config(fake.url))
        r = await gw.generate(chat("seeded", sample_count=3, sampling=Sampling(seed=100, temperature=1.0)))
        assert len(r.samples) == 3 and r.attempt_count == 3
        assert sorted(c.body["seed"] for c in fake.log.calls) == [100, 101, 102]
        assert all("n" not in c.body for c in fake.log.calls)


async def test_api_key_from_env_is_sent_and_never_shown(config, make_gateway, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-secret-123")
    caplog.set_level(logging.DEBUG)
    async with FakeOpenAI(api_key="sk-secret-123") as fake:
        gw = await make_gateway(config(fake.url, api_key_env="FAKE_OPENAI_KEY"))
        await gw.generate(chat("auth"))
        assert fake.log.calls[0].headers["authorization"] == "Bearer sk-secret-123"
        assert "sk-secret-123" not in repr(gw.config) and "sk-secret-123" not in caplog.text


async def test_each_http_client_really_carries_the_call(config, make_gateway):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(config(fake.url, headers={"X-Team": "data"}))
        await gw.generate(chat("who"))
        sent = fake.log.calls[0].headers
        direct = gw.states["m-0"].config.http_client == "direct"
        assert sent["user-agent"].startswith("instructforge/" if direct else "AsyncOpenAI/Python")
        assert sent["x-team"] == "data" and sent["content-type"] == "application/json"


async def test_wrong_key_fails_fast_without_retry(config, make_gateway, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-wrong")
    async with FakeOpenAI(api_key="sk-right") as fake:
        gw = await make_gateway(config(fake.url, api_key_env="FAKE_OPENAI_KEY"))
        with pytest.raises(Unauthenticated) as info:
            await gw.generate(chat("auth"))
        assert info.value.reason == "PROVIDER_UNAUTHENTICATED" and "sk-wrong" not in info.value.message
        assert fake.server.requests == 1


@pytest.mark.parametrize("fault,error,reason", [
    ("bad_request", InvalidArgument, "PROVIDER_REJECTED_REQUEST"),
    ("context_length", InvalidArgument, "CONTEXT_LENGTH_EXCEEDED"),
    ("content_policy", InvalidArgument, "CONTENT_POLICY_VIOLATION"),
    ("auth", Unauthenticated, "PROVIDER_UNAUTHENTICATED"),
    ("forbidden", PermissionDenied, "PROVIDER_PERMISSION_DENIED"),
])
async def test_non_retryable_faults_fail_fast_with_a_precise_status(config, make_gateway, fault, error, reason):
    assert fault in NON_RETRYABLE
    async with FakeOpenAI(FaultPlan(script={"q": [fault, None]})) as fake:
        gw = await make_gateway(config(fake.url))
        with pytest.raises(error) as info:
            await gw.generate(chat("q"))
        assert info.value.reason == reason
        assert len(fake.log) == 1
        assert counter(gw.metrics, "instructforge_generator_retries_total") == 0
        assert counter(gw.metrics, "instructforge_generator_requests_total", outcome=reason.lower()) == 1


@pytest.mark.parametrize("fault", [f for f in RETRYABLE if f != "hang"] + ["truncated_stream"])
async def test_retryable_faults_are_retried(config, make_gateway, fault):
    stream = fault == "truncated_stream"
    async with FakeOpenAI(FaultPlan(script={"q": [fault, fault, None]}, retry_after=0.01)) as fake:
        gw = await make_gateway(config(fake.url, stream=stream))
        r = await gw.generate(chat("q", sample_count=2))
        assert r.attempt_count == 3 and len(fake.log) == 3
        assert r.samples[1].text == fake.log.calls[2].reply_text[1]
        assert counter(gw.metrics, "instructforge_generator_retries_total") == 2
        assert counter(gw.metrics, "instructforge_generator_backend_calls_total") == 3


async def test_streaming_deployment_reads_sse(config, make_gateway):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(config(fake.url, stream=True))
        r = await gw.generate(chat("streamed", sample_count=2, sampling=Sampling(max_tokens=4)))
        assert [s.text for s in r.samples] == ["reply 1.0 to streamed:", "reply 1.1 to streamed:"]
        assert {s.finish_reason for s in r.samples} == {FinishReason.LENGTH}
        assert r.usage.completion_tokens == 8
        r = await gw.generate(GenerateRequest(model="m", text="plain streamed"))
        assert r.samples[0].text.startswith("reply 2.0 to plain streamed:")
        assert fake.log.calls[0].body["stream"] is True


async def test_retry_after_in_whole_seconds_is_waited_for(config, make_gateway):
    async with FakeOpenAI(FaultPlan(script={"q": ["rate_limit", None]}, retry_after=1.0)) as fake:
        # Backoff alone would wait at most 5 ms: the gap comes from Retry-After.
        gw = await make_gateway(config(fake.url))
        fake.faults.retry_after = 1.0
        # Only the whole-seconds header: as most providers send it.
        import generator.fakes.openai_server as server

        original = server.error_reply

        def seconds_only(fault, retry_after):
            reply = original(fault, retry_after)
            reply.headers.pop("retry-after-ms", None)
            return reply

        server.error_reply = seconds_only
        try:
            await gw.generate(chat("q"))
        finally:
            server.error_reply = original
        first, second = fake.log.calls
        assert second.at - first.at >= 1.0


async def test_retry_after_past_the_deadline_fails_now(config, make_gateway):
    async with FakeOpenAI(FaultPlan(script={"q": ["rate_limit", None]}, retry_after=30)) as fake:
        gw = await make_gateway(config(fake.url))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ResourceExhausted) as info:
            await gw.generate(chat("q"), deadline=started + 5)
        assert loop.time() - started < 5  # told at once, not at the deadline
        assert info.value.reason == "PROVIDER_RATE_LIMITED"
        assert info.value.metadata["retry_after_s"] == "30.000"
        assert len(fake.log) == 1


async def test_deadline_bounds_a_hanging_call_and_cancels_the_request(config, make_gateway):
    async with FakeOpenAI(FaultPlan(script={"q": ["hang"]})) as fake:
        gw = await make_gateway(config(fake.url))
        loop = asyncio.get_running_loop()
        with pytest.raises(DeadlineExceeded):
            await gw.generate(chat("q"), deadline=loop.time() + 0.3)
        # The provider saw the client go away: the cancellation reached the backend request.
        assert await wait_until(lambda: fake.log.calls[0].disconnected.is_set())


async def test_caller_cancellation_reaches_the_provider(config, make_gateway):
    async with FakeOpenAI(FaultPlan(script={"q": ["hang"]})) as fake:
        gw = await make_gateway(config(fake.url))
        task = asyncio.create_task(gw.generate(chat("q")))
        assert await wait_until(lambda: len(fake.log) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_until(lambda: fake.log.calls[0].disconnected.is_set())
        assert counter(gw.metrics, "instructforge_generator_requests_total", outcome="cancelled") == 1


async def test_attempt_timeout_turns_a_hang_into_a_retry(config, make_gateway):
    async with FakeOpenAI(FaultPlan(script={"q": ["hang", None]})) as fake:
        gw = await make_gateway(config(fake.url, timeout_s=0.2))
        r = await gw.generate(chat("q"), deadline=asyncio.get_running_loop().time() + 10)
        assert r.attempt_count == 2
        assert counter(gw.metrics, "instructforge_generator_retries_total", fault="timeout") == 1


async def test_unknown_model_is_not_found(config, make_gateway):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(config(fake.url))
        with pytest.raises(NotFound) as info:
            await gw.generate(GenerateRequest(model="nope", text="x"))
        assert info.value.message.endswith("serves: m")


DIRECT_ONLY = r"""
import asyncio, sys
from pathlib import Path
from generator.conftest import openai_config
from generator.fakes.faults import FaultPlan
from generator.fakes.openai_server import FakeOpenAI
from instructforge.generator.gateway import Gateway
from instructforge.generator.metrics import GatewayMetrics
from instructforge.generator.request import GenerateRequest

async def main():
    async with FakeOpenAI(FaultPlan(script={"flaky": ["server_error", "malformed", None]})) as fake:
        config = openai_config(fake.url, http_client="direct")
        gw = await Gateway.create(config, state_dir=Path(sys.argv[1]), metrics=GatewayMetrics())
        ok = await gw.generate(GenerateRequest(model="m", text="hello"))
        retried = await gw.generate(GenerateRequest(model="m", text="flaky"))
        print("direct", bool(ok.samples[0].text), retried.attempt_count, "openai" in sys.modules)
        backend = next(iter(gw.states.values())).backend
        print("models", await backend.list_models(), "openai" in sys.modules)
        await gw.close()

asyncio.run(main())
"""


def test_a_direct_deployment_starts_and_serves_without_importing_the_sdk(tmp_path):
    """The SDK costs about half a second of a gateway's start; a direct-only one imports it only when a
    call needs it (model listing here), and still classifies every fault on the way."""
    tests = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", DIRECT_ONLY, str(tmp_path)], capture_output=True, text=True,
                         cwd=tests, env={**os.environ, "PYTHONPATH": str(tests)}, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == ["direct True 3 False", "models ['gpt-fake'] True"]
