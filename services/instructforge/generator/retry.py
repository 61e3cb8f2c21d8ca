"""When to try a failed call again: exponential backoff with full jitter, never before Retry-After.

Full jitter (a uniform draw between 0 and the exponential cap) spreads the retries of many callers
that failed together, so they do not come back as one synchronized wave. A server's Retry-After is
a floor on every attempt's wait, not only the first. Nothing waits past the caller's deadline:
when the wait would end after it, the caller learns now instead of at the deadline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 0.1
    max_delay_s: float = 20.0
    multiplier: float = 2.0
    # A provider asking for a longer pause than this is treated as "not now": the call fails fast.
    max_retry_after_s: float = 60.0

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """The jittered wait before retry number `retry` (1 for the first retry)."""
        cap = min(self.max_delay_s, self.base_delay_s * self.multiplier ** max(0, retry - 1))
        return (rng or random).uniform(0.0, cap)

    def delay(self, retry: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Backoff, but never less than what the server asked for."""
        wait = self.backoff(retry, rng)
        if retry_after is not None and retry_after > wait:
            return retry_after
        return wait

    def may_retry(self, attempts_made: int) -> bool:
        return attempts_made < self.max_attempts
