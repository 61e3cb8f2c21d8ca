"""Cache keys: everything that changes an answer is in them, nothing else is."""

import hashlib
from dataclasses import fields, replace

import pytest

from instructforge.generator.cache import (
    KEY_FIELDS,
    NON_KEY_FIELDS,
    canonical,
    deployment_digest,
    prompt_dict,
    prompt_digest,
    request_fingerprint,
    sample_keys,
    sampling_bytes,
)
from instructforge.generator.config import NON_IDENTITY_FIELDS, DeploymentConfig
from instructforge.generator.request import GenerateRequest, Message, Sampling

BASE = Sampling(temperature=0.7, top_p=0.9, top_k=40, max_tokens=64, stop=("\n",), seed=1,
                presence_penalty=0.1, frequency_penalty=0.2, repetition_penalty=1.1, logit_bias={"7": 1.0})
# A different value for every Sampling field.
CHANGED = {"temperature": 0.8, "top_p": 0.95, "top_k": 41, "max_tokens": 65, "stop": ("\n\n",), "seed": 2,
           "presence_penalty": 0.2, "frequency_penalty": 0.3, "repetition_penalty": 1.2, "logit_bias": {"7": 2.0}}
DEP = DeploymentConfig(name="a", backend="openai", model="gpt-x", base_url="http://h/v1")


def keys(request: GenerateRequest, dep: DeploymentConfig = DEP, sampling: Sampling | None = None, count: int = 2):
    return sample_keys(deployment_digest(dep), prompt_digest(request), sampling_bytes(sampling or request.sampling),
                       count)


def test_every_request_field_is_classified():
    names = {f.name for f in fields(GenerateRequest)}
    assert KEY_FIELDS | set(NON_KEY_FIELDS) == names
    assert not KEY_FIELDS & set(NON_KEY_FIELDS)


def test_every_sampling_field_has_a_changed_value_here():
    assert set(CHANGED) == {f.name for f in fields(Sampling)}


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_changing_any_single_sampling_parameter_changes_every_key(name):
    request = GenerateRequest(model="m", text="hi", sampling=BASE)
    other = replace(request, sampling=replace(BASE, **{name: CHANGED[name]}))
    assert not set(keys(request)) & set(keys(other))


def test_prompt_and_template_version_are_in_the_key():
    base = GenerateRequest(model="m", messages=(Message("user", "hi"),), sampling=BASE)
    variants = [replace(base, messages=(Message("user", "hi!"),)), replace(base, messages=(Message("system", "hi"),)),
                replace(base, template_version="v2"), replace(base, messages=None, text="hi")]
    for variant in variants:
        assert not set(keys(base)) & set(keys(variant))


def test_fields_outside_the_key_do_not_change_it():
    base = GenerateRequest(model="m", text="hi", sampling=BASE)
    same = replace(base, model="other", sample_count=7, idempotency_key="k", run_id="r", record_id="x",
                   labels={"a": "b"})
    assert keys(base) == keys(same)


def test_each_sample_has_its_own_key_independent_of_the_count():
    request = GenerateRequest(model="m", text="hi", sampling=BASE)
    four, eight = keys(request, count=4), keys(request, count=8)
    assert eight[:4] == four and len(set(eight)) == 8


def test_numbers_are_canonical():
    request = GenerateRequest(model="m", text="hi", sampling=replace(BASE, temperature=1))
    assert keys(request) == keys(replace(request, sampling=replace(BASE, temperature=1.0)))


def test_deployment_identity_is_its_config_minus_routing_limits_and_prices():
    changed_identity = {"backend": "anthropic", "model": "gpt-y", "base_url": "http://other/v1",
                        "headers": {"x": "y"}, "max_tokens_param": "max_completion_tokens", "options": {"a": 1}}
    not_identity = {"name": "b", "weight": 5.0, "max_concurrency": 3, "min_concurrency": 2,
                    "adaptive_concurrency": False, "requests_per_minute": 10, "tokens_per_minute": 100,
                    "rate_limit_burst_s": 1.0, "input_cost_per_million_tokens_usd": 3.0,
                    "output_cost_per_million_tokens_usd": 4.0, "timeout_s": 5.0, "api_key_env": "K",
                    "stream": True, "http_client": "direct", "warm_connections": 3, "defaults": {"temperature": 0.1}}
    assert set(changed_identity) | set(not_identity) == set(DeploymentConfig.model_fields) - {"api_key_file"}
    assert set(not_identity) | {"api_key_file"} == NON_IDENTITY_FIELDS
    base = deployment_digest(DEP)
    for name, value in changed_identity.items():
        assert deployment_digest(DEP.model_copy(update={name: value})) != base, name
    for name, value in not_identity.items():
        assert deployment_digest(DEP.model_copy(update={name: value})) == base, name


def test_fingerprint_covers_the_callers_request():
    request = GenerateRequest(model="m", text="hi", sampling=BASE)

    def fingerprint(r: GenerateRequest) -> str:
        return request_fingerprint(r, prompt_digest(r), sampling_bytes(r.sampling))

    fp = fingerprint(request)
    assert fingerprint(replace(request, model="n")) != fp
    assert fingerprint(replace(request, sample_count=2)) != fp
    assert fingerprint(replace(request, sampling=replace(BASE, seed=9))) != fp
    assert fingerprint(replace(request, text="hi!")) != fp
    assert fingerprint(replace(request, run_id="other", record_id="x", labels={"a": "b"})) == fp


@pytest.mark.parametrize("request_", [
    GenerateRequest(model="m", text="hi"),
    GenerateRequest(model="m", text="", template_version="v\"1\\"),
    GenerateRequest(model="m", text="tab\there\nnew \x00\x1f\x7f é ü 中文 😀 \u2028 \ud7ff"),
    GenerateRequest(model="m", messages=(Message("system", "be \"brief\""), Message("user", "hi\r\n"),
                                          Message("assistant", "")), template_version="t/2"),
    GenerateRequest(model="m", messages=()),
], ids=["text", "quotes", "escapes", "chat", "no-messages"])
def test_the_prompt_digest_is_the_hash_of_the_prompts_canonical_json(request_):
    """Written directly for speed, it must stay the same bytes: a cache written before is still hit."""
    assert prompt_digest(request_) == hashlib.sha256(canonical(prompt_dict(request_))).digest()


def test_keys_are_the_same_as_ever():
    """Keys are stored: a change of their values orphans every cache (bump SCHEMA on purpose, if ever)."""
    request = GenerateRequest(model="m", messages=(Message("user", "héllo \"x\"\n"),), sampling=BASE,
                              template_version="v1", sample_count=2)
    assert keys(request) == ["s:a70d867a0be5cd055d45792bb259148cc5087fae0475ac86617c16d51f3a4dd5",
                             "s:5c4b62cff9847bb00fff719537dac58fe8798a29bcaf5314345840b10c75a3d2"]
    assert request_fingerprint(request, prompt_digest(request), sampling_bytes(BASE)) == (
        "e1298ee75f54c0069a4bf2b396a7112523f1f211451c158c086413e9a508922f")
