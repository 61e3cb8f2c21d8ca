"""The project's problem set in every form: canonical solutions pass, broken ones fail, and the
semantics of each form hold (setup code, helpers, exceptions, output capture, exits)."""

from __future__ import annotations

import pytest

from instructforge.verifier.models import (
    AssertTests,
    ExecuteRequest,
    HumanEvalTests,
    MbppTests,
    Status,
    StdioCase,
    StdioTests,
)
from instructforge.verifier.problems import FORMS, PROBLEMS

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def run_all(verifier, requests):
    results = [None] * len(requests)
    async for i, res in verifier.execute_many(requests):
        if isinstance(res, Exception):
            raise res
        results[i] = res
    return results


@pytest.mark.parametrize("form", FORMS)
async def test_canonical_solutions_pass_and_broken_ones_fail(verifier, form):
    cases = [(p, broken) for p in PROBLEMS for broken in (False, True)]
    results = await run_all(verifier, [p.request(form, broken) for p, broken in cases])
    wrong = []
    for (p, broken), r in zip(cases, results, strict=True):
        if broken and (r.verdict is not Status.FAILED or r.failed_count == 0):
            wrong.append(f"{p.name} broken: {r.verdict.value} {r.message}")
        if not broken and not (r.passed and r.passed_count == r.total == len(p.tests if form != "humaneval" else [1])):
            wrong.append(f"{p.name} canonical: {r.verdict.value} {r.message} {r.stderr[-300:]}")
        assert r.isolation_mode == verifier.plan.mode and r.isolation == verifier.plan.active_layers
    assert wrong == []


async def test_fallback_mode_judges_the_same(fallback):
    cases = [(p, form, broken) for p in PROBLEMS[:6] for form in FORMS for broken in (False, True)]
    results = await run_all(fallback, [p.request(form, broken) for p, form, broken in cases])
    assert [r.passed for r in results] == [not broken for _p, _f, broken in cases]
    assert results[0].isolation_mode == fallback.plan.mode


async def test_humaneval_check_may_use_helpers_from_the_prompt(verifier):
    prompt = "def encode(s):\n    return s[::-1]\n\ndef decode(s):\n"
    test = "def check(candidate):\n    for w in ['abc', 'x']:\n        assert candidate(encode(w)) == w\n"
    assert (await verifier.execute(ExecuteRequest(HumanEvalTests(prompt, "    return s[::-1]\n", test, "decode")))).passed
    r = await verifier.execute(ExecuteRequest(HumanEvalTests(prompt, "    return s\n", test, "decode")))
    assert r.verdict is Status.FAILED and "AssertionError" in r.message


async def test_mbpp_setup_runs_before_the_asserts(verifier):
    req = ExecuteRequest(MbppTests("def area(r):\n    return math.pi * r * r\nimport math",
                                   ("assert isclose(area(1), 3.14159, rel_tol=1e-5)",), "from math import isclose"))
    assert (await verifier.execute(req)).passed


async def test_exceptions_syntax_errors_and_output(verifier):
    r = await verifier.execute(ExecuteRequest(AssertTests("def f():\n    raise KeyError('k')",
                                                          ("assert f() == 1", "assert True"))))
    assert [t.status for t in r.tests] == [Status.FAILED, Status.PASSED] and "KeyError: 'k'" in r.tests[0].message
    r = await verifier.execute(ExecuteRequest(AssertTests("def f(:\n    pass", ("assert f()",))))
    assert r.verdict is Status.FAILED and "does not compile" in r.message and r.tests[0].status is Status.NOT_RUN
    r = await verifier.execute(ExecuteRequest(AssertTests("x = 1", ("assert x ==", "assert x == 1"))))
    assert [t.status for t in r.tests] == [Status.FAILED, Status.PASSED] and "does not compile" in r.tests[0].message
    r = await verifier.execute(ExecuteRequest(AssertTests("import sys\nprint('héllo')\nprint('err', file=sys.stderr)",
                                                          ("assert True",))))
    assert r.passed and r.stdout == "héllo\n" and r.stderr == "err\n" and r.cpu_ms > 0 and r.wall_ms > 0


async def test_plain_values_from_the_standard_library_still_compare_with_literals(verifier):
    code = ("import collections, fractions\nP = collections.namedtuple('P', 'x y')\n"
            "def f(): return P(1, 2)\ndef g(): return collections.Counter('aab')\n"
            "def h(): return fractions.Fraction(1, 2)\ndef k(): return [P(0, 0), {1: (2, 3)}]\n")
    r = await verifier.execute(ExecuteRequest(AssertTests(code, (
        "assert f() == (1, 2)", "assert g() == {'a': 2, 'b': 1}", "assert h() == 0.5",
        "assert k() == [(0, 0), {1: (2, 3)}]", "assert f() != (2, 1)"))))
    assert r.passed, [t.message for t in r.tests]


async def test_stdio_programs_run_as_main_and_may_exit(verifier):
    code = ("import sys\ndef main():\n    data = sys.stdin.read().split()\n    print(sum(map(int, data)))\n"
            "    sys.exit(0)\nif __name__ == '__main__':\n    main()\n")
    big = " ".join(["1"] * 100_000)
    r = await verifier.execute(ExecuteRequest(StdioTests(code, (StdioCase("1 2 3", "6"), StdioCase(big, "100000")))))
    assert r.passed, r.message
    r = await verifier.execute(ExecuteRequest(StdioTests("print('a ')\nexit(3)", (StdioCase("", "a"),))))
    assert r.verdict is Status.FAILED and r.tests[0].message == "exited with code 3"
    r = await verifier.execute(ExecuteRequest(StdioTests("print('a ')", (StdioCase("", "a"),), exact=True)))
    assert r.verdict is Status.FAILED and "wrong output" in r.message


async def test_a_main_block_does_not_run_in_assert_forms(verifier):
    code = "def f():\n    return 1\nif __name__ == '__main__':\n    input()\n"
    assert (await verifier.execute(ExecuteRequest(AssertTests(code, ("assert f() == 1",))))).passed
