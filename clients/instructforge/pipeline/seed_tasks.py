"""Seed tasks in the Self-Instruct seed JSONL format, and the project's own seed set.

One task per line: `{id, name, instruction, instances: [{input, output}], is_classification}`; like
every published implementation, only the first instance is used. A bad line is reported with its
number instead of surfacing as a KeyError deep inside a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SEED_TASKS = Path(__file__).parent / "seeds" / "self_instruct_seed_tasks.jsonl"


class SeedTaskError(ValueError):
    pass


@dataclass(frozen=True)
class SeedTask:
    id: str
    name: str
    instruction: str
    input: str
    output: str
    is_classification: bool = False


def load_seed_tasks(path: str | Path | None = None) -> list[SeedTask]:
    path = Path(path) if path else DEFAULT_SEED_TASKS
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SeedTaskError(f"{path}: cannot read seed tasks ({e.strerror or e})") from None
    tasks, seen = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SeedTaskError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
            raise SeedTaskError(f"{where}: needs a non-empty 'instruction'")
        instances = row.get("instances")
        if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
            raise SeedTaskError(f"{where}: needs 'instances', a list with at least one {{input, output}}")
        first = instances[0]
        task_id = str(row.get("id") or f"seed_task_{len(tasks)}")
        if task_id in seen:
            raise SeedTaskError(f"{where}: id {task_id!r} appears twice")
        seen.add(task_id)
        tasks.append(SeedTask(task_id, str(row.get("name", task_id)), row["instruction"].strip(),
                              str(first.get("input", "") or "").strip(), str(first.get("output", "")).strip(),
                              bool(row.get("is_classification", False))))
    if not tasks:
        raise SeedTaskError(f"{path}: no seed tasks")
    return tasks
