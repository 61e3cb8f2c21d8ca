"""The ordered keep-if-novel decision over one batch, and the verdicts it produces.

Item ``j`` is compared with what is stored (in its scope) and with the items of the same batch kept
before it, exactly as the seeds' sequential loop does. Reasons are tried in a fixed order: exact
duplicate, lexical (ROUGE-L), semantic. The lexical and semantic scores against stored entries are
computed for the whole batch beforehand (vectorised); only the within-batch part is sequential.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from instructforge.dedup import rouge

KEPT, EXACT, LEXICAL, SEMANTIC = "", "exact_duplicate", "lexical", "semantic"
REASONS = (KEPT, EXACT, LEXICAL, SEMANTIC)


@dataclass(frozen=True)
class Item:
    text: str
    id: str = ""
    partition: str = ""


@dataclass
class Match:
    """An earlier text: a stored entry (``entry >= 0``) or an item kept earlier in the same batch."""

    entry: int
    batch_index: int
    id: str
    text: str
    partition: str
    reference: bool
    rouge_l_f: float
    cosine: float | None = None


@dataclass
class Verdict:
    index: int
    id: str
    kept: bool
    reason: str = KEPT
    entry: int = -1  # the item's entry number once inserted
    best: Match | None = None  # what decided the drop, else the closest text
    max_rouge_l_f: float = 0.0
    max_cosine: float | None = None


@dataclass
class Judged:
    """Everything :func:`decide` needs about a batch, computed beforehand."""

    items: list[Item]
    parts: np.ndarray
    lengths: np.ndarray
    stored_lexical: dict[int, tuple[float, int]]  # item -> (best F, entry) against stored entries
    within: dict[int, list[tuple[int, float]]]  # later item -> [(earlier item, F)] for scored pairs
    stored_twin: Callable[[int], int | None]  # item -> a stored byte-identical entry in scope
    vectors: np.ndarray | None = None
    stored_semantic: tuple[np.ndarray, np.ndarray] | None = None  # (scores, entries), top-1 per item
    kept_order: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Rules:
    lexical_threshold: float
    lexical_comparison: str
    semantic_threshold: float | None
    semantic_comparison: str
    drop_exact_duplicates: bool

    def lexical_drops(self, f: float) -> bool:
        return bool(rouge.drops(f, self.lexical_threshold, self.lexical_comparison))

    def semantic_drops(self, cosine: float) -> bool:
        return self.semantic_threshold is not None and bool(
            rouge.drops(cosine, self.semantic_threshold, self.semantic_comparison)
        )


def decide(batch: Judged, rules: Rules, scope_all: bool) -> list[tuple[str, tuple, tuple | None]]:
    """Per item: (reason, lexical best, semantic best); bests are ``("entry"|"batch", number, score)``.

    An exact duplicate drops only where ROUGE-L would drop it too (identical tokens score 1.0), unless
    ``drop_exact_duplicates`` extends it to texts ROUGE-L cannot see; so by default every decision is
    rouge-score's.
    """
    exact_by_rouge = rules.lexical_drops(1.0)
    kept_texts: dict[str, list[int]] = {}
    kept_by_part: dict[int, list[int]] = {}
    kept_all: list[int] = []
    kept = np.zeros(len(batch.items), bool)
    out = []
    for j, item in enumerate(batch.items):
        part = int(batch.parts[j])
        has_tokens = bool(batch.lengths[j])
        pool = kept_all if scope_all else kept_by_part.get(part, [])
        reason, lex, sem = KEPT, None, None
        if (has_tokens and exact_by_rouge) or rules.drop_exact_duplicates:
            twin = batch.stored_twin(j)
            score = 1.0 if has_tokens else 0.0
            if twin is not None:
                reason, lex = EXACT, ("entry", twin, score)
            else:
                earlier = [i for i in kept_texts.get(item.text, ()) if scope_all or int(batch.parts[i]) == part]
                if earlier:
                    reason, lex = EXACT, ("batch", earlier[0], score)
        if reason == KEPT:
            best = batch.stored_lexical.get(j)
            if best is not None:
                lex = ("entry", best[1], best[0])
            for i, f in batch.within.get(j, ()):
                if kept[i] and (scope_all or int(batch.parts[i]) == part) and (lex is None or f > lex[2]):
                    lex = ("batch", i, f)
            if lex is not None and rules.lexical_drops(lex[2]):
                reason = LEXICAL
        if batch.vectors is not None:
            sem = _semantic_best(batch, j, pool)
            if reason == KEPT and sem is not None and rules.semantic_drops(sem[2]):
                reason = SEMANTIC
        if reason == KEPT:
            kept[j] = True
            kept_texts.setdefault(item.text, []).append(j)
            kept_by_part.setdefault(part, []).append(j)
            kept_all.append(j)
        out.append((reason, lex, sem))
    return out


def _semantic_best(batch: Judged, j: int, pool: list[int]) -> tuple | None:
    scores, entries = batch.stored_semantic
    best = None
    if entries[j, 0] >= 0:
        best = ("entry", int(entries[j, 0]), float(scores[j, 0]))
    if pool:
        sims = batch.vectors[pool] @ batch.vectors[j]
        k = int(np.argmax(sims))
        if best is None or float(sims[k]) > best[2]:
            best = ("batch", pool[k], float(sims[k]))
    return best
