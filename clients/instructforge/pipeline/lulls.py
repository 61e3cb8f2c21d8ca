"""Work that can wait, done in the lulls between bursts of LLM answers.

A stage with hundreds of calls out gets its answers in bursts: a round trip's worth within a few
tenths of a second, then nothing until the calls those answers caused come back. Every answer of a
burst is turned into the next call on the run's one thread, so each millisecond of other work done
during a burst (a finished node's filter verdicts: the dedup service over gRPC, the journal) delays
the calls queued behind it, and with them the whole stage. Done once no call has gone out for a
moment, the same work costs the calls nothing; and once the answers coming in cause no more calls
(the end of a stage), it waits for nothing.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# No call sent for this long and a burst is over: within one, calls leave about a millisecond apart.
QUIET_S = 0.02


class LullRunner(Generic[T]):
    """Runs `work(item)` for each item added, once the stage is quiet (no `busy()` for `quiet_s`):
    everything waiting then starts at once, and what is added during a lull starts right away; once
    `finish()` says no call will go out any more, nothing waits. `run()` returns when finished and
    every item's work is done; the first failure ends it (and stops the rest)."""

    def __init__(self, work: Callable[[T], Awaitable[None]], quiet_s: float = QUIET_S):
        self._work, self._quiet_s = work, quiet_s
        self._waiting: collections.deque[T] = collections.deque()
        self._last_call = -math.inf
        self._finished = False
        self._wake = asyncio.Event()

    def add(self, item: T) -> None:
        self._waiting.append(item)
        self._wake.set()

    def busy(self) -> None:
        """A call just went out, most likely for an answer just in: the work waits out the burst.
        (Answers that cause no call, the last of a stage, do not hold it back.)"""
        self._last_call = asyncio.get_running_loop().time()

    def finish(self) -> None:
        """No calls to make way for any more: what is left runs now."""
        self._finished = True
        self._wake.set()

    def __len__(self) -> int:
        return len(self._waiting)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        running: set[asyncio.Future] = set()
        try:
            while True:
                for task in [t for t in running if t.done()]:
                    running.discard(task)
                    task.result()  # a failure ends the runner
                quiet_at = -math.inf if self._finished else self._last_call + self._quiet_s
                # (A timer may fire a hair before its time: within a microsecond is on time.)
                if self._waiting and loop.time() >= quiet_at - 1e-6:
                    while self._waiting:
                        task = asyncio.ensure_future(self._work(self._waiting.popleft()))
                        task.add_done_callback(lambda _: self._wake.set())
                        running.add(task)
                    continue
                if self._finished and not running:
                    return
                # Asleep until work is added, a work ends, finish(), or the burst may be over.
                # (Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that meets its timeout.)
                self._wake.clear()
                timer = loop.call_at(quiet_at, self._wake.set) if self._waiting else None
                try:
                    await self._wake.wait()
                finally:
                    if timer is not None:
                        timer.cancel()
        finally:  # after a failure or a cancellation, nothing is left running on its own
            for task in running:
                task.cancel()
