"""Our own seed set, and seed files that are wrong in the ways people get them wrong."""

from __future__ import annotations

import itertools
import json

import pytest
from rouge_score import rouge_scorer

from instructforge.pipeline.filters import get_rules
from instructforge.pipeline.seed_tasks import DEFAULT_SEED_TASKS, SeedTaskError, load_seed_tasks


def test_the_shipped_seed_set_is_sound():
    seeds = load_seed_tasks()
    assert len(seeds) == 25 and len({s.id for s in seeds}) == 25
    assert sum(s.is_classification for s in seeds) >= 3 and sum(bool(s.input) for s in seeds) >= 10
    for variant in ("hf", "alpaca"):
        rules = get_rules(variant)
        assert [s.name for s in seeds if rules.check(s.instruction, s.input, s.output)] == []
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    worst = max(scorer.score(a.instruction, b.instruction)["rougeL"].fmeasure
                for a, b in itertools.combinations(seeds, 2))
    assert worst <= 0.5  # varied enough to be demonstrations of variety
    rows = [json.loads(line) for line in DEFAULT_SEED_TASKS.read_text().splitlines()]
    assert set(rows[0]) == {"id", "name", "instruction", "instances", "is_classification"}


@pytest.mark.parametrize(("content", "message"), [
    ('{"instruction": "x"', r"bad\.jsonl:1: not valid JSON"),
    ('{"id": "a", "instruction": "Do it.", "instances": []}', r"bad\.jsonl:1: needs 'instances'"),
    ('{"id": "a", "instances": [{"input": "", "output": "y"}]}', r"bad\.jsonl:1: needs a non-empty 'instruction'"),
    (('{"id": "a", "instruction": "A.", "instances": [{"output": "1"}]}\n'
      '{"id": "a", "instruction": "B.", "instances": [{"output": "2"}]}'), r"bad\.jsonl:2: id 'a' appears twice"),
    ("\n\n", r"no seed tasks"),
])
def test_bad_seed_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(SeedTaskError, match=message):
        load_seed_tasks(path)


def test_only_the_first_instance_is_used_and_ids_are_filled_in(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"instruction": "Add them.", "instances": [{"input": "1 2", "output": "3"}, '
                    '{"input": "2 2", "output": "4"}]}\n')
    (seed,) = load_seed_tasks(path)
    assert (seed.id, seed.input, seed.output, seed.is_classification) == ("seed_task_0", "1 2", "3", False)
