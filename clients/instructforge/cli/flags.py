"""Command-line flags derived from a settings model, so defaults and help are never restated.

Every scalar field becomes `--field-name` (nested models: `--tls-cert-file`); booleans get a
`--no-` form. Complex fields (lists of deployments, say) are left to the YAML file and env vars.
Only flags the user actually gave become overrides; everything else comes from env, secrets, the
config file or the model's defaults.
"""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

_SCALARS = (str, int, float, Path, SecretStr)


def _scalar_type(annotation: Any) -> Any | None:
    """The scalar type a flag parses to, or None when the field is not a flag."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _scalar_type(args[0])
    if origin is Literal:
        return ("choices", tuple(args))
    if origin in (typing.Union, __import__("types").UnionType) and len(args) == 1:
        return _scalar_type(args[0])
    if origin is list and args and _scalar_type(args[0]) in _SCALARS:
        return ("list", _scalar_type(args[0]))
    if annotation is bool:
        return bool
    if annotation in _SCALARS:
        return annotation
    return None


def _fields(model: type[BaseModel], prefix: tuple[str, ...] = ()):
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _fields(annotation, prefix + (name,))
            continue
        kind = _scalar_type(annotation)
        if kind is not None:
            yield prefix + (name,), kind, info


def add_settings_flags(parser: argparse.ArgumentParser, model: type[BaseModel], skip: set[str] = frozenset()) -> None:
    group = parser.add_argument_group(f"settings ({model.__name__}; also from env and --config)")
    for path, kind, info in _fields(model):
        if ".".join(path) in skip:
            continue
        flag = "--" + "-".join(path).replace("_", "-")
        dest = "setting__" + "__".join(path)
        default = info.get_default(call_default_factory=True)
        shown = "" if isinstance(default, list) or default is None else f" (default: {default})"
        help_text = (info.description or "") + shown
        if kind is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif isinstance(kind, tuple) and kind[0] == "choices":
            group.add_argument(flag, dest=dest, choices=kind[1], default=None, help=help_text)
        elif isinstance(kind, tuple) and kind[0] == "list":
            group.add_argument(flag, dest=dest, default=None, help=help_text + " (comma-separated)")
        else:
            group.add_argument(flag, dest=dest, type=str, default=None, metavar=path[-1].upper(), help=help_text)


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags the user gave, as a nested dict of settings values."""
    overrides: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if not dest.startswith("setting__") or value is None:
            continue
        *parents, leaf = dest.removeprefix("setting__").split("__")
        target = overrides
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return overrides
