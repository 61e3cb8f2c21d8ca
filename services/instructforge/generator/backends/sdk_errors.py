"""Fault classification shared by the official OpenAI and Anthropic SDKs.

Both SDKs are generated from one template (Stainless) and share an exception tree: `APIStatusError`
for an HTTP error answer, `APITimeoutError`, `APIConnectionError`, `APIResponseValidationError`, over
`httpx2` transport errors. Only the reading of an error *body* differs per provider, so each backend
passes its own `status_error` interpreter.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import httpx2
from instructforge.generator.faults import Fault, ProviderError


def classify_sdk_error(exc: BaseException, sdk: ModuleType,
                       status_error: Callable[[BaseException], ProviderError]) -> ProviderError | None:
    """The ProviderError for an exception of `sdk` or its transport; None if it is neither (a bug: re-raise)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, sdk.APIStatusError):
        return status_error(exc)
    if isinstance(exc, (sdk.APITimeoutError, httpx2.TimeoutException)):
        return ProviderError(Fault.TIMEOUT, "the provider did not answer in time")
    if isinstance(exc, sdk.APIResponseValidationError):
        return ProviderError(Fault.TRUNCATED, f"the provider's answer is not valid: {exc.message}")
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderError(Fault.CONNECTION, f"connection failed: {exc.__cause__ or exc.message}")
    if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.DecodingError)):
        return ProviderError(Fault.TRUNCATED, f"the answer was cut short: {exc!r}")
    if isinstance(exc, httpx2.TransportError):
        return ProviderError(Fault.CONNECTION, f"connection failed: {exc!r}")
    if isinstance(exc, (ValueError, KeyError, TypeError, IndexError)):
        return ProviderError(Fault.TRUNCATED, f"the provider's answer is not the expected JSON: {exc!r}")
    return None
