"""Back-pressure, isolation between concurrent runs, and recovery of the pool."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import pytest
import pytest_asyncio

from instructforge.runtime.errors import DeadlineExceeded, ResourceExhausted
from instructforge.verifier.models import AssertTests, ExecuteRequest, LimitsRequest, Status
from instructforge.verifier.problems import PROBLEMS
from instructforge.verifier.verifier import Verifier, VerifierOptions

pytestmark = pytest.mark.asyncio(loop_scope="session")

SLOW = ExecuteRequest(AssertTests("import time\ntime.sleep(1.0)\ndef f():\n    return 1\n", ("assert f() == 1",)),
                      limits=LimitsRequest(timeout_ms=5000))
QUICK = PROBLEMS[0].asserts()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def single():
    v = await Verifier.create(VerifierOptions(pool_size=1, max_waiting=1, max_wait_s=10.0))
    yield v
    await v.close()


async def test_requests_beyond_capacity_wait_then_get_resource_exhausted(single):
    slow = asyncio.ensure_future(single.execute(SLOW))
    await asyncio.sleep(0.2)  # the slow run holds the only sandbox
    waiting = asyncio.ensure_future(single.execute(QUICK))
    await asyncio.sleep(0.05)  # and the quick one holds the only place in line
    with pytest.raises(ResourceExhausted) as err:
        await single.execute(QUICK)
    assert err.value.reason == "VERIFIER_BUSY" and err.value.temporary
    assert (await slow).passed and (await waiting).passed
    assert single.pool.stats()["rejected"] >= 1


async def test_a_wait_never_outlives_the_callers_deadline(single):
    slow = asyncio.ensure_future(single.execute(SLOW))
    await asyncio.sleep(0.2)
    with pytest.raises(ResourceExhausted, match="no sandbox came free"):
        await single.execute(QUICK, deadline=time.monotonic() + 0.3)
    with pytest.raises(DeadlineExceeded):
        await single.execute(QUICK, deadline=time.monotonic() + 0.01)
    assert (await slow).passed


async def test_a_cancelled_run_leaves_a_working_pool(single):
    task = asyncio.ensure_future(single.execute(SLOW))
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert (await single.execute(QUICK)).passed


async def test_a_sandbox_killed_while_idle_is_replaced_without_failing_a_request(single):
    assert (await single.execute(QUICK)).passed
    (sandbox,) = single.pool._idle
    os.kill(sandbox.pid, signal.SIGKILL)
    await asyncio.sleep(0.1)
    result = await single.execute(QUICK)
    assert result.passed, result.message
    assert single.healthy


async def test_a_hostile_neighbour_does_not_degrade_the_other_runs(verifier):
    hog = ExecuteRequest(AssertTests("import os\nfor _ in range(6):\n    os.fork()\nwhile True:\n    pass\n",
                                     ("assert True",)), limits=LimitsRequest(timeout_ms=4000, max_processes=64))
    hog_task = asyncio.ensure_future(verifier.execute(hog))
    await asyncio.sleep(0.3)
    requests = [p.request(form) for p in PROBLEMS[:10] for form in ("asserts", "stdio")]
    results = [r for _i, r in [item async for item in verifier.execute_many(requests)]]
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]
    assert (await hog_task).verdict is Status.TIMED_OUT
