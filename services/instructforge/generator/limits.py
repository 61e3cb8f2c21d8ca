"""Per-deployment admission: a concurrency limit that adapts (AIMD) and token buckets for RPM and TPM.

Why adaptive: a provider's real capacity is unknown and changes; a fixed limit is either too low
(slow) or causes 429 storms. The limit grows by one slot per window of successes and halves on an
overload signal (429/503), once per congestion event: only a call that started after the last
decrease may decrease it again, so a burst of 429s from one wave counts once.

Why reservations in the buckets: a waiter takes its tokens at once (the level may go negative) and
sleeps for exactly the time the refill needs. Waiters are then served in arrival order without a
queue, and one that gives up (deadline, cancellation) hands its tokens back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from instructforge.runtime.errors import ResourceExhausted


class TokenBucket:
    """`per_minute` tokens a minute, refilled continuously, holding at most `burst_s` seconds' worth."""

    def __init__(self, per_minute: float, burst_s: float = 10.0, clock: Callable[[], float] | None = None):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.clock = clock or asyncio.get_running_loop().time
        self.level = self.capacity
        self.stamp = self.clock()

    def _refill(self) -> float:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        return now

    def reserve(self, amount: float) -> float:
        """Take `amount` now; returns how long the caller must wait before using it (0: go)."""
        self._refill()
        amount = min(amount, self.capacity)  # one call larger than the burst still gets through
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / self.rate

    def refund(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + min(amount, self.capacity))

    def adjust(self, delta: float) -> None:
        """Correct an estimate after the fact (positive: more was used than reserved)."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


async def wait_for_bucket(bucket: TokenBucket, amount: float, deadline: float | None, what: str) -> float:
    """Reserve from `bucket` and sleep until allowed; fail fast when the wait would pass the deadline."""
    wait = bucket.reserve(amount)
    if wait <= 0:
        return 0.0
    if deadline is not None and bucket.clock() + wait > deadline:
        bucket.refund(amount)
        raise ResourceExhausted(f"the {what} limit would delay this call past its deadline (wait {wait:.2f}s)",
                                reason="RATE_LIMIT_WAIT_EXCEEDS_DEADLINE", metadata={"wait_s": f"{wait:.3f}"})
    try:
        await asyncio.sleep(wait)
    except asyncio.CancelledError:
        bucket.refund(amount)
        raise
    return wait


class AdaptiveConcurrency:
    """A semaphore whose size moves between `min_limit` and `max_limit` (AIMD when `adaptive`)."""

    def __init__(self, max_limit: int, *, min_limit: int = 1, adaptive: bool = True, decrease: float = 0.5,
                 clock: Callable[[], float] | None = None):
        self.max_limit = max_limit
        self.min_limit = max(1, min(min_limit, max_limit))
        self.adaptive = adaptive
        self.decrease_factor = decrease
        self.limit = float(max_limit)
        self.in_flight = 0
        self.decreases = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._clock = clock or asyncio.get_running_loop().time
        self._last_decrease = float("-inf")

    def try_acquire(self) -> bool:
        """Take a slot without waiting, if one is free and nobody is queued ahead."""
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            return True
        return False

    async def acquire(self, deadline: float | None) -> None:
        """Wait for a slot in arrival order; raises TimeoutError at the deadline."""
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            if deadline is None:
                await waiter
            else:
                async with asyncio.timeout_at(deadline):
                    await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()  # granted a slot at the same moment it gave up: pass it on
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        self._release_slot()

    def _release_slot(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def now(self) -> float:
        return self._clock()

    def on_success(self) -> None:
        if self.adaptive and self.limit < self.max_limit:
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
            self._wake()

    def on_overload(self, started_at: float) -> None:
        """Halve the limit, unless this call started before the last decrease (same congestion event)."""
        if not self.adaptive or started_at < self._last_decrease:
            return
        self.limit = max(float(self.min_limit), self.limit * self.decrease_factor)
        self._last_decrease = self._clock()
        self.decreases += 1

    @property
    def queued(self) -> int:
        return len(self._waiters)
