"""Scores of candidate texts against one reference, outside any collection (the `CompareTexts` call).

The same two measures a collection decides with, so a caller that thresholds these scores agrees
with dedup: ROUGE-L F from the service's own rouge-score-identical tokenizer and F expression, and
the cosine of the same lazily loaded, process-wide embedder (`embedder.get_embedder`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import LCSseq

from instructforge.dedup import rouge
from instructforge.dedup.config import Limits, text_problem
from instructforge.dedup.embedder import CLIENT, DEFAULT_MODEL, get_embedder, validate_model
from instructforge.dedup.tokenize import Vocabulary
from instructforge.runtime.errors import InvalidArgument, ViolationCollector


@dataclass(frozen=True, slots=True)
class Score:
    rouge_l_f: float
    cosine: float | None = None


def compare_texts(reference: str, candidates: list[str], *, semantic: bool = False, model: str = "",
                  device: str | None = None, limits: Limits | None = None) -> list[Score]:
    """One score per candidate, in order. Every bad field is named at once (`reference`,
    `candidates[i]`, `embedding_model`) before any work, so a bad call never loads a model."""
    limits = limits or Limits()
    model = model or DEFAULT_MODEL
    bad = ViolationCollector()
    bad.check(len(candidates) <= limits.max_batch_items, "candidates",
              f"at most {limits.max_batch_items} candidates per call")
    for field, text in (("reference", reference), *((f"candidates[{i}]", c) for i, c in enumerate(candidates))):
        problem = text_problem(text, limits)
        if problem:
            bad.add(field, problem)
    if semantic and model == CLIENT:
        bad.add("embedding_model", f"{CLIENT!r} means callers send vectors; CompareTexts embeds the texts, so name a model")
    try:
        validate_model(model, "embedding_model", client=True)
    except InvalidArgument as exc:
        bad.violations.extend(exc.violations)
    bad.raise_if_any()

    # A vocabulary of this call only: ids just need to agree between the reference and the candidates.
    vocab = Vocabulary()
    target = vocab.encode(reference)
    scores = []
    for candidate in candidates:
        seq = vocab.encode(candidate)
        # rouge-score's score(target=reference, prediction=candidate); F is symmetric, bit for bit.
        scores.append(rouge.f_measure(LCSseq.similarity(target, seq), len(target), len(seq)))
    if not semantic:
        return [Score(f) for f in scores]
    vectors = get_embedder(model, device).encode([reference, *candidates])
    # Unit vectors; float32 rounding can stray a few ulps past +-1, which a cosine never is.
    cosines = [min(1.0, max(-1.0, float(c))) for c in vectors[1:] @ vectors[0]]
    return [Score(f, c) for f, c in zip(scores, cosines, strict=True)]
