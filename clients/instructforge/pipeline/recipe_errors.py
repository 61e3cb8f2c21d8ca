"""Turning YAML and pydantic failures into messages a person can act on.

Each problem becomes one line: where (file line, when known), the key path as written in the recipe
(`stages.extend.extend_nums[2]`), and what is wrong in plain words, with a "did you mean" for a
misspelt key.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class RecipeError(ValueError):
    """A recipe that cannot run; `problems` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__(f"{source}: invalid recipe\n" + "\n".join(f"  {p}" for p in problems))


def load_yaml(text: str, source: str) -> Any:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise RecipeError(source, [f"{where}not valid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        problem = "the recipe must be a mapping with a `recipe:` key (self_instruct or explore_instruct)"
        raise RecipeError(source, [problem])
    return data


def dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "recipe"


def _line_of(text: str | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the key or value at `loc` in the YAML text, as far as it exists."""
    if text is None:
        return None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the keys at `loc` (for "did you mean")."""
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = next((t for t in _types(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)), None)
    return model


def _types(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    return [t for a in args for t in _types(a)]


_WORDS = {
    "missing": "is required",
    "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number", "float_parsing": "must be a number",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be text", "list_type": "must be a list",
    "dict_type": "must be a mapping", "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
}


def _message(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _WORDS:
        text = _WORDS[kind]
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign, bound = {"greater_than_equal": ("≥", "ge"), "greater_than": (">", "gt"),
                       "less_than_equal": ("≤", "le"), "less_than": ("<", "lt")}[kind]
        limit = ctx[bound]
        text = f"must be {sign} {int(limit) if isinstance(limit, float) and limit.is_integer() else limit}"
    elif kind == "literal_error":
        text = f"must be one of {ctx.get('expected')}"
    elif kind in ("too_short", "too_long"):
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        text = f"must have {'at least' if kind == 'too_short' else 'at most'} {bound} " + (
            "characters" if isinstance(error.get("input"), str) else "items")
    elif kind == "string_pattern_mismatch":
        text = f"must match {ctx.get('pattern')}"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        text = "must be one of 'self_instruct', 'explore_instruct'"
        if ctx.get("tag") is not None:
            text += f" (got {ctx['tag']!r})"
    else:
        text = re.sub(r"^(Value|Assertion) error, ", "", error["msg"])
    value = error.get("input")
    if kind not in ("missing", "extra_forbidden") and isinstance(value, str | int | float | bool) and len(str(value)) < 60:
        text += f" (got {value!r})"
    return text


def format_errors(error: ValidationError, data: Any, text: str | None,
                  models: dict[str, type[BaseModel]]) -> list[str]:
    """One line per problem; `models` maps each `recipe:` tag to its model (for "did you mean")."""
    lines: list[tuple[float, str]] = []
    tag = data.get("recipe") if isinstance(data, dict) else None
    for item in error.errors():
        loc = tuple(item["loc"])
        if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = ("recipe",)
        elif loc and loc[0] == tag:
            loc = loc[1:]  # the discriminated union puts the tag first
        message = _message(item)
        if item["type"] == "value_error" and (m := re.match(r"^([a-z_][\w.]*(?:\[\d+\])?): (.*)$", message, re.DOTALL)):
            loc, message = loc + tuple(m.group(1).split(".")), m.group(2)
        if item["type"] == "extra_forbidden":
            owner = _model_at(models.get(tag), loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), 1) if owner else []
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        line = _line_of(text, loc)
        lines.append((line or float("inf"), f"{f'line {line}: ' if line else ''}{dotted(loc)}: {message}"))
    return [entry for _, entry in sorted(lines, key=lambda pair: pair[0])]  # in file order
