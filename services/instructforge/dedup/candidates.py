"""Cheap exact bounds that turn "shares a prefix element" hits into the few pairs worth an LCS.

All bounds here are upper bounds on the LCS (through the multiset overlap), so they can only discard
pairs that cannot reach the threshold: the candidate set stays complete.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def signatures(elems: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """128-bit bitmap of each item's elements (element -> one bit by multiplicative hashing).

    Every bit set in x's bitmap but not in y's stands for at least one element of x missing from y, so
    ``|x & y| <= len(x) - popcount(sig_x & ~sig_y)``: a bound on the LCS that costs a few machine
    operations per pair and rejects most pairs that merely share a prefix element.
    """
    n = len(offsets) - 1
    sig = np.zeros((n, 2), np.uint64)
    if len(elems):
        bit = (elems.astype(np.uint64) * _GOLDEN) >> np.uint64(57)  # 0..127
        owner = np.repeat(np.arange(n), np.diff(offsets))
        word = owner * 2 + (bit >> np.uint64(6)).astype(np.int64)
        np.bitwise_or.at(sig.reshape(-1), word, np.uint64(1) << (bit & np.uint64(63)))
    return sig


def missing(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How many bits of signatures ``x`` are not in ``y`` (rows of shape (n, 2))."""
    return (np.bitwise_count(x[:, 0] & ~y[:, 0]) + np.bitwise_count(x[:, 1] & ~y[:, 1])).astype(np.int64)


def bitmap_ok(a, b, need, qsig, esig) -> np.ndarray:
    """The bitmap overlap bound, both ways, reaches ``need``."""
    return (a - missing(qsig, esig) >= need) & (b - missing(esig, qsig) >= need)


def distinct_pairs(q: np.ndarray, e: np.ndarray, n_e: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (q, e) pairs, sorted by q then e."""
    key = q * (n_e + 1) + e
    key.sort()  # sort-based dedup: numpy's hash-based np.unique is several times slower here
    if len(key):
        key = key[np.r_[True, key[1:] != key[:-1]]]
    return key // (n_e + 1), key % (n_e + 1)


def self_join(pq: np.ndarray, pp: np.ndarray, pe: np.ndarray):
    """Pairs of batch items sharing a prefix element: (later q, its position, earlier e, its position)."""
    if len(pe) == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, z
    order = np.lexsort((pq, pe))
    pe, pq, pp = pe[order], pq[order], pp[order]
    starts = np.flatnonzero(np.r_[True, pe[1:] != pe[:-1]])
    ends = np.r_[starts[1:], len(pe)]
    group_end = np.repeat(ends, ends - starts)
    later = group_end - np.arange(len(pe)) - 1  # members after each one in its group
    left = np.repeat(np.arange(len(pe)), later)
    base = np.repeat(np.cumsum(later) - later, later)
    right = left + 1 + (np.arange(len(left)) - base)
    # Within a group items are sorted ascending, so `left` is the earlier item.
    return pq[right], pp[right], pq[left], pp[left]
