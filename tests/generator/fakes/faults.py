"""Fault injection and the call log shared by the fake provider servers.

A fake decides, for every call it receives, whether to misbehave and how. The decision is a pure
function of (seed, request tag, attempt number), so a test's fault pattern does not depend on the
order in which concurrent requests arrive, and a test can predict it.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field

# Faults a provider really produces, and which of them a client may retry.
RETRYABLE = ("rate_limit", "server_error", "unavailable", "hang", "reset", "malformed", "truncated")
NON_RETRYABLE = ("bad_request", "context_length", "content_policy", "auth", "forbidden")
ALL_FAULTS = RETRYABLE + NON_RETRYABLE + ("truncated_stream",)


@dataclass
class Call:
    """One request as the fake saw it."""

    serial: int
    tag: str
    attempt: int
    at: float
    fault: str | None
    status: int
    retry_after: float | None
    body: dict
    headers: dict[str, str]
    disconnected: asyncio.Event
    reply_text: list[str] = field(default_factory=list)


class FaultPlan:
    """Which calls fail: a fixed `script` per tag (fault per attempt), else `rate` at random over `kinds`."""

    def __init__(
        self,
        rate: float = 0.0,
        kinds: tuple[str, ...] = RETRYABLE,
        *,
        seed: int = 0,
        retry_after: float = 0.05,
        script: dict[str, list[str | None]] | None = None,
        weights: dict[str, float] | None = None,
    ):
        unknown = [k for k in kinds if k not in ALL_FAULTS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}")
        self.rate = rate
        self.kinds = kinds
        self.seed = seed
        self.retry_after = retry_after
        self.script = script or {}
        self.weights = [float((weights or {}).get(k, 1.0)) for k in kinds]

    def choose(self, tag: str, attempt: int) -> str | None:
        if tag in self.script:
            steps = self.script[tag]
            return steps[attempt] if attempt < len(steps) else None
        if not self.rate:
            return None
        rng = random.Random(f"{self.seed}:{tag}:{attempt}")
        if rng.random() >= self.rate:
            return None
        return rng.choices(self.kinds, self.weights)[0]


class CallLog:
    """Every call, in arrival order, with per-tag attempt counting."""

    def __init__(self):
        self.calls: list[Call] = []
        self.attempts: dict[str, int] = defaultdict(int)

    def next_attempt(self, tag: str) -> int:
        attempt = self.attempts[tag]
        self.attempts[tag] = attempt + 1
        return attempt

    def by_tag(self) -> dict[str, list[Call]]:
        grouped: dict[str, list[Call]] = defaultdict(list)
        for call in self.calls:
            grouped[call.tag].append(call)
        return grouped

    def __len__(self) -> int:
        return len(self.calls)

    def clear(self) -> None:
        self.calls.clear()
        self.attempts.clear()


def words(text: str) -> list[str]:
    """The fakes' tokenizer: whitespace-separated words, one token each."""
    return text.split()


def apply_limits(text: str, max_tokens: int | None, stop: list[str] | None) -> tuple[str, str]:
    """Cut `text` at the first stop sequence or after `max_tokens` words: (text, 'stop'|'length')."""
    if stop:
        cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
            if max_tokens is None or len(words(text)) <= max_tokens:
                return text, "stop"
    if max_tokens is not None and len(words(text)) > max_tokens:
        return " ".join(words(text)[:max_tokens]), "length"
    return text, "stop"
