"""The verify stage: code extraction, test shapes, keep/drop with the verdict recorded."""

from __future__ import annotations

import pytest

from instructforge.runtime.errors import InvalidArgument, ResourceExhausted
from instructforge.verifier.models import (
    AssertTests,
    ExecuteRequest,
    ExecutionResult,
    HumanEvalTests,
    MbppTests,
    Status,
    StdioTests,
    TestResult,
)
from instructforge.verifier.stage import VerifyStage, extract_code, request_for


def test_extract_prefers_the_python_tag_then_python_fences_then_bare_fences():
    assert extract_code("text [PYTHON]\ndef f(): pass\n[/PYTHON] more") == "def f(): pass"
    assert extract_code("[python]x = 1[/python]") == "x = 1"
    assert extract_code("```text\nnot code\n```\n```python\nx = 2\n```") == "x = 2"
    assert extract_code("```\ny = 3\n```") == "y = 3"
    assert extract_code("no code here") is None
    assert extract_code(None) is None  # type: ignore[arg-type]


def test_test_shapes():
    r = request_for({"test": [["f(2)", "4"], ["f(0)", "0"]]}, "c", "test")
    assert isinstance(r, ExecuteRequest) and r.tests == AssertTests("c", ("assert f(2) == 4", "assert f(0) == 0"))
    r = request_for({"test": "assert f(1) == 1\n\nassert f(2) == 2\n"}, "c", "test")
    assert r.tests.asserts == ("assert f(1) == 1", "assert f(2) == 2")
    r = request_for({"meta": {"t": {"test": "def check(c): pass", "entry_point": "f", "prompt": "p"}}}, "c", "meta.t")
    assert r.tests == HumanEvalTests("p", "c", "def check(c): pass", "f")
    r = request_for({"t": {"test_list": ["assert g()"], "setup_code": "import os"}}, "c", "t")
    assert r.tests == MbppTests("c", ("assert g()",), "import os")
    r = request_for({"t": {"cases": [{"stdin": "1", "expected_stdout": "1"}]}}, "c", "t")
    assert isinstance(r.tests, StdioTests) and len(r.tests.cases) == 1
    instruction = "Write f. Your code should pass these tests:\n\nassert f(1) == 2\nYour code should start with [PYTHON]"
    assert request_for({"instruction": instruction}, "c", "test").tests.asserts == ("assert f(1) == 2",)
    assert request_for({}, "c", "test") == "no tests"
    assert request_for({"test": [1, 2]}, "c", "test").startswith("tests are neither")


def _result(status: Status) -> ExecutionResult:
    return ExecutionResult(verdict=status, message="" if status is Status.PASSED else "boom",
                           tests=(TestResult(0, "t", status),), isolation_mode="bwrap-root")


async def test_keeps_passing_records_and_counts_drops_with_reasons():
    verdicts = iter([Status.PASSED, Status.FAILED])
    seen = []

    async def execute(req):
        seen.append(req)
        return _result(next(verdicts))

    stage = VerifyStage(execute)
    records = [
        {"id": "a", "output": "[PYTHON]\ndef f(x): return x\n[/PYTHON]", "test": ["assert f(1) == 1"]},
        {"id": "b", "output": "```python\ndef f(x): return 0\n```", "test": ["assert f(1) == 1"]},
        {"id": "c", "output": "no code", "test": ["assert True"]},
        {"id": "d", "output": "[PYTHON]x=1[/PYTHON]"},
    ]
    out = [item async for item in stage.run(records)]
    assert [keep for _r, keep in out] == [True, False, False, False]
    assert out[0][0]["meta"]["verify"]["verdict"] == "passed" and out[1][0]["meta"]["verify"]["message"] == "boom"
    assert stage.kept == 1 and dict(stage.dropped) == {"verdict: failed": 1, "no code block in the answer": 1,
                                                      "no tests": 1}
    assert [r.request_id for r in seen] == ["a", "b"]
    assert records[0].get("meta") is None  # the input records are not mutated


async def test_permanent_errors_drop_the_record_and_temporary_ones_stop_the_run():
    async def bad(req):
        raise InvalidArgument("too big", field="tests.asserts.code")

    stage = VerifyStage(bad)
    record = {"output": "[PYTHON]x=1[/PYTHON]", "test": ["assert x"]}
    _r, keep = await stage.check(record)
    assert not keep and "rejected" in next(iter(stage.dropped))

    async def busy(req):
        raise ResourceExhausted("all busy")

    with pytest.raises(ResourceExhausted):
        await VerifyStage(busy).check(record)
