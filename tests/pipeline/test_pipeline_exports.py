"""Exports in each format, with a data card a reader can trust."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from instructforge.pipeline.context import save_records
from instructforge.pipeline.exports import DataCard, ExportError, export, export_run
from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.records import Record
from instructforge.pipeline.state import RunState
from instructforge.pipeline.stats import StageStats

RECORDS = [
    Record("Translate to German.", "Good night", "Gute Nacht", task="root/translate", meta={"model": "m"}),
    Record("Name a planet with rings.", "", "Saturn", task="root/space"),
]
CARD = DataCard(name="demo", recipe="explore_instruct", run_id="r1", models=["fake-model"], cost_usd=0.5,
                prompt_tokens=100, completion_tokens=50,
                funnel=[StageStats("enrich", 10, 8, 3).to_dict() | {"drops": {"too_short": 2}}])


def test_alpaca_json_is_the_published_training_file(tmp_path):
    data, readme = export(RECORDS, "alpaca_json", tmp_path, CARD)
    assert json.loads(data.read_text()) == [r.alpaca() for r in RECORDS]
    assert data.read_text().startswith('[\n    {\n        "instruction"')
    assert readme.name == "README.md"


def test_alpaca_jsonl_keeps_ids_and_tasks(tmp_path):
    data, _ = export(RECORDS, "alpaca_jsonl", tmp_path, CARD)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert rows[0] == {"id": RECORDS[0].id, "instruction": "Translate to German.", "input": "Good night",
                       "output": "Gute Nacht", "task": "root/translate"}


def test_sharegpt_folds_the_input_into_the_human_turn(tmp_path):
    data, _ = export(RECORDS, "sharegpt", tmp_path, CARD)
    rows = json.loads(data.read_text())
    assert rows[0]["conversations"] == [{"from": "human", "value": "Translate to German.\n\nGood night"},
                                        {"from": "gpt", "value": "Gute Nacht"}]
    assert rows[1]["conversations"][0]["value"] == "Name a planet with rings."


def test_parquet_is_a_hugging_face_dataset_folder(tmp_path):
    data, readme = export(RECORDS, "parquet", tmp_path, CARD)
    assert data.relative_to(tmp_path).as_posix() == "data/train-00000-of-00001.parquet"
    table = pq.read_table(data)
    assert table.column_names == ["id", "instruction", "input", "output", "task", "meta"]
    assert table.column("id").to_pylist() == [r.id for r in RECORDS]
    assert json.loads(table.column("meta").to_pylist()[0]) == {"model": "m"}
    assert "path: data/train-*.parquet" in readme.read_text()


def test_the_data_card(tmp_path):
    _, readme = export(RECORDS, "alpaca_json", tmp_path, CARD)
    text = readme.read_text()
    assert text.startswith("---\nlanguage:\n- en\n")
    for fact in ("| examples | 2 |", "| models | fake-model |", "| tokens (prompt / completion) | 100 / 50 |",
                 "$0.5000 ($0.250000 per example)", "| enrich | 10 | 8 | 3 | too_short: 2 |", "explore_instruct",
                 "`root/translate`: 1"):
        assert fact in text


def test_unknown_format(tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'csv'"):
        export(RECORDS, "csv", tmp_path, CARD)


def test_export_a_run(tmp_path):
    state = RunState.create(tmp_path / "run", parse_recipe({"recipe": "self_instruct", "name": "mine"}))
    with pytest.raises(ExportError, match="no final dataset yet"):
        export_run(state, "alpaca_json")
    save_records(RECORDS, state.folder / "dataset")
    data, readme = export_run(state, "alpaca_jsonl")
    assert data == state.folder / "exports" / "alpaca_jsonl" / "data.jsonl"
    assert "recipe: self_instruct" in readme.read_text() and "# mine" in readme.read_text()
