"""A restarted sandbox never inherits the process count of the uid its predecessor ran as.

Without a pid namespace a killed program's processes are reparented to init, and until init reaps
them their zombies count against the uid's RLIMIT_NPROC: a sandbox started again on the same uid
right after a fork bomb could not start a thread. Root services therefore give each new sandbox the
first of its slot's uids that no process still has.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from instructforge.verifier.isolation import MAX_SLOTS, UID_GENERATIONS, IsolationOptions, IsolationPlan
from instructforge.verifier.models import AssertTests, ExecuteRequest, LimitsRequest, Status
from instructforge.verifier.verifier import Verifier, VerifierOptions

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="switching uid needs root")
FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
THREADS = ("import threading\nstarted = []\nfor _ in range(20):\n    t = threading.Thread(target=lambda: None)\n"
           "    t.start()\n    started.append(t)\nfor t in started:\n    t.join()\ndef f():\n    return len(started)\n")


def plan(base: int) -> IsolationPlan:
    return IsolationPlan(mode="plain-root", options=IsolationOptions(mode="plain-root", uid_base=base),
                         python=sys.executable, bwrap="", cpus=(0,))


def test_each_slot_has_uids_of_its_own():
    p = plan(63000)
    assert p.slot_uids(1) == [63001 + MAX_SLOTS * g for g in range(UID_GENERATIONS)]
    every = p.sandbox_uids(MAX_SLOTS)
    assert len(every) == len(set(every)) == MAX_SLOTS * UID_GENERATIONS


@root_only
def test_a_uid_a_zombie_still_holds_is_passed_over():
    p = plan(63000)
    first, second = p.slot_uids(0)[:2]
    assert p._free_uid(0) == first
    zombie = subprocess.Popen(["/bin/true"], user=first, group=first)  # exits at once; not yet reaped
    try:
        time.sleep(0.2)
        assert p._free_uid(0) == second
    finally:
        zombie.wait()
    assert p._free_uid(0) == first


@root_only
async def test_right_after_a_fork_bomb_the_next_program_can_start_threads():
    options = IsolationOptions(mode="plain-root", uid_base=63000)
    verifier = await Verifier.create(VerifierOptions(isolation=options, pool_size=1))
    try:
        bomb = await verifier.execute(ExecuteRequest(AssertTests(FORK_BOMB, ("assert True",)),
                                                     limits=LimitsRequest(timeout_ms=1000)))
        assert bomb.verdict is Status.TIMED_OUT
        for _ in range(3):  # each right after the previous, on the one sandbox there is
            result = await verifier.execute(ExecuteRequest(AssertTests(THREADS, ("assert f() == 20",))))
            assert result.verdict is Status.PASSED, result.message
            await asyncio.sleep(0)
    finally:
        await verifier.close()
