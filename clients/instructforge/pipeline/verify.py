"""The `verify` stage: keep a record only if the code in its answer passes its tests in the verifier.

The verifier is reached only through its API: requests are `verifier.v1` messages built here and
sent through `protocols.CodeExecutor` (bound to `VerifierClient` in `bindings`). The code comes from
a `[PYTHON]…[/PYTHON]` block (the Ada-Instruct format) or a fenced block; the tests from a record
field the recipe names, read in one of the verifier's four forms (HumanEval, MBPP, asserts,
stdin/stdout). Every record gets its verdict in `meta.verify`; one not kept is a drop counted with
a reason, never an exception. Executions are journaled under `run id/verify/<record id>/0`, so a
resumed run replays verdicts instead of running programs again.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from instructforge.pipeline.context import RunContext, gather_bounded
from instructforge.pipeline.protocols import PermanentError
from instructforge.pipeline.recipe import VerifyConfig
from instructforge.pipeline.records import Record
from instructforge.pipeline.stats import StageStats
from instructforge.verifier.v1 import verifier_pb2 as vf

_PYTHON_TAG = re.compile(r"\[PYTHON\](.*?)\[/PYTHON\]", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_MBPP_TESTS = re.compile(r"Your code should pass these tests:(.*?)(?:Your code should start with|\Z)",
                         re.DOTALL | re.IGNORECASE)
# Records judged at once; the verifier binding bounds what is really in flight.
STAGE_CONCURRENCY = 256
MESSAGE_CHARS = 500


def extract_code(text: object) -> str | None:
    """The program in an answer: the first [PYTHON] block, else the first python fence, else the first
    untagged fence (a fence tagged with another language is not Python)."""
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


def field_value(record: Record, path: str) -> Any:
    """`output`, `instruction`, `input`, or `meta.a.b` of a record; None when absent."""
    head, _, rest = path.partition(".")
    if head != "meta":
        return getattr(record, head, None)
    value: Any = record.meta
    for part in rest.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


@dataclass(frozen=True)
class NotVerifiable:
    """Why a record cannot be executed: `reason` is the counted drop, `detail` says what is wrong."""

    reason: str  # "no_code" | "no_tests" | "bad_tests"
    detail: str


def _bad(detail: str) -> NotVerifiable:
    return NotVerifiable("bad_tests", detail)


def _assert_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("assert")]


def _literal(value: Any) -> str:
    """An expected value as Python source: strings are source already (Ada-Instruct's pairs), JSON
    numbers, booleans, null and containers are written as Python literals."""
    return value if isinstance(value, str) else repr(value)


def _asserts(tests: Any) -> list[str] | NotVerifiable:
    """Assert statements from a string of lines, a list of statements, or `[call, expected]` pairs
    (each becomes `assert call == expected`)."""
    if isinstance(tests, str):
        lines = _assert_lines(tests)
        return lines or _bad("no assert lines in the tests")
    if isinstance(tests, list) and tests:
        if all(isinstance(t, str) for t in tests):
            return list(tests)
        if all(isinstance(t, list | tuple) and len(t) == 2 and isinstance(t[0], str) for t in tests):
            return [f"assert {call} == {_literal(expected)}" for call, expected in tests]
    return _bad("tests are neither assert statements nor [call, expected] pairs")


def _humaneval(code: str, tests: Any) -> vf.ExecuteRequest | NotVerifiable:
    if not (isinstance(tests, Mapping) and isinstance(tests.get("test"), str)
            and isinstance(tests.get("entry_point"), str)):
        return _bad("HumanEval tests need {test, entry_point} (and prompt when the answer completes it)")
    return vf.ExecuteRequest(program=code, humaneval=vf.HumanEvalTests(
        prompt=str(tests.get("prompt") or ""), test=tests["test"], entry_point=tests["entry_point"]))


def _mbpp(code: str, tests: Any) -> vf.ExecuteRequest | NotVerifiable:
    setup = ""
    if isinstance(tests, Mapping):
        setup = str(tests.get("setup_code") or tests.get("test_setup_code") or "")
        tests = tests.get("test_list") or tests.get("asserts")
    asserts = _asserts(tests)
    if isinstance(asserts, NotVerifiable):
        return asserts
    return vf.ExecuteRequest(program=code, mbpp=vf.MbppTests(setup_code=setup, asserts=asserts))


def _plain_asserts(code: str, tests: Any) -> vf.ExecuteRequest | NotVerifiable:
    if isinstance(tests, Mapping):
        if tests.get("setup_code") or tests.get("test_setup_code"):
            return _bad("setup code runs only in the mbpp form")
        tests = tests.get("asserts") or tests.get("test_list")
    asserts = _asserts(tests)
    if isinstance(asserts, NotVerifiable):
        return asserts
    return vf.ExecuteRequest(program=code, asserts=vf.AssertTests(asserts=asserts))


def _stdio(code: str, tests: Any) -> vf.ExecuteRequest | NotVerifiable:
    """Cases as `{cases: [{stdin, expected_stdout}], exact_match?}`, a bare list of such cases or of
    `[stdin, expected_stdout]` pairs, or APPS's `{inputs: [...], outputs: [...]}`."""
    exact = False
    if isinstance(tests, Mapping):
        exact = bool(tests.get("exact_match", False))
        if "inputs" in tests and "outputs" in tests:
            if not (isinstance(tests["inputs"], list) and isinstance(tests["outputs"], list)
                    and len(tests["inputs"]) == len(tests["outputs"])):
                return _bad("inputs and outputs must be lists of the same length")
            tests = list(zip(tests["inputs"], tests["outputs"], strict=True))
        else:
            tests = tests.get("cases")
    cases = []
    for case in tests if isinstance(tests, list) else ():
        if isinstance(case, Mapping) and ("stdin" in case or "expected_stdout" in case):
            cases.append(vf.StdioCase(stdin=str(case.get("stdin", "")),
                                      expected_stdout=str(case.get("expected_stdout", ""))))
        elif isinstance(case, list | tuple) and len(case) == 2:
            cases.append(vf.StdioCase(stdin=str(case[0]), expected_stdout=str(case[1])))
        else:
            return _bad("a stdin/stdout case is neither {stdin, expected_stdout} nor a [stdin, expected] "
                        "pair")
    if not cases:
        return _bad("no stdin/stdout cases")
    return vf.ExecuteRequest(program=code, stdio=vf.StdioTests(cases=cases, exact_match=exact))


_FORMS = {"humaneval": _humaneval, "mbpp": _mbpp, "asserts": _plain_asserts, "stdio": _stdio}


def detect_form(tests: Any) -> str | None:
    """The form a tests value is in, from its shape alone (what `test_form: auto` does)."""
    if isinstance(tests, Mapping):
        if "entry_point" in tests and "test" in tests:
            return "humaneval"
        if "cases" in tests or ("inputs" in tests and "outputs" in tests):
            return "stdio"
        if "test_list" in tests or "asserts" in tests:
            return "mbpp" if tests.get("setup_code") or tests.get("test_setup_code") else "asserts"
        return None
    if isinstance(tests, list) and tests and all(isinstance(t, Mapping) for t in tests):
        return "stdio"
    if isinstance(tests, str | list):
        return "asserts"
    return None


def request_for(code: str, tests: Any, form: str = "auto") -> vf.ExecuteRequest | NotVerifiable:
    """The execution of `code` against `tests` read in `form`, or why there is none."""
    if tests is None or (isinstance(tests, str | list | Mapping) and not tests):
        return NotVerifiable("no_tests", "the record has no tests")
    chosen = detect_form(tests) if form == "auto" else form
    if chosen is None:
        return _bad(f"unrecognised tests ({type(tests).__name__} with keys "
                    f"{sorted(tests) if isinstance(tests, Mapping) else '-'})")
    request = _FORMS[chosen](code, tests)
    if isinstance(request, vf.ExecuteRequest):
        request.language = vf.LANGUAGE_PYTHON
    return request


def record_request(record: Record, cfg: VerifyConfig, request_id: str) -> vf.ExecuteRequest | NotVerifiable:
    """The execution for a record: its code, its tests (from `tests_field`, else the asserts after
    "Your code should pass these tests:" in the instruction, as Ada-Instruct's MBPP prompts carry
    them), the recipe's limits, and a request id that keys the journal."""
    code = extract_code(field_value(record, cfg.code_field))
    if code is None:
        return NotVerifiable("no_code", f"no [PYTHON] block or code fence in {cfg.code_field}")
    tests = field_value(record, cfg.tests_field)
    if tests is None and (m := _MBPP_TESTS.search(record.instruction)):
        tests = _assert_lines(m.group(1))
    request = request_for(code, tests, cfg.test_form)
    if isinstance(request, vf.ExecuteRequest):
        request.request_id = request_id
        if cfg.timeout_ms:
            request.limits.timeout_ms = cfg.timeout_ms
    return request


def outcome_name(outcome: int) -> str:
    """`OUTCOME_TIMED_OUT` -> `timed_out`: the verdict's outcome and, when not passed, the drop reason."""
    return vf.Outcome.Name(outcome).removeprefix("OUTCOME_").lower()


def verdict(response: vf.ExecuteResponse, form: str) -> dict[str, Any]:
    """What `meta.verify` keeps of an execution."""
    return {"outcome": outcome_name(response.outcome), "passed": response.passed_count,
            "failed": response.failed_count, "tests": len(response.test_results), "form": form,
            "isolation": response.isolation.mode, "message": response.message[:MESSAGE_CHARS]}


async def verify_stage(ctx: RunContext, cfg: VerifyConfig, records: list[Record], stats: StageStats,
                       stage: str = "verify") -> list[Record]:
    """Judge every record in the verifier; keep those that passed (or all, with `keep: all`).

    Records are judged concurrently and applied in input order, so the outcome does not depend on
    which execution finished first. A transient verifier failure is retried by the run's journal
    and, past its retries, stops the run resumable (`RunInterrupted`).
    """
    if ctx.verifier is None:
        raise ValueError("stages.verify needs a code executor (the verifier service)")
    verifier = ctx.verifier
    stats.inputs = len(records)
    ctx.reporter.advance(stage, 0, total=len(records))

    async def judge(record: Record) -> tuple[Record, str]:
        request = record_request(record, cfg, ctx.key(stage, record.id))
        if isinstance(request, NotVerifiable):
            reason = request.reason
            found: dict[str, Any] = {"outcome": "not_verified", "reason": reason, "message": request.detail}
        else:
            form = request.WhichOneof("tests")
            try:
                response = await verifier.execute(request)
            except PermanentError as e:  # the verifier refused the request (too large, a bad limit)
                reason = "rejected"
                found = {"outcome": reason, "form": form, "message": str(e)[:MESSAGE_CHARS]}
            else:
                found = verdict(response, form)
                reason = "" if response.outcome == vf.OUTCOME_PASSED else found["outcome"]
        ctx.reporter.advance(stage)
        return record.with_meta(verify=found), reason

    judged = await gather_bounded([lambda r=r: judge(r) for r in records], STAGE_CONCURRENCY)
    outcomes = Counter(record.meta["verify"]["outcome"] for record, _ in judged)
    isolation = sorted({record.meta["verify"]["isolation"] for record, _ in judged
                        if record.meta["verify"].get("isolation")})
    if cfg.keep == "all":
        kept, dropped = [record for record, _ in judged], []
    else:
        kept = [record for record, reason in judged if not reason]
        dropped = [(record, reason) for record, reason in judged if reason]
    stats.drop_all(reason for _, reason in dropped)
    ctx.state.put_dropped(stage, dropped)
    ctx.state.put_records(stage, kept, "kept")
    stats.outputs = len(kept)
    stats.notes.update(outcomes=dict(sorted(outcomes.items())), isolation=isolation)
    return kept
