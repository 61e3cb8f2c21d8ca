"""The provider-neutral request and response of one generation, and their validation.

Every backend, the cache key, the gRPC adapter and the HTTP face speak these types, so a new
provider only maps them to its wire format. They are plain slotted dataclasses, not pydantic
models: a request is built and read a few times on the hot path and never needs coercion.
Field names follow the proto (`sample_count`, `sampling.stop`, `chat.messages[i]`) so error paths
mean the same thing to gRPC and embedded callers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from enum import Enum

from instructforge.runtime.errors import ViolationCollector

ROLES = ("system", "user", "assistant")
MAX_SAMPLES = 128
MAX_STOP_SEQUENCES = 16
MAX_PROMPT_CHARS = 4 * 1024 * 1024


class FinishReason(Enum):
    """Why a sample ended, whatever the provider calls it (values mirror the proto enum)."""

    STOP = 1  # the model ended its answer, or a stop sequence was hit
    LENGTH = 2  # max_tokens or the context window: the text is truncated
    CONTENT_FILTER = 3  # the provider withheld or cut the content


class CachePolicy(Enum):
    USE = 1  # answer from the cache when possible, store new answers
    REFRESH = 2  # call the backend even on a hit and replace the stored answer
    BYPASS = 3  # neither read nor write the cache


@dataclass(slots=True, frozen=True)
class Message:
    role: str
    content: str


@dataclass(slots=True)
class Sampling:
    """Every parameter that can change an answer. None (or empty) means "the deployment's default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    logit_bias: dict[str, float] = field(default_factory=dict)

    def resolved(self, defaults: Sampling | None) -> Sampling:
        """This request's values over the deployment's defaults: what the backend will really use."""
        if defaults is None:
            return self
        out = None
        for name in _SAMPLING_NAMES:
            mine = getattr(self, name)
            if mine is None or (not mine and name in ("stop", "logit_bias")):
                theirs = getattr(defaults, name)
                if theirs is not None and theirs != mine:
                    if out is None:
                        out = replace(self)
                    setattr(out, name, theirs)
        return self if out is None else out


_SAMPLING_NAMES = tuple(f.name for f in fields(Sampling))


@dataclass(slots=True)
class GenerateRequest:
    """One prompt (plain `text` or chat `messages`), `sample_count` samples wanted."""

    model: str
    text: str | None = None
    messages: tuple[Message, ...] | None = None
    sample_count: int = 1
    sampling: Sampling = field(default_factory=Sampling)
    cache_policy: CachePolicy = CachePolicy.USE
    idempotency_key: str = ""
    run_id: str = ""
    record_id: str = ""
    template_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    @property
    def prompt_field(self) -> str:
        """The request field holding the prompt, for error messages."""
        return "chat.messages" if self.messages is not None else "text"

    def prompt_chars(self) -> int:
        if self.messages is not None:
            return sum(len(m.content) for m in self.messages)
        return len(self.text or "")


@dataclass(slots=True)
class Sample:
    index: int
    text: str
    finish_reason: FinishReason


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class GenerateResponse:
    """The answer to one request. On a full cache hit `cost_usd` is 0 and `usage` is the stored call's."""

    model: str
    samples: list[Sample]
    usage: Usage
    cost_usd: float = 0.0
    cache_hit: bool = False
    deployment: str = ""
    provider_model: str = ""
    attempt_count: int = 0
    queue_time_s: float = 0.0
    backend_time_s: float = 0.0


def _finite_in(c: ViolationCollector, value: float | None, name: str, low: float, high: float,
               low_open: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        c.add(name, "must be a finite number")
    elif value < low or (low_open and value == low) or value > high:
        bracket = "(" if low_open else "["
        c.add(name, f"must be in {bracket}{low:g}, {high:g}], got {value:g}")


def _is_int(value: object) -> bool:
    """An integer proper, not a bool (which Python counts as one); the HTTP face already refuses JSON's
    `true` there, and the core check does not rely on every caller doing so."""
    return isinstance(value, int) and not isinstance(value, bool)


def validate_request(request: GenerateRequest) -> None:
    """Raise InvalidArgument naming every bad field; cheap enough for every call."""
    c = ViolationCollector()
    if not isinstance(request.model, str) or not request.model:
        c.add("model", "is required: the logical model name (see ListModels)")
    if (request.text is None) == (request.messages is None):
        c.add("prompt", "set exactly one of text or chat")
    elif request.messages is not None:
        if not request.messages:
            c.add("chat.messages", "must hold at least one message")
        for i, m in enumerate(request.messages):
            if m.role not in ROLES:
                c.add(f"chat.messages[{i}].role", f"must be one of {', '.join(ROLES)}, got {m.role!r}")
            if not isinstance(m.content, str):
                c.add(f"chat.messages[{i}].content", "must be a string")
    elif not isinstance(request.text, str):
        c.add("text", "must be a string")
    if request.prompt_chars() > MAX_PROMPT_CHARS:
        c.add(request.prompt_field, f"is longer than {MAX_PROMPT_CHARS} characters")
    n = request.sample_count
    if not _is_int(n) or not 1 <= n <= MAX_SAMPLES:
        c.add("sample_count", f"must be an integer in [1, {MAX_SAMPLES}], got {n!r}")
    s = request.sampling
    _finite_in(c, s.temperature, "sampling.temperature", 0, 10)
    _finite_in(c, s.top_p, "sampling.top_p", 0, 1, low_open=True)
    _finite_in(c, s.presence_penalty, "sampling.presence_penalty", -2, 2)
    _finite_in(c, s.frequency_penalty, "sampling.frequency_penalty", -2, 2)
    _finite_in(c, s.repetition_penalty, "sampling.repetition_penalty", 0, 1e6, low_open=True)
    if s.top_k is not None and (not _is_int(s.top_k) or s.top_k < 0):
        c.add("sampling.top_k", f"must be a non-negative integer, got {s.top_k!r}")
    if s.max_tokens is not None and (not _is_int(s.max_tokens) or not 0 < s.max_tokens <= 1 << 20):
        c.add("sampling.max_tokens", f"must be an integer in [1, 1048576], got {s.max_tokens!r}")
    if len(s.stop) > MAX_STOP_SEQUENCES:
        c.add("sampling.stop_sequences", f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(s.stop)}")
    for i, stop in enumerate(s.stop):
        if not isinstance(stop, str) or not stop:
            c.add(f"sampling.stop_sequences[{i}]", "must be a non-empty string")
    if s.seed is not None and (not _is_int(s.seed) or not -(1 << 63) <= s.seed < 1 << 63):
        c.add("sampling.seed", "must be a 64-bit integer")
    for token, bias in s.logit_bias.items():
        if not str(token).lstrip("-").isdigit():
            c.add(f"sampling.logit_bias[{token}]", "keys are token ids written as decimal integers")
        _finite_in(c, bias, f"sampling.logit_bias[{token}]", -100, 100)
    if not isinstance(request.cache_policy, CachePolicy):
        c.add("cache_policy", "must be USE, REFRESH or BYPASS")
    c.raise_if_any()
