"""A bounded pool of warm sandboxes, one per core, with back-pressure.

Why bounded by cores: each sandbox runs one execution at a time, pinned to its own CPU, so a
hostile program burning its CPU budget cannot slow the runs next to it. A request that finds every
sandbox busy waits in line, in order, as long as its deadline allows (and at most
``max_wait_s``); when the line is full or the wait runs out it gets ResourceExhausted, a temporary
error the caller retries after a delay. A sandbox that may hold anything of a previous run (a
timeout, a kill, leftover processes or files) is replaced by a fresh one in the background.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time

from instructforge.runtime.errors import ResourceExhausted, Unavailable

from .isolation import IsolationPlan
from .judge import RunOutcome
from .sandbox import Sandbox, SandboxStartError

log = logging.getLogger(__name__)


class SandboxPool:
    def __init__(self, plan: IsolationPlan, size: int, *, max_waiting: int = 64, max_wait_s: float = 30.0,
                 max_runs_per_sandbox: int = 1000):
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.plan = plan
        self.size = size
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self.max_runs_per_sandbox = max_runs_per_sandbox
        self._idle: list[Sandbox] = []
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._busy = 0
        self._starting: set[asyncio.Task] = set()
        self._all: set[Sandbox] = set()
        self._closed = False
        self.recycled = 0
        self.start_failures = 0
        self.rejected = 0
        self.last_error = ""

    async def start(self) -> None:
        sandboxes = await asyncio.gather(*(self._new(slot) for slot in range(self.size)), return_exceptions=True)
        errors = [s for s in sandboxes if isinstance(s, BaseException)]
        if errors:
            for s in sandboxes:
                if isinstance(s, Sandbox):
                    await s.close()
            raise Unavailable(f"sandboxes failed to start: {errors[0]}")
        self._idle.extend(sandboxes)  # type: ignore[arg-type]

    async def _new(self, slot: int) -> Sandbox:
        sandbox = Sandbox(self.plan.spec(slot), slot)
        await sandbox.start()
        self._all.add(sandbox)
        return sandbox

    @property
    def healthy(self) -> bool:
        return not self._closed and (len(self._idle) + self._busy + len(self._starting)) > 0 and (
            self.start_failures < 5 or len(self._idle) + self._busy > 0)

    def stats(self) -> dict:
        return {"size": self.size, "idle": len(self._idle), "busy": self._busy, "waiting": len(self._waiters),
                "starting": len(self._starting), "recycled": self.recycled, "rejected": self.rejected,
                "start_failures": self.start_failures, "last_error": self.last_error}

    async def _acquire(self, deadline: float | None) -> Sandbox:
        if self._closed:
            raise Unavailable("the verifier is shutting down")
        if self._idle and not self._waiters:
            self._busy += 1
            return self._idle.pop()
        if len(self._waiters) >= self.max_waiting:
            self.rejected += 1
            raise ResourceExhausted(
                f"all {self.size} sandboxes are busy and {len(self._waiters)} requests are already waiting; "
                "retry after a short delay", reason="VERIFIER_BUSY")
        wait = self.max_wait_s if deadline is None else min(self.max_wait_s, deadline - time.monotonic())
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            sandbox = await asyncio.wait_for(fut, max(wait, 0.0))
        except TimeoutError:
            self.rejected += 1
            raise ResourceExhausted(
                f"no sandbox came free within {max(wait, 0.0):.2f} s (all {self.size} busy); retry after a "
                "short delay", reason="VERIFIER_BUSY") from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
        return sandbox

    def _hand_over(self, sandbox: Sandbox) -> None:
        if self._closed:
            self._busy -= 1
            self._recycle(sandbox)
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(sandbox)
                return
        self._busy -= 1
        self._idle.append(sandbox)

    async def run(self, run_id: str, job: dict, *, timeout_s: float, output_limit: int, capture_limit: int,
                  deadline: float | None = None) -> RunOutcome:
        """Run ``job`` in the next free sandbox. A sandbox found dead before the run produced
        anything (killed while idle) costs the caller nothing: the run is retried once elsewhere."""
        for attempt in range(2):
            sandbox = await self._acquire(deadline)
            out: RunOutcome | None = None
            try:
                out = await sandbox.run(run_id, job, timeout_s=timeout_s, output_limit=output_limit,
                                        capture_limit=capture_limit)
            finally:
                if out is None or sandbox.needs_recycling(out) or sandbox.runs >= self.max_runs_per_sandbox:
                    self._busy -= 1
                    self._recycle(sandbox)
                else:
                    self._hand_over(sandbox)
            if attempt == 0 and out.killed == "sandbox_died" and not out.records and not out.stdout_total:
                continue
            return out
        return out

    def _recycle(self, old: Sandbox) -> None:
        self.recycled += 1
        old.kill()
        task = asyncio.get_running_loop().create_task(self._replace(old))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _replace(self, old: Sandbox) -> None:
        self._all.discard(old)
        await old.close()
        delay = 0.05
        while not self._closed:
            try:
                fresh = await self._new(old.slot)
            except (SandboxStartError, OSError) as exc:
                self.start_failures += 1
                self.last_error = str(exc)[:300]
                log.warning("sandbox %d failed to restart: %s", old.slot, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._closed:
                await fresh.close()
                return
            self._busy += 1
            self._hand_over(fresh)
            return

    async def close(self) -> None:
        self._closed = True
        for fut in self._waiters:
            if not fut.done():
                fut.set_exception(Unavailable("the verifier is shutting down"))
        for task in list(self._starting):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._idle = []
        everyone, self._all = list(self._all), set()
        await asyncio.gather(*(s.close() for s in everyone), return_exceptions=True)
        self.plan.cleanup()
