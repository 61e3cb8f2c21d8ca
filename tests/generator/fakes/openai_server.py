"""A loopback server speaking OpenAI's HTTP API: chat completions, completions (JSON and SSE), models.

Bodies, error envelopes and headers follow the real API (`{"error": {"message", "type", "param",
"code"}}`, `retry-after` / `retry-after-ms` on 429, `x-request-id`), so the official SDK parses them
exactly as it parses OpenAI's. The answer to a call is deterministic text naming the prompt, the
sample index and the call's serial number; the fake's tokenizer is whitespace words.

Run it alone (the benchmark does) with ``python openai_server.py --instant`` — it prints its port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `fakes` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fakes.faults import Call, FaultPlan, apply_limits, words  # type: ignore
    from fakes.httpserver import SSE, Hang, Reply, Request, Reset  # type: ignore
    from fakes.provider import ProviderFake  # type: ignore
else:
    from .faults import Call, FaultPlan, apply_limits, words
    from .httpserver import SSE, Hang, Reply, Request, Reset
    from .provider import ProviderFake

FILLER = "alpha beta gamma delta epsilon zeta eta theta"


def _error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None,
           headers: dict[str, str] | None = None) -> Reply:
    return Reply.json(status, {"error": {"message": message, "type": type_, "param": param, "code": code}},
                      headers)


def error_reply(fault: str, retry_after: float) -> Reply | Reset | Hang:
    """The reply OpenAI gives for each kind of fault."""
    if fault == "rate_limit":
        return _error(429, "Rate limit reached for requests per min (RPM): Limit 3, Used 3. "
                      "Please try again in 20ms.", "requests", "rate_limit_exceeded",
                      headers={"retry-after": str(math.ceil(retry_after)),
                               "retry-after-ms": str(int(retry_after * 1000)),
                               "x-ratelimit-remaining-requests": "0"})
    if fault == "server_error":
        return _error(500, "The server had an error while processing your request. Sorry about that!",
                      "server_error")
    if fault == "unavailable":
        return _error(503, "The engine is currently overloaded, please try again later.", "server_error")
    if fault == "hang":
        return Hang()
    if fault == "reset":
        return Reset()
    if fault == "malformed":
        return Reply(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"inde')
    if fault == "truncated":
        body = json.dumps({"id": "chatcmpl-cut", "object": "chat.completion", "created": 0, "model": "m",
                           "choices": [], "usage": None}).encode()
        return Reply(200, body, truncate_at=len(body) // 2)
    if fault == "bad_request":
        return _error(400, "Invalid value for 'temperature': expected a number.", "invalid_request_error",
                      "invalid_value", "temperature")
    if fault == "context_length":
        return _error(400, "This model's maximum context length is 4097 tokens. However, your messages "
                      "resulted in 5000 tokens. Please reduce the length of the messages.",
                      "invalid_request_error", "context_length_exceeded", "messages")
    if fault == "content_policy":
        return _error(400, "Your request was rejected as a result of our safety system.",
                      "invalid_request_error", "content_policy_violation")
    if fault == "auth":
        return _error(401, "Incorrect API key provided: sk-wro***ong. You can find your API key at "
                      "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")
    if fault == "forbidden":
        return _error(403, "You are not allowed to sample from this model", "invalid_request_error",
                      "model_not_allowed")
    raise ValueError(fault)


class FakeOpenAI(ProviderFake):
    """OpenAI on loopback, with fault injection and a log of every call."""

    def __init__(self, faults: FaultPlan | None = None, *, api_key: str | None = None, instant: bool = False,
                 models: tuple[str, ...] = ("gpt-fake",), delay: float = 0.0,
                 responder: Callable[[str, dict, int], str] | None = None):
        """`responder(prompt, body, sample_index)` writes the answers (default: text naming the call)."""
        super().__init__(faults)
        self.responder = responder
        self.api_key = api_key
        self.instant = instant
        self.models = models
        self.delay = delay
        self.active = 0  # delayed answers being prepared now
        self.max_active = 0

    @property
    def url(self) -> str:
        return self.server.url + "/v1"

    # -- routing -------------------------------------------------------------------------------
    def handle(self, request: Request):
        if self.instant and request.method == "POST":
            return self._instant(request)
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return error_reply("auth", 0)
        if request.method == "GET" and request.path.rstrip("/") == "/v1/models":
            return Reply.json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]})
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return self._generate(request, chat=True)
        if request.method == "POST" and request.path == "/v1/completions":
            return self._generate(request, chat=False)
        return _error(404, f"Unknown request URL: {request.method} {request.path}.", "invalid_request_error",
                      "unknown_url")

    def _instant(self, request: Request) -> Reply:
        """The benchmark's server: no parsing beyond what a canned answer needs."""
        self.serial += 1
        chat = request.path.endswith("/chat/completions")
        choice = ({"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop",
                   "logprobs": None} if chat else {"index": 0, "text": "ok", "finish_reason": "stop",
                                                   "logprobs": None})
        return Reply.json(200, {
            "id": f"chatcmpl-{self.serial}", "object": "chat.completion" if chat else "text_completion",
            "created": 1700000000, "model": "gpt-fake", "choices": [choice],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})

    def _generate(self, request: Request, chat: bool):
        try:
            body = request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        if chat:
            messages = body.get("messages") or []
            content = messages[-1]["content"] if messages else ""
            prompt_tokens = sum(len(words(str(m.get("content", "")))) for m in messages)
        else:
            content = body.get("prompt", "")
            prompt_tokens = len(words(content))
        tag = content if body.get("seed") is None else f"{content}|seed={body['seed']}"
        stream = bool(body.get("stream"))
        call = self.record(request, body, tag, stream=stream)
        fault = call.fault
        if fault is not None and fault != "truncated_stream":
            return self.failed(call, error_reply(fault, self.faults.retry_after))
        n = int(body.get("n") or 1)
        choices = []
        completion_tokens = 0
        for i in range(n):
            text = (self.responder(content, body, i) if self.responder is not None
                    else f"reply {call.serial}.{i} to {content}: {FILLER}")
            text, finish = apply_limits(text, body.get("max_tokens") or body.get("max_completion_tokens"),
                                        _stops(body.get("stop")))
            completion_tokens += len(words(text))
            call.reply_text.append(text)
            choices.append((text, finish))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        model = body.get("model", "gpt-fake")
        headers = {"x-request-id": f"req_{call.serial}"}
        if stream:
            return self._sse(call, chat, model, choices, usage, headers, cut=fault == "truncated_stream",
                             include_usage=bool((body.get("stream_options") or {}).get("include_usage")))
        if chat:
            payload_choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": f,
                                "logprobs": None} for i, (t, f) in enumerate(choices)]
            obj = "chat.completion"
        else:
            payload_choices = [{"index": i, "text": t, "finish_reason": f, "logprobs": None}
                               for i, (t, f) in enumerate(choices)]
            obj = "text_completion"
        reply = Reply.json(200, {"id": f"chatcmpl-{call.serial}", "object": obj, "created": 1700000000,
                                 "model": model, "system_fingerprint": "fp_fake", "choices": payload_choices,
                                 "usage": usage}, headers)
        if self.delay:
            return self._later(reply)
        return reply

    async def _later(self, reply: Reply) -> Reply:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        return reply

    def _sse(self, call: Call, chat: bool, model: str, choices, usage, headers, *, cut: bool, include_usage: bool):
        events = []
        base = {"id": f"chatcmpl-{call.serial}", "object": "chat.completion.chunk" if chat else "text_completion",
                "created": 1700000000, "model": model}

        def event(payload) -> bytes:
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        for i, (text, finish) in enumerate(choices):
            if chat:
                events.append(event({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                                          "finish_reason": None}]}))
            for j, word in enumerate(words(text)):
                piece = word if j == 0 else " " + word
                delta = {"content": piece} if chat else None
                choice = {"index": i, "delta": delta, "finish_reason": None} if chat else \
                    {"index": i, "text": piece, "finish_reason": None, "logprobs": None}
                events.append(event({**base, "choices": [choice]}))
            end = {"index": i, "delta": {}, "finish_reason": finish} if chat else \
                {"index": i, "text": "", "finish_reason": finish, "logprobs": None}
            events.append(event({**base, "choices": [end]}))
        if include_usage:
            events.append(event({**base, "choices": [], "usage": usage}))
        events.append(b"data: [DONE]\n\n")
        return SSE(events, headers, cut_after=max(1, len(events) // 2) if cut else None)


def _stops(stop) -> list[str] | None:
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--instant", action="store_true", help="canned answers, no fault injection")
    args = parser.parse_args()
    fake = FakeOpenAI(instant=args.instant)
    fake.server.port = args.port
    await fake.start()
    print(fake.server.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main())
