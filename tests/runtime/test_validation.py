"""The compiled yes/no check of `violations` agrees exactly with the rule walk that words violations.

`violations` trusts the compiled check for every message it passes, so a check that passed a bad
message would let it through silently. Every message type of every service with field rules is
filled at random with values at and around its bounds, and both must agree on each.
"""

from __future__ import annotations

import math
import random

import pytest
from google.protobuf.descriptor import FieldDescriptor

from instructforge.common.v1 import record_pb2
from instructforge.dedup.v1 import dedup_pb2
from instructforge.generator.v1 import generator_pb2
from instructforge.runtime.validation import _checks, _collect, _valid_for, _valid_shallow, violations
from instructforge.tagger.v1 import tagger_pb2
from instructforge.trainer.v1 import trainer_pb2
from instructforge.verifier.v1 import verifier_pb2

MODULES = (record_pb2, dedup_pb2, generator_pb2, tagger_pb2, trainer_pb2, verifier_pb2)
PATTERN_SAMPLES = ("", "a", "abc", "A_b9", "9x", "-a", "a-b.c", "_", "a b", "Zz_0")
INT_RANGES = {FieldDescriptor.CPPTYPE_INT32: (-(1 << 31), (1 << 31) - 1),
              FieldDescriptor.CPPTYPE_INT64: (-(1 << 63), (1 << 63) - 1),
              FieldDescriptor.CPPTYPE_UINT32: (0, (1 << 32) - 1),
              FieldDescriptor.CPPTYPE_UINT64: (0, (1 << 64) - 1)}


def _message_types():
    seen = {}
    for module in MODULES:
        stack = list(module.DESCRIPTOR.message_types_by_name.values())
        while stack:
            d = stack.pop()
            if d.full_name not in seen and not d.GetOptions().map_entry:
                seen[d.full_name] = d
                stack.extend(d.nested_types)
    return [d for d in seen.values() if _checks(d)]


def _rules(field):
    for check in _checks(field.containing_type):
        if check.field is field:
            return check.rules
    return None


def _near(rules, names, rng: random.Random) -> float:
    bounds = [getattr(rules, n) for n in names if rules is not None and rules.HasField(n)]
    if not bounds or rng.random() < 0.15:
        return rng.choice([0, 1, -1, 0.5, math.nan])
    b = rng.choice(bounds)
    return b + rng.choice([-1, -0.5, -1e-9, 0, 1e-9, 0.5, 1])


def _scalar(field, rng: random.Random):
    rules = _rules(field)
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        if rules is not None and rules.HasField("pattern"):
            return rng.choice(PATTERN_SAMPLES)
        limit = rules.max_length if rules is not None and rules.HasField("max_length") else 8
        length = rng.choice([0, 1, 2, limit - 1, limit, limit + 1])
        if limit >= 100_000 and rng.random() < 0.95:  # megabytes: now and then only
            length = rng.choice([0, 1, 3])
        text = "x" * max(0, length)
        return text.encode() if field.type == FieldDescriptor.TYPE_BYTES else text
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return rng.random() < 0.5
    if field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values])
    value = _near(rules, ("gte", "lte", "gt", "lt"), rng)
    if field.cpp_type in INT_RANGES:
        low, high = INT_RANGES[field.cpp_type]
        value = 0 if math.isnan(value) else min(high, max(low, round(value)))
    return value


def _fill(message, rng: random.Random, depth: int = 0) -> None:
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.25:
            continue  # left unset
        rules = _rules(field)
        if field.is_repeated:
            most = rules.max_items if rules is not None and rules.HasField("max_items") else 3
            count = rng.choice([0, 1, 2, most, most + 1]) if depth < 2 else rng.choice([0, 1])
            container = getattr(message, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key_field, value_field = (field.message_type.fields_by_name[n] for n in ("key", "value"))
                for i in range(min(count, 40)):
                    key = str(i) if key_field.cpp_type == FieldDescriptor.CPPTYPE_STRING else i
                    if value_field.message_type is not None:
                        _fill(container[key], rng, depth + 1)
                    else:
                        container[key] = _scalar(value_field, rng)
            elif field.message_type is not None:
                for _ in range(min(count, 40) if depth < 2 else min(count, 1)):
                    _fill(container.add(), rng, depth + 1)
            else:
                container.extend(_scalar(field, rng) for _ in range(count))
        elif field.message_type is not None:
            if depth < 3:
                _fill(getattr(message, field.name), rng, depth + 1)
                if rng.random() < 0.1:
                    getattr(message, field.name).SetInParent()
        else:
            setattr(message, field.name, _scalar(field, rng))


def _reference(message, nested: bool) -> list:
    found: list = []
    _collect(message, "", found, nested)
    return found


@pytest.mark.parametrize("descriptor", _message_types(), ids=lambda d: d.full_name)
def test_the_compiled_check_agrees_with_the_rule_walk(descriptor):
    rng = random.Random(descriptor.full_name)
    cls = None
    for module in MODULES:
        cls = getattr(module, descriptor.name, None) if descriptor.file is module.DESCRIPTOR else cls
    if cls is None or cls.DESCRIPTOR is not descriptor:  # a nested type: reach it through its parent's class
        from google.protobuf import message_factory

        cls = message_factory.GetMessageClass(descriptor)
    valid = invalid = 0
    for _ in range(150):
        message = cls()
        _fill(message, rng)
        for nested, check in ((True, _valid_for(descriptor)), (False, _valid_shallow(descriptor))):
            expected = _reference(message, nested)
            assert check(message) == (not expected), (nested, expected, message)
            assert violations(message, nested=nested) == expected
        valid += not _reference(message, True)
        invalid += bool(_reference(message, True))
    assert invalid, "the fuzzing never broke a rule: it tests nothing"


def test_a_valid_generation_request_passes_and_a_bad_one_is_worded_as_before():
    good = generator_pb2.StreamGenerateRequest(correlation_id="1", request=generator_pb2.GenerateRequest(
        model="m", text="hi", sampling=generator_pb2.SamplingParams(temperature=0.7, top_p=1.0)))
    assert violations(good) == []
    bad = generator_pb2.StreamGenerateRequest(correlation_id="1", request=generator_pb2.GenerateRequest(
        model="m", text="hi", sampling=generator_pb2.SamplingParams(temperature=11, top_p=0.0)))
    assert [(v.field, v.description) for v in violations(bad)] == [
        ("request.sampling.temperature", "must be at most 10 (got 11.0)"),
        ("request.sampling.top_p", "must be greater than 0 (got 0.0)")]
