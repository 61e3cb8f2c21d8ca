"""`iforge run` end to end: real gateway and dedup services embedded, a loopback OpenAI-compatible
model that answers in the expected layouts (and sometimes badly), and kill -9 with `iforge resume`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from layout_openai import UNRELATED_INSTRUCTION, LayoutOpenAI, self_consistent
from rouge_score import rouge_scorer

from generator.fakes.faults import FaultPlan
from instructforge.pipeline.state import RunState

EXPLORE = """recipe: explore_instruct
name: e2e-explore
domain:
  preset: custom
  name: Packing lists
  description: Writing packing lists for trips of every kind.
  examples:
    - instruction: Write a packing list for a weekend of camping.
      input: ""
      output: Tent, sleeping bag, stove, water filter, headlamp.
stages:
  extend: {{max_depth: 1, extend_nums: [{subtasks}]}}
  enrich: {{enrich_nums: [0, {per_node}]}}
  sample: {{example_num: {sample}}}
"""

SELF_INSTRUCT = """recipe: self_instruct
name: e2e-self-instruct
preset: hf
stages:
  generate: {num_instructions_to_generate: 40}
"""


def _env(fake: LayoutOpenAI) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "IFORGE"))}
    env.update(IFORGE_LLM_BASE_URL=fake.url, IFORGE_LLM_MODEL="gpt-fake", HF_HUB_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    return env


async def _iforge(fake: LayoutOpenAI, *args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "instructforge.cli.main", *args, env={**_env(fake), **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def _finish(process: asyncio.subprocess.Process, timeout_s: float = 240) -> tuple[int, str]:
    out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    return process.returncode, out.decode()


def _dataset(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "dataset.jsonl").read_text().splitlines()]


async def test_an_explore_run_makes_a_dataset_report_and_exports(tmp_path):
    recipe = tmp_path / "explore.yaml"
    recipe.write_text(EXPLORE.format(subtasks=3, per_node=12, sample=20))
    async with LayoutOpenAI() as fake:
        code, out = await _finish(await _iforge(fake, "run", str(recipe), "--run-dir", str(tmp_path / "run")))
        assert code == 0, out
        assert len(fake.log.calls) > 0
        status_code, status = await _finish(await _iforge(fake, "status", str(tmp_path / "run"), "--json"))
        export_code, exported = await _finish(await _iforge(fake, "export", str(tmp_path / "run"),
                                                            "--format", "alpaca_json"))
    run = tmp_path / "run"
    records = _dataset(run)
    assert len(records) == 20 and len({r["id"] for r in records}) == 20
    assert all(r["instruction"] and r["output"] for r in records)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["examples"] == 20 and summary["usage"]["calls"] >= len(fake.log.calls)
    assert "<html" in (run / "report.html").read_text()[:200].lower()
    assert "LLM: gpt-fake at http://127.0.0.1" in out  # the choice is said out loud
    assert status_code == 0 and json.loads(status)["state"] == "finished"
    assert export_code == 0
    alpaca = json.loads(Path(exported.strip().splitlines()[0]).read_text())
    assert [r["instruction"] for r in alpaca] == [r["instruction"] for r in records]


async def test_a_provider_refusing_the_key_stops_the_run_with_why_and_resume_finishes_it(tmp_path):
    recipe = tmp_path / "explore.yaml"
    recipe.write_text(EXPLORE.format(subtasks=2, per_node=10, sample=12))
    run = tmp_path / "run"
    async with LayoutOpenAI(api_key="sk-right") as fake:
        code, out = await _finish(await _iforge(fake, "run", str(recipe), "--run-dir", str(run),
                                                IFORGE_LLM_API_KEY="sk-wrong"))
        assert code == 2 and "Traceback" not in out, out
        assert "the provider rejected the gateway's API key" in out and f"iforge resume {run}" in out
        assert "the provider's key: the embedded gateway reads it from IFORGE_LLM_API_KEY" in out
        status_code, status = await _finish(await _iforge(fake, "status", str(run), "--json"))
        assert status_code == 0
        assert json.loads(status)["usage"]["failed"] == 0  # no call recorded as rejected: a resume makes them
        code, out = await _finish(await _iforge(fake, "resume", str(run), IFORGE_LLM_API_KEY="sk-right"))
    assert code == 0, out
    assert len(_dataset(run)) == 12
    assert "call_rejected" not in json.loads((run / "summary.json").read_text())["drops"]


async def test_a_provider_rejecting_every_call_stops_the_run_with_its_message_and_resume_finishes_it(tmp_path):
    """Before: every call a `call_rejected` drop, and the run "finished" with the root's seed examples."""
    recipe = tmp_path / "explore.yaml"
    recipe.write_text(EXPLORE.format(subtasks=2, per_node=10, sample=12))
    run = tmp_path / "run"
    async with LayoutOpenAI(faults=FaultPlan(1.0, ("context_length",))) as fake:
        code, out = await _finish(await _iforge(fake, "run", str(recipe), "--run-dir", str(run)))
        assert code == 2 and "Traceback" not in out, out
        assert "the last 10 LLM calls were all rejected" in out and "maximum context length is 4097" in out
        assert "start a new run" in out and f"iforge resume {run}" in out
        assert len(fake.log.calls) == 10
        status_code, status = await _finish(await _iforge(fake, "status", str(run), "--json"))
        assert status_code == 0
        assert json.loads(status)["usage"]["failed"] == 0  # the rejections are not recorded: a resume asks again
        fake.faults = FaultPlan()  # the provider side is fixed
        code, out = await _finish(await _iforge(fake, "resume", str(run)))
    assert code == 0, out
    assert len(_dataset(run)) == 12
    assert "call_rejected" not in json.loads((run / "summary.json").read_text())["drops"]


async def test_a_self_instruct_run_keeps_only_novel_instructions(tmp_path):
    recipe = tmp_path / "self.yaml"
    recipe.write_text(SELF_INSTRUCT)
    async with LayoutOpenAI() as fake:
        code, out = await _finish(await _iforge(fake, "run", str(recipe), "--run-dir", str(tmp_path / "run")))
    assert code == 0, out
    records = _dataset(tmp_path / "run")
    assert 0 < len(records) <= 40
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert sum(summary["drops"].values()) > 0  # the model's bad answers and near-duplicates were dropped


SELF_CONSISTENT = """recipe: self_instruct
name: e2e-self-consistency
preset: hf
stages:
  generate: {num_instructions_to_generate: 12}
  self_consistency: {enabled: true, num_trials: 2, metric: cosine, threshold: 0.5}
"""


@pytest.mark.slow  # the embedded dedup service loads the embedding model
async def test_self_consistency_keeps_what_back_translates_with_the_dedup_services_scores(tmp_path):
    recipe = tmp_path / "self.yaml"
    recipe.write_text(SELF_CONSISTENT)
    async with LayoutOpenAI() as fake:
        code, out = await _finish(await _iforge(fake, "run", str(recipe), "--run-dir", str(tmp_path / "run")))
    assert code == 0, out
    state = RunState.open(tmp_path / "run")
    try:
        judged = [r for r in state.records() if "self_consistency" in r.meta]
        dropped = {r.id for r in state.records("dropped") if "self_consistency" in r.meta}
    finally:
        state.close()
    final = {r["id"] for r in _dataset(tmp_path / "run")}
    assert final and dropped and {r.id for r in judged} == final | dropped
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for record in judged:
        # The fake paraphrases its own instruction for two outputs in three; the rule keeps exactly those.
        assert (record.id in final) == self_consistent(record.output), record
        sc = record.meta["self_consistency"]
        assert len(sc["trials"]) == 2
        for prediction, rouge_l, cosine in sc["trials"]:
            assert prediction == UNRELATED_INSTRUCTION or prediction.startswith("Please ")
            assert rouge_l == round(scorer.score(record.instruction, prediction)["rougeL"].fmeasure, 4)
            assert -1 <= cosine <= 1
        assert sc["best"] == pytest.approx(max(cosine for _, _, cosine in sc["trials"]), abs=1e-4)
        assert (sc["best"] >= 0.5) == (record.id in final)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["drops"]["not_self_consistent"] == len(dropped)


async def _kill_when_held(process: asyncio.subprocess.Process, fake: LayoutOpenAI, timeout_s: float = 120) -> None:
    """SIGKILL the run once it waits on an unanswered request and every answer it got has settled."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while fake.held_count == 0:
        if process.returncode is not None or loop.time() > deadline:
            raise AssertionError(f"the run ended before reaching its kill point: {await process.stdout.read()}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    await process.wait()


@pytest.mark.slow
async def test_kill_9_at_several_points_then_resume_equals_an_uninterrupted_run(tmp_path):
    recipe = tmp_path / "explore.yaml"
    recipe.write_text(EXPLORE.format(subtasks=4, per_node=40, sample=60))
    async with LayoutOpenAI() as fake:
        code, out = await _finish(await _iforge(fake, "run", str(recipe), "--run-dir", str(tmp_path / "whole")))
        assert code == 0, out
        uninterrupted_calls = [c.tag for c in fake.log.calls]
    assert len(uninterrupted_calls) == len(set(uninterrupted_calls))

    run = tmp_path / "interrupted"
    total = len(uninterrupted_calls)
    assert total >= 10
    async with LayoutOpenAI() as fake:
        fake.hold_after = 1  # dies after the first answer (extend), then twice more during enrich
        await _kill_when_held(await _iforge(fake, "run", str(recipe), "--run-dir", str(run)), fake)
        for point in (total // 3, 2 * total // 3):
            fake.release()
            fake.hold_after = point
            fake.held_count = 0
            await _kill_when_held(await _iforge(fake, "resume", str(run)), fake)
        fake.release()
        code, out = await _finish(await _iforge(fake, "resume", str(run)))
        assert code == 0, out
        answered = [c.tag for c in fake.log.calls]
    repeated = len(answered) - len(set(answered))
    assert repeated == 0, "a call answered before a crash was paid for again after it"
    # Which calls go out ahead of need depends on timing (`enrich.calls_ahead`), so the paid calls
    # may differ by those; what a run keeps does not, so the datasets match record for record.
    assert [r["id"] for r in _dataset(run)] == [r["id"] for r in _dataset(tmp_path / "whole")]


async def test_bad_recipes_and_missing_llm_get_one_clear_line(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("recipe: explore_instruct\nstages:\n  extend: {max_depth: 0}\n  enrichh: {}\n")
    async with LayoutOpenAI() as fake:
        code, out = await _finish(await _iforge(fake, "run", str(recipe)))
    assert code == 2 and "Traceback" not in out
    assert "stages.extend.max_depth" in out and "enrichh" in out
