"""The services as a run sees them: journaled, bounded in concurrency, retried a bounded number of times.

Each wrapper implements the same protocol it wraps, so stage logic cannot tell a first run from a
resumed one: an answer already in the run's journal comes back without a call. A transient failure
is retried with exponential backoff up to `retries` times, then the run stops (`RunInterrupted`) with
everything so far saved; a permanent one is journaled and re-raised for the stage to count as a drop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, NoReturn, TypeVar

from instructforge.pipeline.protocols import (
    CallsRejected,
    CodeExecutor,
    CollectionSpec,
    Completion,
    GenerationRequest,
    Generator,
    NoveltyFilter,
    NoveltyItem,
    NoveltyVerdict,
    PermanentError,
    Scope,
    Similarity,
    SimilarityScorer,
    TransientError,
)
from instructforge.pipeline.state import RunState

if TYPE_CHECKING:
    from instructforge.verifier.v1 import verifier_pb2 as vf

T = TypeVar("T")
# Program output kept in the journal per execution (the verdict never needs more; a run of many
# thousand records would otherwise store up to the verifier's capture cap for each).
JOURNALED_OUTPUT_CHARS = 2000


class Slots:
    """The run's LLM call slots: a semaphore, first come first served, that tells how many are taken
    (the enrich stage sends a call only when one is free, so it never waits with stale knowledge)."""

    def __init__(self, size: int):
        self.size, self.taken = size, 0
        self._semaphore = asyncio.Semaphore(size)

    async def __aenter__(self) -> None:
        await self._semaphore.acquire()
        self.taken += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self.taken -= 1
        self._semaphore.release()


class CallNotNeeded(Exception):
    """A call was no longer needed by the time a slot was free for it; it was never sent."""


class RunInterrupted(RuntimeError):
    """A service stayed unavailable through every retry; the run's state is saved: resume it later."""


class Retrying:
    def __init__(self, retries: int, backoff_s: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.retries, self.backoff_s, self.sleep = retries, backoff_s, sleep
        self._jitter = random.Random()

    async def run(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return await call()
            except TransientError as e:
                if attempt == self.retries:
                    raise RunInterrupted(f"{what}: still failing after {self.retries + 1} attempts ({e}); "
                                         "the run is saved, resume it once the service is back") from e
                await self.sleep(self.backoff_s * 2**attempt * (0.5 + self._jitter.random()))
        raise AssertionError("unreachable")


class JournaledGenerator:
    def __init__(self, inner: Generator, state: RunState, *, concurrency: int = 64, backlog: int = 0,
                 retries: int = 3, backoff_s: float = 2.0, rejections_to_stop: int = 0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        """At most `concurrency` + `backlog` calls out at once; the `backlog` wait at the gateway for a
        provider slot (recipe key `gateway_backlog`). `rejections_to_stop` rejected calls in a row, none
        accepted in between, stop the run (`CallsRejected`; 0: never)."""
        self.inner, self.state = inner, state
        self.slots = Slots(concurrency + backlog)
        self._retry = Retrying(retries, backoff_s, sleep)
        self.made = self.replayed = 0
        self.rejections_to_stop = rejections_to_stop
        self._streak: list[str] = []  # keys of the calls rejected since the last one accepted
        self._stopped: CallsRejected | None = None

    async def generate(self, request: GenerationRequest, *, unless: Callable[[], bool] | None = None,
                       prompt: Callable[[], str | tuple] | None = None) -> Completion:
        """The journaled answer, else the provider's.

        `unless` is asked once the call has a slot: a call sent ahead of need that is no longer needed
        then gives the slot back unsent (`CallNotNeeded`). `prompt` builds the prompt once the call has
        its slot, so hundreds of calls queued for slots cost no prompt building yet."""
        key = request.idempotency_key
        if not key:
            raise ValueError("a journaled call needs an idempotency key")
        stored = self.state.get_call(key)
        if stored is None:
            self.replayed += 1
            self._rejected(key, PermanentError(f"{key}: rejected in an earlier attempt of this run"))
        if stored is not False:
            self.replayed += 1
            self._streak.clear()
            return stored

        async def once() -> Completion:
            async with self.slots:
                if unless is not None and unless():
                    raise CallNotNeeded(key)
                return await self.inner.generate(request if prompt is None else replace(request, prompt=prompt()))

        try:
            completion = await self._retry.run(f"LLM call {key}", once)
        except PermanentError as e:
            self.state.put_call(key, None, error=str(e) or type(e).__name__)
            self._rejected(key, e)
        self.state.put_call(key, completion)
        self.made += 1
        self._streak.clear()
        return completion

    def _rejected(self, key: str, error: PermanentError) -> NoReturn:
        """Re-raises the rejection for the stage to count as a drop, unless it makes `rejections_to_stop`
        in a row: then the run stops, and the journal forgets the streak's rejections (those of stages
        not yet done), so that `iforge resume` asks again."""
        if self._stopped is not None:
            raise self._stopped from error
        self._streak.append(key)
        if not self.rejections_to_stop or len(self._streak) < self.rejections_to_stop:
            raise error
        self.state.forget_calls([k for k in self._streak if self.state.stage_done(self.state.stage_of(k)) is None])
        self._stopped = CallsRejected(
            f"the last {len(self._streak)} LLM calls were all rejected, none accepted in between "
            f"(recipe key rejections_to_stop); the last one: {error}")
        raise self._stopped from error


class JournaledNovelty:
    def __init__(self, inner: NoveltyFilter, state: RunState, *, retries: int = 3, backoff_s: float = 2.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.inner, self.state = inner, state
        self._retry = Retrying(retries, backoff_s, sleep)
        self._ensured: dict[str, asyncio.Future[None]] = {}

    async def ensure_collection(self, name: str, spec: CollectionSpec) -> None:
        """Once per collection and run, however many stages or nodes ask for it at the same time."""
        ensured = self._ensured.get(name)
        if ensured is None or (ensured.done() and ensured.exception() is not None):
            ensured = self._ensured[name] = asyncio.ensure_future(
                self._retry.run(f"dedup collection {name}", lambda: self.inner.ensure_collection(name, spec)))
        await asyncio.shield(ensured)

    async def check_and_insert(self, collection: str, items: Sequence[NoveltyItem], *, request_id: str,
                               scope: Scope | None = None) -> list[NoveltyVerdict]:
        stored = self.state.get_verdicts(request_id)
        if stored is not None:
            return stored
        verdicts = await self._retry.run(
            f"dedup {request_id}",
            lambda: self.inner.check_and_insert(collection, items, request_id=request_id, scope=scope))
        self.state.put_verdicts(request_id, verdicts)
        return verdicts


class JournaledSimilarity:
    """Keys its journal by content: the same question is never asked twice in a run."""

    def __init__(self, inner: SimilarityScorer, state: RunState, stage: str, *, retries: int = 3,
                 backoff_s: float = 2.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.inner, self.state, self.stage = inner, state, stage
        self._retry = Retrying(retries, backoff_s, sleep)

    async def similarity(self, reference: str, candidates: Sequence[str]) -> list[Similarity]:
        digest = hashlib.sha256(json.dumps([reference, list(candidates)]).encode()).hexdigest()[:32]
        key = self.state.call_key(self.stage, f"similarity-{digest}")
        stored = self.state.get_answer(key)
        if stored is not None:
            return [Similarity(*pair) for pair in stored]
        scores = await self._retry.run(f"similarity {key}", lambda: self.inner.similarity(reference, candidates))
        self.state.put_answer(key, [[s.rouge_l, s.cosine] for s in scores])
        return scores


class JournaledExecutor:
    """Executions keyed by request id: a resumed run replays a judged record instead of running it again.

    What is journaled (output trimmed to `JOURNALED_OUTPUT_CHARS`) is also what the stage gets the
    first time, so a replayed verdict is the same verdict. A rejected request is journaled too, and
    replayed as the same `PermanentError`.
    """

    def __init__(self, inner: CodeExecutor, state: RunState, *, retries: int = 3, backoff_s: float = 2.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.inner, self.state = inner, state
        self._retry = Retrying(retries, backoff_s, sleep)
        self.made = self.replayed = 0

    async def execute(self, request: vf.ExecuteRequest) -> vf.ExecuteResponse:
        key = request.request_id
        if not key:
            raise ValueError("a journaled execution needs a request id")
        stored = self.state.get_execution(key)
        if stored is not None:
            self.replayed += 1
            if isinstance(stored, str):
                raise PermanentError(stored)
            return stored
        try:
            response = await self._retry.run(f"execution {key}", lambda: self.inner.execute(request))
        except PermanentError as e:
            self.state.put_execution(key, str(e) or type(e).__name__)
            raise
        response = _trimmed(response)
        self.state.put_execution(key, response)
        self.made += 1
        return response


def _trimmed(response: vf.ExecuteResponse) -> vf.ExecuteResponse:
    trimmed = type(response)()
    trimmed.CopyFrom(response)
    trimmed.stdout = response.stdout[:JOURNALED_OUTPUT_CHARS]
    trimmed.stderr = response.stderr[:JOURNALED_OUTPUT_CHARS]
    for test in trimmed.test_results:
        test.stdout = test.stdout[:JOURNALED_OUTPUT_CHARS]
    return trimmed
