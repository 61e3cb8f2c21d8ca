"""Turning each test form into a job for the sandbox, with the request checked field by field.

The forms keep the published datasets' semantics: HumanEval runs ``prompt + completion``, then the
test code, then ``check(entry_point)`` (one test); MBPP and plain asserts run the code, then the
setup, then each assert as its own test; stdin/stdout runs the program once per case and compares
what it prints, outside the sandbox. Nothing untrusted is compiled here: syntax errors are found
inside the sandbox and reported as failures.
"""

from __future__ import annotations

from dataclasses import dataclass

from instructforge.runtime.errors import InvalidArgument, ViolationCollector

from .models import AssertTests, ExecuteRequest, HumanEvalTests, Job, MbppTests, StdioTests

SUPPORTED_LANGUAGES = ("python",)


@dataclass(frozen=True)
class SizeLimits:
    max_code_bytes: int = 1 << 20
    max_test_bytes: int = 256 * 1024
    max_tests: int = 1000
    max_stdin_bytes: int = 1 << 20
    max_request_bytes: int = 8 << 20


def _name(source: str) -> str:
    line = source.strip().splitlines()[0] if source.strip() else ""
    return line if len(line) <= 120 else line[:117] + "..."


def _check_text(bad: ViolationCollector, value, path: str, limit: int, *, required: bool) -> int:
    if not isinstance(value, str):
        bad.add(path, "must be a string")
        return 0
    size = len(value.encode("utf-8", "surrogatepass"))
    if required and not value.strip():
        bad.add(path, "must not be empty")
    if size > limit:
        bad.add(path, f"is {size} bytes; the limit is {limit}")
    return size


def _check_list(bad: ViolationCollector, items, path: str, sizes: SizeLimits) -> int:
    if not isinstance(items, (list, tuple)):
        bad.add(path, "must be a list of strings")
        return 0
    if not items:
        bad.add(path, "must contain at least one test")
    if len(items) > sizes.max_tests:
        bad.add(path, f"has {len(items)} entries; the limit is {sizes.max_tests}")
    return sum(_check_text(bad, t, f"{path}[{i}]", sizes.max_test_bytes, required=True)
               for i, t in enumerate(items[: sizes.max_tests + 1]))


def build_job(request: ExecuteRequest, sizes: SizeLimits = SizeLimits()) -> Job:
    """Validate ``request`` (InvalidArgument names every bad field) and build its job."""
    bad = ViolationCollector()
    lang = request.language or "python"
    if lang not in SUPPORTED_LANGUAGES:
        bad.add("language", f"unsupported language {lang!r}; supported: {', '.join(SUPPORTED_LANGUAGES)}")
    t = request.tests
    total = 0
    if isinstance(t, HumanEvalTests):
        p = "tests.humaneval"
        total += _check_text(bad, t.prompt, f"{p}.prompt", sizes.max_code_bytes, required=False)
        total += _check_text(bad, t.completion, f"{p}.completion", sizes.max_code_bytes, required=False)
        total += _check_text(bad, t.test, f"{p}.test", sizes.max_test_bytes, required=True)
        if not (isinstance(t.entry_point, str) and t.entry_point.isidentifier()):
            bad.add(f"{p}.entry_point", f"must be a Python identifier, got {t.entry_point!r}")
        if isinstance(t.prompt, str) and isinstance(t.completion, str) and not (t.prompt + t.completion).strip():
            bad.add(f"{p}.completion", "prompt and completion are both empty: there is no program")
        job = None if bad.violations else Job(
            kind="tests", program=t.prompt + t.completion, setup=t.test,
            tests=[f"check({t.entry_point})"], names=[f"check({t.entry_point})"])
    elif isinstance(t, (MbppTests, AssertTests)):
        p = "tests.mbpp" if isinstance(t, MbppTests) else "tests.asserts"
        items = t.test_list if isinstance(t, MbppTests) else t.asserts
        list_name = "test_list" if isinstance(t, MbppTests) else "asserts"
        setup = t.test_setup_code if isinstance(t, MbppTests) else ""
        total += _check_text(bad, t.code, f"{p}.code", sizes.max_code_bytes, required=True)
        total += _check_text(bad, setup, f"{p}.test_setup_code", sizes.max_test_bytes, required=False)
        total += _check_list(bad, items, f"{p}.{list_name}", sizes)
        job = None if bad.violations else Job(
            kind="tests", program=t.code, setup=setup, tests=list(items), names=[_name(s) for s in items])
    elif isinstance(t, StdioTests):
        p = "tests.stdio"
        total += _check_text(bad, t.code, f"{p}.code", sizes.max_code_bytes, required=True)
        cases = t.cases if isinstance(t.cases, (list, tuple)) else None
        if cases is None or not cases:
            bad.add(f"{p}.cases", "must contain at least one case")
            cases = ()
        if len(cases) > sizes.max_tests:
            bad.add(f"{p}.cases", f"has {len(cases)} cases; the limit is {sizes.max_tests}")
        for i, c in enumerate(cases[: sizes.max_tests + 1]):
            total += _check_text(bad, c.stdin, f"{p}.cases[{i}].stdin", sizes.max_stdin_bytes, required=False)
            total += _check_text(bad, c.expected_stdout, f"{p}.cases[{i}].expected_stdout",
                                 sizes.max_stdin_bytes, required=False)
        job = None if bad.violations else Job(
            kind="stdio", program=t.code, stdin=[c.stdin for c in cases],
            expected=[c.expected_stdout for c in cases], names=[f"case {i}" for i in range(len(cases))],
            exact=bool(t.exact))
    else:
        raise InvalidArgument("exactly one test form must be set (humaneval, mbpp, asserts or stdio)",
                              field="tests")
    if total > sizes.max_request_bytes:
        bad.add("tests", f"the request carries {total} bytes of code and tests; the limit is "
                         f"{sizes.max_request_bytes}")
    bad.raise_if_any()
    assert job is not None
    return job


def normalize_output(text: str) -> str:
    """Stdout comparison ignores trailing spaces on each line and trailing blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)
