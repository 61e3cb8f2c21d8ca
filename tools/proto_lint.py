"""Checks the protos against our API conventions (buf's STANDARD rules plus the AIP choices in STYLE.md).

buf itself is not installable from the registries we reach, so this reads the descriptor set that
protoc produces and applies the rules we rely on:

- package `instructforge.<service>.v<N>` (N may carry alpha/beta), file in the matching directory,
  lower_snake file names;
- services end in `Service`; PascalCase services, RPCs and messages; lower_snake fields;
- every RPC has its own `<Rpc>Request` / `<Rpc>Response` (the `Stream`-prefixed ones too), used by
  no other RPC;
- enums: PascalCase, values UPPER_SNAKE prefixed by the enum's name, zero value `<ENUM>_UNSPECIFIED`;
- repeated fields have plural names; time and size fields carry their unit as a suffix;
- `List*` RPCs page with `page_size`/`page_token` and answer `next_page_token`;
- an API imports only google's well-known types and `instructforge.common`, never another service.

    python tools/proto_lint.py     # prints violations, exits 1 when there are any
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))

PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
LOWER_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
PACKAGE = re.compile(r"^instructforge\.[a-z][a-z0-9_]*\.v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$")
TIME_WORDS = re.compile(r"(^|_)(time|timeout|latency|duration|delay|interval|age)(_|$)")
UNIT_SUFFIX = re.compile(r"_(ns|us|ms|s|seconds|minutes|hours)$")
SIZE_WORDS = re.compile(r"(^|_)(memory|bytes)(_|$)")
NUMERIC = {
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32, descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32, descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE, descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
}
REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
# Plural nouns that do not end in "s".
PLURAL_WORDS = {"data", "metadata", "criteria", "people", "children"}


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _check_enum(enum: descriptor_pb2.EnumDescriptorProto, where: str, out: list[str]) -> None:
    if not PASCAL.match(enum.name):
        out.append(f"{where}: enum {enum.name} is not PascalCase")
    prefix = _upper_snake(enum.name) + "_"
    if not enum.value or enum.value[0].number != 0 or enum.value[0].name != prefix + "UNSPECIFIED":
        out.append(f"{where}: enum {enum.name} must start with {prefix}UNSPECIFIED = 0")
    for value in enum.value:
        if not UPPER_SNAKE.match(value.name) or not value.name.startswith(prefix):
            out.append(f"{where}: enum value {value.name} must be UPPER_SNAKE_CASE prefixed by {prefix}")


def _check_message(message: descriptor_pb2.DescriptorProto, where: str, out: list[str]) -> None:
    where = f"{where}.{message.name}"
    if message.options.map_entry:
        return
    if not PASCAL.match(message.name):
        out.append(f"{where}: message name is not PascalCase")
    for field in message.field:
        name = field.name
        if not LOWER_SNAKE.match(name):
            out.append(f"{where}.{name}: field name is not lower_snake_case")
        is_map = field.type_name.endswith("Entry") and any(
            nested.options.map_entry and field.type_name.endswith("." + nested.name) for nested in message.nested_type
        )
        if field.label == REPEATED and not is_map and not (name.endswith("s") or name.split("_")[-1] in PLURAL_WORDS):
            out.append(f"{where}.{name}: repeated field names are plural")
        if field.type in NUMERIC and TIME_WORDS.search(name) and not UNIT_SUFFIX.search(name):
            out.append(f"{where}.{name}: a time field carries its unit as a suffix (e.g. _ms, _s)")
        if field.type in NUMERIC and SIZE_WORDS.search(name) and not name.endswith("_bytes"):
            out.append(f"{where}.{name}: a size field carries its unit as a suffix (_bytes)")
    for nested in message.nested_type:
        _check_message(nested, where, out)
    for enum in message.enum_type:
        _check_enum(enum, where, out)


def lint(descriptor_set: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """Every convention the files under instructforge/ break; empty when they follow them all."""
    out: list[str] = []
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    ours = [f for f in descriptor_set.file if f.name.startswith("instructforge/")]
    for file in descriptor_set.file:
        for message in file.message_type:
            messages[f".{file.package}.{message.name}"] = message
    for file in ours:
        where = file.name
        if not PACKAGE.match(file.package):
            out.append(f"{where}: package {file.package!r} must be instructforge.<name>.v<N>")
        if str(Path(file.name).parent).replace("/", ".") != file.package:
            out.append(f"{where}: directory does not match package {file.package!r}")
        if not LOWER_SNAKE.match(Path(file.name).stem):
            out.append(f"{where}: file name is not lower_snake_case")
        own_api = file.package.split(".")[1] if file.package.count(".") >= 2 else ""
        for dependency in file.dependency:
            api = dependency.split("/")[1] if dependency.startswith("instructforge/") else None
            if api not in (None, "common", own_api):
                out.append(f"{where}: imports {dependency}; an API may import only google/* and instructforge/common")
        for message in file.message_type:
            _check_message(message, where, out)
        for enum in file.enum_type:
            _check_enum(enum, where, out)
        used: dict[str, str] = {}
        for service in file.service:
            if not PASCAL.match(service.name) or not service.name.endswith("Service"):
                out.append(f"{where}: service {service.name} must be PascalCase and end in 'Service'")
            for rpc in service.method:
                label = f"{where}: rpc {service.name}.{rpc.name}"
                if not PASCAL.match(rpc.name):
                    out.append(f"{label} is not PascalCase")
                for kind, type_name in (("Request", rpc.input_type), ("Response", rpc.output_type)):
                    expected = f".{file.package}.{rpc.name}{kind}"
                    if type_name != expected:
                        out.append(f"{label}: {kind.lower()} must be {expected.rsplit('.', 1)[1]}, not "
                                   f"{type_name.rsplit('.', 1)[1]}")
                    if type_name in used:
                        out.append(f"{label}: {type_name.rsplit('.', 1)[1]} is already used by rpc {used[type_name]}")
                    used[type_name] = rpc.name
                if rpc.name.startswith("List"):
                    request = messages.get(rpc.input_type)
                    response = messages.get(rpc.output_type)
                    fields = {f.name for f in request.field} if request else set()
                    if not {"page_size", "page_token"} <= fields:
                        out.append(f"{label}: List requests carry page_size and page_token")
                    if response and "next_page_token" not in {f.name for f in response.field}:
                        out.append(f"{label}: List responses carry next_page_token")
    return out


def descriptor_set_of(proto_root: Path) -> descriptor_pb2.FileDescriptorSet:
    """Compile every proto under proto_root into a descriptor set."""
    from gen_protos import run_protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        run_protoc(proto_root, [f"--descriptor_set_out={out}", "--include_imports"])
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def main() -> int:
    root = Path(__file__).resolve().parents[1] / "proto"
    problems = lint(descriptor_set_of(root))
    for problem in problems:
        print(problem)
    print(f"{len(problems)} convention violations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
