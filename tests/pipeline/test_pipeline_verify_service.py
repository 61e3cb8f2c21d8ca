"""The verify stage against the real verifier service (in-process, loopback gRPC, real sandboxes):
canonical answers kept and broken ones dropped in every test form, a resumed stage that runs nothing
twice, and a Self-Instruct run with the stage wired in."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
from collections import Counter

import pytest
from pipeline_fakes import FakeLLM, KilledError, MemoryNovelty, words

from instructforge.client import VerifierClient
from instructforge.pipeline.bindings import VerifierExecutor
from instructforge.pipeline.context import RunContext
from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.records import Record
from instructforge.pipeline.runner import execute
from instructforge.pipeline.state import RunState
from instructforge.pipeline.stats import StageStats
from instructforge.pipeline.verify import verify_stage
from instructforge.runtime.metrics import Metrics
from instructforge.verifier.v1 import verifier_pb2 as vf

# Sandboxes of this file's verifier run as their own uids (the verifier suite uses 60000-62999).
UID_BASE = 63000

CANONICAL = "def add(a, b):\n    return a + b\n"
BROKEN = "def add(a, b):\n    return a - b\n"
STDIO_DRIVER = "\nimport sys\na, b = map(int, sys.stdin.read().split())\nprint(add(a, b))\n"
# One problem, its tests in every form the stage reads (test_form: auto tells them apart).
TESTS = {
    "asserts": ["assert add(1, 2) == 3", "assert add(-4, 4) == 0"],
    "pairs": [["add(1, 2)", "3"], ["add(2, 2)", 4]],
    "mbpp": {"test_list": ["assert plus(1, 2) == 3", "assert plus(0, 5) == 5"], "setup_code": "plus = add\n"},
    "humaneval": {"test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(3, 3) == 6\n",
                  "entry_point": "add"},
    "stdio": {"cases": [{"stdin": "1 2\n", "expected_stdout": "3\n"}, {"stdin": "5 5", "expected_stdout": "10"}]},
}
# The form each is sent in, and how many tests the verifier counts (HumanEval's `check` is one).
FORMS = {"asserts": ("asserts", 2), "pairs": ("asserts", 2), "mbpp": ("mbpp", 2), "humaneval": ("humaneval", 1),
         "stdio": ("stdio", 2)}


def answer(program: str, fenced: bool) -> str:
    return f"Here it is:\n```python\n{program}```\n" if fenced else f"Here it is:\n[PYTHON]\n{program}[/PYTHON]\n"


def records() -> list[Record]:
    out = []
    for i, (shape, tests) in enumerate(TESTS.items()):
        for broken in (False, True):
            program = (BROKEN if broken else CANONICAL) + (STDIO_DRIVER if shape == "stdio" else "")
            out.append(Record(f"{shape} broken={broken}", output=answer(program, fenced=bool(i % 2)),
                              meta={"tests": tests}))
    return out


class Counting:
    """A CodeExecutor that counts the answers it passes on; with `die_after`, the process "dies" when
    the next answer arrives (the service ran it, the run never saw it)."""

    def __init__(self, inner, die_after: int | None = None):
        self.inner, self.die_after = inner, die_after
        self.answered: Counter[str] = Counter()

    async def execute(self, request):
        response = await self.inner.execute(request)
        if self.die_after is not None and sum(self.answered.values()) >= self.die_after:
            raise KilledError("killed")
        self.answered[request.request_id] += 1
        return response


def executions(metrics: Metrics) -> float:
    """Executions the service judged, over every outcome (its own Prometheus counter)."""
    return sum(sample.value for family in metrics.registry.collect() if family.name == "iforge_verifier_executions"
               for sample in family.samples if sample.name == "iforge_verifier_executions_total")


@pytest.fixture
async def verifier(start_service):
    metrics = Metrics()
    running = await start_service("verifier", metrics=metrics, sandbox_uid_base=UID_BASE)
    async with VerifierClient.connect(f"127.0.0.1:{running.port}") as client:
        yield client, metrics


def _state(folder, **verify) -> RunState:
    recipe = parse_recipe({"recipe": "self_instruct", "retry_backoff_s": 0,
                           "stages": {"verify": {"enabled": True, **verify}}})
    return RunState.create(folder, recipe, run_id="run-s")


async def _verify(state: RunState, executor, batch: list[Record]) -> tuple[list[Record], StageStats]:
    ctx = RunContext.journaled(state, None, None, verifier=executor)  # type: ignore[arg-type]
    stats = StageStats("verify")
    return await verify_stage(ctx, state.recipe.stages.verify, batch, stats), stats


async def test_canonical_answers_pass_and_broken_ones_are_dropped_in_every_form(verifier, tmp_path):
    client, metrics = verifier
    batch = records()
    kept, stats = await _verify(_state(tmp_path), VerifierExecutor(client), batch)
    assert [r.instruction for r in kept] == [f"{shape} broken=False" for shape in TESTS]
    assert stats.drops == {"failed": len(TESTS)} and stats.outputs == len(TESTS)
    mode = kept[0].meta["verify"]["isolation"]
    assert mode in ("bwrap-root", "bwrap-userns", "plain-root", "plain") and stats.notes["isolation"] == [mode]
    for record, shape in zip(kept, TESTS, strict=True):
        v = record.meta["verify"]
        form, tests = FORMS[shape]
        assert (v["outcome"], v["passed"], v["failed"], v["tests"], v["form"]) == ("passed", tests, 0, tests, form)
    dropped = {r.instruction: r.meta["verify"] for r in RunState.open(tmp_path).records("dropped")}
    for shape in TESTS:
        v = dropped[f"{shape} broken=True"]
        assert v["outcome"] == "failed" and v["failed"] >= 1 and v["message"] and v["isolation"] == mode, shape
    assert executions(metrics) == len(batch)


async def test_what_the_service_refuses_or_kills_is_a_counted_drop(verifier, tmp_path):
    client, _ = verifier
    info = await client.get_sandbox_info(vf.GetSandboxInfoRequest())
    slow = Record("sleeps", output="[PYTHON]\nimport time\ntime.sleep(30)\n[/PYTHON]",
                  meta={"tests": ["assert True"]})
    kept, stats = await _verify(_state(tmp_path / "a", timeout_ms=300), VerifierExecutor(client), [slow])
    assert kept == [] and stats.drops == {"timed_out": 1}
    # Above the service's maximum: INVALID_ARGUMENT, a permanent rejection, not a retry.
    too_long = info.max_limits.timeout_ms + 1
    ok = Record("fine", output="[PYTHON]x = 1[/PYTHON]", meta={"tests": ["assert x == 1"]})
    kept, stats = await _verify(_state(tmp_path / "b", timeout_ms=too_long), VerifierExecutor(client), [ok])
    assert kept == [] and stats.drops == {"rejected": 1}
    verdict = RunState.open(tmp_path / "b").records("dropped")[0].meta["verify"]
    assert verdict["outcome"] == "rejected" and "INVALID_ARGUMENT" in verdict["message"]


async def test_a_resumed_stage_executes_nothing_twice(verifier, tmp_path):
    client, metrics = verifier
    batch = records()
    first = Counting(VerifierExecutor(client), die_after=4)
    with pytest.raises(KilledError):
        await _verify(_state(tmp_path), first, batch)
    second = Counting(VerifierExecutor(client))
    kept, stats = await _verify(RunState.open(tmp_path), second, batch)
    assert sum(first.answered.values()) == 4 and not set(first.answered) & set(second.answered)
    assert set(first.answered) | set(second.answered) == {f"run-s/verify/{r.id}/0" for r in batch}
    assert len(kept) == len(TESTS) and stats.drops == {"failed": len(TESTS)}
    # A third pass over the finished journal reaches the service not once.
    before = executions(metrics)
    again, _ = await _verify(RunState.open(tmp_path), Counting(VerifierExecutor(client)), batch)
    assert again == kept and executions(metrics) == before


async def test_the_binding_sizes_its_in_flight_bound_from_the_verifiers_capacity(verifier):
    client, _ = verifier
    info = await client.get_sandbox_info(vf.GetSandboxInfoRequest())
    executor = VerifierExecutor(client)
    assert executor.in_flight is None  # not asked before the first execution
    response = await executor.execute(vf.ExecuteRequest(language=vf.LANGUAGE_PYTHON, program="x = 1",
                                                        asserts=vf.AssertTests(asserts=["assert x == 1"])))
    assert response.outcome == vf.OUTCOME_PASSED
    assert executor.in_flight == 2 * info.capacity and info.capacity >= 1


# --- a Self-Instruct run with the stage wired in -----------------------------------------------------

def code_tasks(prompt: str, salt: str) -> str:
    """Numbered Self-Instruct items whose instructions carry their tests (Ada-Instruct's MBPP style):
    items 9, 12, 15 and 18 of an answer are wrong, item 19 has no code."""
    first = int(re.search(r"(\d+)\. Instruction:\n\Z", prompt).group(1))
    items = []
    for k in range(first, 20):
        n = sum(map(ord, f"{salt}/{k}")) % 1000
        name = f"shift_{n}_{k}"
        body = "return x - 1" if k % 3 == 0 else f"return x + {n}"
        code = "Sorry, no code." if k == 19 else f"[PYTHON]\ndef {name}(x):\n    {body}\n[/PYTHON]"
        instruction = (f"Implement {name} that {words(random.Random(f'{salt}/{k}'), 6)}. "
                       f"Your code should pass these tests:\nassert {name}(1) == {1 + n}\n")
        head = "" if k == first else f"{k}. Instruction:\n"
        items.append(f"{head}{instruction}\n{k}. Output:\n{code}")
    return "\n###\n".join(items) + "\n###\n"


def code_llm() -> FakeLLM:
    return FakeLLM(script=lambda request: code_tasks(request.prompt, request.idempotency_key.partition("/")[2]))


async def test_a_self_instruct_run_keeps_only_verified_code(verifier, tmp_path):
    client, metrics = verifier
    recipe = parse_recipe({"recipe": "self_instruct", "name": "code",
                           "stages": {"generate": {"num_instructions_to_generate": 12, "request_batch_size": 1},
                                      "verify": {"enabled": True}}})
    state = RunState.create(tmp_path, recipe)
    try:
        result = await execute(state, code_llm(), MemoryNovelty(), verifier=VerifierExecutor(client))
    finally:
        state.close()
    generate, verify = result.stats
    assert (generate.name, verify.name) == ("generate", "verify") and verify.inputs == 12
    # The first answer's 11 items and the second's first: five wrong (9, 12, 15, 18, 9), one without code.
    assert verify.drops == {"failed": 5, "no_code": 1} and verify.outputs == len(result.records) == 6
    for record in result.records:
        assert record.meta["verify"]["outcome"] == "passed" and "- 1" not in record.output
    assert result.summary["drops"]["failed"] == verify.drops["failed"]
    assert executions(metrics) == 12 - verify.drops.get("no_code", 0)
    assert (tmp_path / "checkpoints" / "verify.jsonl").exists()


CODE_RECIPE = """recipe: self_instruct
name: e2e-verified-code
stages:
  generate: {num_instructions_to_generate: 12, request_batch_size: 1}
  verify: {enabled: true, timeout_ms: 4000}
"""


async def test_iforge_run_embeds_a_verifier_for_a_recipe_that_verifies(tmp_path):
    """The CLI's session connects (here: embeds) the verifier and hands it to the run."""
    import layout_openai  # noqa: F401  (puts the generator's fakes on the path)
    from fakes.openai_server import FakeOpenAI
    from test_pipeline_end_to_end import _env, _finish

    (tmp_path / "code.yaml").write_text(CODE_RECIPE)
    run = tmp_path / "run"
    async with FakeOpenAI(responder=lambda prompt, body, i: code_tasks(prompt, f"{body.get('seed')}/{i}")) as fake:
        env = dict(_env(fake), IFORGE_VERIFIER_SANDBOX_UID_BASE=str(UID_BASE + 100))  # not this file's uids
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "instructforge.cli.main", "run", str(tmp_path / "code.yaml"), "--run-dir", str(run),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        code, out = await _finish(process)
    assert code == 0, out
    assert "embedded: generator, dedup, verifier" in out
    summary = json.loads((run / "summary.json").read_text())
    verify = next(s for s in summary["stages"] if s["name"] == "verify")
    dataset = [json.loads(line) for line in (run / "dataset.jsonl").read_text().splitlines()]
    assert verify["inputs"] == 12 and verify["drops"]["failed"] >= 1 and verify["outputs"] == len(dataset) > 0
    assert all(r["meta"]["verify"]["outcome"] == "passed" and r["meta"]["verify"]["isolation"] for r in dataset)
