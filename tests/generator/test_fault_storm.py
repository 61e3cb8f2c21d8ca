"""2,000 requests under a 30% mixed fault rate: every request answered exactly once, and every retry accounted."""

import asyncio
import itertools
from collections import Counter

import pytest

from generator.conftest import counter
from generator.fakes.faults import NON_RETRYABLE, RETRYABLE, FaultPlan
from generator.fakes.openai_server import FakeOpenAI
from instructforge.generator.request import GenerateRequest, GenerateResponse, Message
from instructforge.runtime.errors import InstructForgeError, InvalidArgument, ResourceExhausted, Unavailable

REQUESTS = 2000
MAX_ATTEMPTS = 8
# Faults the fake throws, about one in ten of them not retryable.
KINDS = RETRYABLE + ("bad_request", "context_length", "content_policy")
WEIGHTS = {**{k: 1.0 for k in RETRYABLE}, "hang": 0.3, **{k: 0.25 for k in NON_RETRYABLE}}
IN_FLIGHT = 256  # what a pipeline keeps in flight (StreamGenerate's window)


# A hang ends with the attempt's 10 s timeout, then a retry. (An answer that arrives after its attempt timed
# out is paid twice by any client; 10 s keeps a loaded CI machine's event-loop stalls far from that.)
@pytest.mark.slow
@pytest.mark.parametrize("http_client", ["sdk", "direct"])
async def test_2000_requests_under_30_percent_faults(make_gateway, http_client):
    plan = FaultPlan(rate=0.3, kinds=KINDS, weights=WEIGHTS, seed=42, retry_after=0.05)
    async with FakeOpenAI(plan) as fake:
        gw = await make_gateway({
            "models": [{"name": "m", "deployments": [{"backend": "openai", "model": "gpt-fake", "base_url": fake.url,
                                                       "max_concurrency": 64, "min_concurrency": 16, "timeout_s": 10.0,
                                                       "http_client": http_client}]}],
            "retry": {"max_attempts": MAX_ATTEMPTS, "base_delay_s": 0.01, "max_delay_s": 0.1},
            "cooldown": {"failures": 1000}})
        deadline = asyncio.get_running_loop().time() + 120
        window = asyncio.Semaphore(IN_FLIGHT)

        async def one(i: int):
            async with window:
                try:
                    return await gw.generate(GenerateRequest(model="m", messages=(Message("user", f"r{i}"),)),
                                             deadline)
                except InstructForgeError as exc:
                    return exc

        outcomes = await asyncio.gather(*(one(i) for i in range(REQUESTS)))

    calls = fake.log.by_tag()
    assert len(outcomes) == REQUESTS and set(calls) == {f"r{i}" for i in range(REQUESTS)}
    kinds = Counter()
    for i, outcome in enumerate(outcomes):
        mine = calls[f"r{i}"]
        faults = [c.fault for c in mine]
        # Never a call after a success or after a non-retryable fault.
        assert all(f in RETRYABLE for f in faults[:-1]), (i, faults)
        if isinstance(outcome, GenerateResponse):
            kinds["ok"] += 1
            assert faults[-1] is None  # exactly one paid call, the last one
            assert outcome.samples[0].text == mine[-1].reply_text[0]
            # An attempt that timed out before its request was sent is an attempt the provider never saw.
            assert outcome.attempt_count >= len(mine)
        elif faults[-1] in NON_RETRYABLE:
            kinds["failed fast"] += 1
            assert isinstance(outcome, InvalidArgument), (i, faults, outcome)
        else:
            kinds["exhausted"] += 1
            assert len(mine) == MAX_ATTEMPTS and isinstance(outcome, (Unavailable, ResourceExhausted)), (i, faults)
        # Retry-After respected: measured at the provider, between the 429 and the next attempt.
        for call, following in itertools.pairwise(mine):
            if call.fault == "rate_limit":
                assert following.at - call.at >= call.retry_after, (i, following.at - call.at)
    assert kinds["ok"] > 0.95 * REQUESTS and kinds["failed fast"] > 0

    total_calls = len(fake.log)
    faulty = sum(1 for c in fake.log.calls if c.fault is not None)
    first_attempt_faults = sum(1 for c in fake.log.calls if c.attempt == 0 and c.fault is not None)
    assert 0.25 < first_attempt_faults / REQUESTS < 0.35  # the storm really was ~30%
    m = gw.metrics
    attempts = counter(m, "instructforge_generator_backend_calls_total")
    timeouts = counter(m, "instructforge_generator_backend_calls_total", result="timeout")
    hangs = sum(1 for c in fake.log.calls if c.fault == "hang")
    # Every attempt is either a call the provider saw or a timeout (some of which never left the gateway).
    assert counter(m, "instructforge_generator_backend_calls_total", result="ok") == total_calls - faulty
    assert attempts - timeouts == total_calls - hangs and timeouts >= hangs
    assert counter(m, "instructforge_generator_retries_total") == attempts - REQUESTS
    assert sum(o.attempt_count for o in outcomes if isinstance(o, GenerateResponse)) + sum(
        int(o.metadata.get("attempts", 0)) for o in outcomes if not isinstance(o, GenerateResponse)) == attempts
    assert counter(m, "instructforge_generator_requests_total", outcome="ok") == kinds["ok"]
    assert counter(m, "instructforge_generator_requests_total") == REQUESTS
    assert counter(m, "instructforge_generator_retries_total", fault="rate_limited") == sum(
        1 for c in fake.log.calls if c.fault == "rate_limit" and c is not calls[c.tag][-1])
    state = gw.states["m-0"]
    print(f"\n{kinds}, {total_calls} calls, {attempts:.0f} attempts, limit {state.concurrency.limit:.1f} "
          f"after {state.concurrency.decreases} decreases")
