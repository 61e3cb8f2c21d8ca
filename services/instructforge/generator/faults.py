"""What went wrong in a provider call, whether retrying can help, and what the caller is told.

Backends turn their library's exceptions into one `ProviderError` with a `Fault` kind, the HTTP
status and the server's Retry-After. The retry loop looks only at `fault.retryable`; a fault that
is not retryable becomes a precise domain error at once (a bad request is never sent twice).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from enum import Enum

from instructforge.runtime.errors import (
    InstructForgeError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)


class Fault(Enum):
    # Retryable: the same request may well succeed later.
    RATE_LIMITED = ("rate_limited", True)  # 429
    OVERLOADED = ("overloaded", True)  # 503, Anthropic 529, TGI "overloaded"
    SERVER_ERROR = ("server_error", True)  # other 5xx, 408, 409
    TIMEOUT = ("timeout", True)  # the attempt ran past its own timeout
    CONNECTION = ("connection", True)  # refused, reset, closed before an answer
    TRUNCATED = ("truncated", True)  # a body or stream cut short, or not JSON
    # Not retryable: the same request fails the same way.
    BAD_REQUEST = ("bad_request", False)  # 400, 413, 422
    CONTEXT_LENGTH = ("context_length", False)  # prompt + max_tokens exceed the model's window
    CONTENT_POLICY = ("content_policy", False)  # the provider's safety system refused the prompt
    UNAUTHENTICATED = ("unauthenticated", False)  # 401: the deployment's key is wrong
    PERMISSION_DENIED = ("permission_denied", False)  # 403
    NOT_FOUND = ("not_found", False)  # 404: no such model at that provider
    QUOTA_EXHAUSTED = ("quota_exhausted", False)  # 429 "insufficient_quota": billing, not pacing

    def __init__(self, label: str, retryable: bool):
        self.label = label
        self.retryable = retryable

    @property
    def overload(self) -> bool:
        """A signal to send less: the concurrency limit backs off on these."""
        return self in (Fault.RATE_LIMITED, Fault.OVERLOADED)


class ProviderError(Exception):
    """A failed provider call, classified."""

    def __init__(self, fault: Fault, message: str, *, status: int | None = None,
                 retry_after: float | None = None, param: str | None = None):
        super().__init__(message)
        self.fault = fault
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.param = param

    def __repr__(self) -> str:
        return f"ProviderError({self.fault.label}, status={self.status}, retry_after={self.retry_after})"


CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "prompt is too long",
                   "context window", "input is too long", "too many tokens", "`inputs` tokens + `max_new_tokens`")
POLICY_MARKERS = ("content_policy_violation", "content_filter", "safety system", "content management policy")


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date; None if absent."""
    if not headers:
        return None
    get = headers.get
    ms = get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def fault_for_status(status: int, message: str = "", code: str | None = None) -> Fault:
    """Classify an HTTP error status, refined by the provider's error code or message."""
    text = f"{code or ''} {message}".lower()
    if status == 429:
        return Fault.QUOTA_EXHAUSTED if "insufficient_quota" in text else Fault.RATE_LIMITED
    if status in (503, 529):
        return Fault.OVERLOADED
    if status >= 500 or status in (408, 409, 425):
        return Fault.SERVER_ERROR
    if status == 401:
        return Fault.UNAUTHENTICATED
    if status == 403:
        return Fault.PERMISSION_DENIED
    if status == 404:
        return Fault.NOT_FOUND
    if any(m in text for m in CONTEXT_MARKERS):
        return Fault.CONTEXT_LENGTH
    if any(m in text for m in POLICY_MARKERS):
        return Fault.CONTENT_POLICY
    return Fault.BAD_REQUEST


# The provider's parameter names, as the fields of our request.
_PARAM_FIELDS = {
    "messages": "chat.messages", "prompt": "text", "temperature": "sampling.temperature",
    "top_p": "sampling.top_p", "top_k": "sampling.top_k", "max_tokens": "sampling.max_tokens",
    "max_completion_tokens": "sampling.max_tokens", "max_new_tokens": "sampling.max_tokens",
    "stop": "sampling.stop_sequences", "stop_sequences": "sampling.stop_sequences", "seed": "sampling.seed",
    "n": "sample_count", "presence_penalty": "sampling.presence_penalty",
    "frequency_penalty": "sampling.frequency_penalty", "logit_bias": "sampling.logit_bias",
}


def to_domain_error(error: ProviderError, deployment: str, prompt_field: str,
                    attempts: int = 1) -> InstructForgeError:
    """The caller's view of a provider failure: a precise status, the deployment named, no secrets."""
    fault = error.fault
    where = f"deployment {deployment!r}"
    detail = error.message[:500]
    meta = {"deployment": deployment, "fault": fault.label, "attempts": str(attempts)}
    if error.status is not None:
        meta["provider_status"] = str(error.status)
    if fault in (Fault.CONTEXT_LENGTH, Fault.CONTENT_POLICY, Fault.BAD_REQUEST):
        if fault is Fault.CONTEXT_LENGTH:
            error = InvalidArgument(f"the prompt and max_tokens exceed the model's context window ({where}): {detail}",
                                    field=prompt_field, reason="CONTEXT_LENGTH_EXCEEDED")
        elif fault is Fault.CONTENT_POLICY:
            error = InvalidArgument(f"the provider's content policy refused this prompt ({where}): {detail}",
                                    field=prompt_field, reason="CONTENT_POLICY_VIOLATION")
        else:
            error = InvalidArgument(f"the provider rejected the request ({where}): {detail}",
                                    field=_PARAM_FIELDS.get(error.param or "", "request"),
                                    reason="PROVIDER_REJECTED_REQUEST")
        error.metadata.update(meta)
        return error
    if fault is Fault.UNAUTHENTICATED:
        return Unauthenticated(f"the provider rejected the gateway's API key for {where} (HTTP 401); "
                               f"fix the deployment's api_key_env / api_key_file", reason="PROVIDER_UNAUTHENTICATED",
                               metadata=meta)
    if fault is Fault.PERMISSION_DENIED:
        return PermissionDenied(f"the provider refused {where} access (HTTP 403): {detail}",
                                reason="PROVIDER_PERMISSION_DENIED", metadata=meta)
    if fault is Fault.NOT_FOUND:
        return NotFound(f"the provider does not know the model of {where}: {detail}",
                        reason="PROVIDER_MODEL_NOT_FOUND", metadata=meta)
    if fault is Fault.QUOTA_EXHAUSTED:
        return ResourceExhausted(f"{where} is out of quota at the provider: {detail}",
                                 reason="PROVIDER_QUOTA_EXHAUSTED", metadata=meta)
    if fault is Fault.RATE_LIMITED:
        if error.retry_after is not None:
            meta["retry_after_s"] = f"{error.retry_after:.3f}"
        return ResourceExhausted(f"{where} is rate-limited and {attempts} attempt(s) did not get through: {detail}",
                                 reason="PROVIDER_RATE_LIMITED", metadata=meta)
    reason = {Fault.OVERLOADED: "PROVIDER_OVERLOADED", Fault.TIMEOUT: "PROVIDER_TIMEOUT",
              Fault.CONNECTION: "PROVIDER_UNREACHABLE", Fault.TRUNCATED: "PROVIDER_BAD_RESPONSE"}.get(
        fault, "PROVIDER_ERROR")
    return Unavailable(f"{where} failed {attempts} attempt(s), last with {fault.label}: {detail}",
                       reason=reason, metadata=meta)
