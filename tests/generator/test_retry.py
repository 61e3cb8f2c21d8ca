"""Backoff with full jitter, and Retry-After as a floor on every wait."""

import random

from instructforge.generator.retry import RetryPolicy


def test_full_jitter_stays_under_an_exponential_cap():
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=1.0, multiplier=2.0)
    rng = random.Random(7)
    for retry, cap in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (12, 1.0)):
        draws = [policy.backoff(retry, rng) for _ in range(400)]
        assert all(0 <= d <= cap for d in draws)
        # Full jitter spreads over the whole range, not around the cap.
        assert min(draws) < cap * 0.1 and max(draws) > cap * 0.9


def test_retry_after_is_a_floor_on_every_attempt():
    policy = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)
    rng = random.Random(1)
    for retry in range(1, 10):
        assert policy.delay(retry, 2.5, rng) == 2.5
    # Below the backoff, Retry-After does not shorten the wait.
    draws = [policy.delay(3, 0.0, rng) for _ in range(200)]
    assert max(draws) > 0.02


def test_attempt_budget():
    policy = RetryPolicy(max_attempts=3)
    assert policy.may_retry(1) and policy.may_retry(2) and not policy.may_retry(3)
