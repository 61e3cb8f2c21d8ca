"""One collection: its entries, both engines, and how a batch is judged and applied.

The collection is not durable by itself: :meth:`judge` only decides; :meth:`apply` changes state
from an :class:`InsertRecord`, the same record the write-ahead log stores and replays. A record
also carries the request id and compact results of the call that made it, so a retried call (same
``request_id``) gets the first call's answer, even across a crash and restart.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz.distance import LCSseq

from instructforge.dedup import rouge
from instructforge.dedup.buffers import GrowArray
from instructforge.dedup.config import (
    GLOBAL,
    MAX_KEY_CHARS,
    NO_SEMANTIC,
    CollectionConfig,
    Limits,
    text_problem,
)
from instructforge.dedup.decide import KEPT, SEMANTIC, Decider, Item, Match, Rules, Slice, Verdict
from instructforge.dedup.lexical import REFERENCE_PARTITION, LexicalIndex, Scored
from instructforge.dedup.locks import RWLock
from instructforge.dedup.semantic import IndexPolicy, SemanticIndex
from instructforge.dedup.supplied import vectors_for
from instructforge.dedup.tokenize import Vocabulary, VocabularyOverlay
from instructforge.runtime.errors import ResourceExhausted, ViolationCollector

__all__ = ["Collection", "InsertRecord", "Item", "Match", "Verdict", "content_id"]


SLICE = 2048
"""Items decided together: the within-slice pair join is at most SLICE^2 / 2 pairs."""
_FLAT_ONLY = IndexPolicy(exact_max=2**62)


def content_id(text: str) -> str:
    """The id of an item that came without one: a hash of its text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


@dataclass
class InsertRecord:
    """What a committed call adds: the unit of the write-ahead log."""

    items: list[Item]
    reference: bool = False
    vectors: np.ndarray | None = None
    seq: int = 0
    request_id: str = ""
    results: list = field(default_factory=list)  # compact results of the call (see compact())
    # The judge's prepared slices and the kept items of each, in the order of ``items``, when that judge
    # ran under the same write lock (not logged): applying the record then neither tokenizes the items
    # again nor re-derives their elements and signatures.
    prepared: list | None = field(default=None, compare=False, repr=False)


class Collection:
    def __init__(self, name: str, config: CollectionConfig, limits: Limits, embedder=None, workers: int = 2):
        self.name = name
        self.config = config
        self.limits = limits
        self.lock = RWLock()
        self.vocab = Vocabulary()
        lex = config.lexical
        self.lexical = LexicalIndex(self.vocab, lex.threshold, lex.comparison, workers)
        self.embedder = embedder
        self.semantic = SemanticIndex(embedder.dim, config.semantic.index) if config.semantic else None
        self.texts: list[str] = []
        self.ids: list[str] = []
        self.is_reference = GrowArray(np.bool_)
        self.by_text: dict[str, int | list[int]] = {}
        self.partition_names: list[str] = [""]
        self.partition_ids: dict[str, int] = {"": 0}
        self.seq = 0  # last applied log record
        self.n_references = 0
        self.requests: OrderedDict[str, list] = OrderedDict()
        self.text_bytes = 0  # memory of the stored texts and ids
        self.partition_sizes: Counter[int] = Counter()  # entries (not references) per partition
        sem = config.semantic
        self.rules = Rules(
            lex.threshold, lex.comparison, sem.threshold if sem else None, sem.comparison if sem else rouge.GE,
            config.drop_exact_duplicates,
        )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def entry_count(self) -> int:
        return len(self.texts) - self.n_references

    def scope_all(self, requested: str | None) -> bool:
        return (requested or self.config.default_scope) == GLOBAL

    # ------------------------------------------------------------------ validation
    def validate(self, items: list[Item], field_name: str = "items") -> None:
        bad = ViolationCollector()
        if not items:
            bad.add(field_name, "must not be empty")
        if len(items) > self.limits.max_batch_items:
            bad.add(field_name, f"at most {self.limits.max_batch_items} items per call, got {len(items)}")
        for k, item in enumerate(items[: self.limits.max_batch_items]):
            problem = text_problem(item.text, self.limits)
            if problem:
                bad.add(f"{field_name}[{k}].text", problem)
            for attr in ("id", "partition"):
                value = getattr(item, attr)
                if not isinstance(value, str) or len(value) > MAX_KEY_CHARS:
                    bad.add(f"{field_name}[{k}].{attr}", f"must be a string of at most {MAX_KEY_CHARS} characters")
            if item.embedding is not None and self.semantic is None:
                bad.add(f"{field_name}[{k}].embedding", NO_SEMANTIC)
        bad.raise_if_any()

    def _part_name(self, entry: int) -> str:
        part = int(self.lexical.parts.view[entry])
        return "" if part == REFERENCE_PARTITION else self.partition_names[part]

    def _part_id(self, name: str) -> int:
        found = self.partition_ids.get(name)
        if found is None:
            found = self.partition_ids[name] = len(self.partition_names)
            self.partition_names.append(name)
        return found

    def batch_parts(self, partitions: list[str]) -> np.ndarray:
        """Partition ids; partitions with nothing stored yet get distinct ids below -1."""
        fresh: dict[str, int] = {}
        out = np.empty(len(partitions), np.int64)
        for k, name in enumerate(partitions):
            found = self.partition_ids.get(name)
            if found is None:
                found = fresh.setdefault(name, -2 - len(fresh))
            out[k] = found
        return out

    # ------------------------------------------------------------------ judging
    def embed_items(self, items: list[Item]) -> np.ndarray | None:
        """Validate a batch and embed it (no lock needed: embedding depends on nothing stored).

        Items that carry the caller's embedding keep it (normalised); the model embeds the others.
        """
        self.validate(items)
        if self.semantic is None:
            return None
        return vectors_for([i.text for i in items], [i.embedding for i in items], self.embedder,
                           lambda k: f"items[{k}].embedding")

    def judge(
        self, items: list[Item], scope_all: bool, writer: bool = False, vectors: np.ndarray | None = None
    ) -> tuple[list[Verdict], InsertRecord]:
        """Decide every item of an ordered batch; returns the verdicts and the record of the kept ones.

        ``writer`` means the caller holds the write lock, so new tokens may enter the vocabulary;
        readers tokenize against a private overlay and change nothing. The batch is decided in
        slices of ``SLICE`` items: each slice is scored against the stored entries, against the items
        of earlier slices that were kept (held in small temporary indexes, so a batch of many
        near-identical texts costs what the kept ones cost, not batch size squared) and within itself.
        """
        if vectors is None:
            vectors = self.embed_items(items)
        else:
            self.validate(items)
        items = [i if i.id else Item(i.text, content_id(i.text), i.partition) for i in items]
        vocab = self.vocab if writer else VocabularyOverlay(self.vocab)
        parts = self.batch_parts([i.partition for i in items])
        seqs = [vocab.encode(i.text) for i in items]
        lengths = np.fromiter(map(len, seqs), np.int64, len(seqs))
        decider = Decider(
            items, parts, lengths, self.rules, scope_all,
            lambda j: self._stored_twin(items[j].text, int(parts[j]), scope_all), vectors,
        )
        # Under partition scope, a batch whose partitions hold nothing yet (and a collection without
        # references) can match nothing stored: the index scan, most of the cost of such a batch
        # (it walks other partitions' postings only to drop them), is skipped.
        nothing_stored = not scope_all and self.n_references == 0 and bool(np.all(parts < -1))
        kept_lexical = self.lexical.overlay()  # kept items of earlier slices
        kept_vectors = SemanticIndex(self.semantic.dim, _FLAT_ONLY) if self.semantic is not None else None
        kept_prepared = []
        for start in range(0, len(items), SLICE):
            end = min(len(items), start + SLICE)
            prepared = self.lexical.prepare(seqs[start:end], parts[start:end], vocab)
            stored, within = self.lexical.check(prepared, scope_all, stored=not nothing_stored)
            pair_q, pair_e, pair_f = [start + within.q], [start + within.e], [within.f]
            if len(kept_lexical):
                before, _ = kept_lexical.check(prepared, scope_all, within=False)
                labels = np.asarray(kept_lexical.labels, np.int64)
                pair_q.append(start + before.q)
                pair_e.append(labels[before.e])
                pair_f.append(before.f)
            best = {start + q: fe for q, fe in _best_per_query(stored).items()}
            piece = Slice(start, best, np.concatenate(pair_q), np.concatenate(pair_e), np.concatenate(pair_f))
            if vectors is not None:
                piece.semantic = self._semantic_bests(vectors[start:end], parts[start:end], scope_all, kept_vectors)
            decider.run(piece, end - start)
            kept_here = np.flatnonzero(decider.kept[start:end])
            kept_prepared.append((prepared, kept_here))
            if end < len(items):  # a later slice checks against this one's kept items
                kept_lexical.add(prepared, kept_here, labels=start + kept_here)
            if kept_vectors is not None and len(kept_here):
                kept_vectors.add(vectors[start:end][kept_here], start + kept_here, parts[start:end][kept_here])
        kept = [j for j, (reason, _, _) in enumerate(decider.out) if reason == KEPT]
        first = len(self.texts)
        entry_of = {j: first + n for n, j in enumerate(kept)}
        verdicts = [
            self._verdict(items, seqs, vectors, j, reason, lex, sem, entry_of)
            for j, (reason, lex, sem) in enumerate(decider.out)
        ]
        record = InsertRecord([items[k] for k in kept], vectors=None if vectors is None else vectors[kept],
                              prepared=kept_prepared if writer else None)
        return verdicts, record

    def _semantic_bests(self, vectors, parts, scope_all: bool, kept_vectors: SemanticIndex) -> list:
        """Per item, the best stored or earlier-kept (in this batch) neighbour, as a Best."""
        scores, entries = self.semantic.search(vectors, parts, scope_all, 1)
        out = [("entry", int(e), float(s)) if e >= 0 else None for s, e in zip(scores[:, 0], entries[:, 0])]
        if len(kept_vectors):
            b_scores, b_index = kept_vectors.search(vectors, parts, scope_all, 1)
            for k, (s, i) in enumerate(zip(b_scores[:, 0].tolist(), b_index[:, 0].tolist())):
                if i >= 0 and (out[k] is None or s > out[k][2]):
                    out[k] = ("batch", i, s)
        return out

    def _verdict(self, items, seqs, vectors, j: int, reason: str, lex, sem, entry_of: dict[int, int]) -> Verdict:
        v = Verdict(index=j, id=items[j].id, kept=reason == KEPT, reason=reason, entry=entry_of.get(j, -1))
        lex_m = self._match(items, lex, entry_of)
        sem_m = self._match(items, sem, entry_of)
        best = sem_m if reason == SEMANTIC else (lex_m or sem_m)
        if best is not None:
            if best is lex_m:
                best.rouge_l_f = lex[2]
                if vectors is not None:
                    best.cosine = float(self._vector_of(vectors, lex) @ vectors[j])
            else:
                best.cosine = sem[2]
                other = seqs[sem[1]] if sem[0] == "batch" else self.lexical.seqs[sem[1]]
                best.rouge_l_f = rouge.f_measure(LCSseq.similarity(seqs[j], other), len(seqs[j]), len(other))
        v.best = best
        v.max_rouge_l_f = max(lex[2] if lex else 0.0, best.rouge_l_f if best else 0.0)
        cosines = [c for c in (sem[2] if sem else None, best.cosine if best else None) if c is not None]
        v.max_cosine = max(cosines) if cosines else None
        return v

    def _match(self, items: list[Item], ref, entry_of: dict[int, int]) -> Match | None:
        if ref is None:
            return None
        kind, n, _ = ref
        if kind == "batch":
            item = items[n]
            return Match(entry_of.get(n, -1), n, item.id, item.text, item.partition, False, 0.0)
        return Match(n, -1, self.ids[n], self.texts[n], self._part_name(n), bool(self.is_reference.view[n]), 0.0)

    def _vector_of(self, vectors: np.ndarray, ref) -> np.ndarray:
        kind, n, _ = ref
        return vectors[n] if kind == "batch" else self.semantic.vector(n, int(self.lexical.parts.view[n]))

    def _stored_twin(self, text: str, part: int, scope_all: bool) -> int | None:
        found = self.by_text.get(text)
        if found is None:
            return None
        parts = self.lexical.parts.view
        for entry in [found] if isinstance(found, int) else found:
            p = int(parts[entry])
            if scope_all or p == part or p == REFERENCE_PARTITION:
                return entry
        return None

    def plan_insert(self, items: list[Item]) -> InsertRecord:
        """Insert without judging (bulk loads of data kept elsewhere)."""
        vectors = self.embed_items(items)
        return InsertRecord([i if i.id else Item(i.text, content_id(i.text), i.partition) for i in items],
                            vectors=vectors)

    # ------------------------------------------------------------------ changing state
    def check_capacity(self, adding: int) -> None:
        if self.entry_count + adding > self.limits.max_entries:
            raise ResourceExhausted(
                f"collection {self.name!r} would exceed {self.limits.max_entries} entries "
                f"({self.entry_count} stored, {adding} more); spread the data over more collections",
                reason="COLLECTION_FULL",
            )

    def embed(self, record: InsertRecord) -> None:
        if self.semantic is not None and record.vectors is None and record.items:
            record.vectors = self.embedder.encode([i.text for i in record.items])

    def apply(self, record: InsertRecord) -> None:
        """Add a record's items as entries (the caller holds the write lock and has logged it)."""
        if record.items:
            items = record.items
            if record.reference:
                parts = np.array(
                    [REFERENCE_PARTITION if not i.partition else self._part_id(i.partition) for i in items], np.int64
                )
                self.n_references += len(items)
            else:
                parts = np.array([self._part_id(i.partition) for i in items], np.int64)
                self.partition_sizes.update(parts.tolist())
            if record.prepared is not None:  # judged under this write lock: the same elements
                entries, done = [], 0
                for prepared, which in record.prepared:
                    entries.append(self.lexical.add(prepared, which, parts=parts[done : done + len(which)]))
                    done += len(which)
                entries = np.concatenate(entries)
            else:
                seqs = [self.vocab.encode(i.text) for i in items]
                prepared = self.lexical.prepare(seqs, parts, self.vocab, prefixes=False)
                entries = self.lexical.add(prepared, np.arange(len(items)))
            if self.semantic is not None:
                self.embed(record)
                self.semantic.add(record.vectors, entries, parts)
            self.is_reference.extend(np.full(len(items), record.reference))
            for entry, item in zip(entries.tolist(), items):
                self.text_bytes += sys.getsizeof(item.text) + sys.getsizeof(item.id) + 16
                self.texts.append(item.text)
                self.ids.append(item.id)
                found = self.by_text.get(item.text)
                if found is None:
                    self.by_text[item.text] = entry
                elif isinstance(found, int):
                    self.by_text[item.text] = [found, entry]
                else:
                    found.append(entry)
        if record.request_id:
            self.remember(record.request_id, record.results)
        self.seq = max(self.seq, record.seq)

    def memory_bytes(self) -> int:
        """Memory held by this collection: texts, the lexical index, vectors (approximate)."""
        semantic = self.semantic.nbytes() if self.semantic is not None else 0
        by_text = 100 * len(self.by_text)
        return self.text_bytes + by_text + self.lexical.nbytes() + semantic + 8 * len(self.ids)

    def remember(self, request_id: str, results: list) -> None:
        self.requests[request_id] = results
        self.requests.move_to_end(request_id)
        while len(self.requests) > self.limits.remembered_requests:
            self.requests.popitem(last=False)

    # ------------------------------------------------------------------ answers to retried calls
    @staticmethod
    def compact(verdicts: list[Verdict]) -> list:
        """Verdicts as plain lists for the log; matches are stored entries once the batch is applied."""
        out = []
        for v in verdicts:
            b = v.best
            best = None if b is None else [b.entry, b.rouge_l_f, b.cosine]
            out.append([v.id, v.reason, v.entry, best, v.max_rouge_l_f, v.max_cosine])
        return out

    def expand(self, compact: list) -> list[Verdict]:
        verdicts = []
        for k, (id_, reason, entry, best, max_f, max_cos) in enumerate(compact):
            v = Verdict(k, id_, reason == KEPT, reason, entry, None, max_f, max_cos)
            if best is not None and 0 <= best[0] < len(self.texts):
                n = best[0]
                v.best = Match(n, -1, self.ids[n], self.texts[n], self._part_name(n), bool(self.is_reference.view[n]),
                               best[1], best[2])
            verdicts.append(v)
        return verdicts


def _best_per_query(scored: Scored) -> dict[int, tuple[float, int]]:
    """Highest F per query (ties: the earliest entry)."""
    if len(scored.q) == 0:
        return {}
    order = np.lexsort((scored.e, -scored.f, scored.q))
    q = scored.q[order]
    sel = order[np.r_[True, q[1:] != q[:-1]]]
    return {int(a): (float(f), int(e)) for a, f, e in zip(scored.q[sel], scored.f[sel], scored.e[sel])}
