"""Routing over several deployments: weights, least-busy, fallbacks, cooldown, and per-deployment limits."""

import asyncio
import itertools

import pytest

from generator.conftest import counter
from generator.fakes.faults import FaultPlan
from generator.fakes.openai_server import FakeOpenAI
from instructforge.generator.request import CachePolicy, GenerateRequest
from instructforge.runtime.errors import InvalidArgument

FAST_RETRY = {"base_delay_s": 0.002, "max_delay_s": 0.01}


def dep(fake: FakeOpenAI, name: str, **extra) -> dict:
    return {"name": name, "backend": "openai", "model": "gpt-fake", "base_url": fake.url, **extra}


def ask(text: str, model: str = "m") -> GenerateRequest:
    return GenerateRequest(model=model, text=text, cache_policy=CachePolicy.BYPASS)


async def test_weighted_choice_follows_the_weights(make_gateway):
    async with FakeOpenAI() as a, FakeOpenAI() as b:
        gw = await make_gateway({"models": [{"name": "m", "deployments": [dep(a, "a", weight=3), dep(b, "b")]}]})
        await asyncio.gather(*(gw.generate(ask(f"p{i}")) for i in range(400)))
        assert len(a.log) + len(b.log) == 400
        assert 220 < len(a.log) < 380  # expected 300; a binomial spread of ~9


async def test_least_busy_avoids_the_loaded_deployment(make_gateway):
    async with FakeOpenAI(delay=1.0) as slow, FakeOpenAI() as fast:
        gw = await make_gateway({"models": [{"name": "m", "strategy": "least_busy",
                                             "deployments": [dep(slow, "slow"), dep(fast, "fast")]}]})
        first_wave = [asyncio.create_task(gw.generate(ask(f"w1-{i}"))) for i in range(10)]
        while len(slow.log) + len(fast.log) < 10:
            await asyncio.sleep(0.01)
        # The fast deployment's answers must be back through the gateway too, not only sent: until
        # then it still counts them as in flight, and the two may tie (CI, on a slower event loop).
        while sum(task.done() for task in first_wave) < len(fast.log):
            await asyncio.sleep(0.01)
        slow_calls, busy = len(slow.log), sum(not task.done() for task in first_wave)
        assert busy == slow_calls >= 1  # what went to the slow deployment is all still there
        await asyncio.gather(*(gw.generate(ask(f"w2-{i}")) for i in range(min(busy, 4))))
        assert len(slow.log) == slow_calls  # the whole second wave went to the idle deployment
        await asyncio.gather(*first_wave)


async def test_a_retry_prefers_another_deployment(make_gateway):
    async with FakeOpenAI(FaultPlan(rate=1.0, kinds=("unavailable",))) as bad, FakeOpenAI() as good:
        gw = await make_gateway({"models": [{"name": "m", "deployments": [dep(bad, "bad"), dep(good, "good")]}],
                                 "retry": FAST_RETRY})
        for i in range(20):
            r = await gw.generate(ask(f"p{i}"))
            assert r.deployment == "good" and r.attempt_count <= 2
        assert len(good.log) == 20


async def test_fallback_model_answers_when_every_attempt_fails(make_gateway):
    async with FakeOpenAI(FaultPlan(rate=1.0, kinds=("server_error",))) as broken, FakeOpenAI() as backup:
        gw = await make_gateway({"models": [
            {"name": "m", "deployments": [dep(broken, "primary")], "fallbacks": ["spare"]},
            {"name": "spare", "deployments": [dep(backup, "backup")]}],
            "retry": {**FAST_RETRY, "max_attempts": 3}, "cooldown": {"failures": 100}})
        r = await gw.generate(ask("p"))
        assert r.deployment == "backup" and r.model == "m" and r.attempt_count == 4
        assert len(broken.log) == 3 and len(backup.log) == 1
        assert counter(gw.metrics, "instructforge_generator_fallbacks_total", model="m", fallback="spare") == 1
        assert counter(gw.metrics, "instructforge_generator_retries_total") == 3


async def test_no_fallback_after_a_non_retryable_fault(make_gateway):
    async with FakeOpenAI(FaultPlan(rate=1.0, kinds=("context_length",))) as primary, FakeOpenAI() as backup:
        gw = await make_gateway({"models": [
            {"name": "m", "deployments": [dep(primary, "primary")], "fallbacks": ["spare"]},
            {"name": "spare", "deployments": [dep(backup, "backup")]}]})
        with pytest.raises(InvalidArgument):
            await gw.generate(ask("p"))
        assert len(primary.log) == 1 and len(backup.log) == 0


async def test_cooldown_benches_a_failing_deployment_then_lets_it_back(make_gateway):
    async with FakeOpenAI(FaultPlan(script={"p0": ["server_error", "server_error"]})) as flaky, \
            FakeOpenAI() as steady:
        gw = await make_gateway({"models": [{"name": "m", "deployments": [dep(flaky, "flaky"), dep(steady, "steady")]}],
                                 "retry": FAST_RETRY, "cooldown": {"failures": 2, "seconds": 60}})
        loop = asyncio.get_running_loop()
        # "steady" is out for a while, so both first attempts go to "flaky", which fails twice in a row; with both
        # benched, the call goes to the one back soonest.
        gw.states["steady"].cooldown_until = loop.time() + 10
        r = await gw.generate(ask("p0"))
        assert len(flaky.log) == 2 and r.deployment == "steady"
        gw.states["steady"].cooldown_until = 0.0  # steady's own outage is over
        assert counter(gw.metrics, "instructforge_generator_cooldowns_total", deployment="flaky") == 1
        assert 55 < gw.states["flaky"].cooldown_until - loop.time() <= 60  # benched for the configured time
        await asyncio.gather(*(gw.generate(ask(f"c{i}")) for i in range(30)))
        assert len(flaky.log) == 2  # benched: everything went to "steady"
        # The bench's time runs out (moved rather than slept, so a slow machine cannot outlast it mid-test).
        gw.states["flaky"].cooldown_until = loop.time() - 0.01
        await asyncio.gather(*(gw.generate(ask(f"d{i}")) for i in range(40)))
        assert len(flaky.log) > 2  # back in rotation


async def test_every_deployment_cooling_goes_straight_to_the_fallback(make_gateway):
    async with FakeOpenAI() as primary, FakeOpenAI() as backup:
        gw = await make_gateway({"models": [
            {"name": "m", "deployments": [dep(primary, "primary")], "fallbacks": ["spare"]},
            {"name": "spare", "deployments": [dep(backup, "backup")]}]})
        gw.states["primary"].cooldown_until = asyncio.get_running_loop().time() + 60
        r = await gw.generate(ask("p"))
        assert r.deployment == "backup" and len(primary.log) == 0
        # With no fallback left, a cooling deployment is still tried rather than failing untried.
        r = await gw.generate(ask("q", model="spare"))
        gw.states["backup"].cooldown_until = asyncio.get_running_loop().time() + 60
        r = await gw.generate(ask("r", model="spare"))
        assert r.deployment == "backup"


async def test_concurrency_limit_holds_at_the_provider(make_gateway):
    async with FakeOpenAI(delay=0.02) as fake:
        gw = await make_gateway({"models": [{"name": "m", "deployments": [dep(fake, "d", max_concurrency=3)]}]})
        await asyncio.gather(*(gw.generate(ask(f"p{i}")) for i in range(30)))
        assert fake.max_active == 3
        assert counter(gw.metrics, "instructforge_generator_rate_limit_wait_seconds_count", limit="concurrency") > 0


async def test_rpm_and_tpm_buckets_pace_the_calls(make_gateway):
    async with FakeOpenAI() as fake:
        # RPM 600 with a 0.1 s burst: one call at once, then one every 0.1 s.
        gw = await make_gateway({"models": [{"name": "m", "deployments": [
            dep(fake, "d", requests_per_minute=600, rate_limit_burst_s=0.1)]}]})
        await asyncio.gather(*(gw.generate(ask(f"p{i}")) for i in range(5)))
        arrivals = sorted(c.at for c in fake.log.calls)
        assert all(b - a >= 0.09 for a, b in itertools.pairwise(arrivals))
        assert counter(gw.metrics, "instructforge_generator_rate_limit_wait_seconds_sum", limit="rpm") >= 0.9
    async with FakeOpenAI() as fake:
        # TPM: each call is estimated at 1 + 100 tokens; 6000/min with a 1 s burst holds one call.
        gw = await make_gateway({"models": [{"name": "m", "deployments": [
            dep(fake, "d", tokens_per_minute=6000, rate_limit_burst_s=1.0, defaults={"max_tokens": 100})]}]})
        await asyncio.gather(*(gw.generate(ask(f"p{i}")) for i in range(3)))
        assert counter(gw.metrics, "instructforge_generator_rate_limit_wait_seconds_sum", limit="tpm") > 0


async def test_routes_describe_the_configuration(make_gateway):
    async with FakeOpenAI() as a:
        gw = await make_gateway({"models": [{"name": "m", "deployments": [dep(a, "a")], "fallbacks": ["n"]},
                                            {"name": "n", "deployments": [dep(a, "b", weight=2)]}]})
        routes = gw.routes()
        assert [r.name for r in routes] == ["m", "n"] and routes[0].fallbacks == ["n"]
        assert routes[1].deployments[0].config.weight == 2
