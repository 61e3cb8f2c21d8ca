"""A loopback server speaking text-generation-inference: `/` (generate, with details) and `/v1/chat/completions`.

Errors use TGI's body `{"error": ..., "error_type": ...}` with its statuses: 429 "overloaded" when
the queue is full, 422 "validation" (including the context-length check on inputs + max_new_tokens),
424 "generation" for a failure during generation; 401 and 403 (`{"error": ...}` alone) as an
endpoint's auth proxy answers them.
"""

from __future__ import annotations

import json

from .faults import FaultPlan, apply_limits, words
from .httpserver import Hang, Reply, Request, Reset
from .provider import ProviderFake

FILLER = "alpha beta gamma delta epsilon zeta eta theta"


def _error(status: int, kind: str | None, message: str) -> Reply:
    body = {"error": message}
    if kind is not None:
        body["error_type"] = kind
    return Reply.json(status, body)


def error_reply(fault: str):
    if fault == "rate_limit":
        return _error(429, "overloaded", "Model is overloaded")
    if fault == "server_error":
        return _error(424, "generation", "Request failed during generation: Server error: CUDA out of memory")
    if fault == "unavailable":
        return _error(503, None, "Service Unavailable")
    if fault == "hang":
        return Hang()
    if fault == "reset":
        return Reset()
    if fault == "malformed":
        return Reply(200, b'[{"generated_text": "x", "details": {"finish_re')
    if fault == "truncated":
        body = json.dumps([{"generated_text": "cut", "details": {}}]).encode()
        return Reply(200, body, truncate_at=len(body) // 2)
    if fault == "auth":  # TGI behind an endpoint's auth proxy (Inference Endpoints, a gateway with --api-key)
        return _error(401, None, "Invalid credentials in Authorization header")
    if fault == "forbidden":
        return _error(403, None, "Forbidden: this token cannot reach this endpoint")
    if fault in ("bad_request", "content_policy"):
        return _error(422, "validation", "Input validation error: `temperature` must be strictly positive")
    if fault == "context_length":
        return _error(422, "validation", "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048. "
                                         "Given: 2000 `inputs` tokens and 100 `max_new_tokens`")
    raise ValueError(fault)


class FakeTGI(ProviderFake):
    def __init__(self, faults: FaultPlan | None = None, *, model_id: str = "fake/tgi-model"):
        super().__init__(faults)
        self.model_id = model_id

    def handle(self, request: Request):
        if request.method == "POST" and request.path == "/":
            return self._generate(request)
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return self._chat(request)
        return _error(404, None, f"not found: {request.path}")

    def _generate(self, request: Request):
        body = request.json()
        prompt = body["inputs"]
        params = body.get("parameters") or {}
        tag = prompt if params.get("seed") is None else f"{prompt}|seed={params['seed']}"
        call = self.record(request, body, tag)
        if call.fault is not None:
            return self.failed(call, error_reply(call.fault))
        text = f" reply {call.serial} to {prompt}: {FILLER}"
        text, finish = apply_limits(text, params.get("max_new_tokens"), params.get("stop") or None)
        reason = {"stop": "stop_sequence" if params.get("stop") and not text.endswith(FILLER) else "eos_token",
                  "length": "length"}[finish]
        call.reply_text.append(text)
        tokens = [{"id": i, "text": w, "logprob": -0.5, "special": False} for i, w in enumerate(words(text))]
        prefill = [{"id": i, "text": w, "logprob": None} for i, w in enumerate(words(prompt))]
        details = {"finish_reason": reason, "generated_tokens": len(tokens), "seed": params.get("seed"),
                   "prefill": prefill if params.get("decoder_input_details") else [], "tokens": tokens}
        return Reply.json(200, [{"generated_text": text, "details": details}])

    def _chat(self, request: Request):
        body = request.json()
        messages = body["messages"]
        content = messages[-1]["content"]
        tag = content if body.get("seed") is None else f"{content}|seed={body['seed']}"
        call = self.record(request, body, tag)
        if call.fault is not None:
            return self.failed(call, error_reply(call.fault))
        text = f"reply {call.serial} to {content}: {FILLER}"
        text, finish = apply_limits(text, body.get("max_tokens"), None)
        call.reply_text.append(text)
        prompt_tokens = sum(len(words(m["content"])) for m in messages)
        return Reply.json(200, {
            "id": "", "object": "chat.completion", "created": 1700000000, "model": self.model_id,
            "system_fingerprint": "2.0.0-native",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(words(text)),
                      "total_tokens": prompt_tokens + len(words(text))}})
