"""OpenAI and every OpenAI-compatible server (vLLM, TGI's messages API, llama.cpp, Ollama) via the official SDK.

One `AsyncOpenAI` client per deployment, on the SDK's aiohttp transport (`DefaultAioHttpClient`),
which holds its connections far better than the default one at hundreds of concurrent calls. The
SDK's own retries are off (`max_retries=0`): the gateway retries, honouring Retry-After, for every
backend alike.

Non-streaming calls go through the SDK's documented low-level `post()` with a plain JSON body and
`cast_to=httpx2.Response`: the SDK still supplies auth, base URL, pooling, timeouts and its typed
errors, but skips transforming the parameters into its TypedDicts and building pydantic models of
the answer, which is a third of its CPU per call and would be most of the gateway's. Streaming
(`stream: true` on the deployment) reads the SDK's typed `AsyncStream` of chunks, which also raises
the provider's mid-stream error events.

`http_client: direct` on a deployment sends whole-answer calls through `openai_direct` instead of
the SDK (five times less CPU per call, for local servers answering thousands of calls a second);
streaming and model listing stay on the SDK, which such a deployment then imports and builds only
when first asked for them (importing it costs about half a second of a service's start).
"""

from __future__ import annotations

import json
import os
import sys
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx2

from instructforge.generator.backends.base import BackendCall, BackendResult, Completion, finish_reason
from instructforge.generator.backends.openai_direct import DirectOpenAIClient
from instructforge.generator.backends.sdk_errors import classify_sdk_error
from instructforge.generator.config import DeploymentConfig
from instructforge.generator.faults import Fault, ProviderError, fault_for_status, parse_retry_after
from instructforge.runtime.version import package_version

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Stands in for the SDK in `classify` while it was never imported: then no exception can be one of its.
_NOT_LOADED = type("NotLoaded", (Exception,), {})
_NO_SDK = SimpleNamespace(APIStatusError=_NOT_LOADED, APITimeoutError=_NOT_LOADED,
                          APIResponseValidationError=_NOT_LOADED, APIConnectionError=_NOT_LOADED)


def _sdk() -> ModuleType:
    import openai

    return openai


def base_url_of(config: DeploymentConfig) -> str:
    """The base URL the SDK would use: the deployment's, else `OPENAI_BASE_URL`, else OpenAI's."""
    return (config.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/") + "/"


def _status_error(exc: Any) -> ProviderError:
    body = exc.body if isinstance(exc.body, dict) else {}
    code = exc.code or body.get("code") or body.get("type")
    return ProviderError(fault_for_status(exc.status_code, exc.message, code), exc.message, status=exc.status_code,
                         retry_after=parse_retry_after(exc.response.headers), param=exc.param or body.get("param"))


def classify(exc: BaseException) -> ProviderError | None:
    """The ProviderError for an exception of the openai SDK or its transport; None if not one of them."""
    return classify_sdk_error(exc, sys.modules.get("openai", _NO_SDK), _status_error)


class OpenAIBackend:
    supports_n = True

    def __init__(self, config: DeploymentConfig):
        self.config = config
        self.model = config.model
        self.stream = config.stream
        self.max_tokens_param = config.max_tokens_param
        self._api_key = config.read_api_key() or "not-needed"  # local servers accept any key
        self._client = None
        self.direct = None
        if config.http_client == "direct":
            self.direct = DirectOpenAIClient(base_url_of(config), self._api_key, config.headers,
                                             config.max_concurrency, min(10.0, config.timeout_s),
                                             f"instructforge/{package_version()}", warm=config.warm_connections)
        else:  # built now: a bad setting fails the start, not the first call
            self._client = self._new_client()

    @property
    def client(self) -> Any:
        """The SDK's `AsyncOpenAI`; a direct-client deployment builds it on first use."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        openai, config = _sdk(), self.config
        limits = httpx2.Limits(max_connections=config.max_concurrency,
                               max_keepalive_connections=config.max_concurrency, keepalive_expiry=30)
        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=base_url_of(config),
            max_retries=0,
            timeout=httpx2.Timeout(config.timeout_s, connect=min(10.0, config.timeout_s)),
            default_headers=config.headers or None,
            http_client=openai.DefaultAioHttpClient(limits=limits),
        )

    def body(self, call: BackendCall) -> dict[str, Any]:
        s = call.sampling
        body: dict[str, Any] = {"model": self.model}
        if call.messages is not None:
            body["messages"] = [{"role": m.role, "content": m.content} for m in call.messages]
        else:
            body["prompt"] = call.text
        if call.n != 1:
            body["n"] = call.n
        if s.max_tokens is not None:
            body[self.max_tokens_param if call.messages is not None else "max_tokens"] = s.max_tokens
        for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(s, name)
            if value is not None:
                body[name] = value
        if s.stop:
            body["stop"] = list(s.stop)
        if s.logit_bias:
            body["logit_bias"] = dict(s.logit_bias)
        # Not OpenAI parameters, but vLLM's and TGI's OpenAI servers take them; sent only when asked for.
        if s.top_k is not None:
            body["top_k"] = s.top_k
        if s.repetition_penalty is not None:
            body["repetition_penalty"] = s.repetition_penalty
        return body

    async def generate(self, call: BackendCall, timeout: float) -> BackendResult:
        body = self.body(call)
        path = "/chat/completions" if call.messages is not None else "/completions"
        try:
            if self.stream:
                return await self._stream(path, body, call, timeout)
            if self.direct is not None:
                data = await self.direct.post_json(path, body)
            else:
                response = await self.client.post(path, body=body, cast_to=httpx2.Response,
                                                  options={"timeout": timeout})
                data = json.loads(response.content)
            choices = data["choices"]
            chat = call.messages is not None
            completions = [None] * len(choices)
            for choice in choices:
                text = choice["message"].get("content") if chat else choice["text"]
                completions[choice.get("index", 0)] = Completion(text or "", finish_reason(choice.get("finish_reason")))
            if len(completions) != call.n or any(c is None for c in completions):
                raise ProviderError(Fault.TRUNCATED, f"asked for {call.n} samples, got {len(choices)}")
            usage = data.get("usage") or {}
            return BackendResult(completions, int(usage.get("prompt_tokens") or 0),
                                 int(usage.get("completion_tokens") or 0), data.get("model") or self.model)
        except Exception as exc:
            error = classify(exc)
            if error is None:
                raise
            raise error from exc

    async def _stream(self, path: str, body: dict, call: BackendCall, timeout: float) -> BackendResult:
        """Read an SSE answer; a stream that ends before every sample finished is a TRUNCATED fault."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        chat = call.messages is not None
        openai = _sdk()
        chunk_cls = openai.types.chat.ChatCompletionChunk if chat else openai.types.Completion
        stream = await self.client.post(path, body=body, cast_to=chunk_cls, stream=True,
                                        stream_cls=openai.AsyncStream[chunk_cls], options={"timeout": timeout})
        texts: list[list[str]] = [[] for _ in range(call.n)]
        finishes: list[str | None] = [None] * call.n
        prompt_tokens = completion_tokens = 0
        model = self.model
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens or 0
                    completion_tokens = chunk.usage.completion_tokens or 0
                for choice in chunk.choices:
                    if not 0 <= choice.index < call.n:
                        raise ProviderError(Fault.TRUNCATED, f"stream sent sample index {choice.index}")
                    piece = (choice.delta.content if chat else choice.text) or ""
                    texts[choice.index].append(piece)
                    if choice.finish_reason is not None:
                        finishes[choice.index] = choice.finish_reason
        if any(f is None for f in finishes):
            raise ProviderError(Fault.TRUNCATED, "the stream ended before every sample finished")
        completions = [Completion("".join(t), finish_reason(f)) for t, f in zip(texts, finishes)]
        return BackendResult(completions, prompt_tokens, completion_tokens, model)

    async def list_models(self) -> list[str]:
        page = await self.client.models.list()
        return [m.id for m in page.data]

    async def aclose(self) -> None:
        if self.direct is not None:
            await self.direct.aclose()
        if self._client is not None:
            await self._client.close()
