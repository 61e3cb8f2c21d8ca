"""One provider call made reliably: choose a deployment, wait for its limits, call, retry, fall back.

Per attempt: a concurrency slot (adaptive), then the RPM and TPM buckets, then the backend call
bounded by min(deployment timeout, time left before the caller's deadline). The caller's deadline is
enforced around the whole call by `Gateway.generate`, so an attempt sets a timer of its own only
when the deployment's timeout ends first. A retryable fault
waits `RetryPolicy.delay` (full jitter, never less than the Retry-After of the deployment about to
be tried) and tries again, preferring another deployment of the same model; after `max_attempts`
the next fallback model gets its own attempts. A fault that is not retryable ends the call at once
with a precise error. When the next wait would end after the caller's deadline, the call ends now
with the last fault rather than sleeping in vain.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace

from instructforge.generator.accounting import call_cost
from instructforge.generator.backends.base import BackendCall, BackendResult
from instructforge.generator.faults import Fault, ProviderError, to_domain_error
from instructforge.generator.limits import wait_for_bucket
from instructforge.generator.metrics import GatewayMetrics
from instructforge.generator.request import GenerateRequest, Sampling
from instructforge.generator.retry import RetryPolicy
from instructforge.generator.routing import DeploymentState, Route, Router
from instructforge.runtime.errors import DeadlineExceeded

INT64 = 1 << 63
DEFAULT_OUTPUT_ESTIMATE = 256  # tokens assumed for TPM when max_tokens is unset


@dataclass(slots=True)
class Trace:
    """What happened to one request so far, for its response, its metrics and its error message."""

    attempts: int = 0
    queue_s: float = 0.0
    backend_s: float = 0.0
    last_error: ProviderError | None = None
    last_deployment: str = ""


@dataclass(slots=True)
class UnitResult:
    deployment: DeploymentState
    model: str
    indices: list[int]
    resolved: Sampling  # the request's sampling over this deployment's defaults (before per-sample seeds)
    result: BackendResult
    cost: float


def sample_seed(seed: int, index: int) -> int:
    """Sample i uses seed + i, wrapped into the signed 64-bit range."""
    return (seed + index + INT64) % (1 << 64) - INT64


class Dispatcher:
    def __init__(self, router: Router, policy: RetryPolicy, metrics: GatewayMetrics):
        self.router = router
        self.policy = policy
        self.metrics = metrics
        self.rng = router.rng

    async def run(self, request: GenerateRequest, indices: list[int], chain: list[Route], deadline: float | None,
                  trace: Trace) -> UnitResult:
        """Produce samples `indices` of `request` (one call: n = len(indices), or one seeded sample)."""
        loop = asyncio.get_running_loop()
        unit_attempts = 0
        previous_fault: str | None = None
        error: ProviderError | None = None
        for position, route in enumerate(chain):
            last = position == len(chain) - 1
            if position > 0:
                self.metrics.fallbacks.labels(chain[0].name, route.name).inc()
            attempts = 0
            not_before: dict[str, float] = {}
            dep = self._pick(route, loop.time(), None, last)
            if dep is None:
                continue  # every deployment cooling: straight to the fallback
            while True:
                pm = self.metrics.pair(chain[0].name, dep.name)
                if previous_fault is not None:
                    pm.retry(previous_fault)
                unit_attempts += 1
                attempts += 1
                trace.attempts += 1
                trace.last_deployment = dep.name
                resolved = request.sampling.resolved(dep.defaults)
                try:
                    result = await self._attempt(dep, request, indices, resolved, deadline, trace, pm)
                except ProviderError as exc:
                    error = trace.last_error = exc
                    previous_fault = exc.fault.label
                    pm.failed_call(exc.fault.label)
                    if not exc.fault.retryable:
                        raise to_domain_error(exc, dep.name, request.prompt_field, unit_attempts) from None
                    now = loop.time()
                    if exc.retry_after is not None:
                        if exc.retry_after > self.policy.max_retry_after_s:
                            break  # "not now": this model is out, try the fallbacks
                        not_before[dep.name] = now + exc.retry_after
                    if attempts >= self.policy.max_attempts:
                        break
                    dep = self._pick(route, now, dep.name, last)
                    if dep is None:
                        break
                    wait = self.policy.delay(attempts, None, self.rng)
                    wait = max(wait, not_before.get(dep.name, 0.0) - now)
                    if deadline is not None and now + wait >= deadline:
                        raise self._too_late(exc, dep.name, request, unit_attempts, wait) from None
                    await asyncio.sleep(wait)
                    continue
                self.router.succeeded(dep)
                cost = call_cost(result.prompt_tokens, result.completion_tokens, dep.price_in, dep.price_out)
                return UnitResult(dep, route.name, indices, resolved, result, cost)
        if error is None:  # nothing was tried: every model's deployments were cooling (no last resort left)
            raise to_domain_error(ProviderError(Fault.OVERLOADED, "every deployment is cooling down"),
                                  chain[0].deployments[0].name, request.prompt_field, 0)
        raise to_domain_error(error, trace.last_deployment, request.prompt_field, unit_attempts)

    def _pick(self, route: Route, now: float, avoid: str | None, last: bool) -> DeploymentState | None:
        dep = self.router.choose(route, now, avoid)
        if dep is None and last:
            dep = self.router.soonest(route)  # nowhere else to go: the first one back
        return dep

    def _too_late(self, exc: ProviderError, dep: str, request: GenerateRequest, attempts: int, wait: float):
        error = to_domain_error(exc, dep, request.prompt_field, attempts)
        error.metadata["next_retry_in_s"] = f"{wait:.3f}"
        error.message += f"; the next retry (in {wait:.2f}s) would pass the caller's deadline"
        error.args = (error.message,)
        return error

    async def _attempt(self, dep: DeploymentState, request: GenerateRequest, indices: list[int], resolved: Sampling,
                       deadline: float | None, trace: Trace, pm) -> BackendResult:
        loop = asyncio.get_running_loop()
        queued = loop.time()
        concurrency = dep.concurrency
        if not concurrency.try_acquire():
            try:
                await concurrency.acquire(deadline)
            except TimeoutError:
                raise DeadlineExceeded(f"no free slot on deployment {dep.name!r} before the deadline",
                                       reason="DEADLINE_EXCEEDED_QUEUED") from None
            pm.wait_concurrency.observe(loop.time() - queued)
        estimate = 0.0
        started = queued
        try:
            if dep.rpm is not None:
                pm.wait_rpm.observe(await wait_for_bucket(dep.rpm, 1, deadline, "requests-per-minute"))
            if dep.tpm is not None:
                out = (resolved.max_tokens or DEFAULT_OUTPUT_ESTIMATE) * len(indices)
                estimate = request.prompt_chars() / 4 + out
                pm.wait_tpm.observe(await wait_for_bucket(dep.tpm, estimate, deadline, "tokens-per-minute"))
            started = loop.time()
            trace.queue_s += started - queued
            sampling = resolved
            if resolved.seed is not None:
                sampling = replace(resolved, seed=sample_seed(resolved.seed, indices[0]))
            call = BackendCall(request.text, request.messages, len(indices), sampling)
            timeout = dep.config.timeout_s
            # When the caller's deadline comes first, the `timeout_at(deadline)` that Gateway.generate holds
            # around this task ends the call then; a timer of our own would only fire after it.
            own_timer = deadline is None or deadline - started > timeout
            if not own_timer:
                timeout = deadline - started
            pm.in_flight.inc()
            try:
                async with asyncio.timeout(timeout) if own_timer else contextlib.nullcontext():
                    result = await dep.backend.generate(call, timeout)
            except TimeoutError:
                raise ProviderError(Fault.TIMEOUT, f"no answer within {timeout:.2f}s") from None
            finally:
                pm.in_flight.dec()
                trace.backend_s += loop.time() - started
        except ProviderError as exc:
            if dep.tpm is not None and estimate:
                dep.tpm.refund(estimate)
            if exc.fault.retryable:
                if exc.fault.overload:
                    concurrency.on_overload(started)
                    pm.limit.set(concurrency.limit)
                if self.router.failed(dep, loop.time()):
                    self.metrics.cooldowns.labels(dep.name).inc()
            raise
        finally:
            concurrency.release()
        if dep.tpm is not None:
            dep.tpm.adjust(result.prompt_tokens + result.completion_tokens - estimate)
        if concurrency.limit < concurrency.max_limit:
            concurrency.on_success()
            pm.limit.set(concurrency.limit)
        pm.ok_calls.inc()
        return result
