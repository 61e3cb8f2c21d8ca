"""What every stage gets (the run's state and its services) and the stage/checkpoint discipline.

A stage runs once: when its checkpoint is marked done, a resumed run loads the checkpoint instead of
replaying the stage. A stage interrupted midway is replayed from the journal (see `state`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from instructforge.pipeline.calls import (
    JournaledExecutor,
    JournaledGenerator,
    JournaledNovelty,
    JournaledSimilarity,
    Slots,
)
from instructforge.pipeline.protocols import (
    NO_COMPLETION,
    CodeExecutor,
    Completion,
    GenerationRequest,
    Generator,
    NoveltyFilter,
    NoveltyItem,
    NoveltyVerdict,
    PermanentError,
    SimilarityScorer,
)
from instructforge.pipeline.records import Record
from instructforge.pipeline.state import RunState
from instructforge.pipeline.stats import NullReporter, Reporter, StageStats

T = TypeVar("T")


@dataclass
class RunContext:
    state: RunState
    generator: Generator
    novelty: NoveltyFilter
    similarity: SimilarityScorer | None = None
    verifier: CodeExecutor | None = None
    reporter: Reporter = field(default_factory=NullReporter)
    model: str = "default"
    stats: list[StageStats] = field(default_factory=list)
    # Calls a stage sent beyond need and did not wait for: paid all the same, so the run waits for
    # them before its summary (the journal then counts them) instead of cancelling them.
    settling: set[asyncio.Future] = field(default_factory=set)

    @classmethod
    def journaled(cls, state: RunState, generator: Generator, novelty: NoveltyFilter,
                  similarity: SimilarityScorer | None = None, *, verifier: CodeExecutor | None = None,
                  reporter: Reporter | None = None, model: str | None = None, backlog: int = 0) -> RunContext:
        """Services wrapped so that a resumed run replays what this run already received; `backlog`: LLM
        calls out beyond `concurrency`, waiting at the gateway (see `session.gateway_backlog`)."""
        recipe = state.recipe
        bounds = {"retries": recipe.call_retries, "backoff_s": recipe.retry_backoff_s}
        return cls(
            state=state,
            generator=JournaledGenerator(generator, state, concurrency=recipe.concurrency, backlog=backlog,
                                         rejections_to_stop=recipe.rejections_to_stop, **bounds),
            novelty=JournaledNovelty(novelty, state, **bounds),
            similarity=JournaledSimilarity(similarity, state, "similarity", **bounds) if similarity else None,
            verifier=JournaledExecutor(verifier, state, **bounds) if verifier else None,
            reporter=reporter or NullReporter(),
            model=model or recipe.model or "default",
        )

    async def settle(self, *, cancel: bool = False) -> None:
        """Waits for the calls in `settling` (cancels them first with `cancel`, when the run failed)."""
        if cancel:
            for task in self.settling:
                task.cancel()
        await asyncio.gather(*self.settling, return_exceptions=True)
        self.settling.clear()

    def call_slots(self) -> Slots | None:
        """The LLM call slots of a journaled generator (None otherwise): how many calls may be out at once."""
        return self.generator.slots if isinstance(self.generator, JournaledGenerator) else None

    @property
    def run_id(self) -> str:
        return self.state.run_id

    def key(self, stage: str, subject: str, attempt: int | str = 0) -> str:
        return self.state.call_key(stage, subject, attempt)

    def collection(self, purpose: str) -> str:
        """A dedup collection name of this run (lower-case letters, digits, '.', '_', '-')."""
        base = re.sub(r"[^a-z0-9._-]+", "-", self.run_id.lower()).strip("-._") or "run"
        return f"{base[:100]}.{purpose}"

    def call_seed(self, request: GenerationRequest) -> int:
        """A seed of the call's own, from the recipe seed and the call's key without the run id.

        Two calls of one run that happen to carry the same prompt (two enrich rounds of one node, say)
        are two samples, as in the published methods; without a seed of their own the gateway's
        content-addressed cache would rightly answer the second with the first's text. The seed
        leaves out the run id, so a re-run of the recipe makes the same calls (and hits the cache).
        """
        identity = request.idempotency_key.partition("/")[2]
        base = request.sampling.seed if request.sampling.seed is not None else self.state.recipe.seed
        digest = hashlib.sha256(f"{base}/{identity}".encode()).digest()
        return int.from_bytes(digest[:6], "big")

    async def complete(self, request: GenerationRequest, stats: StageStats, *,
                       unless: Callable[[], bool] | None = None, prompt: Callable[[], str] | None = None) -> Completion:
        """One LLM call, counted once it is sent or replayed from the journal; a permanently rejected
        one is a counted drop with no samples. `unless` and `prompt` are `JournaledGenerator.generate`'s:
        a call sent ahead of need may go unsent (`CallNotNeeded`), and one that goes unsent is not
        counted; other generators always send."""
        request = replace(request, sampling=replace(request.sampling, seed=self.call_seed(request)))
        sent = False

        def build() -> str | tuple:
            nonlocal sent
            sent = True
            return prompt() if prompt is not None else request.prompt

        try:
            if isinstance(self.generator, JournaledGenerator):
                completion = await self.generator.generate(request, unless=unless, prompt=build)
            else:
                completion = await self.generator.generate(replace(request, prompt=build()))
        except PermanentError:
            stats.calls += 1
            stats.drop("call_rejected")
            return NO_COMPLETION
        except BaseException:
            stats.calls += sent
            raise
        stats.calls += 1
        return completion

    async def check_novelty(self, collection: str, items: list[NoveltyItem], stage: str, subject: str,
                            chunk: int = 2000) -> list[NoveltyVerdict]:
        """CheckAndInsert in order, in chunks; each chunk's request id is stable, so it is judged once."""
        verdicts: list[NoveltyVerdict] = []
        for start in range(0, len(items), chunk):
            verdicts += await self.novelty.check_and_insert(
                collection, items[start: start + chunk], request_id=self.key(stage, subject, f"dedup-{start // chunk}"))
        return verdicts

    async def stage(self, name: str, body: Callable[[StageStats], Awaitable[T]],
                    save: Callable[[T, Path], None], load: Callable[[Path], T]) -> T:
        """Run `body` unless a finished checkpoint exists; save its result and mark it done."""
        done = self.state.stage_done(name)
        path = self.state.checkpoint_path(name)
        if done is not None:
            self.stats.append(done)
            return load(path)
        self.state.mark_started(name)
        self.reporter.stage_started(name, None)  # the body sets the total once it knows it
        stats = StageStats(name)
        result = await body(stats)
        save(result, path)
        self.state.mark_done(name, stats)
        self.stats.append(stats)
        self.reporter.stage_finished(name, stats)
        return result


def save_records(records: list[Record], path: Path) -> None:
    """A checkpoint of records, one JSON per line, replaced atomically."""
    path = path.with_suffix(".jsonl")
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load_records(path: Path) -> list[Record]:
    path = path.with_suffix(".jsonl")
    with path.open(encoding="utf-8") as f:
        return [Record.from_dict(json.loads(line)) for line in f if line.strip()]


async def gather_bounded(factories: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Like gather, but with at most `limit` coroutines alive at once; results in input order."""
    factories = list(factories)
    results: list[T] = [None] * len(factories)  # type: ignore[list-item]
    cursor = iter(range(len(factories)))

    async def worker() -> None:
        for i in cursor:
            results[i] = await factories[i]()

    try:
        async with asyncio.TaskGroup() as group:  # one failure cancels the rest
            for _ in range(min(limit, len(factories))):
                group.create_task(worker())
    except BaseExceptionGroup as failed:  # callers catch RunInterrupted & co., not groups
        raise failed.exceptions[0] from None
    return results
