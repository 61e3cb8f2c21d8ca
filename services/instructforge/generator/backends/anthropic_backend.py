"""Anthropic Claude through the official SDK's Messages API.

Like the OpenAI backend: the SDK's own retries are off, the aiohttp transport holds the pool, and
non-streaming calls use the SDK's low-level `post()` with a plain body. The Messages API has no
`n`, so the gateway sends one call per sample; it takes no seed, penalties or logit bias, so those
are not sent (the README lists what each backend honours). System messages become the top-level
`system` parameter; a plain-text prompt is sent as one user message.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2

from instructforge.generator.backends.base import BackendCall, BackendResult, Completion, finish_reason
from instructforge.generator.backends.sdk_errors import classify_sdk_error
from instructforge.generator.config import DeploymentConfig
from instructforge.generator.faults import Fault, ProviderError, fault_for_status, parse_retry_after

DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens; used when neither request nor deployment set it
API_VERSION = "2023-06-01"

# Anthropic's error `type`s, which say more than the status (errors inside a stream arrive with 200).
ERROR_TYPES = {
    "rate_limit_error": Fault.RATE_LIMITED, "overloaded_error": Fault.OVERLOADED, "api_error": Fault.SERVER_ERROR,
    "timeout_error": Fault.TIMEOUT, "authentication_error": Fault.UNAUTHENTICATED,
    "permission_error": Fault.PERMISSION_DENIED, "not_found_error": Fault.NOT_FOUND,
    "billing_error": Fault.QUOTA_EXHAUSTED, "request_too_large": Fault.BAD_REQUEST,
}


def _status_error(exc: anthropic.APIStatusError) -> ProviderError:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    kind = error.get("type")
    message = str(error.get("message") or exc.message)
    fault = ERROR_TYPES.get(kind) or fault_for_status(exc.status_code if exc.status_code >= 400 else 500, message, kind)
    if fault is Fault.BAD_REQUEST:
        fault = fault_for_status(400, message, kind)  # context length / policy are 400s told apart by the message
    return ProviderError(fault, message, status=exc.status_code, retry_after=parse_retry_after(exc.response.headers))


def classify(exc: BaseException) -> ProviderError | None:
    return classify_sdk_error(exc, anthropic, _status_error)


class AnthropicBackend:
    supports_n = False

    def __init__(self, config: DeploymentConfig):
        self.config = config
        self.model = config.model
        self.stream = config.stream
        limits = httpx2.Limits(max_connections=config.max_concurrency,
                               max_keepalive_connections=config.max_concurrency, keepalive_expiry=30)
        self.client = anthropic.AsyncAnthropic(
            api_key=config.read_api_key() or "not-needed",
            base_url=config.base_url,
            max_retries=0,
            timeout=httpx2.Timeout(config.timeout_s, connect=min(10.0, config.timeout_s)),
            default_headers={"anthropic-version": API_VERSION, **config.headers},
            http_client=anthropic.DefaultAioHttpClient(limits=limits),
        )

    def body(self, call: BackendCall) -> dict[str, Any]:
        s = call.sampling
        system = []
        messages = []
        if call.messages is not None:
            for m in call.messages:
                if m.role == "system":
                    system.append(m.content)
                else:
                    messages.append({"role": m.role, "content": m.content})
        else:
            messages.append({"role": "user", "content": call.text})
        body: dict[str, Any] = {"model": self.model, "messages": messages,
                                "max_tokens": s.max_tokens or DEFAULT_MAX_TOKENS}
        if system:
            body["system"] = "\n\n".join(system)
        if s.temperature is not None:
            body["temperature"] = s.temperature
        if s.top_p is not None:
            body["top_p"] = s.top_p
        if s.top_k is not None:
            body["top_k"] = s.top_k
        if s.stop:
            body["stop_sequences"] = list(s.stop)
        return body

    async def generate(self, call: BackendCall, timeout: float) -> BackendResult:
        if call.n != 1:
            raise ValueError("the Messages API answers one sample per call")
        body = self.body(call)
        try:
            if self.stream:
                return await self._stream(body, timeout)
            response = await self.client.post("/v1/messages", body=body, cast_to=httpx2.Response,
                                              options={"timeout": timeout})
            data = json.loads(response.content)
            if data.get("type") != "message":
                raise ProviderError(Fault.TRUNCATED, f"expected a message object, got type {data.get('type')!r}")
            text = "".join(block.get("text", "") for block in data["content"] if block.get("type") == "text")
            usage = data.get("usage") or {}
            return BackendResult([Completion(text, finish_reason(data.get("stop_reason")))], _input_tokens(usage),
                                 int(usage.get("output_tokens") or 0), data.get("model") or self.model)
        except Exception as exc:
            error = classify(exc)
            if error is None:
                raise
            raise error from exc

    async def _stream(self, body: dict, timeout: float) -> BackendResult:
        """Read the event stream; no `message_stop` (or no stop reason) means the stream was cut."""
        event_cls = anthropic.types.RawMessageStreamEvent
        stream = await self.client.post("/v1/messages", body={**body, "stream": True}, cast_to=event_cls,
                                        stream=True, stream_cls=anthropic.AsyncStream[event_cls],
                                        options={"timeout": timeout})
        parts: list[str] = []
        stop_reason = None
        stopped = False
        input_tokens = output_tokens = 0
        model = self.model
        async with stream:
            async for event in stream:
                kind = event.type
                if kind == "message_start":
                    model = event.message.model or model
                    input_tokens = _input_tokens(event.message.usage.model_dump())
                elif kind == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
                elif kind == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    output_tokens = event.usage.output_tokens or output_tokens
                elif kind == "message_stop":
                    stopped = True
        if not stopped or stop_reason is None:
            raise ProviderError(Fault.TRUNCATED, "the stream ended before message_stop")
        return BackendResult([Completion("".join(parts), finish_reason(stop_reason))], input_tokens, output_tokens,
                             model)

    async def aclose(self) -> None:
        await self.client.close()


def _input_tokens(usage: dict) -> int:
    """Every input token billed: plain, written to and read from the prompt cache."""
    return sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                 "cache_read_input_tokens"))
