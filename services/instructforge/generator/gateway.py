"""The gateway: one `generate(request, deadline)` over every backend, with cache, idempotency and accounting.

Order of a call: validate; replay the stored answer of its idempotency key, if any; join an
identical call already in flight; look up each sample in the cache (policy USE); send the samples
still missing to a deployment through the `Dispatcher` (limits, retries, fallbacks); store what was
paid for *before* anything else can fail (a stored write finishes even if the caller goes away);
answer. The caller's deadline bounds all of it; cancelling the caller's task cancels the provider
request, which closes its connection.

A cache store that fails is counted and bypassed, not fatal: losing a cache write must not turn a
paid answer into an error the caller would retry (and pay for again).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from instructforge.generator.accounting import Ledger, ModelUsage, call_cost
from instructforge.generator.backends.base import create_backend
from instructforge.generator.cache import (
    RequestKeys,
    decode_response,
    decode_sample,
    encode_response,
    encode_sample,
    idempotency_store_key,
    request_fingerprint,
)
from instructforge.generator.config import CacheConfig, GatewayConfig, parse_gateway_config
from instructforge.generator.dispatch import Dispatcher, Trace, UnitResult
from instructforge.generator.metrics import GatewayMetrics
from instructforge.generator.request import (
    CachePolicy,
    GenerateRequest,
    GenerateResponse,
    Sample,
    Usage,
    validate_request,
)
from instructforge.generator.retry import RetryPolicy
from instructforge.generator.routing import DeploymentState, Route, Router
from instructforge.generator.stores import CacheStore, MemoryStore, NullStore, RedisStore, SQLiteStore
from instructforge.runtime.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InstructForgeError,
    InvalidArgument,
)

log = logging.getLogger(__name__)


def open_store(cache: CacheConfig, state_dir: Path | None) -> CacheStore:
    """The cache store a config asks for."""
    if cache.store == "none":
        return NullStore()
    if cache.store == "memory":
        return MemoryStore(cache.ttl_s)
    if cache.store == "redis":
        import os

        url = cache.redis_url or os.environ.get(cache.redis_url_env or "")
        if not url:
            raise FailedPrecondition(f"cache.redis_url_env names {cache.redis_url_env}, which is not set",
                                     reason="CACHE_UNAVAILABLE")
        return RedisStore(url, cache.ttl_s, cache.key_prefix)
    path = cache.path or (state_dir / "cache.sqlite3" if state_dir is not None else None)
    if path is None:
        raise InvalidArgument(field="cache.path", message="set cache.path, or run the gateway with a state directory")
    return SQLiteStore(path, cache.ttl_s)


class Gateway:
    def __init__(self, config: GatewayConfig, states: dict[str, DeploymentState], store: CacheStore,
                 metrics: GatewayMetrics):
        self.config = config
        self.states = states
        self.store = store
        self.metrics = metrics
        self.router = Router(config.models, states, config.cooldown)
        r = config.retry
        self.policy = RetryPolicy(r.max_attempts, r.base_delay_s, r.max_delay_s, r.multiplier, r.max_retry_after_s)
        self.dispatcher = Dispatcher(self.router, self.policy, metrics)
        self.ledger = Ledger()
        self._flights: dict[tuple[str, str], asyncio.Future] = {}
        self._closed = False
        # Seeded samples (seed + i each) and backends without `n` need one call per sample.
        self._one_call_per_sample = {}
        self._deployments_of = {}
        for route in config.models:
            deps = [d for r in self.router.chain(route.name) for d in r.deployments]
            self._deployments_of[route.name] = deps
            self._one_call_per_sample[route.name] = (
                not all(d.backend.supports_n for d in deps), any(d.defaults.seed is not None for d in deps))

    @classmethod
    async def create(cls, config: GatewayConfig | dict[str, Any], *, state_dir: Path | None = None,
                     metrics: GatewayMetrics | None = None, store: CacheStore | None = None) -> Gateway:
        """Build every deployment's backend and the cache store, and start the backends that load models."""
        config = parse_gateway_config(config)
        states: dict[str, DeploymentState] = {}
        try:
            for route in config.models:
                for d in route.deployments:
                    states[d.name] = DeploymentState(d, create_backend(d))
            store = store or open_store(config.cache, state_dir)
        except BaseException:
            for s in states.values():
                await s.backend.aclose()
            raise
        gateway = cls(config, states, store, metrics or GatewayMetrics())
        try:
            await gateway.start()
        except BaseException:
            await gateway.close()
            raise
        return gateway

    async def start(self) -> None:
        for state in self.states.values():
            start = getattr(state.backend, "start", None)
            if start is not None:
                await start()
            self.metrics.concurrency_limit.labels(state.name).set(state.concurrency.limit)

    async def close(self) -> None:
        """Finish pending cache writes, close every backend, then the store. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for state in self.states.values():
            try:
                await state.backend.aclose()
            except Exception:  # closing one must not leave the others open
                log.warning("closing a backend failed", extra={"deployment": state.name}, exc_info=True)
        await self.store.close()

    # -- the call ---------------------------------------------------------------------------------
    async def generate(self, request: GenerateRequest, deadline: float | None = None) -> GenerateResponse:
        """Answer `request` before `deadline` (event-loop time), or raise a domain error saying why not."""
        loop = asyncio.get_running_loop()
        begun = loop.time()
        validate_request(request)
        chain = self.router.chain(request.model)
        trace = Trace()
        try:
            if deadline is None:
                response = await self._generate(request, chain, None, trace)
            else:
                if deadline <= begun:
                    raise DeadlineExceeded("the deadline had passed before the call started", reason="DEADLINE_EXCEEDED")
                async with asyncio.timeout_at(deadline):
                    response = await self._generate(request, chain, deadline, trace)
        except TimeoutError:
            last = trace.last_error
            detail = f"; last fault: {last.fault.label} from {trace.last_deployment!r}" if last is not None else ""
            error = DeadlineExceeded(f"the caller's deadline passed after {trace.attempts} attempt(s){detail}",
                                     reason="DEADLINE_EXCEEDED", metadata={"attempts": str(trace.attempts)})
            self.metrics.pair(request.model, trace.last_deployment).outcome("deadline_exceeded")
            raise error from None
        except InstructForgeError as exc:
            self.metrics.pair(request.model, trace.last_deployment).outcome(exc.reason.lower())
            raise
        except asyncio.CancelledError:
            self.metrics.pair(request.model, trace.last_deployment).outcome("cancelled")
            raise
        mm = self.metrics.model(request.model)
        mm.total.observe(loop.time() - begun)
        if not response.cache_hit:
            mm.queue.observe(trace.queue_s)
            mm.backend.observe(trace.backend_s)
        self.metrics.pair(request.model, response.deployment).outcome("cache_hit" if response.cache_hit else "ok")
        return response

    async def _generate(self, request: GenerateRequest, chain: list[Route], deadline: float | None,
                        trace: Trace) -> GenerateResponse:
        keys = RequestKeys(request)
        fingerprint = None
        if request.idempotency_key:
            fingerprint = request_fingerprint(request, keys.prompt, keys.sampling)
            replay = await self._replay(request, fingerprint)
            if replay is not None:
                return replay
            flight = ("i", request.idempotency_key + "#" + fingerprint)
        elif request.cache_policy is CachePolicy.USE:
            flight = ("f", request_fingerprint(request, keys.prompt, keys.sampling))
        else:
            return await self._fresh(request, chain, keys, fingerprint, deadline, trace)
        # Join an identical call in flight instead of paying for it twice.
        while (leader := self._flights.get(flight)) is not None:
            try:
                shared = await asyncio.shield(leader)
            except asyncio.CancelledError:
                if not leader.cancelled():
                    raise
                continue  # the leader's caller went away: take over
            except InstructForgeError as exc:
                if not exc.temporary:
                    raise  # an identical request fails identically
                continue
            self.ledger.answered(request.run_id, request.model, cache_hit=True, saved_cost=shared.cost_usd)
            self.metrics.model(request.model).hit.inc(len(shared.samples))
            return GenerateResponse(request.model, list(shared.samples), Usage(shared.usage.prompt_tokens,
                                    shared.usage.completion_tokens), 0.0, True, shared.deployment,
                                    shared.provider_model)
        future = asyncio.get_running_loop().create_future()
        self._flights[flight] = future
        try:
            response = await self._fresh(request, chain, keys, fingerprint, deadline, trace)
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # followers may be none: do not warn "never retrieved"
            else:
                future.cancel()
            raise
        else:
            future.set_result(response)
        finally:
            del self._flights[flight]
        return response

    async def _replay(self, request: GenerateRequest, fingerprint: str) -> GenerateResponse | None:
        raw = (await self._get([idempotency_store_key(request.idempotency_key)]))[0]
        if raw is None:
            return None
        decoded = decode_response(raw)
        if decoded is None:
            return None
        stored_fingerprint, response = decoded
        if stored_fingerprint != fingerprint:
            raise FailedPrecondition(
                f"idempotency key {request.idempotency_key!r} was first used for a different request "
                "(model, prompt, template version, sample count or sampling differ); use a new key",
                reason="IDEMPOTENCY_KEY_REUSED", metadata={"idempotency_key": request.idempotency_key[:256]})
        self.metrics.model(request.model).idempotent.inc(len(response.samples))
        self.ledger.answered(request.run_id, request.model, cache_hit=True, saved_cost=self._price_of(
            response.deployment, response.usage.prompt_tokens, response.usage.completion_tokens))
        return response

    async def _fresh(self, request: GenerateRequest, chain: list[Route], keys: RequestKeys, fingerprint: str | None,
                     deadline: float | None, trace: Trace) -> GenerateResponse:
        n = request.sample_count
        hits: dict[int, dict] = {}
        if request.cache_policy is CachePolicy.USE:
            hits = await self._lookup(request, keys)
        missing = [i for i in range(n) if i not in hits]
        results: list[UnitResult] = []
        if missing:
            no_n, default_seed = self._one_call_per_sample[request.model]
            if len(missing) > 1 and (no_n or default_seed or request.sampling.seed is not None):
                results = await _all_or_first_error(
                    [self._paid(request, [i], chain, keys, deadline, trace) for i in missing])
            else:
                results = [await self._paid(request, missing, chain, keys, deadline, trace)]
        response = self._assemble(request, hits, results, trace)
        if hits:
            mm = self.metrics.model(request.model)
            mm.hit.inc(len(hits))
        if results and request.cache_policy is CachePolicy.USE:
            self.metrics.model(request.model).miss.inc(len(missing))
        saved = 0.0
        if not results:
            saved = self._price_of(response.deployment, response.usage.prompt_tokens, response.usage.completion_tokens)
        self.ledger.answered(request.run_id, request.model, cache_hit=not results, saved_cost=saved)
        if request.idempotency_key:
            await self._put([(idempotency_store_key(request.idempotency_key), encode_response(fingerprint, response))])
        return response

    async def _paid(self, request: GenerateRequest, indices: list[int], chain: list[Route], keys: RequestKeys,
                    deadline: float | None, trace: Trace) -> UnitResult:
        """One provider call for `indices`; what it bought is accounted and stored at once."""
        unit = await self.dispatcher.run(request, indices, chain, deadline, trace)
        result, dep = unit.result, unit.deployment
        pm = self.metrics.pair(request.model, dep.name)
        pm.prompt_tokens.inc(result.prompt_tokens)
        pm.completion_tokens.inc(result.completion_tokens)
        pm.cost.inc(unit.cost)
        self.ledger.paid(request.run_id, request.model, result.prompt_tokens, result.completion_tokens, unit.cost)
        if request.cache_policy is not CachePolicy.BYPASS:
            stored = keys.of(dep.digest, unit.resolved, max(indices) + 1)
            shares = _split(result.completion_tokens, [len(c.text) for c in result.completions])
            items = [(stored[i], encode_sample(c.text, c.finish_reason, result.prompt_tokens, share, dep.name,
                                             result.provider_model))
                     for i, c, share in zip(indices, result.completions, shares)]
            await self._put(items)
        return unit

    def _assemble(self, request: GenerateRequest, hits: dict[int, dict], results: list[UnitResult],
                  trace: Trace) -> GenerateResponse:
        samples: list[Sample | None] = [None] * request.sample_count
        prompt_tokens = completion_tokens = 0
        cost = 0.0
        for i, record in hits.items():
            samples[i] = Sample(i, record["t"], record["f"])
            completion_tokens += int(record.get("ct", 0))
        for unit in results:
            for i, c in zip(unit.indices, unit.result.completions):
                samples[i] = Sample(i, c.text, c.finish_reason)
            prompt_tokens += unit.result.prompt_tokens
            completion_tokens += unit.result.completion_tokens
            cost += unit.cost
        if results:
            deployment, provider_model = results[0].deployment.name, results[0].result.provider_model
        else:
            first = hits[min(hits)]
            deployment, provider_model = first.get("d", ""), first.get("m", "")
            prompt_tokens = max(int(r.get("pt", 0)) for r in hits.values())
        return GenerateResponse(request.model, samples, Usage(prompt_tokens, completion_tokens), cost, not results,
                                deployment, provider_model, trace.attempts, trace.queue_s, trace.backend_s)

    # -- cache plumbing ---------------------------------------------------------------------------
    async def _lookup(self, request: GenerateRequest, keys: RequestKeys) -> dict[int, dict]:
        """Samples found for this request on any deployment of its model or fallbacks (first one wins)."""
        n = request.sample_count
        wanted: list[str] = []
        for dep in self._deployments_of[request.model]:
            wanted.extend(keys.of(dep.digest, request.sampling.resolved(dep.defaults), n))
        found = await self._get(wanted)
        hits: dict[int, dict] = {}
        for position, raw in enumerate(found):
            index = position % n
            if raw is not None and index not in hits:
                record = decode_sample(raw)
                if record is not None:
                    hits[index] = record
        return hits

    async def _get(self, keys: list[str]) -> list[bytes | None]:
        try:
            return await self.store.get_many(keys)
        except InstructForgeError as exc:
            self.metrics.cache_errors.labels("read").inc()
            log.warning("cache read failed; calling the provider without it", extra={"error": exc.message})
            return [None] * len(keys)

    async def _put(self, items: list[tuple[str, bytes]]) -> None:
        """Store; every store finishes a write it has begun even if this call is cancelled meanwhile."""
        try:
            await self.store.put_many(items)
        except InstructForgeError as exc:
            self.metrics.cache_errors.labels("write").inc()
            log.warning("cache write failed; the answer is returned but not kept", extra={"error": exc.message})

    def _price_of(self, deployment: str, prompt_tokens: int, completion_tokens: int) -> float:
        state = self.states.get(deployment)
        if state is None:
            return 0.0
        return call_cost(prompt_tokens, completion_tokens, state.price_in, state.price_out)

    # -- introspection ----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [self.router.routes[r.name] for r in self.config.models]

    def usage(self, run_id: str = "") -> list[ModelUsage]:
        return self.ledger.usage(run_id)


async def _all_or_first_error(coroutines: list) -> list:
    """Run concurrently; on the first failure cancel the rest and raise that failure itself."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
        return [t.result() for t in tasks]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _split(total: int, weights: list[int]) -> list[int]:
    """Share `total` tokens among samples in proportion to their text length (exact sum)."""
    if len(weights) == 1:
        return [total]
    whole = sum(weights)
    if whole == 0:
        shares = [total // len(weights)] * len(weights)
    else:
        shares = [total * w // whole for w in weights]
    shares[-1] += total - sum(shares)
    return shares
