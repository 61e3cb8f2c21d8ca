"""A lean client of OpenAI's HTTP API for whole (non-streamed) answers: `http_client: direct`.

Why it exists: the official SDK spends about 0.5 ms of CPU per call building its request (header,
URL and option objects) before a byte is sent: more than the rest of the gateway together. Against
a local vLLM, TGI or llama.cpp server answering thousands of calls a second, that caps one gateway
process near 800 calls/s. This client sends the same JSON body to the same route with the same
bearer key, and reads the same answers and error envelopes, over `http1.HTTP1Pool` (a few
microseconds a call, where aiohttp's client took about 0.2 ms).

It reads only what the gateway needs: the JSON answer, or the status, the error envelope
(`{"error": {"message", "type", "param", "code"}}`, or vLLM's flat `{"message", "type", "code"}`)
and `retry-after` / `retry-after-ms`. Everything it raises is a classified `ProviderError`, exactly
as the SDK path's errors are, so retries, Retry-After and fail-fast behave the same on both.
"""

from __future__ import annotations

import json
from typing import Any

from instructforge.generator.backends.http1 import ConnectTimeout, HTTP1Pool, ProtocolViolation
from instructforge.generator.backends.sdk_errors import root_fault
from instructforge.generator.faults import Fault, ProviderError, fault_for_status, parse_retry_after


class DirectOpenAIClient:
    """POST JSON to `<base_url><path>` over pooled keep-alive connections; answer the parsed JSON."""

    def __init__(self, base_url: str, api_key: str, headers: dict[str, str], max_connections: int,
                 connect_timeout_s: float, user_agent: str, warm: int = 0):
        sent = {"User-Agent": user_agent, **headers, "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json", "Accept": "application/json"}
        self.pool = HTTP1Pool(base_url, sent, max_connections, connect_timeout_s, keepalive_s=30.0, warm=warm)

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer of a POST; a ProviderError for an error status, a broken body or a lost connection.

        The attempt's time limit is the caller's (the dispatcher's `asyncio.timeout`): cancelling
        this coroutine closes the connection, which is how the provider learns the call is off.
        """
        payload = json.dumps(body, ensure_ascii=False).encode()
        try:
            answer = await self.pool.post(path, payload)
        except ProtocolViolation as exc:
            raise ProviderError(Fault.TRUNCATED, f"the answer is not valid HTTP: {exc}") from exc
        except ConnectTimeout as exc:
            raise ProviderError(Fault.TIMEOUT, f"{Fault.TIMEOUT.label}: {exc}") from exc
        except OSError as exc:  # refused, reset, closed before answering, TLS, name resolution
            fault = root_fault(exc) or Fault.CONNECTION
            raise ProviderError(fault, f"{fault.label}: {exc!r}") from exc
        if answer.status >= 400:
            raise status_error(answer.status, answer.body, answer.headers)
        try:
            data = json.loads(answer.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProviderError(Fault.TRUNCATED, f"the provider's answer is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ProviderError(Fault.TRUNCATED, f"the provider's answer is JSON but not an object: {answer.body[:80]!r}")
        return data

    async def aclose(self) -> None:
        await self.pool.aclose()


def status_error(status: int, raw: bytes, headers) -> ProviderError:
    """Classify an HTTP error answer as the SDK path does: status, then the envelope's code and message."""
    envelope: dict[str, Any] = {}
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            envelope = parsed.get("error") if isinstance(parsed.get("error"), dict) else parsed
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    message = envelope.get("message") if isinstance(envelope.get("message"), str) else None
    if message is None:
        message = raw[:500].decode("utf-8", "replace").strip() or f"HTTP {status}"
    code = envelope.get("code") if isinstance(envelope.get("code"), str) else None
    code = code or (envelope.get("type") if isinstance(envelope.get("type"), str) else None)
    param = envelope.get("param") if isinstance(envelope.get("param"), str) else None
    return ProviderError(fault_for_status(status, message, code), f"Error code: {status} - {message}",
                         status=status, retry_after=parse_retry_after(headers), param=param)
