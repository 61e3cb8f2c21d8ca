"""LullRunner on a virtual clock: work waits out bursts of calls, starts in the lulls, and waits for
nothing once no call is left to make."""

from __future__ import annotations

import asyncio

import pytest
from pipeline_fakes import VirtualClock

from instructforge.pipeline.lulls import LullRunner

QUIET = 0.02


def _on_virtual_clock(body):
    with asyncio.Runner(loop_factory=VirtualClock) as runner:
        return runner.run(body())


class Log:
    """What the work did: when each item started and ended, and the most items running at once."""

    def __init__(self, takes: float = 0.005):
        self.takes, self.started, self.ended, self.running, self.most = takes, {}, {}, 0, 0

    async def work(self, item: str) -> None:
        loop = asyncio.get_running_loop()
        self.started[item] = loop.time()
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.takes)
        finally:
            self.running -= 1
        self.ended[item] = loop.time()


async def _burst(lulls: LullRunner, start: float, count: int, gap: float = 0.001) -> None:
    """`count` calls sent, `gap` apart, from `start` on."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(start - loop.time())
    for _ in range(count):
        lulls.busy()
        await asyncio.sleep(gap)


def test_work_waits_for_the_burst_to_end_then_starts_together():
    log = Log()

    async def body():
        lulls = LullRunner(log.work, quiet_s=QUIET)
        runner = asyncio.ensure_future(lulls.run())
        burst = asyncio.ensure_future(_burst(lulls, 0.0, 100))  # a call every ms until ~0.1 s
        await asyncio.sleep(0.01)
        for item in "abc":
            lulls.add(item)
        await burst
        last_call = asyncio.get_running_loop().time() - 0.001
        await asyncio.sleep(0.2)
        assert len(lulls) == 0 and not runner.done()  # all done, and waiting for more
        lulls.finish()
        await runner
        return last_call

    last_call = _on_virtual_clock(body)
    assert list(log.started.values()) == pytest.approx([last_call + QUIET] * 3, abs=1e-6)
    assert set(log.ended) == set("abc") and log.most == 3


def test_work_added_in_a_lull_starts_at_once_and_in_a_burst_waits_for_its_end():
    log = Log(takes=0.005)

    async def body():
        lulls = LullRunner(log.work, quiet_s=QUIET)
        runner = asyncio.ensure_future(lulls.run())
        lulls.add("before")  # no call yet: a lull
        burst = asyncio.ensure_future(_burst(lulls, 0.010, 100))  # calls from 10 ms to ~110 ms
        await asyncio.sleep(0.05)
        lulls.add("during")
        await burst
        await asyncio.sleep(0.1)
        lulls.add("after")
        lulls.finish()
        await runner

    _on_virtual_clock(body)
    assert log.started["before"] == 0.0
    assert log.started["during"] == pytest.approx(0.109 + QUIET, abs=1e-6)
    assert log.started["after"] == pytest.approx(0.210, abs=1e-6)


def test_finish_runs_what_is_left_at_once_and_then_returns():
    log = Log(takes=0.05)

    async def body():
        lulls = LullRunner(log.work, quiet_s=QUIET)
        runner = asyncio.ensure_future(lulls.run())
        burst = asyncio.ensure_future(_burst(lulls, 0.0, 1000))  # calls for a whole second
        await asyncio.sleep(0.0005)
        for item in "abcd":
            lulls.add(item)
        await asyncio.sleep(0.1)
        lulls.finish()
        await runner
        burst.cancel()

    _on_virtual_clock(body)
    assert set(log.started) == set("abcd")
    assert list(log.started.values()) == pytest.approx([0.1005] * 4, abs=1e-6)
    assert log.most == 4


def test_a_failure_ends_the_runner_with_its_error_and_stops_the_rest():
    log = Log(takes=0.05)

    async def work(item: str) -> None:
        if item == "bad":
            raise ValueError("dedup service said no")
        await log.work(item)

    async def body():
        lulls = LullRunner(work, quiet_s=QUIET)
        runner = asyncio.ensure_future(lulls.run())
        lulls.busy()
        for item in ("a", "bad", "b"):
            lulls.add(item)
        lulls.finish()
        with pytest.raises(ValueError, match="dedup service said no"):
            await runner
        await asyncio.sleep(0.1)

    _on_virtual_clock(body)
    assert log.ended == {}  # a and b were stopped, not left running on their own


def test_a_cancelled_runner_stops_while_it_waits_out_a_burst():
    log = Log()

    async def body():
        lulls = LullRunner(log.work, quiet_s=QUIET)
        runner = asyncio.ensure_future(lulls.run())
        lulls.busy()
        lulls.add("a")
        await asyncio.sleep(QUIET / 2)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        await asyncio.sleep(QUIET * 2)

    _on_virtual_clock(body)
    assert log.started == {}
