"""Posting lists of the prefix index, split by entry length, with the positional bound precomputed.

A text's prefix elements are indexed under ``(element, length bucket)``. A probe from position ``i``
of a query of ``a`` tokens can only match entries of length ``b <= (2 (a - i) - t a) / t`` (after a
first shared element at ``i`` the query has ``a - i`` tokens left, and ``F > t`` needs
``t (a + b) / 2`` of them). Elements deep in a prefix are the frequent ones, and they only need
the few short-entry buckets, so most of the posting volume is never touched.

Each posting is three int32: entry number, entry length ``b``, and ``v = 2 (b - j) - t b`` as float32
bits (``j`` = the element's position in the entry). The entry-side positional bound
``b - j >= t (a + b) / 2`` is then ``v >= t a``, one comparison per posting. ``v`` is rounded up and
the query's ``t a`` down, so float32 rounding can only let a few more postings through, never fewer.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

MAX_TOKENS = 0xFFFF
"""Most tokens a stored text may have (lengths are bucketed up to here)."""

_MARGIN = 0.01  # > float32 rounding error of values up to 2 * MAX_TOKENS


def _bucket_lowers() -> np.ndarray:
    lowers = list(range(16))
    while lowers[-1] <= MAX_TOKENS:
        lowers.append(max(lowers[-1] + 1, math.ceil(lowers[-1] * 1.2)))
    return np.array(lowers, np.int64)


_LOWERS = _bucket_lowers()
_BUCKETS = 64
assert len(_LOWERS) <= _BUCKETS


def bucket(lengths: np.ndarray) -> np.ndarray:
    """Length bucket: exact below 16 tokens, then 20 % wide."""
    return np.searchsorted(_LOWERS, lengths, side="right") - 1


def posting_rows(entries: np.ndarray, lengths: np.ndarray, positions: np.ndarray, t: float) -> np.ndarray:
    """(n, 3) int32 rows: entry, length, v (float32 bits, rounded up; see the module docstring)."""
    v = (2.0 * (lengths - positions) - t * lengths + _MARGIN).astype(np.float32)
    rows = np.empty((len(entries), 3), np.int32)
    rows[:, 0] = entries
    rows[:, 1] = lengths
    rows[:, 2] = v.view(np.int32)
    return rows


class Postings:
    """``(element, length bucket) -> array('i')`` of posting rows. One writer; readers while it rests."""

    def __init__(self, t: float):
        self.t = t  # threshold minus slack, clamped above 0
        self._lists: dict[int, array] = {}
        self._buckets: dict[int, int] = {}  # element -> bit mask of its non-empty length buckets
        self.rows = 0

    def __len__(self) -> int:
        return len(self._lists)

    def nbytes(self) -> int:
        """Approximate: 12 bytes a posting (+ ~6 of array over-allocation), ~170 bytes a list (array
        header, int key, dict slot) and ~130 an element's bucket mask. Kept O(1) for metrics scrapes."""
        return 18 * self.rows + 170 * len(self._lists) + 130 * len(self._buckets)

    def add(self, elems: np.ndarray, rows: np.ndarray) -> None:
        """Append posting ``rows`` (see :func:`posting_rows`) under their elements."""
        buckets = bucket(rows[:, 1])
        keys = elems.astype(np.int64) * _BUCKETS + buckets
        lists, masks = self._lists, self._buckets
        raw = rows.tobytes()
        for k, (key, el, bk) in enumerate(zip(keys.tolist(), elems.tolist(), buckets.tolist())):
            found = lists.get(key)
            if found is None:
                found = lists[key] = array("i")
                masks[el] = masks.get(el, 0) | (1 << bk)
            found.frombytes(raw[12 * k : 12 * k + 12])
        self.rows += len(rows)

    def replace(self, elems: np.ndarray, rows: np.ndarray) -> None:
        """Drop every list and index ``rows`` afresh (after a re-ranking)."""
        keys = elems.astype(np.int64) * _BUCKETS + bucket(rows[:, 1])
        order = np.argsort(keys, kind="stable")
        keys, rows = keys[order], np.ascontiguousarray(rows[order])
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], len(keys)].astype(np.int64)
        lists: dict[int, array] = {}
        masks: dict[int, int] = {}
        for key, s, e in zip(keys[starts].tolist(), starts.tolist(), ends.tolist()):
            found = lists[key] = array("i")
            found.frombytes(rows[s:e].tobytes())
            el = key // _BUCKETS
            masks[el] = masks.get(el, 0) | (1 << (key % _BUCKETS))
        self._lists = lists
        self._buckets = masks
        self.rows = len(rows)

    def probe(self, elems: np.ndarray, a: np.ndarray, i: np.ndarray, chunk: int = 1 << 18):
        """Yield ``(probe, entry, length)`` arrays of the postings that pass both positional bounds.

        Probe ``k`` is element ``elems[k]`` found at position ``i[k]`` of a query of ``a[k]`` tokens.
        """
        t = self.t
        a = a.astype(np.float64)
        bmin = np.maximum(1, np.ceil(t * a / (2 - t) - 1e-9))
        bmax = np.minimum(np.floor((2 * (a - i) - t * a) / t + 1e-6), MAX_TOKENS)
        u = (t * a - _MARGIN).astype(np.float32)
        live = np.flatnonzero(bmax >= bmin)
        lo = bucket(bmin.astype(np.int64))
        hi = bucket(np.maximum(bmax, 0).astype(np.int64))
        get, mask_of = self._lists.get, self._buckets.get
        found: list[array] = []
        owners: list[int] = []
        pending = 0
        in_range = ((np.int64(2) << hi) - (np.int64(1) << lo)).astype(object)  # bits lo..hi set
        for k, el, window in zip(live.tolist(), elems[live].tolist(), in_range[live].tolist()):
            m = mask_of(el, 0) & window
            while m:  # visit only the buckets that exist for this element
                low = m & -m
                m ^= low
                hit = get(el * _BUCKETS + low.bit_length() - 1)
                found.append(hit)
                owners.append(k)
                pending += len(hit)
            if pending >= chunk:
                yield self._pass(found, owners, bmax, u)
                found, owners, pending = [], [], 0
        if found:
            yield self._pass(found, owners, bmax, u)

    @staticmethod
    def _pass(found: list[array], owners: list[int], bmax: np.ndarray, u: np.ndarray):
        sizes = np.fromiter(map(len, found), np.int64, len(found)) // 3
        data = np.frombuffer(b"".join(found), np.int32).reshape(-1, 3)
        probe = np.repeat(np.asarray(owners, np.int64), sizes)
        ok = (data[:, 1] <= bmax[probe]) & (data[:, 2].view(np.float32) >= u[probe])
        return probe[ok], data[ok, 0].astype(np.int64), data[ok, 1].astype(np.int64), len(data)
