"""Checks a protobuf message against the field rules declared in the protos.

The rules (`instructforge.common.v1.rules`, see proto/instructforge/common/v1/validate.proto) live
in the contract, so every service validates the same way and a caller learns every bad field by its
path (`items[3].text: must be at most 65536 characters`). Rules are read from the descriptors once
per message type and cached; message types with no rules anywhere below them are skipped.

Almost every message is valid, and a gateway checks one per LLM call, so each message type also gets
a compiled yes/no check (`_valid`): closures with the bounds bound in, no paths built, no rule
options read. Only a message it rejects is walked again by `_collect`, which words the violations.
The two must agree exactly (tests/runtime/test_validation.py fuzzes them against each other).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from instructforge.common.v1 import validate_pb2
from instructforge.runtime.errors import FieldViolation, InvalidArgument

_STRING_TYPES = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)


@dataclass(frozen=True)
class _FieldCheck:
    field: FieldDescriptor
    rules: validate_pb2.FieldRules | None
    pattern: re.Pattern[str] | None
    # The field holds messages with rules somewhere below them.
    descend: bool


def _is_repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _rules_of(field: FieldDescriptor) -> validate_pb2.FieldRules | None:
    options = field.GetOptions()
    if options.HasExtension(validate_pb2.rules):
        return options.Extensions[validate_pb2.rules]
    return None


@cache
def _checks(descriptor: Descriptor) -> tuple[_FieldCheck, ...]:
    checks = []
    for field in descriptor.fields:
        rules = _rules_of(field)
        target = field.message_type
        if target is not None and _is_map(field):
            target = target.fields_by_name["value"].message_type
        descend = target is not None and _has_rules(target, frozenset())
        if rules is not None or descend:
            pattern = re.compile(rules.pattern) if rules is not None and rules.HasField("pattern") else None
            checks.append(_FieldCheck(field, rules, pattern, descend))
    return tuple(checks)


def _has_rules(descriptor: Descriptor, seen: frozenset[str]) -> bool:
    if descriptor.full_name in seen:
        return False
    seen = seen | {descriptor.full_name}
    for field in descriptor.fields:
        if _rules_of(field) is not None:
            return True
        target = field.message_type
        if target is not None and _has_rules(target, seen):
            return True
    return False


def _check_scalar(value: object, field: FieldDescriptor, rules: validate_pb2.FieldRules, pattern, path: str,
                  out: list[FieldViolation]) -> None:
    if field.type in _STRING_TYPES:
        length = len(value)  # type: ignore[arg-type]
        if rules.HasField("max_length") and length > rules.max_length:
            out.append(FieldViolation(path, f"must be at most {rules.max_length} characters (got {length})"))
        if length and rules.HasField("min_length") and length < rules.min_length:
            out.append(FieldViolation(path, f"must be at least {rules.min_length} characters (got {length})"))
        if length and pattern is not None and field.type == FieldDescriptor.TYPE_STRING and not pattern.fullmatch(value):
            out.append(FieldViolation(path, f"must match the pattern {pattern.pattern!r} (got {value!r})"))
    elif field.cpp_type in (
        FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32,
        FieldDescriptor.CPPTYPE_UINT64, FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT,
    ):
        number = value
        if math.isnan(number):  # NaN never satisfies a bound
            out.append(FieldViolation(path, "must be a number (got NaN)"))
            return
        for name, ok, words in (
            ("gte", lambda b: number >= b, "at least"),
            ("lte", lambda b: number <= b, "at most"),
            ("gt", lambda b: number > b, "greater than"),
            ("lt", lambda b: number < b, "less than"),
        ):
            if rules.HasField(name) and not ok(getattr(rules, name)):
                bound = getattr(rules, name)
                shown = int(bound) if float(bound).is_integer() else bound
                out.append(FieldViolation(path, f"must be {words} {shown} (got {number})"))


def _is_empty(message: Message, field: FieldDescriptor) -> bool:
    if _is_repeated(field):
        return len(getattr(message, field.name)) == 0
    if field.message_type is not None:
        return not message.HasField(field.name)
    return not getattr(message, field.name)


def _collect(message: Message, prefix: str, out: list[FieldViolation], descend: bool = True) -> None:
    for check in _checks(message.DESCRIPTOR):
        field, rules = check.field, check.rules
        path = f"{prefix}{field.name}"
        value = getattr(message, field.name)
        if rules is not None:
            if rules.required and _is_empty(message, field):
                what = "must not be empty" if field.message_type is None or _is_repeated(field) else "is required"
                if field.enum_type is not None and not _is_repeated(field):
                    what = f"is required (one of {', '.join(v.name for v in field.enum_type.values[1:])})"
                out.append(FieldViolation(path, what))
            if _is_repeated(field):
                count = len(value)
                if rules.HasField("max_items") and count > rules.max_items:
                    out.append(FieldViolation(path, f"must have at most {rules.max_items} items (got {count})"))
                if rules.HasField("min_items") and count < rules.min_items:
                    out.append(FieldViolation(path, f"must have at least {rules.min_items} items (got {count})"))
                if field.message_type is None:
                    for i, item in enumerate(value):
                        _check_scalar(item, field, rules, check.pattern, f"{path}[{i}]", out)
            elif field.message_type is None and (not field.has_presence or message.HasField(field.name)):
                _check_scalar(value, field, rules, check.pattern, path, out)
        if check.descend and descend:
            if _is_map(field):
                for key, item in value.items():
                    _collect(item, f"{path}[{key!r}].", out)
            elif _is_repeated(field):
                for i, item in enumerate(value):
                    _collect(item, f"{path}[{i}].", out)
            elif message.HasField(field.name):
                _collect(value, f"{path}.", out)


# -- the compiled yes/no check -------------------------------------------------------------------
_Check = Callable[[Message], bool]
_NUMERIC_TYPES = (
    FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32,
    FieldDescriptor.CPPTYPE_UINT64, FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT,
)


def _bound(rules: validate_pb2.FieldRules, name: str):
    return getattr(rules, name) if rules.HasField(name) else None


def _scalar_ok(field: FieldDescriptor, rules: validate_pb2.FieldRules, pattern) -> Callable[[object], bool] | None:
    """Whether `_check_scalar` would pass a value; None when it never finds anything."""
    if field.type in _STRING_TYPES:
        longest, shortest = _bound(rules, "max_length"), _bound(rules, "min_length")
        if field.type != FieldDescriptor.TYPE_STRING:
            pattern = None
        if longest is None and shortest is None and pattern is None:
            return None

        def text_ok(value) -> bool:
            length = len(value)
            if longest is not None and length > longest:
                return False
            if not length:
                return True
            return (shortest is None or length >= shortest) and (pattern is None or pattern.fullmatch(value) is not None)

        return text_ok
    if field.cpp_type in _NUMERIC_TYPES:
        gte, lte, gt, lt = (_bound(rules, name) for name in ("gte", "lte", "gt", "lt"))

        def number_ok(value) -> bool:
            return (not math.isnan(value) and (gte is None or value >= gte) and (lte is None or value <= lte)
                    and (gt is None or value > gt) and (lt is None or value < lt))

        return number_ok
    return None


def _field_ok(check: _FieldCheck) -> _Check | None:
    """Whether `_collect` would find nothing wrong with this field, nested messages included."""
    field, rules, name = check.field, check.rules, check.field.name
    repeated, is_message = _is_repeated(field), field.message_type is not None
    required = rules is not None and rules.required
    most = least = None
    item_ok = None
    if rules is not None:
        if repeated:
            most, least = _bound(rules, "max_items"), _bound(rules, "min_items")
        if not is_message:
            item_ok = _scalar_ok(field, rules, check.pattern)
    below: _Check | None = None
    if check.descend:
        target = field.message_type
        if _is_map(field):
            target = target.fields_by_name["value"].message_type
        below = _valid_for(target)
    if repeated:
        is_map = _is_map(field)

        def many_ok(message: Message) -> bool:
            value = getattr(message, name)
            count = len(value)
            if (required and not count) or (most is not None and count > most) or (least is not None and count < least):
                return False
            if item_ok is not None and not all(map(item_ok, value)):
                return False
            return below is None or all(map(below, value.values() if is_map else value))

        return many_ok
    if is_message:

        def message_ok(message: Message) -> bool:
            if not message.HasField(name):
                return not required
            return below is None or below(getattr(message, name))

        return message_ok
    present_only = field.has_presence

    def scalar_ok(message: Message) -> bool:
        if present_only and not message.HasField(name):
            return not required
        value = getattr(message, name)
        if required and not value:
            return False
        return item_ok is None or item_ok(value)

    return scalar_ok


_compiled: dict[str, _Check] = {}
# Checks being built, published to `_compiled` only once the outermost one is complete: a check that
# another thread found half-built would pass what it has not yet been taught to check.
_building: dict[str, _Check] = {}
_build_lock = threading.RLock()


def _valid_for(descriptor: Descriptor) -> _Check:
    """The compiled check of a message type: all of its fields' checks (built once per type)."""
    found = _compiled.get(descriptor.full_name)
    if found is not None:
        return found
    with _build_lock:
        found = _compiled.get(descriptor.full_name) or _building.get(descriptor.full_name)
        if found is not None:
            return found
        outermost = not _building
        try:
            fields: list[_Check] = []

            def valid(message: Message) -> bool:
                for field_ok in fields:
                    if not field_ok(message):
                        return False
                return True

            _building[descriptor.full_name] = valid  # before its fields: a recursive type finds itself
            fields.extend(ok for ok in map(_field_ok, _checks(descriptor)) if ok is not None)
            if outermost:
                _compiled.update(_building)
        finally:
            if outermost:
                _building.clear()
        return valid


def _valid_shallow(descriptor: Descriptor) -> _Check:
    """The compiled check of a message's own fields only (`violations(nested=False)`)."""
    key = descriptor.full_name + "#shallow"
    found = _compiled.get(key)
    if found is None:
        flat = [_FieldCheck(c.field, c.rules, c.pattern, False) for c in _checks(descriptor) if c.rules is not None]
        fields = [ok for ok in map(_field_ok, flat) if ok is not None]

        def found(message: Message) -> bool:
            return all(field_ok(message) for field_ok in fields)

        _compiled[key] = found
    return found


def violations(message: Message, *, nested: bool = True) -> list[FieldViolation]:
    """Every rule the message breaks, by field path; empty when it is valid. `nested=False`: only the
    rules of its own fields (a batch whose items are checked one by one, so that a bad one fails alone)."""
    descriptor = message.DESCRIPTOR
    if (_valid_for(descriptor) if nested else _valid_shallow(descriptor))(message):
        return []
    found: list[FieldViolation] = []
    _collect(message, "", found, nested)
    return found


def validate(message: Message) -> None:
    """Raise InvalidArgument naming every bad field of the message."""
    found = violations(message)
    if found:
        raise InvalidArgument(violations=found)
