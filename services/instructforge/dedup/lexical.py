"""Exact ROUGE-L near-duplicate search: prefix-filter candidates, then bit-parallel LCS in batches.

Why it is exact. ROUGE-L F of two texts of ``a`` and ``b`` tokens is ``2 * lcs / (a + b)``, and the LCS
is at most their multiset token overlap. Turning each text into a *set* of elements (the k-th
occurrence of a token is its own element) makes that overlap a set intersection, so ``F > t`` needs an
overlap of at least ``t * a / (2 - t)``; under any fixed global order of elements, two such texts must
then share an element among the first ``a - ceil(t * a / (2 - t)) + 1`` of each (the AllPairs prefix
filter). Ordering elements rarest first keeps those prefixes in short posting lists. Every pair found
that way must pass the positional bound (after the first shared element, at positions i and j, at
most ``min(a - i, b - j)`` more can match; :mod:`postings`) and the bitmap bound
(:mod:`candidates`); only then is its LCS computed, by rapidfuzz's bit-parallel kernel in one
multi-threaded call per batch. Decisions use :func:`rouge.f_measures`, rouge-score's float expression.

The order is re-derived from document frequencies whenever the index has doubled in size; in between,
new elements rank as rarest (later-first-seen = rarer). Any fixed order is correct; this one is fast.

Posting lists are built lazily: adding entries only appends their columns, and the entries not yet in
the lists are indexed when a check first has to scan the stored entries. Explore-Instruct writes each
tree node's partition once and checks it under partition scope, so such a collection's lists would
be built for nothing. The lists an index catches up to are the ones it would have built eagerly (same
element order: it changes only at a re-ranking, which makes every list stale).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
from rapidfuzz.distance import LCSseq
from rapidfuzz.process import cpdist

from instructforge.dedup import rouge
from instructforge.dedup.buffers import GrowArray
from instructforge.dedup.candidates import bitmap_ok, distinct_pairs, self_join, signatures
from instructforge.dedup.postings import Postings, posting_rows
from instructforge.dedup.tokenize import Sequence_, Vocabulary, sequence_ids

REFERENCE_PARTITION = -1
"""Partition id of reference texts: visible from every partition."""

_FIRST_REBUILD = 1024


@dataclass
class Prepared:
    """A batch tokenized and cut into prefixes, ready to be checked and then (partly) inserted."""

    seqs: list[Sequence_]
    lengths: np.ndarray  # tokens per item
    parts: np.ndarray  # partition id per item
    elems: np.ndarray  # each item's elements, concatenated in item order
    offsets: np.ndarray  # item k's elements are elems[offsets[k]:offsets[k + 1]]
    pq: np.ndarray  # prefix triples, sorted by (item, position): item,
    pp: np.ndarray  # position in the item's rank order,
    pe: np.ndarray  # element
    sig: np.ndarray  # (n, 2) uint64 bitmap signature of each item (candidates.signatures)


@dataclass
class Scored:
    """Pairs whose LCS was computed: new item ``q`` against earlier text ``e``."""

    q: np.ndarray
    e: np.ndarray
    f: np.ndarray
    drop: np.ndarray

    @classmethod
    def empty(cls) -> Scored:
        z = np.zeros(0, np.int64)
        return cls(z, z, np.zeros(0, np.float64), np.zeros(0, bool))


@dataclass
class LexicalStats:
    postings_scanned: int = 0
    lcs_pairs: int = 0
    lcs_seconds: float = 0.0
    check_seconds: float = 0.0
    rebuilds: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, scanned: int, lcs_pairs: int, lcs_seconds: float, seconds: float) -> None:
        with self._lock:
            self.postings_scanned += scanned
            self.lcs_pairs += lcs_pairs
            self.lcs_seconds += lcs_seconds
            self.check_seconds += seconds


class LexicalIndex:
    """The kept texts of one collection (all partitions) and their prefix index.

    Not thread-safe for writers: the collection holds a writer lock around :meth:`add` and allows
    concurrent :meth:`check` calls only while no writer runs.
    """

    def __init__(self, vocab: Vocabulary, threshold: float, comparison: str, workers: int = 2):
        self.vocab = vocab
        self.threshold = threshold
        self.comparison = comparison
        self.workers = workers
        self._t = max(threshold - rouge._SLACK, 1e-12)
        self.seqs: list[Sequence_] = []
        self.lengths = GrowArray(np.int32)
        self.parts = GrowArray(np.int32)
        self.elems = GrowArray(np.int32)
        self.offsets = GrowArray(np.int64)
        self.offsets.append(0)
        self.sigs = GrowArray(np.uint64, width=2)
        self._rank = np.zeros(0, np.int64)
        self.postings = Postings(self._t)
        self._indexed = 0  # entries 0 .. _indexed - 1 are in the posting lists (under the current ranks)
        self._index_lock = threading.Lock()  # concurrent checks may both catch the lists up
        self._next_rebuild = _FIRST_REBUILD
        self._need_table = np.zeros(0, np.int32)
        self.partitioned = False  # set once an entry outside partition 0 exists
        self.labels: list[int] = []  # overlays: the batch position of each entry
        self.stats = LexicalStats()

    def __len__(self) -> int:
        return len(self.seqs)

    # ------------------------------------------------------------------ preparing a batch
    def _prefix_lengths(self, lengths: np.ndarray) -> np.ndarray:
        t = self._t
        need = np.maximum(1, np.ceil(t * lengths / (2 - t))).astype(np.int64)
        return np.maximum(lengths - need + 1, 0)

    def _ranks(self, ids: np.ndarray) -> np.ndarray:
        r = self._rank
        if len(r) == 0:
            return -1 - ids
        return np.where(ids < len(r), r[np.minimum(ids, len(r) - 1)], -1 - ids)

    def _ordered_prefixes(self, elems: np.ndarray, lengths: np.ndarray, offsets: np.ndarray):
        """Prefix triples (item, position, element) in rank order, sorted by item then position."""
        owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        order = np.lexsort((self._ranks(elems), owner))
        pos = np.arange(len(elems), dtype=np.int64) - offsets[owner]
        keep = pos < self._prefix_lengths(lengths)[owner]
        return owner[keep], pos[keep], elems[order][keep]

    def prepare(self, seqs: list[Sequence_], parts: np.ndarray, vocab: Vocabulary, prefixes: bool = True) -> Prepared:
        """Elements and rank-ordered prefixes of a batch; ``vocab`` interns repeat-occurrence elements.

        ``prefixes=False`` leaves the prefixes empty: enough for :meth:`add`, which indexes nothing.
        """
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        elems = sequence_id_array(seqs)
        _intern_repeats(elems, lengths, vocab)
        if prefixes:
            pq, pp, pe = self._ordered_prefixes(elems, lengths, offsets)
        else:
            pq = pp = pe = np.zeros(0, np.int64)
        return Prepared(
            seqs, lengths, np.asarray(parts, np.int64), elems, offsets, pq, pp, pe, signatures(elems, offsets)
        )

    # ------------------------------------------------------------------ checking
    def overlay(self) -> LexicalIndex:
        """An empty index that accepts batches prepared by this one (same element ranks, never re-ranked).

        Judging a large batch keeps its already-kept items in one, with ``labels`` naming their batch
        positions; its work counts in this index's stats.
        """
        out = LexicalIndex(self.vocab, self.threshold, self.comparison, self.workers)
        out._rank, out._need_table, out.stats = self._rank, self._need_table, self.stats
        out._next_rebuild = 2**62
        return out

    def check(self, batch: Prepared, scope_all: bool, within: bool = True,
              stored: bool = True) -> tuple[Scored, Scored]:
        """Score a batch against the index (unless ``stored`` is False: the caller knows nothing in it
        is visible to the batch) and (``within``) against itself (earlier items only).

        Returns ``(against_index, within_batch)``; every pair that can reach the threshold is in them
        with its exact rouge-score F and drop flag (pairs that cannot were skipped by the bounds).
        """
        if not rouge.f_can_drop(self.threshold, self.comparison) or len(batch.seqs) == 0:
            return Scored.empty(), Scored.empty()
        started = time.perf_counter()
        if stored:
            cq, ce, scanned = self._index_candidates(batch, scope_all)
        else:
            cq, ce, scanned = np.zeros(0, np.int64), np.zeros(0, np.int64), 0
        lcs_started = time.perf_counter()
        against_index = self._score(batch.seqs, self.seqs, batch.lengths[cq], self.lengths.view[ce].astype(np.int64), cq, ce)
        lcs_seconds = time.perf_counter() - lcs_started
        if not within:
            self.stats.add(scanned, len(cq), lcs_seconds, time.perf_counter() - started)
            return against_index, Scored.empty()
        bq, bi, be, bj = self_join(batch.pq, batch.pp, batch.pe)
        a, b = batch.lengths[bq], batch.lengths[be]
        need = self._need(a + b)
        ok = (a - bi >= need) & (b - bj >= need)
        bq, be = bq[ok], be[ok]
        ok = self._bounds_ok(batch, bq, be, a[ok], b[ok], batch.sig, batch.parts, scope_all)
        bq, be = distinct_pairs(bq[ok], be[ok], len(batch.seqs))
        lcs_started = time.perf_counter()
        within = self._score(batch.seqs, batch.seqs, batch.lengths[bq], batch.lengths[be], bq, be)
        lcs_seconds += time.perf_counter() - lcs_started
        self.stats.add(scanned + len(bi), len(cq) + len(bq), lcs_seconds, time.perf_counter() - started)
        return against_index, within

    def _index_candidates(self, batch: Prepared, scope_all: bool) -> tuple[np.ndarray, np.ndarray, int]:
        """Distinct (item, entry) pairs that pass every bound, and the postings scanned to find them.

        On a large index the prefix triples are split over ``workers`` threads: the scan is numpy
        work on arrays of millions of postings (gathers, comparisons), which runs without the GIL.
        """
        self._catch_up()
        n = len(batch.pq)
        threads = 1 if len(self.seqs) < _PARALLEL_SCAN_ENTRIES else min(self.workers, max(1, n // 256))
        bounds = np.linspace(0, n, threads + 1).astype(np.int64).tolist()
        if threads == 1:
            found = [self._scan(batch, 0, n, scope_all)]
        else:
            found = list(_scan_pool(self.workers).map(
                lambda k: self._scan(batch, bounds[k], bounds[k + 1], scope_all), range(threads)))
        qs = [q for f in found for q in f[0]]
        es = [e for f in found for e in f[1]]
        empty = [np.zeros(0, np.int64)]
        cq, ce = distinct_pairs(np.concatenate(qs or empty), np.concatenate(es or empty), len(self.seqs))
        return cq, ce, sum(f[2] for f in found)

    def _scan(self, batch: Prepared, lo: int, hi: int, scope_all: bool) -> tuple[list, list, int]:
        """Candidates from prefix triples ``lo .. hi`` of the batch: (item arrays, entry arrays, scanned)."""
        scanned, qs, es = 0, [], []
        pq = batch.pq[lo:hi]
        for probe, ent, b, n in self.postings.probe(batch.pe[lo:hi], batch.lengths[pq], batch.pp[lo:hi]):
            q = pq[probe]
            ok = self._bounds_ok(batch, q, ent, batch.lengths[q], b, self.sigs.view, self.parts.view, scope_all)
            qs.append(q[ok])
            es.append(ent[ok])
            scanned += n
        return qs, es, scanned

    def _need(self, total: np.ndarray) -> np.ndarray:
        """:func:`rouge.min_lcs` by table lookup on ``a + b`` (the table grows on demand)."""
        top = int(total.max(initial=0))
        table = self._need_table  # one read: concurrent checks (and scan threads) may each grow it
        if top >= len(table):
            sums = np.arange(max(top + 1, 2 * len(table)), dtype=np.int64)
            table = self._need_table = rouge.min_lcs(sums, np.zeros_like(sums), self.threshold).astype(np.int32)
        return table[total]

    def _bounds_ok(self, batch: Prepared, q, e, a, b, sigs, parts, scope_all: bool) -> np.ndarray:
        """Bitmap bound and partition scope for candidate pairs (q, e); ``sigs`` and ``parts`` are
        indexed by ``e``. Partitions are looked up only when the scope needs them: at millions of
        entries each lookup is a cache miss, and a check makes one per candidate posting."""
        ok = bitmap_ok(a, b, self._need(a + b), batch.sig[q], sigs[e])
        if not scope_all and (self.partitioned or bool(np.any(batch.parts != 0))):
            eparts = parts[e]
            ok &= (eparts == batch.parts[q]) | (eparts == REFERENCE_PARTITION)
        return ok

    def _score(self, qseqs, eseqs, a, b, cq, ce) -> Scored:
        if len(cq) == 0:
            return Scored.empty()
        lcs = cpdist(
            _pick(qseqs, cq), _pick(eseqs, ce), scorer=LCSseq.similarity, workers=self.workers, dtype=np.int32
        )
        f = rouge.f_measures(lcs, a, b)
        return Scored(cq, ce, f, np.asarray(rouge.drops(f, self.threshold, self.comparison)))

    # ------------------------------------------------------------------ inserting
    def add(self, batch: Prepared, which: np.ndarray, labels: np.ndarray | None = None,
            parts: np.ndarray | None = None) -> np.ndarray:
        """Append batch items ``which`` (in that order); returns their entry numbers.

        ``parts`` replaces the batch's partition ids of those items (a batch judged before its new
        partitions had ids). Only the columns grow: the posting lists catch up when a check next
        scans them.
        """
        which = np.asarray(which, np.int64)
        if labels is not None:
            self.labels.extend(np.asarray(labels).tolist())
        first = len(self.seqs)
        self.seqs.extend(_pick(batch.seqs, which))
        lengths = batch.lengths[which]
        self.lengths.extend(lengths)
        self.sigs.extend(batch.sig[which])
        new_parts = batch.parts[which] if parts is None else np.asarray(parts, np.int64)
        self.parts.extend(new_parts)
        self.partitioned = self.partitioned or bool(np.any(new_parts != 0))
        ends = np.cumsum(lengths)  # an item has one element per token
        starts = np.repeat(batch.offsets[which] - (ends - lengths), lengths)
        self.elems.extend(batch.elems[starts + np.arange(len(starts))])
        self.offsets.extend(self.offsets.view[-1] + ends)
        if len(self.seqs) >= self._next_rebuild:
            self.rebuild()
        return np.arange(first, first + len(which), dtype=np.int64)

    def rebuild(self) -> None:
        """Re-rank elements by document frequency (rarest first); every posting list is now stale."""
        n = len(self.seqs)
        self._next_rebuild = max(2 * n, _FIRST_REBUILD)
        self.stats.rebuilds += 1
        elems = self.elems.view.astype(np.int64)
        vocab_size = max(len(self.vocab), int(elems.max(initial=-1)) + 1)
        df = np.bincount(elems, minlength=vocab_size)
        order = np.lexsort((-np.arange(vocab_size), df))  # rarest first; ties: later-seen first
        rank = np.empty(vocab_size, np.int64)
        rank[order] = np.arange(vocab_size)
        self._rank = rank
        self.postings = Postings(self._t)
        self._indexed = 0

    def _catch_up(self) -> None:
        """Index the entries added since the posting lists were last brought up to date.

        Checks call it before scanning: a writer alone, or readers while no writer runs (the
        collection's lock), so only concurrent readers can meet here, and they take turns.
        """
        if self._indexed == len(self.seqs):
            return
        with self._index_lock:
            start, end = self._indexed, len(self.seqs)
            if start == end:
                return
            offsets = self.offsets.view[start : end + 1]
            elems = self.elems.view[offsets[0] : offsets[-1]].astype(np.int64)
            lengths = self.lengths.view[start:end].astype(np.int64)
            owner, pos, pe = self._ordered_prefixes(elems, lengths, offsets - offsets[0])
            rows = posting_rows(owner + start, lengths[owner], pos, self._t)
            if start == 0:
                self.postings.replace(pe, rows)
            else:
                self.postings.add(pe, rows)
            self._indexed = end

    def nbytes(self) -> int:
        """Memory of the index structures: sequences, columns, postings (texts not included)."""
        sample = self.seqs[:: max(1, len(self.seqs) // 1000)]
        seq_bytes = (sum(s.__sizeof__() for s in sample) * len(self.seqs)) // max(1, len(sample))
        columns = sum(c.nbytes for c in (self.lengths, self.parts, self.elems, self.offsets, self.sigs))
        return seq_bytes + 8 * len(self.seqs) + columns + self.postings.nbytes() + self._rank.nbytes


_PARALLEL_SCAN_ENTRIES = 200_000
"""Below this many entries a check's posting scan is too short to gain from threads."""
_SCAN_POOLS: dict[int, ThreadPoolExecutor] = {}  # by worker count: one pool per setting, made on first use
_SCAN_POOLS_LOCK = threading.Lock()


def _scan_pool(threads: int) -> ThreadPoolExecutor:
    with _SCAN_POOLS_LOCK:
        pool = _SCAN_POOLS.get(threads)
        if pool is None:
            pool = _SCAN_POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="dedup-scan")
        return pool


def sequence_id_array(seqs: list[Sequence_]) -> np.ndarray:
    """Token ids of many sequences, concatenated (int64)."""
    if all(isinstance(s, str) for s in seqs):
        ids = np.frombuffer("".join(seqs).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = ids.astype(np.int64)
        ids[ids >= 0xE000] -= 0x800  # undo the surrogate gap (tokenize.id_to_codepoint)
        return ids
    return np.fromiter((i for s in seqs for i in sequence_ids(s)), dtype=np.int64)


def _pick(items: list, idx: np.ndarray) -> list:
    if len(idx) == 0:
        return []
    if len(idx) == 1:
        return [items[int(idx[0])]]
    return list(itemgetter(*idx.tolist())(items))


def _intern_repeats(elems: np.ndarray, lengths: np.ndarray, vocab: Vocabulary) -> None:
    """Make the k-th occurrence (k >= 2) of a token within an item an element of its own, in place.

    Occurrence numbers come from one stable sort of the batch; only the repeats (about a tenth of the
    tokens of instructions) are interned, in item and position order, so ids are given out in the
    order a per-token loop would give them.
    """
    if len(elems) < 2:
        return
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    order = np.lexsort((elems, owner))  # by item, then token; ties keep their positions' order
    se, so = elems[order], owner[order]
    starts = np.r_[True, (se[1:] != se[:-1]) | (so[1:] != so[:-1])]
    steps = np.arange(len(order), dtype=np.int64)
    occurrence = np.empty(len(order), np.int64)
    occurrence[order] = steps - np.maximum.accumulate(np.where(starts, steps, 0)) + 1
    at = np.flatnonzero(occurrence > 1)
    # "\x00" never occurs in a real token, so these pseudo-tokens cannot collide with one.
    for pos, tok, k in zip(at.tolist(), elems[at].tolist(), occurrence[at].tolist()):
        elems[pos] = vocab.id_of(f"\x00{tok}:{k}")
