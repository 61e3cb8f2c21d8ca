"""The example record every recipe produces, with a content id that re-runs agree on.

The id hashes only what a trainer sees (instruction, input, output), so the same example made twice,
by two runs or after a resume, has the same id; `task` and `meta` describe where it came from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ID_PREFIX = "ex-"


def content_id(instruction: str, input: str, output: str) -> str:
    """`ex-` + 32 hex digits of SHA-256 over the three fields (length-prefixed, so no two splits collide)."""
    digest = hashlib.sha256(json.dumps([instruction, input, output], ensure_ascii=False).encode())
    return ID_PREFIX + digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Record:
    """One instruction-tuning example in Alpaca's shape plus identity and provenance."""

    instruction: str
    input: str = ""
    output: str = ""
    task: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", content_id(self.instruction, self.input, self.output))

    def with_meta(self, **values: Any) -> Record:
        """A copy with `values` merged into meta (the id stays: meta is not content)."""
        return replace(self, meta={**self.meta, **values})

    def alpaca(self) -> dict[str, str]:
        """The three fields the published datasets carry, in their order."""
        return {"instruction": self.instruction, "input": self.input, "output": self.output}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.alpaca(), "task": self.task, "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], *, task: str = "") -> Record:
        """From an Alpaca row or our own `to_dict` form; a missing id is computed, a given one kept."""
        return cls(
            instruction=str(row.get("instruction", "")),
            input=str(row.get("input", "") or ""),
            output=str(row.get("output", "")),
            task=str(row.get("task", task) or task),
            meta=dict(row.get("meta") or {}),
            id=str(row.get("id") or ""),
        )

    def to_proto(self):  # -> record_pb2.Example; imported lazily so pure logic needs no protobuf
        from google.protobuf import struct_pb2

        from instructforge.common.v1 import record_pb2

        meta = struct_pb2.Struct()
        meta.update(_jsonable(self.meta))
        return record_pb2.Example(id=self.id, instruction=self.instruction, input=self.input,
                                  output=self.output, task=self.task, meta=meta)

    @classmethod
    def from_proto(cls, message) -> Record:
        from google.protobuf import json_format

        meta = json_format.MessageToDict(message.meta) if message.HasField("meta") else {}
        return cls(instruction=message.instruction, input=message.input, output=message.output,
                   task=message.task, meta=meta, id=message.id)


def _jsonable(value: Any) -> Any:
    """Meta as protobuf's Struct can hold it: tuples become lists, other objects strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
