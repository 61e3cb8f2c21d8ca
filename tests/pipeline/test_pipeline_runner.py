"""What the CLI calls: execute (run and resume alike), the summary, the status of a run folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pipeline_fakes import FakeLLM, KilledError, MemoryNovelty, run_recipe

from instructforge.pipeline.runner import status

RECIPE = {"recipe": "explore_instruct", "name": "sum", "stages": {
    "extend": {"max_depth": 1, "extend_nums": [3]}, "enrich": {"enrich_nums": [0, 20]},
    "sample": {"example_num": 50}}}


async def test_summary_of_a_finished_run(tmp_path):
    dataset, run = await run_recipe(tmp_path, RECIPE, FakeLLM())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == run.summary
    assert summary["examples"] == len(dataset) == 50
    assert [s["name"] for s in summary["stages"]] == ["extend", "enrich", "prune", "filter", "sample"]
    assert summary["usage"]["calls"] == 1 + 3 * 2 and summary["usage"]["cost_usd"] == pytest.approx(0.007)
    assert summary["cost_per_example_usd"] == pytest.approx(0.007 / 50)
    assert summary["drops"]["not_sampled"] == summary["stages"][-1]["drops"]["not_sampled"]
    assert summary["models"] == ["fake-model"] and summary["wall_s"] >= 0
    assert status(tmp_path)["state"] == "finished"


async def test_status_of_an_interrupted_run(tmp_path):
    with pytest.raises(KilledError):
        await run_recipe(tmp_path, RECIPE, FakeLLM(die_after=3), MemoryNovelty())
    report = status(tmp_path)
    assert report["state"] == "interrupted or running"
    assert [(s["name"], s["status"]) for s in report["stages"]] == [("extend", "done"), ("enrich", "running")]
    assert report["usage"]["calls"] == 3 and report["stages"][0]["outputs"] == 3


def test_the_pipeline_imports_no_heavy_library():
    """The CLI imports the pipeline; pyarrow is loaded only for a parquet export."""
    heavy = ("torch", "numpy", "pyarrow", "transformers", "sentence_transformers", "openai", "anthropic", "faiss",
             "rapidfuzz", "grpc")
    code = ("import sys\nimport instructforge.pipeline.runner, instructforge.pipeline.exports, "
            "instructforge.pipeline.plan\n"
            f"print(','.join(n for n in {heavy!r} if n in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""
