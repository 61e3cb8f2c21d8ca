"""Token buckets (RPM/TPM) and the adaptive concurrency limit."""

import asyncio

import pytest

from instructforge.generator.limits import AdaptiveConcurrency, TokenBucket, wait_for_bucket
from instructforge.runtime.errors import ResourceExhausted


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_bucket_reserves_in_arrival_order_and_refills():
    clock = Clock()
    bucket = TokenBucket(per_minute=60, burst_s=2, clock=clock)  # 1/s, holds 2
    assert bucket.reserve(1) == 0 and bucket.reserve(1) == 0
    assert bucket.reserve(1) == pytest.approx(1.0)  # third waits one refill
    assert bucket.reserve(1) == pytest.approx(2.0)  # fourth waits two
    clock.now += 2.0
    assert bucket.reserve(1) == pytest.approx(1.0)


def test_bucket_refund_and_adjust():
    clock = Clock()
    bucket = TokenBucket(per_minute=600, burst_s=1, clock=clock)  # 10/s, holds 10
    assert bucket.reserve(10) == 0
    bucket.refund(4)
    assert bucket.reserve(4) == 0
    bucket.adjust(5)  # used 5 more than estimated
    assert bucket.reserve(1) == pytest.approx(0.6)
    # One call larger than the bucket still gets through, after a full refill.
    big = TokenBucket(per_minute=60, burst_s=1, clock=clock)
    assert big.reserve(1000) == 0


async def test_wait_for_bucket_fails_fast_past_the_deadline_and_gives_tokens_back():
    loop = asyncio.get_running_loop()
    bucket = TokenBucket(per_minute=60, burst_s=1)  # 1 token, 1/s
    assert await wait_for_bucket(bucket, 1, None, "rpm") == 0
    with pytest.raises(ResourceExhausted) as info:
        await wait_for_bucket(bucket, 1, loop.time() + 0.1, "requests-per-minute")
    assert info.value.reason == "RATE_LIMIT_WAIT_EXCEEDS_DEADLINE"
    assert bucket.level > -0.5  # the refused reservation was handed back


async def test_concurrency_is_fifo_and_bounded():
    limiter = AdaptiveConcurrency(2)
    order = []

    async def worker(i):
        await limiter.acquire(None)
        order.append(i)
        assert limiter.in_flight <= 2
        await asyncio.sleep(0.01)
        limiter.release()

    await asyncio.gather(*(worker(i) for i in range(6)))
    assert order == list(range(6))
    assert limiter.in_flight == 0


async def test_acquire_times_out_and_leaves_the_queue():
    loop = asyncio.get_running_loop()
    limiter = AdaptiveConcurrency(1)
    await limiter.acquire(None)
    with pytest.raises(TimeoutError):
        await limiter.acquire(loop.time() + 0.02)
    assert limiter.queued == 0
    limiter.release()
    assert limiter.try_acquire()


async def test_aimd_halves_once_per_congestion_event_and_grows_back():
    clock = Clock()
    limiter = AdaptiveConcurrency(32, clock=clock)
    started = clock.now
    clock.now += 1
    limiter.on_overload(started)
    assert limiter.limit == 16
    # Other calls of the same wave (started before the decrease) do not decrease again.
    limiter.on_overload(started)
    limiter.on_overload(started + 0.5)
    assert limiter.limit == 16 and limiter.decreases == 1
    clock.now += 1
    limiter.on_overload(clock.now)  # a call started after the decrease: a new event
    assert limiter.limit == 8
    for _ in range(8):
        limiter.on_success()
    assert 8.9 < limiter.limit < 9.1  # additive: about one slot per window of successes
    for _ in range(2000):
        limiter.on_success()
    assert limiter.limit == 32
    for _ in range(20):
        clock.now += 1
        limiter.on_overload(clock.now)
    assert limiter.limit == 1  # never below the floor


async def test_fixed_limit_when_not_adaptive():
    limiter = AdaptiveConcurrency(4, adaptive=False)
    limiter.on_overload(0.0)
    assert limiter.limit == 4
