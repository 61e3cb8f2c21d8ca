"""Judging from the results channel alone: only the one honest sequence passes."""

from __future__ import annotations

import signal

from instructforge.verifier.judge import RunOutcome, judge
from instructforge.verifier.models import Job, Status

NONCE = "n" * 32
JOB = Job(kind="tests", program="x", tests=["assert a", "assert b"], names=["a", "b"])


def rec(event, i=-1, status="", message="", nonce=NONCE, **extra):
    return {"n": nonce, "e": event, "i": i, "s": status, "m": message, "t": 1.0, **extra}


HONEST = [rec("start", 0), rec("end", 0, "passed"), rec("start", 1), rec("end", 1, "passed"), rec("done", 2)]
CLEAN_EXIT = {"code": 0, "signal": None, "leftover_procs": 0, "wall_ms": 3.0, "cpu_ms": 2.0, "maxrss_kb": 10}


def verdict(records, exit=CLEAN_EXIT, killed="", job=JOB, **kw):
    out = RunOutcome(records=records, exit=exit, killed=killed, **kw)
    return judge(job, out, NONCE, timeout_ms=1000, output_bytes=100, capture_bytes=50)


def test_the_honest_sequence_passes():
    r = verdict(HONEST)
    assert r.passed and (r.passed_count, r.failed_count, r.total) == (2, 0, 2)


def test_exit_zero_without_records_never_passes():
    r = verdict([])
    assert r.verdict is Status.FAILED and "before the tests ran" in r.message
    assert [t.status for t in r.tests] == [Status.NOT_RUN, Status.NOT_RUN]


def test_missing_done_or_a_missing_test_fails():
    assert verdict(HONEST[:-1]).verdict is Status.FAILED
    assert verdict(HONEST[:2] + [rec("done", 1)]).verdict is Status.FAILED


def test_a_wrong_nonce_anywhere_is_tampering():
    forged = HONEST[:-1] + [rec("done", 2, nonce="x" * 32)]
    r = verdict(forged)
    assert r.verdict is Status.FAILED and "tampered" in r.message


def test_out_of_order_duplicate_and_trailing_records_are_tampering():
    for records in (
        [rec("start", 1)] + HONEST,
        HONEST[:2] + HONEST[:2] + HONEST[2:],
        HONEST + [rec("start", 0)],
        [rec("start", 0), rec("end", 0, "great")] + HONEST[2:],
        HONEST[:-1] + [None, HONEST[-1]],
    ):
        assert verdict(records).verdict is Status.FAILED


def test_reported_tampering_and_leftover_processes_fail_a_pass():
    tampered = HONEST[:-1] + [rec("tamper", message="the program replaced builtins.print")] + HONEST[-1:]
    assert verdict(tampered).message == "the program replaced builtins.print"
    assert "left 2 process" in verdict(HONEST, exit={**CLEAN_EXIT, "leftover_procs": 2}).message


def test_the_running_test_gets_the_cause_and_the_rest_are_not_run():
    r = verdict(HONEST[:2] + [rec("start", 1)], exit=None, killed="timeout")
    assert [t.status for t in r.tests] == [Status.PASSED, Status.TIMED_OUT]
    assert r.verdict is Status.TIMED_OUT and "1000 ms" in r.message
    r = verdict([rec("start", 0)], exit={**CLEAN_EXIT, "code": None, "signal": int(signal.SIGSEGV)})
    assert r.tests[0].status is Status.FAILED and "SIGSEGV" in r.message and r.tests[1].status is Status.NOT_RUN
    r = verdict([rec("start", 0)], exit={**CLEAN_EXIT, "code": None, "signal": int(signal.SIGXCPU)})
    assert r.verdict is Status.TIMED_OUT
    assert verdict([rec("start", 0)], exit=None, killed="output_limit").verdict is Status.OUTPUT_LIMIT
    assert verdict([], exit=None, killed="sandbox_died").verdict is Status.SANDBOX_ERROR
    assert verdict([], exit={**CLEAN_EXIT, "code": 121}).verdict is Status.SANDBOX_ERROR


def test_a_program_error_marks_every_test_not_run():
    r = verdict([rec("program", status="memory_exceeded", message="MemoryError"), rec("done", 0)])
    assert r.verdict is Status.MEMORY_EXCEEDED and all(t.status is Status.NOT_RUN for t in r.tests)


def test_stdio_cases_are_compared_outside_the_sandbox():
    job = Job(kind="stdio", program="p", stdin=["1", "2", "3"], expected=["2\n", "3", "4"], names=["c0", "c1", "c2"])
    out_hex = "3  \n"  # trailing spaces are ignored unless exact
    records = [rec("start", 0), rec("end", 0, "exited", "0", out="2\n"),
               rec("start", 1), rec("end", 1, "exited", "0", out=out_hex),
               rec("start", 2), rec("end", 2, "exited", "1", out="4"), rec("done", 3)]
    r = verdict(records, job=job)
    assert [t.status for t in r.tests] == [Status.PASSED, Status.PASSED, Status.FAILED]
    assert r.tests[2].message == "exited with code 1"
    exact = Job(**{**job.__dict__, "exact": True})
    assert verdict(records, job=exact).tests[1].status is Status.FAILED


def test_captured_output_is_capped_and_flagged():
    r = verdict(HONEST, stdout=b"x" * 80, stdout_total=80)
    assert len(r.stdout) == 50 and r.stdout_truncated and not r.stderr_truncated
