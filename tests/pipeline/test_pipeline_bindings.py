"""The pipeline's bindings to the gRPC services: nothing of a request is lost on the way."""

from __future__ import annotations

import dataclasses

from instructforge.generator.v1 import generator_pb2 as gen
from instructforge.pipeline.bindings import generate_request
from instructforge.pipeline.protocols import GenerationRequest, Message, Sampling

# Sampling fields and the gateway field each maps to; a new field on either side fails the test
# until it is mapped, because an unmapped parameter would be silently dropped (and miss the cache key).
FIELD_MAP = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "max_tokens": "max_tokens",
    "stop": "stop_sequences", "seed": "seed", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty", "repetition_penalty": "repetition_penalty",
    "logit_bias": "logit_bias",
}


def test_every_sampling_parameter_reaches_the_gateway():
    assert set(FIELD_MAP) == {f.name for f in dataclasses.fields(Sampling)}
    assert set(FIELD_MAP.values()) == set(gen.SamplingParams.DESCRIPTOR.fields_by_name)
    sampling = Sampling(temperature=0.7, top_p=0.9, top_k=40, max_tokens=256, stop=("###", "\n\n"), seed=11,
                        presence_penalty=0.1, frequency_penalty=0.2, repetition_penalty=1.1,
                        logit_bias=(("50256", -100.0),))
    request = generate_request(GenerationRequest(
        model="teacher", prompt="Write three tasks.", sampling=sampling, n=3, idempotency_key="run/1/gen/0",
        run_id="run", record_id="rec-1", template_version="v7"))
    params = request.sampling
    assert (params.temperature, params.top_p, params.top_k, params.max_tokens, params.seed) == (0.7, 0.9, 40, 256, 11)
    assert list(params.stop_sequences) == ["###", "\n\n"] and dict(params.logit_bias) == {"50256": -100.0}
    assert (params.presence_penalty, params.frequency_penalty, params.repetition_penalty) == (0.1, 0.2, 1.1)
    assert (request.model, request.text, request.sample_count, request.idempotency_key, request.run_id,
            request.record_id, request.template_version) == ("teacher", "Write three tasks.", 3, "run/1/gen/0",
                                                             "run", "rec-1", "v7")


def test_unset_parameters_stay_unset_so_the_deployment_default_applies():
    params = generate_request(GenerationRequest(model="m", prompt="p")).sampling
    for name in ("temperature", "top_p", "top_k", "max_tokens", "seed"):
        assert not params.HasField(name), name


def test_the_content_cache_is_the_gateways_to_use_unless_the_run_says_otherwise():
    ask = GenerationRequest(model="m", prompt="p", idempotency_key="run/0")
    assert generate_request(ask).cache_policy == gen.CACHE_POLICY_UNSPECIFIED  # the gateway's default: use it
    bypass = generate_request(ask, content_cache=False)
    assert bypass.cache_policy == gen.CACHE_POLICY_BYPASS and bypass.idempotency_key == "run/0"


def test_chat_prompts_keep_roles_and_order():
    request = generate_request(GenerationRequest(model="m", prompt=(
        Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello"))))
    assert [(m.role, m.content) for m in request.chat.messages] == [
        (gen.ROLE_SYSTEM, "Be brief."), (gen.ROLE_USER, "Hi"), (gen.ROLE_ASSISTANT, "Hello")]
    assert request.WhichOneof("prompt") == "chat"
