"""`DedupSimilarityScorer` against the real dedup service: the scores the self-consistency rule keeps
by, and its errors sorted into what a run retries and what it records."""

from __future__ import annotations

import socket

import pytest
from rouge_score import rouge_scorer

from instructforge.client import DedupClient
from instructforge.pipeline.bindings import DedupNoveltyFilter, DedupSimilarityScorer
from instructforge.pipeline.protocols import (
    CollectionSpec,
    NoveltyItem,
    PermanentError,
    RunRefused,
    Similarity,
    SimilarityScorer,
    TransientError,
)

REFERENCE = "Write a haiku about autumn leaves."
CANDIDATES = [REFERENCE, "Compose a haiku about leaves falling in autumn.", "List the planets of the solar system.",
              "", "写一首关于秋叶的俳句。"]


@pytest.fixture
async def dedup(start_service):
    running = await start_service("dedup")
    async with DedupClient.connect(f"127.0.0.1:{running.port}") as client:
        yield client


def _rouge_score(candidates: list[str]) -> list[float]:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [scorer.score(REFERENCE, c)["rougeL"].fmeasure for c in candidates]


async def test_lexical_scores_are_rouge_scores(dedup):
    scorer = DedupSimilarityScorer(dedup, semantic=False)
    assert isinstance(scorer, SimilarityScorer)
    scores = await scorer.similarity(REFERENCE, CANDIDATES)
    assert scores == [Similarity(f, None) for f in _rouge_score(CANDIDATES)]


@pytest.mark.slow  # loads the embedding model into this process (the service is in-process)
async def test_by_default_the_models_cosine_comes_too(dedup):
    scores = await DedupSimilarityScorer(dedup).similarity(REFERENCE, CANDIDATES)
    assert [s.rouge_l for s in scores] == _rouge_score(CANDIDATES)
    same, paraphrase, unrelated = (s.cosine for s in scores[:3])
    assert same == pytest.approx(1.0, abs=1e-5) and paraphrase > 0.7 and unrelated < 0.3
    assert all(isinstance(s.cosine, float) and -1 <= s.cosine <= 1 for s in scores)


async def test_a_rejected_request_is_permanent(dedup):
    scorer = DedupSimilarityScorer(dedup, embedding_model="no-such-model")
    with pytest.raises(PermanentError, match="INVALID_ARGUMENT.*embedding_model"):
        await scorer.similarity(REFERENCE, ["anything"])
    with pytest.raises(PermanentError, match=r"candidates\[1\]"):
        await DedupSimilarityScorer(dedup, semantic=False).similarity(REFERENCE, ["ok", "x" * 70_000])


async def test_a_token_the_service_refuses_refuses_the_run_not_one_request(start_service):
    running = await start_service("dedup", auth_tokens=["right-token"])
    async with DedupClient.connect(f"127.0.0.1:{running.port}", token="wrong-token") as client:
        with pytest.raises(RunRefused, match="UNAUTHENTICATED.*bearer token"):
            await DedupSimilarityScorer(client, semantic=False).similarity(REFERENCE, ["anything"])
        with pytest.raises(RunRefused, match="UNAUTHENTICATED"):
            await DedupNoveltyFilter(client).ensure_collection("seeds", CollectionSpec())
        with pytest.raises(RunRefused, match="UNAUTHENTICATED"):
            await DedupNoveltyFilter(client).check_and_insert("seeds", [NoveltyItem("id-1", "hello")], request_id="r/1")


async def test_an_unreachable_service_is_transient_and_nothing_to_score_calls_nothing():
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with DedupClient.connect(f"127.0.0.1:{port}", timeout=5) as client:
        scorer = DedupSimilarityScorer(client)
        assert await scorer.similarity(REFERENCE, []) == []
        with pytest.raises(TransientError, match="UNAVAILABLE"):
            await scorer.similarity(REFERENCE, ["anything"])
