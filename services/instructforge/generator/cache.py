"""Content-addressed cache keys, and the records stored under them.

A sample's key is the SHA-256 of everything that decides its text: the deployment's identity (its
config minus routing, limits and prices), the prompt, the prompt template's version, every
resolved sampling parameter (the request's over the deployment's defaults), and the sample's index
(sample i uses seed + i). Each sample has its own key, so asking for 8 samples after asking for 4
reuses the first 4. Leaving a field out would serve a wrong answer; putting a harmless one in only
costs a miss; so keys are built from *all* fields of `Sampling` and of the deployment config
except the ones explicitly declared irrelevant (see `NON_KEY_FIELDS` and
`config.NON_IDENTITY_FIELDS`), and a test fails when a new field is not classified.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import fields
from json.encoder import encode_basestring
from typing import Any

from instructforge.generator.config import DeploymentConfig
from instructforge.generator.request import (
    FinishReason,
    GenerateRequest,
    GenerateResponse,
    Sample,
    Sampling,
    Usage,
)

SCHEMA = "instructforge.generator.cache/v1"

# Fields of GenerateRequest in the key, and those out of it with the reason why.
KEY_FIELDS = frozenset({"text", "messages", "sampling", "template_version"})
NON_KEY_FIELDS = {
    "model": "a routing name; the deployment that answers is in the key through its identity",
    "sample_count": "each sample is keyed by its own index",
    "cache_policy": "how to use the cache, not what is asked",
    "idempotency_key": "stored separately, maps to a whole response",
    "run_id": "accounting only",
    "record_id": "tracing only",
    "labels": "logging only",
}
_FLOAT_FIELDS = {"temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty"}


# json.dumps with options builds an encoder per call: a few microseconds, several times per LLM call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical(value: Any) -> bytes:
    """One byte string per value: sorted keys, no whitespace, floats as repr (exact), UTF-8."""
    return _CANONICAL.encode(value).encode()


SAMPLING_FIELDS = tuple(f.name for f in fields(Sampling))


def sampling_dict(s: Sampling) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SAMPLING_FIELDS:
        value = getattr(s, name)
        if value is not None and name in _FLOAT_FIELDS:
            value = float(value)
        elif name == "stop":
            value = list(value)
        elif name == "logit_bias":
            value = {str(k): float(v) for k, v in value.items()}
        out[name] = value
    return out


def sampling_bytes(s: Sampling) -> bytes:
    return canonical(sampling_dict(s))


def prompt_dict(request: GenerateRequest) -> dict[str, Any]:
    if request.messages is not None:
        prompt: Any = {"messages": [[m.role, m.content] for m in request.messages]}
    else:
        prompt = {"text": request.text}
    return {"prompt": prompt, "template_version": request.template_version}


def prompt_digest(request: GenerateRequest) -> bytes:
    """SHA-256 of `canonical(prompt_dict(request))`, computed once per request.

    The canonical JSON of a prompt of strings is written directly, with json's own string escaping:
    the same bytes (so the same keys) without building the dict and walking it with the encoder."""
    template_version, messages = request.template_version, request.messages
    if type(template_version) is str:
        if messages is not None:
            if all(type(m.role) is str and type(m.content) is str for m in messages):
                prompt = ",".join(f"[{encode_basestring(m.role)},{encode_basestring(m.content)}]" for m in messages)
                return hashlib.sha256(f'{{"prompt":{{"messages":[{prompt}]}},"template_version":'
                                      f'{encode_basestring(template_version)}}}'.encode()).digest()
        elif type(request.text) is str:
            return hashlib.sha256(f'{{"prompt":{{"text":{encode_basestring(request.text)}}},"template_version":'
                                  f'{encode_basestring(template_version)}}}'.encode()).digest()
    return hashlib.sha256(canonical(prompt_dict(request))).digest()


def deployment_digest(config: DeploymentConfig) -> bytes:
    return hashlib.sha256(canonical({"schema": SCHEMA, "deployment": config.identity()})).digest()


def _framed(*parts: bytes) -> hashlib._Hash:
    """A hash of the parts with their lengths, so no two different part lists hash alike."""
    h = hashlib.sha256()
    for part in parts:
        h.update(b"%d:" % len(part))
        h.update(part)
    return h


def sample_keys(deployment: bytes, prompt: bytes, sampling: bytes, count: int) -> list[str]:
    """Keys of samples 0..count-1: deployment digest, prompt digest, canonical resolved sampling, index."""
    base = _framed(SCHEMA.encode(), deployment, prompt, sampling)
    keys = []
    for index in range(count):
        h = base.copy()
        h.update(b"#%d" % index)
        keys.append("s:" + h.hexdigest())
    return keys


def request_fingerprint(request: GenerateRequest, prompt: bytes, sampling: bytes) -> str:
    """What the caller asked before routing (prompt digest, canonical request sampling): to catch an
    idempotency key reused for another request, and to join identical requests in flight."""
    return _framed(SCHEMA.encode(), request.model.encode(), b"%d" % request.sample_count, sampling,
                   prompt).hexdigest()


class RequestKeys:
    """A request's prompt digest and canonical sampling, computed once; its sample keys per deployment
    (those with the request's own sampling kept: a call looks them up, then stores under them)."""

    __slots__ = ("_own", "prompt", "request", "sampling")

    def __init__(self, request: GenerateRequest):
        self.request = request
        self.prompt = prompt_digest(request)
        self.sampling = sampling_bytes(request.sampling)
        self._own: dict[bytes, list[str]] = {}

    def of(self, deployment: bytes, resolved: Sampling, count: int) -> list[str]:
        """Keys of samples 0..count-1 on the deployment with this digest, with `resolved` sampling."""
        if resolved is not self.request.sampling:
            return sample_keys(deployment, self.prompt, sampling_bytes(resolved), count)
        known = self._own.get(deployment)
        if known is None or len(known) < count:
            known = self._own[deployment] = sample_keys(deployment, self.prompt, self.sampling, count)
        return known[:count]


def idempotency_store_key(key: str) -> str:
    return "i:" + hashlib.sha256(key.encode()).hexdigest()


# -- records ----------------------------------------------------------------------------------------
def encode_sample(text: str, finish: FinishReason, prompt_tokens: int, completion_tokens: int, deployment: str,
                  provider_model: str) -> bytes:
    return canonical({"t": text, "f": finish.value, "pt": prompt_tokens, "ct": completion_tokens,
                      "d": deployment, "m": provider_model, "at": round(time.time(), 3)})


def decode_sample(raw: bytes) -> dict[str, Any] | None:
    """A stored sample, or None when the record is unreadable (treated as a miss)."""
    try:
        record = json.loads(raw)
        record["f"] = FinishReason(record["f"])
        return record
    except (ValueError, KeyError, TypeError):
        return None


def encode_response(fingerprint: str, response: GenerateResponse) -> bytes:
    return canonical({
        "fp": fingerprint, "model": response.model, "deployment": response.deployment,
        "provider_model": response.provider_model, "cost": response.cost_usd,
        "usage": [response.usage.prompt_tokens, response.usage.completion_tokens],
        "samples": [[s.index, s.text, s.finish_reason.value] for s in response.samples]})


def decode_response(raw: bytes) -> tuple[str, GenerateResponse] | None:
    try:
        r = json.loads(raw)
        samples = [Sample(i, t, FinishReason(f)) for i, t, f in r["samples"]]
        response = GenerateResponse(model=r["model"], samples=samples, usage=Usage(*r["usage"]), cost_usd=0.0,
                                    cache_hit=True, deployment=r["deployment"], provider_model=r["provider_model"])
        return r["fp"], response
    except (ValueError, KeyError, TypeError):
        return None
