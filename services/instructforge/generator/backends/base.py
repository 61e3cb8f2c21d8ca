"""The one interface every backend implements, and how a deployment's backend is built.

A backend turns a `BackendCall` (a prompt, how many samples, resolved sampling parameters) into a
`BackendResult`, or raises `ProviderError`. It does no retrying, caching or rate limiting: the
gateway does those the same way for every provider. Backends are imported by name only when a
deployment uses them, so an OpenAI-only gateway never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

from instructforge.generator.config import DeploymentConfig
from instructforge.generator.request import FinishReason, Message, Sampling
from instructforge.runtime.errors import FailedPrecondition


@dataclass(slots=True)
class BackendCall:
    """What to generate. `seed`, when set, applies to this call's single sample (`n` is then 1)."""

    text: str | None
    messages: tuple[Message, ...] | None
    n: int
    sampling: Sampling


@dataclass(slots=True)
class Completion:
    text: str
    finish_reason: FinishReason


@dataclass(slots=True)
class BackendResult:
    completions: list[Completion]
    prompt_tokens: int
    completion_tokens: int
    provider_model: str


class Backend(Protocol):
    # Whether one call can return n > 1 samples; otherwise the gateway issues n calls.
    supports_n: bool

    async def generate(self, call: BackendCall, timeout: float) -> BackendResult: ...

    async def aclose(self) -> None: ...


_MODULES = {
    "openai": ("instructforge.generator.backends.openai_backend", "OpenAIBackend"),
    "anthropic": ("instructforge.generator.backends.anthropic_backend", "AnthropicBackend"),
    "tgi": ("instructforge.generator.backends.tgi_backend", "TGIBackend"),
    "vllm": ("instructforge.generator.backends.vllm_backend", "VLLMBackend"),
    "transformers": ("instructforge.generator.backends.transformers_backend", "TransformersBackend"),
}


def create_backend(config: DeploymentConfig) -> Backend:
    """Build the backend of a deployment, importing its library now."""
    module_name, class_name = _MODULES[config.backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FailedPrecondition(
            f"deployment {config.name!r} needs the {config.backend} backend, whose library is not installed "
            f"({exc.name or exc}); install instructforge[gateway]" + (" and vllm on a GPU node" if config.backend == "vllm" else ""),
            reason="BACKEND_NOT_INSTALLED") from None
    return getattr(module, class_name)(config)


FINISH_REASONS = {
    "stop": FinishReason.STOP, "end_turn": FinishReason.STOP, "stop_sequence": FinishReason.STOP,
    "eos_token": FinishReason.STOP, "eos": FinishReason.STOP, "tool_calls": FinishReason.STOP,
    "function_call": FinishReason.STOP, "tool_use": FinishReason.STOP, "pause_turn": FinishReason.STOP,
    "length": FinishReason.LENGTH, "max_tokens": FinishReason.LENGTH, "model_context_window_exceeded": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER, "refusal": FinishReason.CONTENT_FILTER,
}


def finish_reason(raw: str | None) -> FinishReason:
    """Map a provider's finish reason; unknown or missing ones count as STOP (the text is complete)."""
    return FINISH_REASONS.get(raw or "stop", FinishReason.STOP)


def split_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` before the first stop sequence, for backends that cannot stop server-side."""
    cut = -1
    for stop in stops:
        i = text.find(stop)
        if i >= 0 and (cut < 0 or i < cut):
            cut = i
    return (text, False) if cut < 0 else (text[:cut], True)
