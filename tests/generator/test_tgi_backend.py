"""The tgi backend (the `text-generation` client) against a fake speaking TGI's wire protocol."""

import pytest

from generator.conftest import counter
from generator.fakes.faults import FaultPlan
from generator.fakes.tgi_server import FakeTGI
from instructforge.generator.request import FinishReason, GenerateRequest, Message, Sampling
from instructforge.runtime.errors import InvalidArgument, PermissionDenied, Unauthenticated

# The text-generation client calls pydantic v1's `.dict()`; its deprecation warning is not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")


def config(url: str, **deployment) -> dict:
    dep = {"backend": "tgi", "model": "fake/tgi-model", "base_url": url, **deployment}
    return {"models": [{"name": "tgi", "deployments": [dep]}], "cache": {"store": "memory"},
            "retry": {"base_delay_s": 0.005, "max_delay_s": 0.05}}


async def test_generate_route_with_details(make_gateway):
    async with FakeTGI() as fake:
        gw = await make_gateway(config(fake.url))
        r = await gw.generate(GenerateRequest(model="tgi", text="why is the sky blue",
                                              sampling=Sampling(max_tokens=3, temperature=0.7, top_p=1.0, top_k=0,
                                                                seed=-1)))
        params = fake.log.calls[0].body["parameters"]
        assert params["do_sample"] is True and params["temperature"] == 0.7 and params["max_new_tokens"] == 3
        assert params["top_p"] is None and params["top_k"] is None  # "off" values TGI would reject
        assert params["seed"] == (1 << 64) - 1
        assert r.samples[0].text == "reply 1 to" and r.samples[0].finish_reason is FinishReason.LENGTH
        assert r.usage.prompt_tokens == 5 and r.usage.completion_tokens == 3

        r = await gw.generate(GenerateRequest(model="tgi", text="greedy", sampling=Sampling(stop=(" beta",))))
        params = fake.log.calls[1].body["parameters"]
        assert params["do_sample"] is False and params["temperature"] is None and params["stop"] == [" beta"]
        assert params["max_new_tokens"] == 512
        assert r.samples[0].text.endswith("alpha") and r.samples[0].finish_reason is FinishReason.STOP


async def test_chat_route_and_client_side_stop(make_gateway):
    async with FakeTGI() as fake:
        gw = await make_gateway(config(fake.url))
        r = await gw.generate(GenerateRequest(model="tgi", messages=(Message("user", "hi"),), sample_count=2,
                                              sampling=Sampling(stop=(" gamma",), seed=4)))
        assert sorted(c.body["seed"] for c in fake.log.calls) == [4, 5]
        assert all(s.text.endswith("beta") and s.finish_reason is FinishReason.STOP for s in r.samples)
        assert r.provider_model == "fake/tgi-model"


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "unavailable", "reset", "malformed", "truncated"])
async def test_retryable_faults(make_gateway, fault):
    async with FakeTGI(FaultPlan(script={"q": [fault, None]})) as fake:
        gw = await make_gateway(config(fake.url))
        r = await gw.generate(GenerateRequest(model="tgi", text="q"))
        assert len(fake.log) == 2 and r.samples[0].text == fake.log.calls[1].reply_text[0]
        assert counter(gw.metrics, "instructforge_generator_retries_total") == 1


@pytest.mark.parametrize("fault,error,reason", [("auth", Unauthenticated, "PROVIDER_UNAUTHENTICATED"),
                                                ("forbidden", PermissionDenied, "PROVIDER_PERMISSION_DENIED")])
async def test_auth_failures_fail_fast(make_gateway, fault, error, reason):
    async with FakeTGI(FaultPlan(script={"q": [fault, None]})) as fake:
        gw = await make_gateway(config(fake.url))
        with pytest.raises(error) as info:
            await gw.generate(GenerateRequest(model="tgi", text="q"))
        assert info.value.reason == reason and len(fake.log) == 1  # never retried


@pytest.mark.parametrize("fault,reason", [("context_length", "CONTEXT_LENGTH_EXCEEDED"),
                                          ("bad_request", "PROVIDER_REJECTED_REQUEST")])
async def test_validation_errors_fail_fast(make_gateway, fault, reason):
    async with FakeTGI(FaultPlan(script={"q": [fault, None]})) as fake:
        gw = await make_gateway(config(fake.url))
        with pytest.raises(InvalidArgument) as info:
            await gw.generate(GenerateRequest(model="tgi", text="q"))
        assert info.value.reason == reason and len(fake.log) == 1
