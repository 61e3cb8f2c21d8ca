"""Hugging Face text-generation-inference through its own client library, `text-generation`.

Plain prompts use TGI's generate route (with `details` for the finish reason and token counts),
chat prompts its messages API. The library has no retries of its own. It opens a new aiohttp
session (and connection) per call and its chat method takes no stop sequences: for chat, stop
sequences are applied to the answer here, which yields the same text a server-side stop would. For
high throughput against TGI, point an `openai` deployment at TGI's `/v1` instead (same server, a
pooled client).

The library turns 401 into an "unknown" error and 403 into "shard not ready" (both would look
retryable) and drops the status; `_keep_status` puts the status back on its exceptions, so a wrong
key fails fast like it does on every other backend.

TGI's sampling switches: temperature 0 (or unset) is greedy; top_p 1 and top_k 0 mean "off" and are
not sent (TGI rejects them); seeds are unsigned, so a negative seed is taken modulo 2**64.
"""

from __future__ import annotations

import asyncio
import json
import warnings

import aiohttp
import text_generation.client as tgi_client
from pydantic.warnings import PydanticDeprecatedSince20
from text_generation import AsyncClient
from text_generation import errors as tgi_errors
from text_generation.types import Message as TGIMessage

from instructforge.generator.backends.base import (
    BackendCall,
    BackendResult,
    Completion,
    finish_reason,
    split_stop,
)
from instructforge.generator.config import DeploymentConfig
from instructforge.generator.faults import CONTEXT_MARKERS, Fault, ProviderError
from instructforge.generator.request import FinishReason

DEFAULT_MAX_NEW_TOKENS = 512

# The client still calls pydantic v1's `.dict()` on every request; its warning says nothing about our use.
warnings.filterwarnings("ignore", category=PydanticDeprecatedSince20, module="text_generation.client")

_library_parse_error = tgi_errors.parse_error


def _keep_status(status_code: int, payload) -> Exception:
    """The library's exception for an error answer, carrying the HTTP status it leaves out."""
    try:
        error = _library_parse_error(status_code, payload)
    except (KeyError, TypeError):  # a body without TGI's "error" field (a proxy's own answer)
        error = tgi_errors.UnknownError(str(payload)[:500])
    error.status = status_code
    return error


tgi_client.parse_error = _keep_status  # the client module calls it by this name for every error answer

_BY_STATUS = {401: Fault.UNAUTHENTICATED, 403: Fault.PERMISSION_DENIED, 404: Fault.NOT_FOUND}

_ERRORS = (
    (tgi_errors.RateLimitExceededError, Fault.RATE_LIMITED),
    (tgi_errors.OverloadedError, Fault.OVERLOADED),
    (tgi_errors.ShardNotReadyError, Fault.OVERLOADED),
    (tgi_errors.ShardTimeoutError, Fault.TIMEOUT),
    (tgi_errors.IncompleteGenerationError, Fault.TRUNCATED),
    (tgi_errors.GenerationError, Fault.SERVER_ERROR),
    (tgi_errors.UnknownError, Fault.SERVER_ERROR),
    (tgi_errors.NotFoundError, Fault.NOT_FOUND),
    (tgi_errors.ValidationError, Fault.BAD_REQUEST),
    (tgi_errors.BadRequestError, Fault.BAD_REQUEST),
    (tgi_errors.NotSupportedError, Fault.NOT_FOUND),
)


def classify(exc: BaseException) -> ProviderError | None:
    if isinstance(exc, ProviderError):
        return exc
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status in _BY_STATUS:
        return ProviderError(_BY_STATUS[status], f"HTTP {status}: {exc}", status=status)
    for cls, fault in _ERRORS:
        if isinstance(exc, cls):
            message = str(exc)
            if fault is Fault.BAD_REQUEST and any(m in message.lower() for m in CONTEXT_MARKERS):
                fault = Fault.CONTEXT_LENGTH
            return ProviderError(fault, message)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ProviderError(Fault.TRUNCATED, f"the answer was cut short: {exc}")
    if isinstance(exc, aiohttp.ContentTypeError):
        return ProviderError(Fault.TRUNCATED, f"the answer is not JSON (HTTP {exc.status})", status=exc.status)
    if isinstance(exc, (aiohttp.ClientError, ConnectionError)):
        return ProviderError(Fault.CONNECTION, f"connection failed: {exc!r}")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return ProviderError(Fault.TIMEOUT, "the provider did not answer in time")
    if isinstance(exc, (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError)):
        return ProviderError(Fault.TRUNCATED, f"the provider's answer is not the expected JSON: {exc!r}")
    return None


class TGIBackend:
    supports_n = False

    def __init__(self, config: DeploymentConfig):
        self.config = config
        headers = dict(config.headers)
        key = config.read_api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.client = AsyncClient(config.base_url.rstrip("/"), headers=headers or None,
                                  timeout=int(max(1, round(config.timeout_s))))

    async def generate(self, call: BackendCall, timeout: float) -> BackendResult:
        if call.n != 1:
            raise ValueError("the text-generation client answers one sample per call")
        try:
            if call.messages is not None:
                return await self._chat(call)
            return await self._generate(call)
        except Exception as exc:
            error = classify(exc)
            if error is None:
                raise
            raise error from exc

    async def _generate(self, call: BackendCall) -> BackendResult:
        s = call.sampling
        sample = s.temperature is not None and s.temperature > 0
        response = await self.client.generate(
            call.text,
            do_sample=sample,
            max_new_tokens=s.max_tokens or DEFAULT_MAX_NEW_TOKENS,
            repetition_penalty=s.repetition_penalty,
            frequency_penalty=s.frequency_penalty if s.frequency_penalty and s.frequency_penalty > 0 else None,
            seed=None if s.seed is None else s.seed % (1 << 64),
            stop_sequences=list(s.stop) or None,
            temperature=s.temperature if sample else None,
            top_k=s.top_k or None,
            top_p=s.top_p if s.top_p is not None and s.top_p < 1 else None,
            decoder_input_details=True,
        )
        details = response.details
        return BackendResult([Completion(response.generated_text, finish_reason(details.finish_reason.value))],
                             len(details.prefill), details.generated_tokens, self.config.model)

    async def _chat(self, call: BackendCall) -> BackendResult:
        s = call.sampling
        result = await self.client.chat(
            [TGIMessage(role=m.role, content=m.content) for m in call.messages],
            max_tokens=s.max_tokens,
            seed=None if s.seed is None else s.seed % (1 << 64),
            temperature=s.temperature,
            top_p=s.top_p,
            presence_penalty=s.presence_penalty,
            frequency_penalty=s.frequency_penalty,
        )
        choice = result.choices[0]
        text, stopped = split_stop(choice.message.content or "", s.stop)
        reason = FinishReason.STOP if stopped else finish_reason(choice.finish_reason)
        usage = result.usage if isinstance(result.usage, dict) else {}
        return BackendResult([Completion(text, reason)], int(usage.get("prompt_tokens") or 0),
                             int(usage.get("completion_tokens") or 0), result.model or self.config.model)

    async def aclose(self) -> None:
        return None
