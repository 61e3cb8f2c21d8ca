"""Request validation names every bad field; limits default, clamp and reject as documented."""

from __future__ import annotations

import pytest

from instructforge.runtime.errors import InvalidArgument
from instructforge.verifier.forms import SizeLimits, build_job, normalize_output
from instructforge.verifier.limits import MIB, LimitPolicy, Limits
from instructforge.verifier.models import (
    AssertTests,
    ExecuteRequest,
    HumanEvalTests,
    LimitsRequest,
    MbppTests,
    StdioCase,
    StdioTests,
)


def fields_of(exc: InvalidArgument) -> list[str]:
    return [v.field for v in exc.violations]


def test_defaults_are_pinned():
    d = LimitPolicy().default
    assert d == Limits(timeout_ms=5000, cpu_time_ms=0, memory_bytes=512 * MIB, output_bytes=MIB, max_processes=8,
                       file_size_bytes=16 * MIB, open_files=64)
    assert d.cpu_seconds == 6
    assert d.for_sandbox() == {"cpu_s": 6, "memory_bytes": 512 * MIB, "nproc": 8, "fsize_bytes": 16 * MIB,
                               "nofile": 64, "output_bytes": MIB}


def test_zero_means_default_and_values_inside_the_maxima_are_kept():
    got = LimitPolicy().resolve(LimitsRequest(timeout_ms=1500, memory_bytes=128 * MIB, cpu_time_ms=2500))
    assert (got.timeout_ms, got.memory_bytes, got.max_processes, got.cpu_seconds) == (1500, 128 * MIB, 8, 3)


def test_every_out_of_range_limit_is_named():
    with pytest.raises(InvalidArgument) as err:
        LimitPolicy().resolve(LimitsRequest(timeout_ms=10**7, memory_bytes=1, max_processes=-3))
    assert fields_of(err.value) == ["limits.timeout_ms", "limits.memory_bytes", "limits.max_processes"]
    assert "between 100 and 60000" in str(err.value)


def test_a_policy_with_an_impossible_default_is_refused():
    with pytest.raises(ValueError, match="timeout_ms"):
        LimitPolicy(default=Limits(timeout_ms=10**6))


def test_forms_become_jobs():
    he = build_job(ExecuteRequest(HumanEvalTests("def f():\n", "    return 1\n", "def check(c): assert c() == 1", "f")))
    assert (he.kind, he.program, he.tests, he.names) == ("tests", "def f():\n    return 1\n", ["check(f)"], ["check(f)"])
    mb = build_job(ExecuteRequest(MbppTests("x = 1", ("assert x == 1", "assert x"), "import math")))
    assert (mb.setup, mb.tests) == ("import math", ["assert x == 1", "assert x"])
    io = build_job(ExecuteRequest(StdioTests("print(input())", (StdioCase("a", "a\n"),), exact=True)))
    assert (io.kind, io.stdin, io.expected, io.exact) == ("stdio", ["a"], ["a\n"], True)


def test_bad_requests_name_each_field():
    with pytest.raises(InvalidArgument) as err:
        build_job(ExecuteRequest(HumanEvalTests("", "", " ", "not an identifier"), language="cobol"))
    assert fields_of(err.value) == ["language", "tests.humaneval.test", "tests.humaneval.entry_point",
                                    "tests.humaneval.completion"]
    with pytest.raises(InvalidArgument) as err:
        build_job(ExecuteRequest(AssertTests("x = 1", ("assert x", "", 3))))
    assert fields_of(err.value) == ["tests.asserts.asserts[1]", "tests.asserts.asserts[2]"]
    with pytest.raises(InvalidArgument) as err:
        build_job(ExecuteRequest(StdioTests("print(1)", ())))
    assert fields_of(err.value) == ["tests.stdio.cases"]
    with pytest.raises(InvalidArgument, match="exactly one test form"):
        build_job(ExecuteRequest(tests=None))  # type: ignore[arg-type]


def test_sizes_are_bounded():
    sizes = SizeLimits(max_code_bytes=10, max_tests=2)
    with pytest.raises(InvalidArgument) as err:
        build_job(ExecuteRequest(AssertTests("x = 1234567890", ("assert 1", "assert 2", "assert 3"))), sizes)
    assert fields_of(err.value) == ["tests.asserts.code", "tests.asserts.asserts"]


def test_output_normalisation_ignores_only_trailing_whitespace():
    assert normalize_output("a  \r\nb\n\n\n") == "a\nb"
    assert normalize_output(" a") != normalize_output("a")
