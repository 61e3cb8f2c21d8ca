"""The verify stage without a service: code extraction, requests in the four test forms, keep/drop
with the verdict recorded, journaled executions, transient failures that stop the run resumable."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from pipeline_fakes import KilledError

from instructforge.pipeline.calls import JOURNALED_OUTPUT_CHARS, RunInterrupted
from instructforge.pipeline.context import RunContext
from instructforge.pipeline.plan import plan_recipe
from instructforge.pipeline.protocols import PermanentError, TransientError
from instructforge.pipeline.recipe import VerifyConfig, parse_recipe
from instructforge.pipeline.recipe_errors import RecipeError
from instructforge.pipeline.records import Record
from instructforge.pipeline.session import service_addresses
from instructforge.pipeline.state import RunState
from instructforge.pipeline.stats import StageStats
from instructforge.pipeline.verify import (
    NotVerifiable,
    detect_form,
    extract_code,
    field_value,
    record_request,
    request_for,
    verify_stage,
)
from instructforge.verifier.v1 import verifier_pb2 as vf


def test_the_pipeline_reaches_the_verifier_through_its_api_only():
    """Services talk over their APIs: nothing of the verifier but `verifier.v1` may be imported."""
    code = ("import json, sys\nimport instructforge.pipeline.runner, instructforge.pipeline.session, "
            "instructforge.pipeline.verify, instructforge.pipeline.bindings\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('instructforge.verifier'))))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = json.loads(result.stdout)
    assert "instructforge.verifier.v1.verifier_pb2" in loaded
    assert [m for m in loaded if not m.startswith("instructforge.verifier.v1") and m != "instructforge.verifier"] == []


def test_extract_prefers_the_python_tag_then_python_fences_then_bare_fences():
    assert extract_code("text [PYTHON]\ndef f(): pass\n[/PYTHON] more") == "def f(): pass"
    assert extract_code("[python]x = 1[/python]") == "x = 1"
    assert extract_code("```text\nnot code\n```\n```python\nx = 2\n```") == "x = 2"
    assert extract_code("```py\nx = 4\n```\n```\ny = 3\n```") == "x = 4"
    assert extract_code("```\ny = 3\n```") == "y = 3"
    assert extract_code("[PYTHON]  [/PYTHON]\n```python\nz = 5\n```") == "z = 5"  # an empty tag is no code
    assert extract_code("```bash\nls\n```") is None
    assert extract_code("no code here") is None
    assert extract_code(None) is None


def test_field_paths_reach_record_fields_and_nested_meta():
    record = Record("i", "in", "out", meta={"tests": {"a": [1]}, "x": 2})
    assert field_value(record, "output") == "out" and field_value(record, "input") == "in"
    assert field_value(record, "meta.tests.a") == [1] and field_value(record, "meta.x") == 2
    assert field_value(record, "meta.missing") is None and field_value(record, "meta.x.deeper") is None


def test_asserts_form_from_statements_lines_and_pairs():
    r = request_for("code", ["assert f(1) == 1", "assert f(2) == 2"])
    assert r.WhichOneof("tests") == "asserts" and list(r.asserts.asserts) == ["assert f(1) == 1", "assert f(2) == 2"]
    assert (r.program, r.language) == ("code", vf.LANGUAGE_PYTHON)
    r = request_for("code", "assert f(1) == 1\n\n  assert f(2) == 2\nprint('not a test')\n")
    assert list(r.asserts.asserts) == ["assert f(1) == 1", "assert f(2) == 2"]
    # Ada-Instruct pairs: a string is Python source already, JSON values become Python literals.
    r = request_for("code", [["f(2)", "4"], ["g()", None], ["h()", True], ["k()", [1, "a"]]])
    assert list(r.asserts.asserts) == ["assert f(2) == 4", "assert g() == None", "assert h() == True",
                                       "assert k() == [1, 'a']"]


def test_mbpp_form_keeps_the_setup_code():
    r = request_for("code", {"test_list": ["assert g()"], "test_setup_code": "import os"})
    assert r.WhichOneof("tests") == "mbpp" and (list(r.mbpp.asserts), r.mbpp.setup_code) == (["assert g()"], "import os")
    r = request_for("code", {"asserts": ["assert g()"], "setup_code": "x = 1"}, "mbpp")
    assert r.mbpp.setup_code == "x = 1"
    # Without setup code a listing is plain asserts under auto, MBPP when the recipe says so.
    assert request_for("code", {"test_list": ["assert g()"]}).WhichOneof("tests") == "asserts"
    r = request_for("code", ["assert g()"], "mbpp")
    assert r.WhichOneof("tests") == "mbpp" and list(r.mbpp.asserts) == ["assert g()"] and not r.mbpp.setup_code


def test_humaneval_form_sends_the_answer_as_the_completion():
    tests = {"test": "def check(c):\n    assert c(1) == 2\n", "entry_point": "inc", "prompt": "def inc(x):\n"}
    r = request_for("    return x + 1\n", tests)
    assert r.WhichOneof("tests") == "humaneval" and r.program == "    return x + 1\n"
    assert (r.humaneval.prompt, r.humaneval.test, r.humaneval.entry_point) == (
        "def inc(x):\n", "def check(c):\n    assert c(1) == 2\n", "inc")
    assert request_for("code", {"test": "t", "entry_point": "f"}).humaneval.prompt == ""
    bad = request_for("code", ["assert f()"], "humaneval")
    assert isinstance(bad, NotVerifiable) and bad.reason == "bad_tests" and "entry_point" in bad.detail


def test_stdio_form_in_its_three_spellings():
    r = request_for("code", {"cases": [{"stdin": "1 2\n", "expected_stdout": "3\n"}], "exact_match": True})
    assert r.WhichOneof("tests") == "stdio" and r.stdio.exact_match
    assert [(c.stdin, c.expected_stdout) for c in r.stdio.cases] == [("1 2\n", "3\n")]
    r = request_for("code", [{"stdin": "a"}, {"stdin": "b", "expected_stdout": "B"}])
    assert [(c.stdin, c.expected_stdout) for c in r.stdio.cases] == [("a", ""), ("b", "B")]
    r = request_for("code", {"inputs": ["1\n", "2\n"], "outputs": ["1\n", "4\n"]})
    assert [(c.stdin, c.expected_stdout) for c in r.stdio.cases] == [("1\n", "1\n"), ("2\n", "4\n")]
    r = request_for("code", [["1\n", "1\n"]], "stdio")  # pairs are stdin/stdout only when the recipe says so
    assert r.WhichOneof("tests") == "stdio" and not r.stdio.exact_match
    assert request_for("code", {"inputs": ["1"], "outputs": []}).reason == "bad_tests"
    assert request_for("code", {"cases": [42]}).reason == "bad_tests"


def test_detection_and_what_cannot_be_verified():
    assert [detect_form(t) for t in ({"test": "", "entry_point": "f"}, {"cases": []}, {"asserts": ["a"]},
                                     {"test_list": ["a"], "setup_code": "s"}, ["assert x"], "assert x", 42,
                                     {"other": 1})] == [
        "humaneval", "stdio", "asserts", "mbpp", "asserts", "asserts", None, None]
    for empty in (None, "", [], {}):
        assert request_for("code", empty) == NotVerifiable("no_tests", "the record has no tests")
    assert request_for("code", 42).reason == "bad_tests"
    assert request_for("code", {"other": 1}).reason == "bad_tests"
    assert request_for("code", [1, 2]).reason == "bad_tests"
    assert request_for("code", "no asserts here").reason == "bad_tests"
    assert request_for("code", {"asserts": ["assert x"], "setup_code": "y = 1"}, "asserts").reason == "bad_tests"


def test_record_requests_carry_the_recipes_choices():
    cfg = VerifyConfig(enabled=True, tests_field="meta.t", test_form="mbpp", timeout_ms=1500)
    record = Record("Sum two numbers.", output="[PYTHON]\ndef f(a, b): return a + b\n[/PYTHON]",
                    meta={"t": ["assert f(1, 2) == 3"]})
    r = record_request(record, cfg, "run/verify/x/0")
    assert (r.request_id, r.limits.timeout_ms, r.program) == ("run/verify/x/0", 1500, "def f(a, b): return a + b")
    assert r.WhichOneof("tests") == "mbpp"
    assert not record_request(record, VerifyConfig(tests_field="meta.t"), "k").HasField("limits")
    # Ada-Instruct MBPP prompts carry their tests in the instruction.
    ada = Record("Write f. Your code should pass these tests:\n\nassert f(1) == 2\nassert f(2) == 3\n"
                 "Your code should start with [PYTHON]", output="[PYTHON]def f(x): return x + 1[/PYTHON]")
    assert list(record_request(ada, VerifyConfig(), "k").asserts.asserts) == ["assert f(1) == 2", "assert f(2) == 3"]
    assert record_request(Record("i", output="prose"), cfg, "k") == NotVerifiable(
        "no_code", "no [PYTHON] block or code fence in output")
    assert record_request(Record("i", output="```\nx = 1\n```"), cfg, "k").reason == "no_tests"


def test_recipe_validation_of_the_verify_stage():
    recipe = parse_recipe({"recipe": "self_instruct"})
    assert recipe.stages.verify == VerifyConfig() and not recipe.stages.verify.enabled
    assert recipe.services.verifier is None
    with pytest.raises(RecipeError) as error:
        parse_recipe({"recipe": "self_instruct", "stages": {"verify": {"tests_field": "tests", "test_form": "junit",
                                                                       "timeout_ms": 5}}})
    text = str(error.value)
    assert "stages.verify.tests_field" in text and "stages.verify.test_form" in text
    assert "stages.verify.timeout_ms" in text


def test_the_dry_run_plan_shows_the_stage_between_uniqueness_and_self_consistency():
    recipe = parse_recipe({"recipe": "self_instruct", "stages": {
        "uniqueness": {"enabled": True}, "self_consistency": {"enabled": True},
        "verify": {"enabled": True, "test_form": "mbpp", "timeout_ms": 2000}}})
    plan = plan_recipe(recipe)
    assert [s.name for s in plan.stages] == ["generate", "uniqueness", "verify", "self_consistency"]
    verify = plan.stages[2]
    assert (verify.expected_calls, verify.max_calls) == (0, 0)
    assert "mbpp tests from meta.tests" in verify.what and "2,000 ms" in verify.what and "dropped" in verify.what
    assert "verify" not in [s.name for s in plan_recipe(parse_recipe({"recipe": "self_instruct"})).stages]


def test_a_verifier_address_is_wanted_only_by_a_recipe_that_verifies():
    env = {"IFORGE_VERIFIER_ADDRESS": "verifier:50053"}
    assert "verifier" not in service_addresses(parse_recipe({"recipe": "self_instruct"}), env)
    verifying = {"recipe": "self_instruct", "stages": {"verify": {"enabled": True}}}
    assert service_addresses(parse_recipe(verifying), env)["verifier"] == "verifier:50053"
    assert service_addresses(parse_recipe(verifying), {})["verifier"] is None  # embedded
    named = parse_recipe({**verifying, "services": {"verifier": "10.0.0.9:50053"}})
    assert service_addresses(named, env)["verifier"] == "10.0.0.9:50053"


# --- the stage over a fake executor ---------------------------------------------------------------------

class ScriptedExecutor:
    """Answers by what the program prints as a marker; counts executions by request id."""

    def __init__(self, *, fail_transiently: int = 0, die_after: int | None = None):
        self.requests: Counter[str] = Counter()
        self.fail_transiently, self.die_after = fail_transiently, die_after

    async def execute(self, request: vf.ExecuteRequest) -> vf.ExecuteResponse:
        if self.die_after is not None and sum(self.requests.values()) >= self.die_after:
            raise KilledError("killed")
        if self.fail_transiently:
            self.fail_transiently -= 1
            raise TransientError("verifier busy")
        self.requests[request.request_id] += 1
        if "REJECT" in request.program:
            raise PermanentError("INVALID_ARGUMENT: program: too long")
        outcome = next((o for name, o in (("PASS", vf.OUTCOME_PASSED), ("TIMEOUT", vf.OUTCOME_TIMED_OUT),
                                          ("SANDBOX", vf.OUTCOME_SANDBOX_ERROR)) if name in request.program),
                       vf.OUTCOME_FAILED)
        passed = outcome == vf.OUTCOME_PASSED
        return vf.ExecuteResponse(
            outcome=outcome, passed_count=2 if passed else 1, failed_count=0 if passed else 1,
            test_results=[vf.TestResult(index=0), vf.TestResult(index=1)], message="" if passed else "boom",
            stdout="x" * (JOURNALED_OUTPUT_CHARS + 10), isolation=vf.Isolation(mode="bwrap-root"),
            request_id=request.request_id)


RECORDS = [
    Record("pass", output="[PYTHON]\n# PASS\n[/PYTHON]", meta={"tests": ["assert True"]}),
    Record("fail", output="```python\n# FAIL\n```", meta={"tests": ["assert True"]}),
    Record("timeout", output="```\n# TIMEOUT\n```", meta={"tests": ["assert True"]}),
    Record("sandbox", output="[PYTHON]# SANDBOX[/PYTHON]", meta={"tests": ["assert True"]}),
    Record("reject", output="[PYTHON]# REJECT[/PYTHON]", meta={"tests": ["assert True"]}),
    Record("prose", output="no code", meta={"tests": ["assert True"]}),
    Record("untested", output="[PYTHON]# PASS[/PYTHON]"),
    Record("badtests", output="[PYTHON]# PASS[/PYTHON]", meta={"tests": 7}),
    Record("pass2", output="[PYTHON]# PASS again[/PYTHON]", meta={"tests": "assert True"}),
]
EXECUTABLE = 6  # the records with code and usable tests


def _state(folder, **verify) -> RunState:
    recipe = parse_recipe({"recipe": "self_instruct", "retry_backoff_s": 0, "call_retries": 2,
                           "stages": {"verify": {"enabled": True, **verify}}})
    return RunState.create(folder, recipe, run_id="run-v")


async def _verify(state: RunState, executor) -> tuple[list[Record], StageStats]:
    ctx = RunContext.journaled(state, None, None, verifier=executor)  # type: ignore[arg-type]
    stats = StageStats("verify")
    kept = await verify_stage(ctx, state.recipe.stages.verify, RECORDS, stats)
    return kept, stats


async def test_keeps_passing_records_and_counts_every_drop_with_its_reason(tmp_path):
    state, executor = _state(tmp_path), ScriptedExecutor()
    kept, stats = await _verify(state, executor)
    assert [r.instruction for r in kept] == ["pass", "pass2"]
    assert stats.drops == {"failed": 1, "timed_out": 1, "sandbox_error": 1, "rejected": 1, "no_code": 1,
                           "no_tests": 1, "bad_tests": 1}
    assert (stats.inputs, stats.outputs) == (len(RECORDS), 2)
    assert stats.notes == {"outcomes": {"failed": 1, "not_verified": 3, "passed": 2, "rejected": 1,
                                        "sandbox_error": 1, "timed_out": 1}, "isolation": ["bwrap-root"]}
    assert kept[0].meta["verify"] == {"outcome": "passed", "passed": 2, "failed": 0, "tests": 2, "form": "asserts",
                                      "isolation": "bwrap-root", "message": ""}
    assert kept[0].meta["tests"] == ["assert True"] and kept[0].id == RECORDS[0].id  # meta is not content
    assert set(executor.requests) == {f"run-v/verify/{r.id}/0" for r in RECORDS[:5] + RECORDS[-1:]}
    # The verdict of every record, kept or not, is in the run's records.
    dropped = {r.instruction: r.meta["verify"] for r in state.records("dropped")}
    assert dropped["fail"]["outcome"] == "failed" and dropped["fail"]["message"] == "boom"
    assert dropped["reject"] == {"outcome": "rejected", "form": "asserts",
                                 "message": "INVALID_ARGUMENT: program: too long"}
    assert dropped["prose"] == {"outcome": "not_verified", "reason": "no_code",
                                "message": "no [PYTHON] block or code fence in output"}
    assert state.record_counts()[("verify", "dropped", "timed_out")] == 1
    assert {r.instruction for r in state.records("kept")} == {"pass", "pass2"}


async def test_keep_all_only_records_the_verdicts(tmp_path):
    kept, stats = await _verify(_state(tmp_path, keep="all"), ScriptedExecutor())
    assert len(kept) == len(RECORDS) and not stats.drops
    assert [r.meta["verify"]["outcome"] for r in kept[:3]] == ["passed", "failed", "timed_out"]


async def test_a_resumed_stage_replays_verdicts_and_runs_only_what_never_answered(tmp_path):
    first = ScriptedExecutor(die_after=3)
    with pytest.raises(KilledError):
        await _verify(_state(tmp_path), first)
    state = RunState.open(tmp_path)
    second = ScriptedExecutor()
    kept, stats = await _verify(state, second)
    assert not set(first.requests) & set(second.requests)  # nothing answered is executed again
    assert sum(first.requests.values()) == 3 and sum(second.requests.values()) == EXECUTABLE - 3
    # A rejection is journaled too: replayed, not sent again.
    third = ScriptedExecutor()
    again, stats_again = await _verify(RunState.open(tmp_path), third)
    assert not third.requests and again == kept and stats_again.drops == stats.drops
    # What the stage got the first time is what the journal replays: output trimmed the same way.
    stored = state.get_execution(f"run-v/verify/{RECORDS[0].id}/0")
    assert len(stored.stdout) == JOURNALED_OUTPUT_CHARS and stored.isolation.mode == "bwrap-root"
    assert state.get_execution(f"run-v/verify/{RECORDS[4].id}/0") == "INVALID_ARGUMENT: program: too long"


async def test_transient_failures_are_retried_then_stop_the_run_resumable(tmp_path):
    kept, _ = await _verify(_state(tmp_path / "a"), ScriptedExecutor(fail_transiently=2))
    assert len(kept) == 2  # two failures fit in two retries
    executor = ScriptedExecutor(fail_transiently=10_000)
    with pytest.raises(RunInterrupted, match="still failing after 3 attempts"):
        await _verify(_state(tmp_path / "b"), executor)
    assert not executor.requests


async def test_without_an_executor_the_stage_says_what_it_needs(tmp_path):
    with pytest.raises(ValueError, match="stages.verify needs a code executor"):
        await _verify(_state(tmp_path), None)
