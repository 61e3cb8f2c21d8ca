"""Request validation names every bad field, with the proto's field paths."""

import pytest

from instructforge.generator.request import (
    CachePolicy,
    GenerateRequest,
    Message,
    Sampling,
    validate_request,
)
from instructforge.runtime.errors import InvalidArgument


def fields_of(request: GenerateRequest) -> set[str]:
    with pytest.raises(InvalidArgument) as info:
        validate_request(request)
    return {v.field for v in info.value.violations}


def test_a_good_chat_request_passes():
    validate_request(GenerateRequest(model="m", messages=(Message("system", "be brief"), Message("user", "hi")),
                                     sample_count=4, sampling=Sampling(temperature=0.7, top_p=0.9, top_k=40,
                                                                       max_tokens=64, stop=("\n",), seed=-3)))


def test_exactly_one_prompt_kind():
    assert fields_of(GenerateRequest(model="m")) == {"prompt"}
    assert fields_of(GenerateRequest(model="m", text="a", messages=(Message("user", "b"),))) == {"prompt"}


def test_every_bad_field_is_named_at_once():
    request = GenerateRequest(
        model="", messages=(Message("user", "ok"), Message("robot", "x")), sample_count=0,
        sampling=Sampling(temperature=11.0, top_p=0.0, top_k=-1, max_tokens=0, stop=("", "ok"),
                          presence_penalty=3.0, frequency_penalty=float("nan"), repetition_penalty=0.0,
                          logit_bias={"abc": 1.0, "5": 500.0}))
    assert fields_of(request) == {
        "model", "chat.messages[1].role", "sample_count", "sampling.temperature", "sampling.top_p",
        "sampling.top_k", "sampling.max_tokens", "sampling.stop_sequences[0]", "sampling.presence_penalty",
        "sampling.frequency_penalty", "sampling.repetition_penalty", "sampling.logit_bias[abc]",
        "sampling.logit_bias[5]"}


def test_limits_on_counts():
    assert fields_of(GenerateRequest(model="m", text="x", sample_count=129)) == {"sample_count"}
    assert fields_of(GenerateRequest(model="m", text="x", sampling=Sampling(stop=tuple("abcdefghijklmnopq")))) == {
        "sampling.stop_sequences"}
    assert fields_of(GenerateRequest(model="m", text="x", sampling=Sampling(seed=1 << 63))) == {"sampling.seed"}
    assert fields_of(GenerateRequest(model="m", messages=())) == {"chat.messages"}


@pytest.mark.parametrize("field", ["top_k", "max_tokens", "seed"])
def test_a_boolean_is_not_an_integer(field):
    # Python counts True as 1; the core check refuses it whatever its caller let through.
    request = GenerateRequest(model="m", text="x", sampling=Sampling(**{field: True}))
    assert fields_of(request) == {f"sampling.{field}"}


def test_resolved_sampling_takes_defaults_only_where_unset():
    request = Sampling(temperature=0.0, stop=())
    defaults = Sampling(temperature=1.0, top_p=0.5, stop=("END",), max_tokens=100)
    resolved = request.resolved(defaults)
    assert resolved.temperature == 0.0  # 0 is a value, not "unset"
    assert resolved.top_p == 0.5 and resolved.stop == ("END",) and resolved.max_tokens == 100
    assert request.resolved(None) is request
    assert CachePolicy.USE.value == 1
