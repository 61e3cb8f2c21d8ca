"""Requests and results of the verifier core, as plain dataclasses (no protobuf here).

A request names a language and exactly one test form; the forms mirror the published datasets'
own shapes so callers pass records through unchanged: HumanEval (prompt + completion + test code
defining ``check`` + entry point), MBPP (code + setup + asserts), plain asserts, and stdin/stdout
cases. ``language`` is a string so that adding a language is a new value, not a new message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Status(str, enum.Enum):
    """Outcome of one test, and of a whole execution (its verdict)."""

    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    MEMORY_EXCEEDED = "memory_exceeded"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_ERROR = "sandbox_error"
    NOT_RUN = "not_run"


@dataclass(frozen=True)
class HumanEvalTests:
    prompt: str
    completion: str
    test: str
    entry_point: str


@dataclass(frozen=True)
class MbppTests:
    code: str
    test_list: tuple[str, ...]
    test_setup_code: str = ""


@dataclass(frozen=True)
class AssertTests:
    code: str
    asserts: tuple[str, ...]


@dataclass(frozen=True)
class StdioCase:
    stdin: str
    expected_stdout: str


@dataclass(frozen=True)
class StdioTests:
    code: str
    cases: tuple[StdioCase, ...]
    exact: bool = False  # compare stdout byte for byte instead of ignoring trailing whitespace


TestForm = HumanEvalTests | MbppTests | AssertTests | StdioTests


@dataclass(frozen=True)
class LimitsRequest:
    """What a caller may ask for; 0 means "the service default". Checked against the service maxima."""

    timeout_ms: int = 0
    cpu_time_ms: int = 0
    memory_bytes: int = 0
    output_bytes: int = 0
    max_processes: int = 0
    file_size_bytes: int = 0
    open_files: int = 0


@dataclass(frozen=True)
class ExecuteRequest:
    tests: TestForm
    language: str = "python"
    limits: LimitsRequest | None = None
    request_id: str = ""


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest test class

    index: int
    name: str
    status: Status
    message: str = ""
    wall_ms: float = 0.0
    stdout: str = ""  # stdin/stdout cases: what the program printed (capped)


@dataclass(frozen=True)
class IsolationLayer:
    name: str
    active: bool
    detail: str


@dataclass(frozen=True)
class ExecutionResult:
    verdict: Status
    message: str
    tests: tuple[TestResult, ...]
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    max_rss_kb: int = 0
    exit_code: int | None = None
    signal: str = ""
    leftover_processes: int = 0
    isolation_mode: str = ""
    isolation: tuple[str, ...] = ()  # names of the layers that were active for this execution
    request_id: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict is Status.PASSED

    @property
    def total(self) -> int:
        return len(self.tests)

    @property
    def passed_count(self) -> int:
        return sum(1 for t in self.tests if t.status is Status.PASSED)

    @property
    def failed_count(self) -> int:
        return sum(1 for t in self.tests if t.status not in (Status.PASSED, Status.NOT_RUN))


@dataclass
class Job:
    """A request turned into what the sandbox runs; expected stdio outputs stay here, outside."""

    kind: str  # "tests" | "stdio"
    program: str
    setup: str = ""
    tests: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    stdin: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    exact: bool = False
