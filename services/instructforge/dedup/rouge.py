"""ROUGE-L F-measure exactly as rouge-score 0.1.2 computes it, and the bounds used to skip pairs.

Decisions must be identical to rouge-score's, including its floating-point rounding: for some pairs
whose exact F is 0.7 the float64 expression gives 0.7000000000000001 and ``> 0.7`` drops them. So the
decision always evaluates the very same expression in the very same order:
``P = lcs / len(existing)``, ``R = lcs / len(new)``, ``F = 2 * P * R / (P + R)``, and 0 when a side is
empty (rouge-score's ``_score_lcs(new_tokens, existing_tokens)``; the seeds pass the new text as target).

The exact value is ``2 * lcs / (a + b)``; the bounds below use it with a small slack (``_SLACK``) so that
rounding can never make a pair that a bound skipped come out above the threshold.
"""

from __future__ import annotations

import numpy as np

GT = ">"
GE = ">="
COMPARISONS = (GT, GE)

# Rounding moves F by a few ulps (~1e-16); the slack is far above that and far below 1/(a+b) for any
# text shorter than millions of tokens, so bounds stay exact in effect and safe.
_SLACK = 1e-9


def f_measure(lcs: int, len_new: int, len_existing: int) -> float:
    """rouge-score's ROUGE-L F for one pair, bit for bit."""
    if len_new == 0 or len_existing == 0:
        return 0.0
    precision = lcs / len_existing
    recall = lcs / len_new
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def f_measures(lcs: np.ndarray, len_new: np.ndarray, len_existing: np.ndarray) -> np.ndarray:
    """Vectorised :func:`f_measure`: numpy float64 operations round exactly like Python's floats."""
    lcs = np.asarray(lcs, dtype=np.float64)
    len_new = np.asarray(len_new, dtype=np.float64)
    len_existing = np.asarray(len_existing, dtype=np.float64)
    out = np.zeros(np.broadcast(lcs, len_new, len_existing).shape, dtype=np.float64)
    ok = (lcs > 0) & (len_new > 0) & (len_existing > 0)
    lcs, len_new, len_existing = np.broadcast_arrays(lcs, len_new, len_existing)
    precision = lcs[ok] / len_existing[ok]
    recall = lcs[ok] / len_new[ok]
    out[ok] = 2 * precision * recall / (precision + recall)
    return out


def drops(score: np.ndarray | float, threshold: float, comparison: str) -> np.ndarray | bool:
    """True where ``score`` makes an item a duplicate: ``score > t`` (the seeds' rule) or ``score >= t``."""
    return score > threshold if comparison == GT else score >= threshold


def f_can_drop(threshold: float, comparison: str) -> bool:
    """Whether any pair can drop at all (``> 1.0`` never can: F is at most 1)."""
    return bool(drops(1.0, threshold, comparison))


def min_lcs(len_new: np.ndarray, len_existing: np.ndarray, threshold: float) -> np.ndarray:
    """A lower bound on the LCS a pair needs to reach ``threshold`` (safe for both comparisons).

    ``2 * lcs / (a + b) >= threshold - slack``; pairs whose token overlap or length cannot reach it are
    skipped without computing their LCS.
    """
    need = (threshold - _SLACK) * (np.asarray(len_new, np.float64) + np.asarray(len_existing, np.float64)) / 2
    return np.maximum(np.ceil(need), 1).astype(np.int64)
