"""CompareTexts over gRPC: rouge-score's ROUGE-L F bit for bit, the real model's cosine, named bad fields."""

from __future__ import annotations

import random

import grpc
import numpy as np
import pytest
from rouge_score import rouge_scorer

from instructforge.dedup.embedder import get_embedder
from instructforge.dedup.v1 import dedup_pb2 as pb
from instructforge.dedup.v1 import dedup_pb2_grpc as pb_grpc

from .test_grpc import details

_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

CAKE = "How do I bake a chocolate cake?"
CAKE2 = "What is the recipe for making a chocolate cake?"
VACCINE = "Explain how vaccines train the immune system."

# Edge cases of rouge-score's tokenizer and F expression: empty and token-less texts (punctuation,
# Chinese, Cyrillic), "C#"/"C++" both "c", the Kelvin sign lowering to "k", repeated tokens, and
# 8- vs 12-token texts with an LCS of 7, where F = 2*7/(8+12) evaluates to 0.7000000000000001.
PAIRS = [
    ("", ["", "anything at all", "..."]),
    ("Write a poem.", ["", "!!!", "写一首诗。", "Напиши стихотворение."]),
    ("写一首关于海洋的诗。", ["写一首关于海洋的诗。", "Write a poem about the ocean."]),
    ("Compare C# and C++ for games.", ["Compare c and c for games", "compare C++ and C# for GAMES!"]),
    ("Convert 300 \u212a to Celsius.", ["convert 300 k to celsius", "Convert 300 K into Fahrenheit."]),
    ("the the the cat the", ["the cat the the the", "cat", "the"]),
    ("a b c d e f g h", ["a b c d e f g x y z q r", "h g f e d c b a", "a b c d e f g h"]),
    (CAKE, [CAKE2, VACCINE, CAKE.upper()]),
]


def _random_pairs(n: int) -> list[tuple[str, list[str]]]:
    """Texts over a small vocabulary, so that long and short common subsequences are frequent."""
    rng = random.Random(7)
    vocab = ["make", "write", "list", "explain", "the", "a", "of", "to", "cat", "code", "3", "x2", "list,"]

    def text() -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 30))) + rng.choice(["", ".", "?"])

    return [(text(), [text() for _ in range(25)]) for _ in range(n)]


@pytest.fixture
async def stub(start_service):
    running = await start_service("dedup", max_text_bytes=4096)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.DedupServiceStub(channel)


async def test_rouge_l_is_rouge_scores_f_exactly(stub):
    for reference, candidates in PAIRS + _random_pairs(20):
        reply = await stub.CompareTexts(pb.CompareTextsRequest(reference=reference, candidates=candidates))
        expected = [_SCORER.score(reference, c)["rougeL"].fmeasure for c in candidates]
        assert [s.rouge_l_f for s in reply.scores] == expected, (reference, candidates)
        assert not any(s.HasField("cosine_similarity") for s in reply.scores)  # not asked for
    tie = await stub.CompareTexts(pb.CompareTextsRequest(reference=PAIRS[6][0], candidates=[PAIRS[6][1][0]]))
    assert tie.scores[0].rouge_l_f == 0.7000000000000001


async def test_cosine_comes_from_the_embedding_model(stub):
    candidates = [CAKE, CAKE2, VACCINE, "", "如何烤巧克力蛋糕？"]
    reply = await stub.CompareTexts(pb.CompareTextsRequest(reference=CAKE, candidates=candidates, semantic=True))
    cosines = [s.cosine_similarity for s in reply.scores]
    assert all(s.HasField("cosine_similarity") for s in reply.scores) and all(-1 <= c <= 1 for c in cosines)
    assert cosines[0] == pytest.approx(1.0, abs=1e-5)
    assert cosines[1] > 0.8 and cosines[2] < 0.2  # a paraphrase, an unrelated instruction
    vectors = get_embedder("all-MiniLM-L6-v2").encode([CAKE, *candidates])
    assert np.allclose(cosines, vectors[1:] @ vectors[0], atol=1e-5)
    assert [s.rouge_l_f for s in reply.scores] == [_SCORER.score(CAKE, c)["rougeL"].fmeasure for c in candidates]
    named = await stub.CompareTexts(pb.CompareTextsRequest(
        reference=CAKE, candidates=candidates, semantic=True, embedding_model="all-MiniLM-L6-v2"))
    assert named == reply


@pytest.mark.parametrize(
    "request_, fields",
    [
        (pb.CompareTextsRequest(reference="x"), ["candidates"]),
        (pb.CompareTextsRequest(reference="x", candidates=["y"] * 1001), ["candidates"]),
        (pb.CompareTextsRequest(reference="x" * 70000, candidates=["y"]), ["reference"]),
        (pb.CompareTextsRequest(reference="x", candidates=["y", "z" * 70000]), ["candidates[1]"]),
        # Within the proto's 65536 characters, over this node's max_text_bytes (4096).
        (pb.CompareTextsRequest(reference="x", candidates=["y", "é" * 3000]), ["candidates[1]"]),
        (pb.CompareTextsRequest(reference="x", candidates=["y"], semantic=True, embedding_model="no-such-model"),
         ["embedding_model"]),
    ],
)
async def test_bad_input_names_the_field(stub, request_, fields):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CompareTexts(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)[1] == fields
    ok = await stub.CompareTexts(pb.CompareTextsRequest(reference="a b", candidates=["a"]))
    assert ok.scores[0].rouge_l_f == _SCORER.score("a b", "a")["rougeL"].fmeasure
