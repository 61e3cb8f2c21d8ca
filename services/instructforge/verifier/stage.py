"""The pipeline's ``verify`` step: keep a record only if its code answer passes its tests.

Transport-free: it takes any ``execute`` coroutine (the in-process ``Verifier.execute``, or an
adapter over the gRPC client), so recipes run it against a remote verifier and tests run it
in-process. Records are plain dicts in the project's record format (``instruction``, ``input``,
``output``, ``id``, ``meta``); the answer's code comes from a ``[PYTHON]…[/PYTHON]`` block (the
Ada-Instruct format) or a fenced code block; the tests from a field the recipe names. Drops are
counted with a reason, never raised; the verdict is recorded under ``meta.verify`` either way.
"""

from __future__ import annotations

import collections
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from instructforge.runtime.errors import InstructForgeError

from .models import (
    AssertTests,
    ExecuteRequest,
    ExecutionResult,
    HumanEvalTests,
    LimitsRequest,
    MbppTests,
    StdioCase,
    StdioTests,
)

_PYTHON_TAG = re.compile(r"\[PYTHON\](.*?)\[/PYTHON\]", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_MBPP_TESTS = re.compile(r"Your code should pass these tests:(.*?)(?:Your code should start with|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str | None:
    """The program in an answer: the first [PYTHON] block, else the first python (or untagged) fence."""
    if not isinstance(text, str):
        return None
    m = _PYTHON_TAG.search(text)
    if m and m.group(1).strip():
        return m.group(1).strip("\n")
    fences = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    for lang, body in fences:
        if lang in ("python", "py", "python3") and body.strip():
            return body.rstrip("\n")
    for lang, body in fences:
        if not lang and body.strip():
            return body.rstrip("\n")
    return None


def _asserts_from_text(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("assert")]


def _get(record: dict, path: str):
    value = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def request_for(record: dict, code: str, tests_field: str) -> ExecuteRequest | str:
    """The request for a record's tests, or the reason it has none usable.

    Understood shapes of the tests field: a list of assert statements; a list of
    ``[call, expected]`` pairs (Ada-Instruct HumanEval: each becomes ``assert call == expected``);
    a string of assert lines (Ada-Instruct MBPP); a dict ``{"test", "entry_point"}`` (HumanEval,
    the code being the completion), ``{"asserts"|"test_list", "setup_code"?}`` (MBPP) or
    ``{"cases": [{"stdin", "expected_stdout"}]}`` (stdin/stdout). Without the field, the asserts
    after "Your code should pass these tests:" in the instruction are used (Ada-Instruct MBPP).
    """
    tests = _get(record, tests_field)
    if tests is None:
        m = _MBPP_TESTS.search(str(record.get("instruction", "")))
        tests = _asserts_from_text(m.group(1)) if m else None
    if isinstance(tests, str):
        tests = _asserts_from_text(tests)
    if isinstance(tests, dict):
        if "entry_point" in tests and "test" in tests:
            return ExecuteRequest(HumanEvalTests(str(tests.get("prompt", "")), code, str(tests["test"]),
                                                 str(tests["entry_point"])))
        if "cases" in tests:
            cases = tuple(StdioCase(str(c.get("stdin", "")), str(c.get("expected_stdout", "")))
                          for c in tests["cases"] if isinstance(c, dict))
            return ExecuteRequest(StdioTests(code, cases)) if cases else "no stdin/stdout cases"
        listed = tests.get("asserts") or tests.get("test_list")
        if isinstance(listed, list) and listed:
            return ExecuteRequest(MbppTests(code, tuple(map(str, listed)), str(tests.get("setup_code", ""))))
        return "unrecognised tests object"
    if isinstance(tests, list) and tests:
        if all(isinstance(t, (list, tuple)) and len(t) == 2 for t in tests):
            return ExecuteRequest(AssertTests(code, tuple(f"assert {a} == {b}" for a, b in tests)))
        if all(isinstance(t, str) for t in tests):
            return ExecuteRequest(AssertTests(code, tuple(tests)))
        return "tests are neither assert strings nor [call, expected] pairs"
    return "no tests"


ExecuteFn = Callable[[ExecuteRequest], Awaitable[ExecutionResult]]


@dataclass
class VerifyStage:
    """Keeps records whose code passes; counts drops by reason; records the verdict in ``meta.verify``."""

    execute: ExecuteFn
    code_field: str = "output"
    tests_field: str = "test"
    limits: LimitsRequest | None = None
    kept: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)

    async def check(self, record: dict) -> tuple[dict, bool]:
        """``(record with meta.verify, keep?)`` for one record."""
        code = extract_code(_get(record, self.code_field) or "")
        if code is None:
            return self._drop(record, "no code block in the answer")
        request = request_for(record, code, self.tests_field)
        if isinstance(request, str):
            return self._drop(record, request)
        request = ExecuteRequest(request.tests, limits=self.limits, request_id=str(record.get("id", "")))
        try:
            result = await self.execute(request)
        except InstructForgeError as exc:
            if exc.temporary:
                raise  # the run stops with its state intact; a resume retries this record
            return self._drop(record, f"rejected: {exc.message}")
        verdict = {"verdict": result.verdict.value, "passed": result.passed_count, "total": result.total,
                   "message": result.message[:500], "isolation": result.isolation_mode}
        out = _with_verdict(record, verdict)
        if result.passed:
            self.kept += 1
            return out, True
        self.dropped[f"verdict: {result.verdict.value}"] += 1
        return out, False

    def _drop(self, record: dict, reason: str) -> tuple[dict, bool]:
        self.dropped[reason] += 1
        return _with_verdict(record, {"verdict": "not_verified", "message": reason}), False

    async def run(self, records: Iterable[dict]) -> AsyncIterator[tuple[dict, bool]]:
        for record in records:
            yield await self.check(record)


def _with_verdict(record: dict, verdict: dict) -> dict:
    meta = dict(record.get("meta") or {})
    meta["verify"] = verdict
    return {**record, "meta": meta}
