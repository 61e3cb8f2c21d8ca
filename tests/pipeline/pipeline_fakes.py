"""In-process fakes of the pipeline's two service protocols, for unit tests of stage logic.

`FakeLLM` answers Self-Instruct and Explore-Instruct prompts deterministically from the prompt text
(so two runs that send the same prompts get the same answers, in any order) and counts every call by
idempotency key. `MemoryNovelty` is the dedup service's CheckAndInsert over rouge-score itself (the
reference implementation of ROUGE-L the service must agree with). End-to-end tests through the real
services live elsewhere; these only stand in for the protocols.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence

from rouge_score import rouge_scorer

from instructforge.pipeline.protocols import (
    CollectionSpec,
    Comparison,
    Completion,
    FinishReason,
    GenerationRequest,
    NoveltyItem,
    NoveltyVerdict,
    PermanentError,
    Scope,
    Similarity,
)

_SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "vo", "pe", "zu", "da", "fi", "go", "hu", "be", "xo"]
VOCAB = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in ("n", "r", "s", "")][:600]


_VOCAB_BITS = len(VOCAB).bit_length()


def words(rng: random.Random, n: int) -> str:
    """The words `n` calls of `rng.choice(VOCAB)` draw (the same bits, the same rejections), without
    its two calls per word: this runs for every word of every fake answer, in the benchmark's fake
    too, which shares the machine with the run it measures."""
    getrandbits, size, drawn = rng.getrandbits, len(VOCAB), []
    for _ in range(n):
        r = getrandbits(_VOCAB_BITS)
        while r >= size:
            r = getrandbits(_VOCAB_BITS)
        drawn.append(VOCAB[r])
    return " ".join(drawn)


def _rng(*parts: object) -> random.Random:
    return random.Random(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest())


class KilledError(BaseException):
    """Stands in for kill -9: not an Exception, so no stage code can swallow it."""


class FakeLLM:
    """A deterministic Generator. `script(request) -> text` overrides the built-in answers."""

    def __init__(self, *, script: Callable[[GenerationRequest], str] | None = None, delay: float = 0.0,
                 die_after: int | None = None, reject: Callable[[GenerationRequest], bool] | None = None,
                 finish: FinishReason = FinishReason.STOP, seed: int = 0, order_seed: int = 0):
        self.script, self.delay, self.die_after, self.reject = script, delay, die_after, reject
        self.finish, self.seed, self.order_seed = finish, seed, order_seed
        self.keys: Counter[str] = Counter()
        self.prompts: list[str] = []
        self.arrived: list[str] = []  # keys (without run id) in the order their answers were returned
        self.arrived_keys: list[str] = []

    @property
    def repeated(self) -> int:
        return sum(n - 1 for n in self.keys.values() if n > 1)

    async def generate(self, request: GenerationRequest) -> Completion:
        if self.die_after is not None and len(self.prompts) >= self.die_after:
            raise KilledError(f"killed after {self.die_after} calls")
        self.keys[request.idempotency_key] += 1
        prompt = request.prompt if isinstance(request.prompt, str) else request.prompt[-1].content
        self.prompts.append(prompt)
        if self.delay:  # answers come back in a shuffled order
            await asyncio.sleep(self.delay * _rng(request.idempotency_key, self.order_seed).random())
        if self.reject and self.reject(request):
            raise PermanentError("rejected by the fake")
        # Answers depend on the prompt and on the key without its run id: the same call of two runs
        # (an uninterrupted one and a resumed one) gets the same answer, two rounds of one node do not.
        salt = request.idempotency_key.partition("/")[2]
        text = self.script(request) if self.script else self.answer(prompt, salt)
        self.arrived.append(salt)
        self.arrived_keys.append(request.idempotency_key)
        return Completion((text,), (self.finish,), prompt_tokens=len(prompt) // 4,
                          completion_tokens=len(text) // 4, cost_usd=0.001, model="fake-model")

    def answer(self, prompt: str, salt: str = "") -> str:
        seed = f"{self.seed}/{salt}"
        if m := re.search(r"Propose (\d+) new subtasks.*?give (\d+) examples", prompt):
            return extend_answer(prompt, int(m.group(1)), int(m.group(2)), seed)
        if m := re.search(r"Write (\d+) examples of the following subtask:", prompt):
            return enrich_answer(prompt, int(m.group(1)), seed)
        if m := re.search(r"(\d+)\. (\w+):\n\Z", prompt):
            return self_instruct_answer(prompt, int(m.group(1)), "Input:" in prompt.split("###")[1], seed)
        return "I cannot help with that."


def _example(rng: random.Random, numbered: int | None = None) -> str:
    prefix = f"{numbered}. " if numbered else ""
    return f"{prefix}Instruction: Explain {words(rng, 7)}.\nInput: {words(rng, 5)}\nOutput: {words(rng, 9)}"


def extend_answer(prompt: str, subtasks: int, examples: int, seed: object = 0) -> str:
    rng = _rng(prompt, seed)
    blocks = []
    for _ in range(subtasks):
        name = words(rng, 3).title()
        items = "\n###\n".join(_example(rng, i + 1) for i in range(examples))
        blocks.append(f"New subtask: {name}\nReason: {words(rng, 6)}.\nExamples:\n###\n{items}\n###")
    return "\n\n".join(blocks)


def enrich_answer(prompt: str, examples: int, seed: object = 0) -> str:
    rng = _rng(prompt, seed)
    return "###\n" + "\n###\n".join(_example(rng) for _ in range(examples)) + "\n###"


def self_instruct_answer(prompt: str, first: int, with_input: bool, seed: object = 0, last: int = 19) -> str:
    rng = _rng(prompt, seed)
    items = []
    for k in range(first, last + 1):
        head = "" if k == first else f"{k}. Instruction:\n"
        body = f"{head}Describe {words(rng, 8)}.\n\n"
        if with_input:
            body += f"{k}. Input:\n{words(rng, 4)}\n\n"
        items.append(body + f"{k}. Output:\n{words(rng, 10)}")
    return "\n###\n".join(items) + "\n###\n"


class MemoryNovelty:
    """CheckAndInsert with rouge-score's ROUGE-L (no stemming) and a bag-of-words cosine as 'embeddings'."""

    def __init__(self) -> None:
        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self.collections: dict[str, tuple[CollectionSpec, list[NoveltyItem]]] = {}
        self.answered: dict[str, list[NoveltyVerdict]] = {}
        self.calls = 0

    async def ensure_collection(self, name: str, spec: CollectionSpec) -> None:
        self.collections.setdefault(name, (spec, []))

    @staticmethod
    def _crosses(score: float, threshold: float, comparison: Comparison) -> bool:
        return score >= threshold if comparison == Comparison.GREATER_OR_EQUAL else score > threshold

    async def check_and_insert(self, collection: str, items: Sequence[NoveltyItem], *, request_id: str,
                               scope: Scope | None = None) -> list[NoveltyVerdict]:
        if request_id in self.answered:
            return self.answered[request_id]
        self.calls += 1
        spec, kept = self.collections[collection]
        scope = scope or spec.default_scope
        verdicts = []
        for item in items:
            pool = [k for k in kept if scope == Scope.COLLECTION or k.partition == item.partition]
            refs = [NoveltyItem("ref", text) for text in spec.references] + pool
            best, best_text, best_cos = 0.0, "", None
            for ref in refs:
                score = self.scorer.score(ref.text, item.text)["rougeL"].fmeasure
                if score > best or not best_text:
                    best, best_text = score, ref.text
            reason = ""
            if refs and self._crosses(best, spec.lexical_threshold, spec.lexical_comparison):
                reason = "lexical"
            elif spec.semantic_threshold is not None and refs:
                best_cos = max(cosine(ref.text, item.text) for ref in refs)
                if self._crosses(best_cos, spec.semantic_threshold, spec.semantic_comparison):
                    reason = "semantic"
            if not reason:
                kept.append(item)
            verdicts.append(NoveltyVerdict(item.id, not reason, reason, best, best_cos, best_text))
        self.answered[request_id] = verdicts
        return verdicts


def cosine(a: str, b: str) -> float:
    ca, cb = Counter(a.lower().split()), Counter(b.lower().split())
    dot = sum(ca[w] * cb[w] for w in ca)
    norm = (sum(v * v for v in ca.values()) * sum(v * v for v in cb.values())) ** 0.5
    return dot / norm if norm else 0.0


class MemorySimilarity:
    def __init__(self) -> None:
        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    async def similarity(self, reference: str, candidates: Sequence[str]) -> list[Similarity]:
        return [Similarity(self.scorer.score(reference, c)["rougeL"].fmeasure, cosine(reference, c))
                for c in candidates]


async def run_recipe(folder, recipe: dict | None, llm: FakeLLM, novelty: MemoryNovelty | None = None,
                     similarity: MemorySimilarity | None = None, *, run_id: str | None = None):
    """Start a run in `folder` (or resume it when `recipe` is None); returns (dataset, RunResult)."""
    from instructforge.pipeline.recipe import parse_recipe
    from instructforge.pipeline.runner import execute
    from instructforge.pipeline.state import RunState

    state = RunState.open(folder) if recipe is None else RunState.create(folder, parse_recipe(recipe), run_id=run_id)
    try:
        result = await execute(state, llm, novelty or MemoryNovelty(), similarity or MemorySimilarity())
        return result.records, result
    finally:
        state.close()


class VirtualClock(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready to run: code costs
    no time, only sleeps do: what a schedule costs in waiting, whatever the CPU (the pipeline bench's
    orchestration bound, and tests of how calls are scheduled)."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def _run_once(self) -> None:
        if not self._ready and self._scheduled:
            self._now = max(self._now, self._scheduled[0].when())
        super()._run_once()
