"""Fault classification shared by the official OpenAI and Anthropic SDKs.

Both SDKs are generated from one template (Stainless) and share an exception tree: `APIStatusError`
for an HTTP error answer, `APITimeoutError`, `APIConnectionError`, `APIResponseValidationError`, over
`httpx2` transport errors. Only the reading of an error *body* differs per provider, so each backend
passes its own `status_error` interpreter.

The aiohttp transport maps every aiohttp connection error to `httpx2.ConnectTimeout`, so the SDK
reports a reset connection as a timeout; the root cause in the exception chain says what really
happened, and that is what the fault (and its metric label) is made of.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import aiohttp
import httpx2

from instructforge.generator.faults import Fault, ProviderError


def classify_sdk_error(exc: BaseException, sdk: ModuleType,
                       status_error: Callable[[BaseException], ProviderError]) -> ProviderError | None:
    """The ProviderError for an exception of `sdk` or its transport; None if it is neither (a bug: re-raise)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, sdk.APIStatusError):
        return status_error(exc)
    root = root_fault(exc)
    if root is not None:
        return ProviderError(root, f"{root.label}: {exc}")
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


def root_fault(exc: BaseException) -> Fault | None:
    """The fault named by the deepest transport-level cause in `exc`'s chain, if any."""
    found = None
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 16:
        if isinstance(cause, (aiohttp.ClientPayloadError, httpx2.RemoteProtocolError, httpx2.ReadError)):
            found = Fault.TRUNCATED
        elif isinstance(cause, aiohttp.ServerTimeoutError):
            found = Fault.TIMEOUT
        elif isinstance(cause, (ConnectionError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                                aiohttp.ClientConnectorError)):
            found = Fault.CONNECTION
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return found
