"""The published method, as the oracle: rouge-score's own tokenizer and LCS scorer in a sequential loop.

This is what Alpaca / Self-Instruct / Explore-Instruct run (tokenize once, ``_score_lcs`` against
every kept text, drop when the max exceeds the threshold). Deliberately unoptimised except for
stopping at the first pair that drops an item, which cannot change a decision, and, with
``skip_hopeless``, not scoring pairs whose multiset token overlap (computed here with ``Counter``,
independently of the service) caps F well below the threshold: F <= 2 * overlap / (a + b).
"""

from __future__ import annotations

import operator
from collections import Counter

from rouge_score import rouge_scorer

_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
_OPS = {">": operator.gt, ">=": operator.ge}


def tokens(text: str) -> list[str]:
    return _SCORER._tokenizer.tokenize(text)


def rouge_l(new: str | list[str], existing: str | list[str]) -> float:
    a = tokens(new) if isinstance(new, str) else new
    b = tokens(existing) if isinstance(existing, str) else existing
    return rouge_scorer._score_lcs(a, b).fmeasure


def novelty_filter(
    texts: list[str],
    threshold: float = 0.7,
    comparison: str = ">",
    references: list[str] = (),
    partitions: list[str] | None = None,
    reference_partitions: list[str] | None = None,
    scope_all: bool = True,
    skip_hopeless: bool = False,
) -> list[bool]:
    """Keep-if-novel decisions of the published loop (True = kept)."""
    drops = _OPS[comparison]
    kept: list[tuple[list[str], str | None, Counter]] = [
        (t, (reference_partitions or [""] * len(references))[k] or None, Counter(t))
        for k, t in enumerate(map(tokens, references))
    ]
    out = []
    for k, text in enumerate(texts):
        toks = tokens(text)
        bag = Counter(toks)
        part = partitions[k] if partitions is not None else ""
        dropped = False
        for other, other_part, other_bag in kept:
            if not scope_all and other_part is not None and other_part != part:
                continue
            if skip_hopeless and toks and other:
                overlap = sum((bag & other_bag).values())
                if 2 * overlap / (len(toks) + len(other)) < threshold - 1e-9:
                    continue
            if drops(rouge_scorer._score_lcs(toks, other).fmeasure, threshold):
                dropped = True
                break
        out.append(not dropped)
        if not dropped:
            kept.append((toks, part, bag))
    return out
