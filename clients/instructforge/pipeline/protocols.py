"""The services a recipe needs, as small async interfaces.

Stage logic is written against these, not against gRPC, so it runs unchanged over the generator
gateway, the dedup service and the verifier (bound in a thin adapter), or over in-process fakes in
unit tests. The value types mirror the protos (`generator/v1`, `dedup/v1`) field for field where they
overlap; the verifier's requests and responses are its `verifier/v1` messages themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from instructforge.verifier.v1 import verifier_pb2


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"  # the text is truncated: parsers drop the last, cut item
    CONTENT_FILTER = "content_filter"


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class Sampling:
    """Every decoding parameter that can change an answer; None leaves the deployment's default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    logit_bias: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One prompt: plain text (completion models) or chat messages, never both."""

    model: str
    prompt: str | tuple[Message, ...]
    sampling: Sampling = field(default_factory=Sampling)
    n: int = 1
    # Same key, same stored answer, never a second paid call (see state.call_key).
    idempotency_key: str = ""
    run_id: str = ""
    record_id: str = ""
    template_version: str = ""


@dataclass(frozen=True, slots=True)
class Completion:
    texts: tuple[str, ...]
    finish_reasons: tuple[FinishReason, ...]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cache_hit: bool = False
    model: str = ""  # the provider model that answered

    def samples(self) -> zip:
        """(text, finish_reason) per sample."""
        return zip(self.texts, self.finish_reasons, strict=True)


NO_COMPLETION = Completion((), ())


class GenerationError(Exception):
    """A call that did not produce a completion."""


class TransientError(GenerationError):
    """Worth retrying later (unavailable, rate limited, deadline): bounded retries, then the run stops
    with its state intact, and `iforge resume` carries on."""


class PermanentError(GenerationError):
    """This request will never succeed (rejected prompt, content policy): recorded and counted as a drop."""


class RunRefused(GenerationError):
    """A service refused the run, not one request: a wrong or missing token, no permission, a model the
    gateway does not serve, a provider key the provider rejects. No call can succeed until that is
    fixed, so the run stops at once, records no call as rejected, and `iforge resume` carries on after
    the fix (were each call a drop, the run would end "finished" with nothing, and a resume would
    replay the drops)."""


class CallsRejected(RunRefused):
    """Every LLM call for a while was rejected, none accepted in between: a rejection that every call
    shares (a prompt longer than the model's context, a setting the model refuses, a used-up quota) is
    the recipe's, the gateway's or the account's doing, not each record's. The run stops and forgets
    those rejections, so that `iforge resume` asks again once the cause is fixed."""


@runtime_checkable
class Generator(Protocol):
    async def generate(self, request: GenerationRequest) -> Completion: ...


class Comparison(StrEnum):
    GREATER = "greater"  # drop when score > threshold (the seeds' rule: equal is kept)
    GREATER_OR_EQUAL = "greater_or_equal"


class Scope(StrEnum):
    PARTITION = "partition"  # compare only within the item's partition (a tree node)
    COLLECTION = "collection"


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """A dedup collection: ROUGE-L always, embeddings when `semantic_threshold` is set."""

    lexical_threshold: float = 0.7
    lexical_comparison: Comparison = Comparison.GREATER
    semantic_threshold: float | None = None
    semantic_comparison: Comparison = Comparison.GREATER
    default_scope: Scope = Scope.COLLECTION
    references: tuple[str, ...] = ()  # count as kept (seed tasks) but are never entries


@dataclass(frozen=True, slots=True)
class NoveltyItem:
    id: str
    text: str
    partition: str = ""


@dataclass(frozen=True, slots=True)
class NoveltyVerdict:
    id: str
    kept: bool
    reason: str = ""  # "exact_duplicate" | "lexical" | "semantic" when dropped
    max_rouge_l: float = 0.0
    max_cosine: float | None = None
    best_match: str = ""


@runtime_checkable
class NoveltyFilter(Protocol):
    async def ensure_collection(self, name: str, spec: CollectionSpec) -> None:
        """Create the collection, or accept an existing one (a resumed run finds its own)."""

    async def check_and_insert(self, collection: str, items: Sequence[NoveltyItem], *,
                               request_id: str, scope: Scope | None = None) -> list[NoveltyVerdict]:
        """Judge items in order against the collection and the batch's earlier kept items; insert the
        kept. A repeated `request_id` answers the first call's verdicts and inserts nothing."""


@dataclass(frozen=True, slots=True)
class Similarity:
    rouge_l: float
    cosine: float | None = None


@runtime_checkable
class SimilarityScorer(Protocol):
    async def similarity(self, reference: str, candidates: Sequence[str]) -> list[Similarity]:
        """ROUGE-L F (and embedding cosine where available) of each candidate against `reference`."""


@runtime_checkable
class CodeExecutor(Protocol):
    async def execute(self, request: verifier_pb2.ExecuteRequest) -> verifier_pb2.ExecuteResponse:
        """Run a program against its tests. The program's own failures are outcomes in the response;
        raises `TransientError` (busy, unavailable: retry later) or `PermanentError` (rejected request)."""
