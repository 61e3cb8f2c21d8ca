"""The verifier core: validate a request, run it in a pooled sandbox, judge it.

This is what the gRPC servicer, the pipeline stage, the benchmark and the tests all call; it has
no protobuf in it. ``Verifier.create`` finds the isolation this machine gives (see isolation.py)
and starts the warm pool; ``execute`` is one request; ``execute_many`` runs a stream of requests
with bounded concurrency and yields results as they finish.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from instructforge.runtime.errors import DeadlineExceeded

from .forms import SizeLimits, build_job
from .isolation import MAX_SLOTS, IsolationOptions, IsolationPlan, choose_plan
from .judge import judge
from .limits import LimitPolicy
from .models import ExecuteRequest, ExecutionResult, IsolationLayer
from .pool import SandboxPool

MIN_RUN_S = 0.05  # below this much time left, a run cannot even start


@dataclass(frozen=True)
class VerifierOptions:
    isolation: IsolationOptions = field(default_factory=IsolationOptions)
    pool_size: int = 0  # 0 = one sandbox per CPU this process may use
    max_waiting: int = 64
    max_wait_s: float = 30.0
    max_runs_per_sandbox: int = 1000
    limits: LimitPolicy = field(default_factory=LimitPolicy)
    capture_bytes: int = 64 * 1024  # how much of stdout and stderr a result carries back
    sizes: SizeLimits = field(default_factory=SizeLimits)


def default_pool_size() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_SLOTS))


class Verifier:
    def __init__(self, plan: IsolationPlan, pool: SandboxPool, options: VerifierOptions):
        self.plan = plan
        self.pool = pool
        self.options = options

    @classmethod
    async def create(cls, options: VerifierOptions | None = None) -> Verifier:
        options = options or VerifierOptions()
        plan = await choose_plan(options.isolation)
        pool = SandboxPool(plan, options.pool_size or default_pool_size(), max_waiting=options.max_waiting,
                           max_wait_s=options.max_wait_s, max_runs_per_sandbox=options.max_runs_per_sandbox)
        await pool.start()
        return cls(plan, pool, options)

    @property
    def layers(self) -> tuple[IsolationLayer, ...]:
        return self.plan.layers

    @property
    def healthy(self) -> bool:
        return self.pool.healthy

    async def execute(self, request: ExecuteRequest, *, deadline: float | None = None) -> ExecutionResult:
        """Run one request. ``deadline`` is a ``time.monotonic()`` instant (the caller's gRPC deadline)."""
        job = build_job(request, self.options.sizes)
        limits = self.options.limits.resolve(request.limits)
        timeout_s = limits.timeout_ms / 1000.0
        if deadline is not None:
            left = deadline - time.monotonic()
            if left < MIN_RUN_S:
                raise DeadlineExceeded(f"only {max(left, 0) * 1000:.0f} ms left before the caller's deadline")
        nonce = secrets.token_hex(16)
        message = {"form": job.kind, "nonce": nonce, "program": job.program, "setup": job.setup,
                   "tests": job.tests, "stdin": job.stdin, "limits": limits.for_sandbox()}
        out = await self.pool.run(uuid.uuid4().hex, message, timeout_s=timeout_s, output_limit=limits.output_bytes,
                                  capture_limit=self.options.capture_bytes, deadline=deadline)
        return judge(job, out, nonce, timeout_ms=limits.timeout_ms, output_bytes=limits.output_bytes,
                     capture_bytes=self.options.capture_bytes, isolation_mode=self.plan.mode,
                     isolation=self.plan.active_layers, request_id=request.request_id)

    async def execute_many(self, requests: AsyncIterable[ExecuteRequest] | list[ExecuteRequest], *,
                           max_in_flight: int = 0) -> AsyncIterator[tuple[int, ExecutionResult | Exception]]:
        """Yield ``(index, result or error)`` as executions finish; at most ``max_in_flight`` at once
        (default: pool size + the line it may wait in)."""
        limit = max_in_flight or (self.pool.size * 2)
        queue: asyncio.Queue = asyncio.Queue()
        gate = asyncio.Semaphore(limit)
        tasks: set[asyncio.Task] = set()

        async def one(index: int, req: ExecuteRequest) -> None:
            try:
                await queue.put((index, await self.execute(req)))
            except Exception as exc:  # noqa: BLE001 -- one bad request must not end the stream of the others
                await queue.put((index, exc))
            finally:
                gate.release()

        async def feed() -> None:
            index = 0
            if isinstance(requests, list):
                source = _aiter(requests)
            else:
                source = requests
            async for req in source:
                await gate.acquire()
                task = asyncio.get_running_loop().create_task(one(index, req))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                index += 1
            for _ in range(limit):
                await gate.acquire()
            await queue.put(None)

        feeder = asyncio.get_running_loop().create_task(feed())
        try:
            while (item := await queue.get()) is not None:
                yield item
            await feeder
        finally:
            feeder.cancel()
            for task in list(tasks):
                task.cancel()

    async def close(self) -> None:
        await self.pool.close()


async def _aiter(items):
    for item in items:
        yield item
