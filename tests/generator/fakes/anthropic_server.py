"""A loopback server speaking Anthropic's Messages API (JSON and SSE events), with fault injection.

Errors use Anthropic's envelope `{"type": "error", "error": {"type", "message"}}` with its error
types (rate_limit_error + retry-after, overloaded_error on 529, api_error, invalid_request_error,
authentication_error, permission_error), and a `request-id` header, as the real API does.
"""

from __future__ import annotations

import json
import math

from .faults import FaultPlan, apply_limits, words
from .httpserver import SSE, Hang, Reply, Request, Reset
from .provider import ProviderFake

FILLER = "alpha beta gamma delta epsilon zeta eta theta"


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json(status, {"type": "error", "error": {"type": kind, "message": message}},
                      {"request-id": "req_fake", **(headers or {})})


def error_reply(fault: str, retry_after: float):
    if fault == "rate_limit":
        return _error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                      {"retry-after": str(max(0, math.ceil(retry_after))) if retry_after >= 1 else f"{retry_after:g}",
                       "anthropic-ratelimit-requests-remaining": "0"})
    if fault == "server_error":
        return _error(500, "api_error", "Internal server error")
    if fault == "unavailable":
        return _error(529, "overloaded_error", "Overloaded")
    if fault == "hang":
        return Hang()
    if fault == "reset":
        return Reset()
    if fault == "malformed":
        return Reply(200, b'{"id": "msg_broken", "type": "message", "content": [{"ty')
    if fault == "truncated":
        body = json.dumps({"id": "msg_cut", "type": "message", "role": "assistant", "content": []}).encode()
        return Reply(200, body, truncate_at=len(body) // 2)
    if fault == "bad_request":
        return _error(400, "invalid_request_error", "temperature: range: 0..1")
    if fault == "context_length":
        return _error(400, "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum")
    if fault == "content_policy":
        return _error(400, "invalid_request_error", "Output blocked by content filtering policy")
    if fault == "auth":
        return _error(401, "authentication_error", "invalid x-api-key")
    if fault == "forbidden":
        return _error(403, "permission_error", "Your API key does not have permission to use the specified resource.")
    raise ValueError(fault)


class FakeAnthropic(ProviderFake):
    def __init__(self, faults: FaultPlan | None = None, *, api_key: str | None = None):
        super().__init__(faults)
        self.api_key = api_key

    def handle(self, request: Request):
        # The API takes the key as `x-api-key`; recent SDKs send it as a bearer token.
        presented = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and presented != self.api_key:
            return error_reply("auth", 0)
        if request.method != "POST" or request.path != "/v1/messages":
            return _error(404, "not_found_error", f"Not found: {request.path}")
        if "anthropic-version" not in request.headers:
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        body = request.json()
        messages = body["messages"]
        content = messages[-1]["content"]
        prompt_tokens = sum(len(words(m["content"])) for m in messages) + len(words(body.get("system", "")))
        stream = bool(body.get("stream"))
        call = self.record(request, body, content, stream=stream)
        fault = call.fault
        if fault is not None and fault != "truncated_stream":
            return self.failed(call, error_reply(fault, self.faults.retry_after))
        text = f"reply {call.serial} to {content}: {FILLER}"
        text, finish = apply_limits(text, body["max_tokens"], body.get("stop_sequences"))
        stop_reason = {"stop": "end_turn", "length": "max_tokens"}[finish]
        stop_sequence = None
        if body.get("stop_sequences") and finish == "stop" and not text.endswith(FILLER):
            stop_reason, stop_sequence = "stop_sequence", body["stop_sequences"][0]
        call.reply_text.append(text)
        usage = {"input_tokens": prompt_tokens, "output_tokens": len(words(text))}
        message = {"id": f"msg_{call.serial}", "type": "message", "role": "assistant", "model": body["model"],
                   "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
                   "stop_sequence": stop_sequence, "usage": usage}
        if not stream:
            return Reply.json(200, message, {"request-id": f"req_{call.serial}"})
        return self._sse(message, text, cut=fault == "truncated_stream")

    def _sse(self, message: dict, text: str, cut: bool) -> SSE:
        def event(name: str, payload: dict) -> bytes:
            return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()

        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1}}
        events = [event("message_start", {"type": "message_start", "message": start}),
                  event("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "text", "text": ""}})]
        for j, word in enumerate(words(text)):
            events.append(event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                        "delta": {"type": "text_delta",
                                                                  "text": word if j == 0 else " " + word}}))
        events.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(event("message_delta", {"type": "message_delta",
                                              "delta": {"stop_reason": message["stop_reason"],
                                                        "stop_sequence": message["stop_sequence"]},
                                              "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
        events.append(event("message_stop", {"type": "message_stop"}))
        return SSE(events, {"request-id": "req_stream"}, cut_after=len(events) // 2 if cut else None)
