"""Exports of a run's dataset, each in its own folder with a small data card (README.md).

Formats: Alpaca JSON (the published training file: a list of {instruction, input, output}, indent 4),
Alpaca JSONL (one record per line, with id and task), ShareGPT (human/gpt conversations), and a
Hugging Face dataset folder (parquet under data/, loadable with `datasets.load_dataset(folder)`).
Parquet needs pyarrow, imported only when that format is asked for.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructforge.pipeline.records import Record
from instructforge.pipeline.state import RunState

FORMATS = ("alpaca_json", "alpaca_jsonl", "sharegpt", "parquet")


class ExportError(RuntimeError):
    pass


@dataclass
class DataCard:
    """What a reader of the dataset needs to know about how it was made."""

    name: str
    recipe: str
    run_id: str = ""
    models: list[str] = field(default_factory=list)
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    funnel: list[dict[str, Any]] = field(default_factory=list)  # StageStats.to_dict() per stage
    recipe_yaml: str = ""

    def render(self, records: Sequence[Record], fmt: str, files: Sequence[str]) -> str:
        tasks = Counter(r.task for r in records)
        size = ("n<1K" if len(records) < 1000 else "1K<n<10K" if len(records) < 10_000
                else "10K<n<100K" if len(records) < 100_000 else "100K<n<1M")
        front = ["---", "language:", "- en", "task_categories:", "- text-generation", "size_categories:",
                 f"- {size}", "tags:", "- instruction-tuning", "- synthetic", f"- {self.recipe.replace('_', '-')}"]
        if fmt == "parquet":
            front += ["configs:", "- config_name: default", "  data_files:", "  - split: train",
                      "    path: data/train-*.parquet"]
        front.append("---")
        kept = len(records)
        per_example = f"${self.cost_usd / kept:.6f}" if kept else "n/a"
        body = [
            f"# {self.name}", "",
            (f"Instruction-tuning data made by InstructForge's `{self.recipe}` recipe (run `{self.run_id}`), "
             f"exported as `{fmt}` on {time.strftime('%Y-%m-%d', time.gmtime())}."), "",
            "| | |", "| --- | --- |",
            f"| examples | {kept:,} |", f"| tasks | {len(tasks):,} |",
            f"| models | {', '.join(self.models) or 'n/a'} |",
            f"| tokens (prompt / completion) | {self.prompt_tokens:,} / {self.completion_tokens:,} |",
            f"| cost | ${self.cost_usd:.4f} ({per_example} per example) |",
            f"| files | {', '.join(files)} |", "",
        ]
        if self.funnel:
            body += ["## Stages", "", "| stage | in | out | LLM calls | drops |", "| --- | --- | --- | --- | --- |"]
            for s in self.funnel:
                drops = ", ".join(f"{k}: {v}" for k, v in sorted(s.get("drops", {}).items())) or "-"
                body.append(f"| {s['name']} | {s.get('inputs', 0):,} | {s.get('outputs', 0):,} | "
                            f"{s.get('calls', 0):,} | {drops} |")
            body.append("")
        if tasks and len(tasks) > 1:
            body += ["## Largest tasks", ""] + [f"- `{t}`: {n:,}" for t, n in tasks.most_common(10)] + [""]
        if self.recipe_yaml:
            body += ["## Recipe", "", "```yaml", self.recipe_yaml.rstrip(), "```", ""]
        return "\n".join(front + [""] + body)


def sharegpt(record: Record) -> dict[str, Any]:
    prompt = record.instruction + (f"\n\n{record.input}" if record.input else "")
    return {"id": record.id, "conversations": [{"from": "human", "value": prompt},
                                               {"from": "gpt", "value": record.output}]}


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_parquet(records: Sequence[Record], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("the parquet export needs pyarrow (pip install pyarrow)") from None
    columns = {
        "id": [r.id for r in records], "instruction": [r.instruction for r in records],
        "input": [r.input for r in records], "output": [r.output for r in records],
        "task": [r.task for r in records],
        "meta": [json.dumps(dict(r.meta), ensure_ascii=False, default=str) for r in records],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=pa.schema([(name, pa.string()) for name in columns])), path)


def export(records: Sequence[Record], fmt: str, folder: str | Path, card: DataCard) -> list[Path]:
    """Write `records` as `fmt` into `folder` (created) with its README.md data card."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "alpaca_json":
        path = folder / "data.json"
        _write_json(path, [r.alpaca() for r in records])
    elif fmt == "alpaca_jsonl":
        path = folder / "data.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({"id": r.id, **r.alpaca(), "task": r.task}, ensure_ascii=False) + "\n")
    elif fmt == "sharegpt":
        path = folder / "data.json"
        _write_json(path, [sharegpt(r) for r in records])
    else:
        path = folder / "data" / "train-00000-of-00001.parquet"
        _write_parquet(records, path)
    readme = folder / "README.md"
    readme.write_text(card.render(records, fmt, [str(path.relative_to(folder))]), encoding="utf-8")
    return [path, readme]


def card_for_run(state: RunState) -> DataCard:
    """The data card of a run, from its journal (models, tokens, cost) and stage checkpoints."""
    usage = state.usage().values()
    recipe_file = state.folder / "recipe.yaml"
    return DataCard(
        name=state.recipe.name, recipe=state.recipe.recipe, run_id=state.run_id, models=state.models(),
        cost_usd=sum(u["cost_usd"] or 0 for u in usage), prompt_tokens=sum(u["prompt_tokens"] or 0 for u in usage),
        completion_tokens=sum(u["completion_tokens"] or 0 for u in usage),
        funnel=[s["stats"] for s in state.stages() if s["stats"]],
        recipe_yaml=recipe_file.read_text() if recipe_file.exists() else "")


def export_run(state: RunState, fmt: str, folder: str | Path | None = None) -> list[Path]:
    """`iforge export RUN_DIR --format fmt`: the run's final dataset into `exports/<fmt>/` (or `folder`)."""
    from instructforge.pipeline.context import load_records

    dataset = state.folder / "dataset.jsonl"
    if not dataset.exists():
        raise ExportError(f"{state.folder} has no final dataset yet; finish the run with `iforge resume`")
    return export(load_records(dataset), fmt, folder or state.folder / "exports" / fmt, card_for_run(state))
