"""The ordered keep-if-novel decision over one batch, and the verdicts it produces.

Item ``j`` is compared with what is stored (in its scope) and with the items of the same batch kept
before it, exactly as the seeds' sequential loop does. Reasons are tried in a fixed order: exact
duplicate, lexical (ROUGE-L), semantic. A batch is decided a slice at a time (see
``Collection.judge``); everything about a slice is computed beforehand, vectorised, and only the
within-slice part of the decision is sequential.
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
    # The caller's embedding of the text (see supplied.py); not part of the item's identity.
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)


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


Best = tuple[str, int, float]
"""("entry" | "batch", entry number or batch index, score)."""


@dataclass
class Slice:
    """What is known about items ``start .. start + n`` before deciding them."""

    start: int
    stored_lexical: dict[int, tuple[float, int]]  # item -> (best F, entry) against stored entries
    # Scored pairs (item, earlier item of the batch, F), sorted by item: with kept items of earlier
    # slices and with earlier items of this slice (kept or not); all in the item's scope.
    pair_q: np.ndarray
    pair_e: np.ndarray
    pair_f: np.ndarray
    semantic: list[Best | None] | None = None  # best stored or earlier-slice match per item

    def __post_init__(self) -> None:
        order = np.argsort(self.pair_q, kind="stable")
        self.pair_q, self.pair_e, self.pair_f = self.pair_q[order], self.pair_e[order], self.pair_f[order]

    def pairs_of(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.searchsorted(self.pair_q, [j, j + 1])
        return self.pair_e[lo:hi], self.pair_f[lo:hi]


class Decider:
    """Decides a batch slice by slice, remembering what it kept."""

    def __init__(self, items: list[Item], parts: np.ndarray, lengths: np.ndarray, rules: Rules, scope_all: bool,
                 stored_twin: Callable[[int], int | None], vectors: np.ndarray | None):
        self.items, self.parts, self.lengths = items, parts, lengths
        self.rules, self.scope_all, self.stored_twin, self.vectors = rules, scope_all, stored_twin, vectors
        self.kept = np.zeros(len(items), bool)
        self.kept_texts: dict[str, list[int]] = {}
        self.exact_by_rouge = rules.lexical_drops(1.0)
        self.out: list[tuple[str, Best | None, Best | None]] = []

    def _in_scope(self, i: int, part: int) -> bool:
        return self.scope_all or int(self.parts[i]) == part

    def run(self, s: Slice, n: int) -> None:
        slice_kept: list[int] = []
        for j in range(s.start, s.start + n):
            item, part = self.items[j], int(self.parts[j])
            has_tokens = bool(self.lengths[j])
            reason, lex, sem = KEPT, None, None
            if (has_tokens and self.exact_by_rouge) or self.rules.drop_exact_duplicates:
                twin = self.stored_twin(j)
                score = 1.0 if has_tokens else 0.0
                if twin is not None:
                    reason, lex = EXACT, ("entry", twin, score)
                else:
                    earlier = [i for i in self.kept_texts.get(item.text, ()) if self._in_scope(i, part)]
                    if earlier:
                        reason, lex = EXACT, ("batch", earlier[0], score)
            if reason == KEPT:
                best = s.stored_lexical.get(j)
                if best is not None:
                    lex = ("entry", best[1], best[0])
                es, fs = s.pairs_of(j)
                if len(es):
                    live = self.kept[es]
                    if live.any():
                        es, fs = es[live], fs[live]
                        top = fs.max()
                        if lex is None or top > lex[2]:
                            lex = ("batch", int(es[fs == top].min()), float(top))
                if lex is not None and self.rules.lexical_drops(lex[2]):
                    reason = LEXICAL
            if s.semantic is not None:
                sem = self._semantic(s.semantic[j - s.start], j, [i for i in slice_kept if self._in_scope(i, part)])
                if reason == KEPT and sem is not None and self.rules.semantic_drops(sem[2]):
                    reason = SEMANTIC
            if reason == KEPT:
                self.kept[j] = True
                self.kept_texts.setdefault(item.text, []).append(j)
                slice_kept.append(j)
            self.out.append((reason, lex, sem))

    def _semantic(self, best: Best | None, j: int, pool: list[int]) -> Best | None:
        if pool:
            sims = self.vectors[pool] @ self.vectors[j]
            k = int(np.argmax(sims))
            if best is None or float(sims[k]) > best[2]:
                best = ("batch", pool[k], float(sims[k]))
        return best
