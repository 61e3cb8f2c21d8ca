"""From what a run left behind (records, output, exit facts) to a verdict.

The rule that makes judging cheat-proof: a sample passes only when the results channel shows every
test starting and ending, in order, each record carrying this run's nonce, closed by a ``done``
record — and nothing else went wrong. Exit codes are only used to explain a failure, never to
grant a pass. Stdin/stdout cases are compared here, outside the sandbox, against expected outputs
the program never saw.
"""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass, field

from .forms import normalize_output
from .models import ExecutionResult, Job, Status, TestResult

CONFINE_FAILED = 121  # inside.confine.CONFINE_FAILED
MEMORY_EXIT = 122  # inside.zygote: a stdin/stdout program died of MemoryError

_TEST_STATUSES = {"passed": Status.PASSED, "failed": Status.FAILED, "memory_exceeded": Status.MEMORY_EXCEEDED}
_STDIO_STATES = ("exited", "signal", "output_limit", "sandbox_error")


@dataclass
class RunOutcome:
    """Raw facts about one run, gathered by the sandbox, before any judgement."""

    records: list = field(default_factory=list)
    records_error: str = ""
    stdout: bytes = b""
    stdout_total: int = 0
    stderr: bytes = b""
    stderr_total: int = 0
    exit: dict | None = None
    killed: str = ""  # "", "timeout", "output_limit", "records_limit", "sandbox_died"
    wall_ms: float = 0.0


@dataclass
class _Replay:
    """Replays the results channel, accepting only the one sequence an honest harness writes."""

    count: int
    nonce: str
    kind: str
    ended: dict = field(default_factory=dict)
    started: int | None = None
    next: int = 0
    done: bool = False
    program_error: tuple[Status, str] | None = None
    tamper: str = ""
    violation: str = ""

    def feed(self, rec) -> None:
        if self.violation:
            return
        if not isinstance(rec, dict) or rec.get("n") != self.nonce:
            self.violation = "a record without this run's nonce"
            return
        if self.done:
            self.violation = "a record after the last one"
            return
        event, index = rec.get("e"), rec.get("i")
        status, message = rec.get("s", ""), str(rec.get("m", ""))
        if event in ("program", "setup") and self.next == 0 and self.started is None and not self.program_error:
            self.program_error = (_TEST_STATUSES.get(status, Status.FAILED), message)
        elif event == "start" and index == self.next and self.started is None and not self.program_error:
            self.started = index
        elif event == "end" and index is not None and index == self.started and self._valid_status(status):
            self.ended[index] = (status, message, float(rec.get("t", 0.0)), rec.get("out", ""))
            self.started, self.next = None, self.next + 1
        elif event == "tamper" and self.started is None:
            self.tamper = message or "tampering detected"
        elif event == "done" and index == self.next and self.started is None and (
            self.next == self.count or (self.program_error and self.next == 0)
        ):
            self.done = True
        else:
            self.violation = f"an out-of-order or malformed {event!r} record"

    def _valid_status(self, status) -> bool:
        return status in (_STDIO_STATES if self.kind == "stdio" else _TEST_STATUSES)


def _signal_name(num: int) -> str:
    try:
        return _signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _stdio_case(status: str, detail: str, out: str, expected: str, exact: bool) -> tuple[Status, str]:
    if status == "exited":
        if detail == str(MEMORY_EXIT):
            return Status.MEMORY_EXCEEDED, "ran out of memory (MemoryError)"
        if detail != "0":
            return Status.FAILED, f"exited with code {detail}"
        got = out.encode("latin-1").decode("utf-8", "replace")
        want = expected
        if not exact:
            got, want = normalize_output(got), normalize_output(want)
        if got == want:
            return Status.PASSED, ""
        return Status.FAILED, f"wrong output: expected {want[:200]!r}, got {got[:200]!r}"
    if status == "signal":
        return {
            "SIGXCPU": (Status.TIMED_OUT, "exceeded its CPU time limit (SIGXCPU)"),
            "SIGXFSZ": (Status.OUTPUT_LIMIT, "wrote a file larger than its limit (SIGXFSZ)"),
        }.get(detail, (Status.FAILED, f"killed by {detail}"))
    if status == "output_limit":
        return Status.OUTPUT_LIMIT, detail
    return Status.SANDBOX_ERROR, detail or "the case could not be run"


def _cause(out: RunOutcome, timeout_ms: int, output_bytes: int, tests_begun: bool) -> tuple[Status, str]:
    """Why a run ended without its closing record."""
    if out.killed == "timeout":
        return Status.TIMED_OUT, f"exceeded the {timeout_ms} ms wall-clock limit"
    if out.killed == "output_limit":
        return Status.OUTPUT_LIMIT, f"wrote more than {output_bytes} bytes of output"
    if out.killed == "records_limit":
        return Status.FAILED, "flooded the results channel"
    if out.killed == "sandbox_died" or out.exit is None:
        return Status.SANDBOX_ERROR, "the sandbox's supervisor died during the run"
    sig, code = out.exit.get("signal"), out.exit.get("code")
    if sig:
        name = _signal_name(sig)
        if name == "SIGXCPU":
            return Status.TIMED_OUT, "exceeded its CPU time limit (SIGXCPU)"
        if name == "SIGXFSZ":
            return Status.OUTPUT_LIMIT, "wrote a file larger than its limit (SIGXFSZ)"
        return Status.FAILED, f"the process was killed by {name}"
    if code == CONFINE_FAILED:
        return Status.SANDBOX_ERROR, "the child could not be confined; nothing was run"
    when = "before all tests ran" if tests_begun else "before the tests ran"
    return Status.FAILED, f"the process exited with code {code} {when} (the results channel was not closed)"


def judge(job: Job, out: RunOutcome, nonce: str, *, timeout_ms: int, output_bytes: int, capture_bytes: int,
          isolation_mode: str = "", isolation: tuple[str, ...] = (), request_id: str = "") -> ExecutionResult:
    """The verdict of one execution."""
    replay = _Replay(len(job.names), nonce, job.kind)
    for rec in out.records:
        replay.feed(rec)
    if out.records_error and not replay.violation:
        replay.violation = out.records_error

    tests: list[TestResult] = []
    for i, name in enumerate(job.names):
        if i in replay.ended:
            status, message, ms, printed = replay.ended[i]
            if job.kind == "stdio":
                st, message = _stdio_case(status, message, printed, job.expected[i], job.exact)
                printed = printed.encode("latin-1").decode("utf-8", "replace")[:capture_bytes]
            else:
                st, printed = _TEST_STATUSES[status], ""
            tests.append(TestResult(i, name, st, message, ms, printed))
        else:
            tests.append(TestResult(i, name, Status.NOT_RUN))

    if replay.violation:
        verdict, message = Status.FAILED, f"results channel tampered with: {replay.violation}"
    elif not replay.done:
        verdict, message = _cause(out, timeout_ms, output_bytes, replay.next > 0 or replay.started is not None)
        if replay.started is not None:
            t = tests[replay.started]
            tests[replay.started] = TestResult(t.index, t.name, verdict, message)
    elif replay.program_error:
        verdict, message = replay.program_error
    else:
        first = next((t for t in tests if t.status is not Status.PASSED), None)
        verdict, message = (Status.PASSED, "") if first is None else (first.status, first.message)
    leftovers = int((out.exit or {}).get("leftover_procs", 0) or 0)
    if verdict is Status.PASSED and replay.tamper:
        verdict, message = Status.FAILED, replay.tamper
    if verdict is Status.PASSED and leftovers:
        verdict, message = Status.FAILED, f"left {leftovers} process(es) running after it finished (killed)"

    ex = out.exit or {}
    return ExecutionResult(
        verdict=verdict, message=message, tests=tuple(tests),
        stdout=out.stdout[:capture_bytes].decode("utf-8", "replace"),
        stderr=out.stderr[:capture_bytes].decode("utf-8", "replace"),
        stdout_truncated=out.stdout_total > capture_bytes, stderr_truncated=out.stderr_total > capture_bytes,
        wall_ms=round(float(ex.get("wall_ms") or out.wall_ms), 3), cpu_ms=float(ex.get("cpu_ms") or 0.0),
        max_rss_kb=int(ex.get("maxrss_kb") or 0), exit_code=ex.get("code"),
        signal=_signal_name(ex["signal"]) if ex.get("signal") else "",
        leftover_processes=leftovers, isolation_mode=isolation_mode, isolation=isolation, request_id=request_id,
    )
