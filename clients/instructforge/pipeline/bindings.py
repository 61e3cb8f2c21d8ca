"""The pipeline's service interfaces bound to the real services over gRPC.

Stages are written against small protocols (`protocols.Generator`, `protocols.NoveltyFilter`,
`protocols.SimilarityScorer`, `protocols.CodeExecutor`); this module implements them with the typed
clients, so a stage never sees gRPC (nor protobuf, except the verify stage, which builds the
verifier's `v1` requests itself). Errors are sorted the way the run needs them: what may succeed
later (unavailable, rate limited, deadline) becomes `TransientError`, so the run stops resumable
after its bounded retries; what never will (bad request, content policy) becomes `PermanentError`,
recorded as a drop; a refusal of the run itself (token, permission, a model nobody serves) becomes
`RunRefused`, which stops the run resumable without recording anything as a drop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from instructforge.client import ApiError, DedupClient, GeneratorClient, VerifierClient
from instructforge.dedup.v1 import dedup_pb2 as dd
from instructforge.generator.v1 import generator_pb2 as gen
from instructforge.pipeline.generation_stream import GenerationStream
from instructforge.pipeline.protocols import (
    CollectionSpec,
    Comparison,
    Completion,
    FinishReason,
    GenerationRequest,
    NoveltyItem,
    NoveltyVerdict,
    PermanentError,
    RunRefused,
    Scope,
    Similarity,
    TransientError,
)
from instructforge.verifier.v1 import verifier_pb2 as vf

_ROLES = {"system": gen.ROLE_SYSTEM, "user": gen.ROLE_USER, "assistant": gen.ROLE_ASSISTANT}
_FINISH = {
    gen.FINISH_REASON_STOP: FinishReason.STOP,
    gen.FINISH_REASON_LENGTH: FinishReason.LENGTH,
    gen.FINISH_REASON_CONTENT_FILTER: FinishReason.CONTENT_FILTER,
}
_COMPARISON = {Comparison.GREATER: dd.COMPARISON_GREATER, Comparison.GREATER_OR_EQUAL: dd.COMPARISON_GREATER_OR_EQUAL}
_SCOPE = {Scope.PARTITION: dd.SCOPE_PARTITION, Scope.COLLECTION: dd.SCOPE_COLLECTION}
_DROP_REASON = {
    dd.DROP_REASON_EXACT_DUPLICATE: "exact_duplicate",
    dd.DROP_REASON_LEXICAL: "lexical",
    dd.DROP_REASON_SEMANTIC: "semantic",
}


# The gateway serves no such model, or its provider knows no such model: the recipe or the route is wrong.
UNSERVED_MODEL_REASONS = frozenset({"MODEL_NOT_FOUND", "PROVIDER_MODEL_NOT_FOUND"})


def _sorted_error(error: ApiError, what: str) -> Exception:
    """Refusals of the caller (token, permission; a provider refusing the gateway's key is one too), a
    service without the method, and a model nobody serves stop the run: no other call would fare better."""
    if error.refuses_caller or error.code is grpc.StatusCode.UNIMPLEMENTED or error.reason in UNSERVED_MODEL_REASONS:
        kind: type[Exception] = RunRefused
    else:
        kind = TransientError if error.temporary else PermanentError
    reason = f" ({error.reason})" if error.reason else ""
    return kind(f"{what}: {error.code.name}{reason}: {error.message}")


def generate_request(request: GenerationRequest, *, content_cache: bool = True) -> gen.GenerateRequest:
    """The gateway request for a pipeline generation, every sampling parameter carried over;
    `content_cache=False`: the gateway neither looks the answer up by content nor stores it so
    (CACHE_POLICY_BYPASS; the idempotency key still replays it)."""
    s = request.sampling
    sampling = gen.SamplingParams(
        temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, max_tokens=s.max_tokens, seed=s.seed,
        presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty,
        repetition_penalty=s.repetition_penalty, stop_sequences=list(s.stop), logit_bias=dict(s.logit_bias),
    )
    message = gen.GenerateRequest(
        model=request.model, sample_count=request.n, sampling=sampling, idempotency_key=request.idempotency_key,
        run_id=request.run_id, record_id=request.record_id, template_version=request.template_version,
    )
    if not content_cache:
        message.cache_policy = gen.CACHE_POLICY_BYPASS
    if isinstance(request.prompt, str):
        message.text = request.prompt
    else:
        message.chat.messages.extend(gen.ChatMessage(role=_ROLES[m.role], content=m.content) for m in request.prompt)
    return message


class GatewayGenerator:
    """`protocols.Generator` through the generator gateway: every call over one stream call
    (`stream=True`, what a run uses: `generation_stream.py` says why), or one unary Generate each.
    `content_cache`: see `generate_request`."""

    def __init__(self, client: GeneratorClient, *, stream: bool = False, content_cache: bool = True):
        self._client = client
        self._streaming = stream
        self._content_cache = content_cache
        self._stream: GenerationStream | None = None
        self._opening: asyncio.Future[GenerationStream] | None = None  # shared by the calls that find none open
        self._batches = True  # until the gateway says it has no StreamGenerateBatches

    async def generate(self, request: GenerationRequest) -> Completion:
        what = f"generation for {request.record_id or request.idempotency_key}"
        message = generate_request(request, content_cache=self._content_cache)
        try:
            if self._streaming:
                reply = await self._stream_call(message, what)
            else:
                reply = await self._client.generate(message)
        except ApiError as error:
            raise _sorted_error(error, what) from None
        samples = sorted(reply.samples, key=lambda s: s.index)
        return Completion(
            texts=tuple(s.text for s in samples),
            finish_reasons=tuple(_FINISH.get(s.finish_reason, FinishReason.STOP) for s in samples),
            prompt_tokens=reply.usage.prompt_tokens, completion_tokens=reply.usage.completion_tokens,
            cost_usd=reply.cost_usd, cache_hit=reply.cache_hit, model=reply.provider_model,
        )

    async def _stream_call(self, message: gen.GenerateRequest, what: str) -> gen.GenerateResponse:
        """Over the open stream, else a new one; a call that met a gateway without StreamGenerateBatches
        goes again at once over StreamGenerate (it was never answered, so nothing is paid twice)."""
        while True:
            stream = self._stream
            if stream is None or stream.closed:
                if self._opening is None or self._opening.done():
                    self._opening = asyncio.ensure_future(self._open())
                stream = await asyncio.shield(self._opening)
            try:
                return await stream.call(message, self._client.timeout, what)
            except TransientError:
                if not stream.batches_unsupported:
                    raise
                self._batches = False

    async def _open(self) -> GenerationStream:
        """A new stream, once the gateway has admitted this client on a unary call.

        Why ask first: a gateway that refuses a stream call (a wrong token) ends it at once, and a
        request the client is still sending then fails locally; grpc reports that as INTERNAL in place
        of the gateway's UNAUTHENTICATED. A unary call has no such race, so the run learns the real
        reason (`RunRefused`). A gateway without ListModels is let through: the stream will tell."""
        try:
            await self._client.list_models(gen.ListModelsRequest(page_size=1))
        except ApiError as error:
            if error.refuses_caller or error.temporary:
                raise _sorted_error(error, "the generator gateway") from None
        self._stream = GenerationStream(self._client, batches=self._batches)
        return self._stream

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.close()


class DedupNoveltyFilter:
    """`protocols.NoveltyFilter` through the dedup service's collections and CheckAndInsert."""

    def __init__(self, client: DedupClient):
        self._client = client

    async def ensure_collection(self, name: str, spec: CollectionSpec) -> None:
        config = dd.CollectionConfig(
            lexical=dd.LexicalConfig(threshold=spec.lexical_threshold,
                                     comparison=_COMPARISON[spec.lexical_comparison]),
            default_scope=_SCOPE[spec.default_scope],
            references=[dd.Item(id=f"ref-{i}", text=text) for i, text in enumerate(spec.references)],
        )
        if spec.semantic_threshold is not None:
            config.semantic.threshold = spec.semantic_threshold
            config.semantic.comparison = _COMPARISON[spec.semantic_comparison]
        try:
            await self._client.create_collection(dd.CreateCollectionRequest(name=name, config=config))
        except ApiError as error:
            if error.code.name != "ALREADY_EXISTS":  # a resumed run finds the collection it made
                raise _sorted_error(error, f"creating dedup collection {name!r}") from None

    async def check_and_insert(self, collection: str, items: Sequence[NoveltyItem], *, request_id: str,
                               scope: Scope | None = None) -> list[NoveltyVerdict]:
        request = dd.CheckAndInsertRequest(
            collection=collection, request_id=request_id,
            items=[dd.Item(id=item.id, text=item.text, partition=item.partition) for item in items],
            scope=_SCOPE[scope] if scope is not None else dd.SCOPE_UNSPECIFIED,
        )
        try:
            reply = await self._client.check_and_insert(request)
        except ApiError as error:
            raise _sorted_error(error, f"novelty check in {collection!r}") from None
        return [
            NoveltyVerdict(
                id=result.id,
                kept=result.verdict == dd.VERDICT_KEPT,
                reason=_DROP_REASON.get(result.drop_reason, ""),
                max_rouge_l=result.max_rouge_l_f,
                max_cosine=result.max_cosine_similarity if result.HasField("max_cosine_similarity") else None,
                best_match=result.best_match.text,
            )
            for result in reply.results
        ]


class DedupSimilarityScorer:
    """`protocols.SimilarityScorer` through the dedup service's CompareTexts.

    The service's ROUGE-L is rouge-score's exactly and its cosine is the model the collections use,
    so a self-consistency threshold means what it means in the published recipe and in dedup. Cosine
    is asked for unless `semantic=False`: it costs one small embedding batch per call and is recorded
    with each trial whichever metric the recipe keeps by.
    """

    def __init__(self, client: DedupClient, *, semantic: bool = True, embedding_model: str = ""):
        self._client = client
        self._semantic = semantic
        self._embedding_model = embedding_model

    async def similarity(self, reference: str, candidates: Sequence[str]) -> list[Similarity]:
        if not candidates:  # the API requires candidates; nothing to score is no call
            return []
        request = dd.CompareTextsRequest(reference=reference, candidates=list(candidates), semantic=self._semantic,
                                         embedding_model=self._embedding_model)
        try:
            reply = await self._client.compare_texts(request)
        except ApiError as error:
            raise _sorted_error(error, f"comparing {len(candidates)} texts") from None
        return [Similarity(s.rouge_l_f, s.cosine_similarity if s.HasField("cosine_similarity") else None)
                for s in reply.scores]


class VerifierExecutor:
    """`protocols.CodeExecutor` through the verifier's unary Execute, at most `in_flight` at once.

    Unary calls keep each execution's failure and retry its own (a broken stream would fail all of
    them). The bound defaults to twice the verifier's capacity (`GetSandboxInfo`, asked once): every
    sandbox has its next program already waiting, and the verifier's queue never overflows into
    RESOURCE_EXHAUSTED because of this run alone.
    """

    def __init__(self, client: VerifierClient, *, in_flight: int | None = None):
        self._client = client
        self._in_flight = in_flight
        self._slots: asyncio.Semaphore | None = None
        self._sizing = asyncio.Lock()

    @property
    def in_flight(self) -> int | None:
        """The bound on executions at once; None until the first execution asked the verifier."""
        return self._in_flight

    async def _gate(self) -> asyncio.Semaphore:
        async with self._sizing:
            if self._slots is None:
                if self._in_flight is None:
                    try:
                        info = await self._client.get_sandbox_info(vf.GetSandboxInfoRequest())
                    except ApiError as error:
                        raise _sorted_error(error, "asking the verifier for its capacity") from None
                    self._in_flight = 2 * max(1, info.capacity)
                self._slots = asyncio.Semaphore(self._in_flight)
        return self._slots

    async def execute(self, request: vf.ExecuteRequest) -> vf.ExecuteResponse:
        # The client's deadline covers waiting for a sandbox and a default-limit run; a longer time
        # limit asked for lengthens it, or the call would be cut off before the program is.
        timeout = self._client.timeout + request.limits.timeout_ms / 1000
        async with await self._gate():
            try:
                return await self._client.execute(request, timeout=timeout)
            except ApiError as error:
                raise _sorted_error(error, f"execution {request.request_id}") from None
