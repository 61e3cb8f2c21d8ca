"""The gateway's OpenAI-compatible HTTP API: /v1/chat/completions, /v1/completions, /v1/models.

Existing tools (the official SDKs, LangChain, evaluation harnesses) point their base URL here and
get routing, retries, caching and accounting without a change. It is an adapter over the same
`Gateway.generate` as gRPC: OpenAI JSON in, the core request; the core response, OpenAI JSON out.
Errors use OpenAI's envelope and statuses (400 with `param`, 401, 404, 429 with Retry-After, 503,
504), so the SDKs raise their usual exceptions.

With `"stream": true` the answer is sent as server-sent events in OpenAI's chunk format, ending
with `data: [DONE]`. The gateway retries and caches whole answers, so the events carry each
sample's text once it is complete rather than token by token.

Beyond OpenAI's fields: `top_k` and `repetition_penalty` in the body; headers `Idempotency-Key`,
`X-IForge-Cache` (use, refresh, bypass), `X-IForge-Run-Id`, `X-IForge-Template-Version`. The deadline
is the SDK's `X-Stainless-Timeout` when it sends one, else the service's default; a client that
disconnects cancels its generation.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from instructforge.generator.gateway import Gateway
from instructforge.generator.request import (
    CachePolicy,
    FinishReason,
    GenerateRequest,
    GenerateResponse,
    Message,
    Sampling,
)
from instructforge.runtime.errors import InstructForgeError, InvalidArgument, ViolationCollector

log = logging.getLogger(__name__)

FINISH = {FinishReason.STOP: "stop", FinishReason.LENGTH: "length", FinishReason.CONTENT_FILTER: "content_filter"}
STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
          "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
          "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "UNIMPLEMENTED": 501}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error"}
POLICIES = {"use": CachePolicy.USE, "refresh": CachePolicy.REFRESH, "bypass": CachePolicy.BYPASS}
_FLOATS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty")
_INTS = ("top_k", "seed")


def _content(value: Any, path: str, c: ViolationCollector) -> str:
    """A message's content: a string, or OpenAI's list of parts (text parts only)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for j, part in enumerate(value):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                c.add(f"{path}[{j}]", "only text content parts are supported")
        return "".join(texts)
    c.add(path, "must be a string or a list of text parts")
    return ""


def parse_body(body: Any, chat: bool, headers) -> tuple[GenerateRequest, bool, bool]:
    """OpenAI request JSON -> (core request, stream?, include usage in stream?); InvalidArgument names fields."""
    c = ViolationCollector()
    if not isinstance(body, dict):
        raise InvalidArgument(field="body", message="must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        c.add("model", "is required")
    text = messages = None
    if chat:
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            c.add("messages", "must be a non-empty list")
            raw = []
        parsed = []
        for i, m in enumerate(raw):
            if not isinstance(m, dict):
                c.add(f"messages[{i}]", "must be an object")
                continue
            role = "system" if m.get("role") == "developer" else m.get("role")
            parsed.append(Message(str(role), _content(m.get("content"), f"messages[{i}].content", c)))
        messages = tuple(parsed)
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            c.add("prompt", "must be a string (one prompt per request)")
        text = prompt if isinstance(prompt, str) else ""
    values: dict[str, Any] = {}
    for name in _FLOATS:
        if body.get(name) is not None:
            if isinstance(body[name], (int, float)) and not isinstance(body[name], bool):
                values[name] = float(body[name])
            else:
                c.add(name, "must be a number")
    for name in _INTS:
        if body.get(name) is not None:
            if isinstance(body[name], int) and not isinstance(body[name], bool):
                values[name] = body[name]
            else:
                c.add(name, "must be an integer")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            values["max_tokens"] = max_tokens
        else:
            c.add("max_tokens", "must be an integer")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        c.add("stop", "must be a string or a list of strings")
        stop = None
    bias = body.get("logit_bias") or {}
    if not isinstance(bias, dict):
        c.add("logit_bias", "must be an object of token id to bias")
        bias = {}
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool):
        c.add("n", "must be an integer")
        n = 1
    policy_name = headers.get("X-IForge-Cache", "use").lower()
    if policy_name not in POLICIES:
        c.add("X-IForge-Cache", "must be use, refresh or bypass")
    c.raise_if_any()
    request = GenerateRequest(
        model=model, text=text, messages=messages, sample_count=n,
        sampling=Sampling(stop=tuple(stop or ()), logit_bias={str(k): v for k, v in bias.items()}, **values),
        cache_policy=POLICIES.get(policy_name, CachePolicy.USE), idempotency_key=headers.get("Idempotency-Key", ""),
        run_id=headers.get("X-IForge-Run-Id", ""), template_version=headers.get("X-IForge-Template-Version", ""))
    stream = bool(body.get("stream"))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return request, stream, include_usage


# Our field paths back to OpenAI's parameter names, for the error's `param`.
_PARAMS = {"chat.messages": "messages", "text": "prompt", "sample_count": "n", "sampling.stop_sequences": "stop"}


def error_response(error: InstructForgeError) -> web.Response:
    status = STATUS.get(error.grpc_code, 500)
    param = None
    if isinstance(error, InvalidArgument):
        field = error.violations[0].field
        head = field.split("[")[0]
        param = _PARAMS.get(head, head.removeprefix("sampling."))
    payload = {"error": {"message": error.message, "type": ERROR_TYPES.get(status, "api_error"), "param": param,
                         "code": error.reason.lower()}}
    headers = {}
    if "retry_after_s" in error.metadata:
        headers["Retry-After"] = str(max(1, round(float(error.metadata["retry_after_s"]))))
    return web.json_response(payload, status=status, headers=headers)


class HttpFace:
    def __init__(self, gateway: Gateway, host: str, port: int, tokens: list[str], default_timeout_s: float):
        self.gateway = gateway
        self.host = host
        self.port = port
        self.tokens = [t.encode() for t in tokens]
        self.default_timeout_s = default_timeout_s
        self.runner: web.AppRunner | None = None
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model}", self.model)
        self.app = app

    async def start(self) -> int:
        # Cancel a handler when its client disconnects, so the provider request is cancelled too.
        self.runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, backlog=4096)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        log.info("http api listening", extra={"port": self.port, "address": f"http://{self.host}:{self.port}/v1"})
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def _authorized(self, request: web.Request) -> bool:
        if not self.tokens:
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        presented = token.strip().encode()
        return any([hmac.compare_digest(presented, t) for t in self.tokens])  # noqa: C419 - compare with all: no timing hint

    def _deadline(self, request: web.Request) -> float:
        timeout = self.default_timeout_s
        raw = request.headers.get("X-Stainless-Timeout")
        if raw:
            try:
                timeout = min(timeout, float(raw))
            except ValueError:
                pass
        return asyncio.get_running_loop().time() + timeout

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": {"message": "missing or invalid bearer token", "type":
                                                "authentication_error", "param": None, "code": "unauthenticated"}},
                                     status=401)
        try:
            try:
                body = json.loads(await request.read())
            except ValueError:
                raise InvalidArgument(field="body", message="is not valid JSON") from None
            core, stream, include_usage = parse_body(body, chat, request.headers)
            response = await self.gateway.generate(core, self._deadline(request))
        except InstructForgeError as exc:
            return error_response(exc)
        headers = {"X-IForge-Cache": "hit" if response.cache_hit else "miss",
                   "X-IForge-Deployment": response.deployment}
        if stream:
            return await self._sse(request, response, chat, include_usage, headers)
        return web.json_response(_completion(response, chat), headers=headers, dumps=_dumps)

    async def _sse(self, request: web.Request, response: GenerateResponse, chat: bool, include_usage: bool,
                   headers: dict[str, str]) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                          **headers})
        await out.prepare(request)
        base = {"id": _id(chat), "object": "chat.completion.chunk" if chat else "text_completion",
                "created": int(time.time()), "model": response.model}
        for s in response.samples:
            if chat:
                deltas = [{"role": "assistant", "content": ""}, {"content": s.text}]
                for delta in deltas:
                    await _event(out, {**base, "choices": [{"index": s.index, "delta": delta, "finish_reason": None,
                                                            "logprobs": None}]})
                end = {"index": s.index, "delta": {}, "finish_reason": FINISH[s.finish_reason], "logprobs": None}
            else:
                await _event(out, {**base, "choices": [{"index": s.index, "text": s.text, "finish_reason": None,
                                                        "logprobs": None}]})
                end = {"index": s.index, "text": "", "finish_reason": FINISH[s.finish_reason], "logprobs": None}
            await _event(out, {**base, "choices": [end]})
        if include_usage:
            await _event(out, {**base, "choices": [], "usage": _usage(response)})
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [_model(r.name) for r in self.gateway.routes()]})

    async def model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name not in {r.name for r in self.gateway.routes()}:
            return web.json_response({"error": {"message": f"The model '{name}' does not exist", "type":
                                                "invalid_request_error", "param": "model", "code": "model_not_found"}},
                                     status=404)
        return web.json_response(_model(name))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _event(out: web.StreamResponse, payload: dict) -> None:
    await out.write(b"data: " + _dumps(payload).encode() + b"\n\n")


def _id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "instructforge"}


def _usage(response: GenerateResponse) -> dict:
    u = response.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens}


def _completion(response: GenerateResponse, chat: bool) -> dict:
    if chat:
        choices = [{"index": s.index, "message": {"role": "assistant", "content": s.text},
                    "finish_reason": FINISH[s.finish_reason], "logprobs": None} for s in response.samples]
    else:
        choices = [{"index": s.index, "text": s.text, "finish_reason": FINISH[s.finish_reason], "logprobs": None}
                   for s in response.samples]
    return {"id": _id(chat), "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": response.model, "choices": choices, "usage": _usage(response),
            "system_fingerprint": response.deployment}
