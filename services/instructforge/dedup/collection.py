"""One collection: its entries, both engines, and the ordered keep-if-novel judgement of a batch.

A batch is judged in order: item ``j`` is compared with the collection (its partition plus the
references, or everything with ``scope_all``) and with the items of the same batch that were kept
before it, exactly as the seeds' sequential loop does. Reasons are checked in a fixed order:
exact duplicate, lexical (ROUGE-L), semantic. Each verdict carries the closest lexical and semantic
matches that were scored (for a kept item the lexical one is the best among the pairs the index had
to score; pairs that provably cannot reach the threshold are never scored).

The collection is not durable by itself: :meth:`judge` only decides, :meth:`apply` changes state
from an :class:`InsertRecord`, the same record the write-ahead log stores and replays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from instructforge.dedup import rouge
from instructforge.dedup.config import MAX_KEY_CHARS, CollectionConfig, Limits, text_problem
from instructforge.dedup.lexical import REFERENCE_PARTITION, LexicalIndex, Scored
from instructforge.dedup.locks import RWLock
from instructforge.dedup.semantic import SemanticIndex
from instructforge.dedup.tokenize import Vocabulary, VocabularyOverlay
from instructforge.runtime.errors import InvalidArgument, ResourceExhausted, ViolationCollector

KEPT, EXACT, LEXICAL, SEMANTIC = "", "exact_duplicate", "lexical", "semantic"


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
    score: float


@dataclass
class Verdict:
    index: int
    id: str
    kept: bool
    reason: str = KEPT
    entry: int = -1  # the new entry number once inserted
    already_present: bool = False
    lexical: Match | None = None
    semantic: Match | None = None

    @property
    def match(self) -> Match | None:
        """The match that decided the drop, else the closest one."""
        if self.reason == SEMANTIC:
            return self.semantic
        return self.lexical or self.semantic


@dataclass
class InsertRecord:
    """What a committed batch adds: the unit of the write-ahead log."""

    items: list[Item]
    reference: bool = False
    vectors: np.ndarray | None = None
    seq: int = 0


@dataclass
class _Batch:
    items: list[Item]
    parts: np.ndarray
    lengths: np.ndarray
    vectors: np.ndarray | None = None
    idx_best: dict[int, tuple[float, int]] = field(default_factory=dict)
    within: dict[int, list[tuple[int, float, bool]]] = field(default_factory=dict)
    sem_best: tuple[np.ndarray, np.ndarray] | None = None


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
        self.by_id: dict[str, int] = {}
        self.by_text: dict[str, int | list[int]] = {}
        self.partition_names: list[str] = [""]
        self.partition_ids: dict[str, int] = {"": 0}
        self.seq = 0  # last applied log record
        self.n_references = 0

    def __len__(self) -> int:
        return len(self.texts)

    # ------------------------------------------------------------------ validation
    def validate(self, items: list[Item], field_name: str = "items") -> None:
        bad = ViolationCollector()
        if not items:
            bad.add(field_name, "must not be empty")
        if len(items) > self.limits.max_batch_items:
            bad.add(field_name, f"at most {self.limits.max_batch_items} items per call, got {len(items)}")
        seen: dict[str, int] = {}
        for k, item in enumerate(items[: self.limits.max_batch_items]):
            problem = text_problem(item.text, self.limits)
            if problem:
                bad.add(f"{field_name}[{k}].text", problem)
            for attr in ("id", "partition"):
                value = getattr(item, attr)
                if not isinstance(value, str) or len(value) > MAX_KEY_CHARS:
                    bad.add(f"{field_name}[{k}].{attr}", f"must be a string of at most {MAX_KEY_CHARS} characters")
            if item.partition and not self.config.partitioned:
                bad.add(f"{field_name}[{k}].partition", f"collection {self.name!r} is not partitioned")
            if item.id:
                if item.id in seen:
                    bad.add(f"{field_name}[{k}].id", f"repeats {field_name}[{seen[item.id]}].id")
                seen[item.id] = k
                entry = self.by_id.get(item.id)
                if entry is not None and (self.texts[entry] != item.text or self._part_name(entry) != item.partition):
                    bad.add(f"{field_name}[{k}].id", f"{item.id!r} is already stored with a different text or partition")
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

    def _batch_parts(self, items: list[Item]) -> np.ndarray:
        """Partition ids of a batch; partitions with nothing stored yet get distinct ids below -1."""
        fresh: dict[str, int] = {}
        out = np.empty(len(items), np.int64)
        for k, item in enumerate(items):
            found = self.partition_ids.get(item.partition)
            if found is None:
                found = fresh.setdefault(item.partition, -2 - len(fresh))
            out[k] = found
        return out

    # ------------------------------------------------------------------ judging
    def judge(self, items: list[Item], scope_all: bool = False, writer: bool = False) -> tuple[list[Verdict], InsertRecord]:
        """Decide every item of an ordered batch; returns the verdicts and the record of the kept ones.

        ``writer`` means the caller holds the write lock, so new tokens may enter the vocabulary;
        readers tokenize against a private overlay and change nothing.
        """
        self.validate(items)
        vocab = self.vocab if writer else VocabularyOverlay(self.vocab)
        parts = self._batch_parts(items)
        seqs = [vocab.encode(i.text) for i in items]
        prepared = self.lexical.prepare(seqs, parts, vocab)
        batch = _Batch(items, parts, prepared.lengths)
        against_index, within = self.lexical.check(prepared, scope_all)
        batch.idx_best = _best_per_query(against_index)
        for q, e, f, d in zip(within.q.tolist(), within.e.tolist(), within.f.tolist(), within.drop.tolist()):
            batch.within.setdefault(q, []).append((e, f, d))
        if self.semantic is not None:
            batch.vectors = self.embedder.encode([i.text for i in items])
            batch.sem_best = self.semantic.search(batch.vectors, parts, scope_all, 1)
        verdicts = self._decide(batch, scope_all)
        kept = [v.index for v in verdicts if v.kept and not v.already_present]
        record = InsertRecord(
            [items[k] for k in kept], vectors=None if batch.vectors is None else batch.vectors[kept]
        )
        first = len(self.texts)
        for n, k in enumerate(kept):
            verdicts[k].entry = first + n
        for v in verdicts:  # matches against earlier items of the batch get their future entry numbers
            for m in (v.lexical, v.semantic):
                if m is not None and m.batch_index >= 0:
                    m.entry = verdicts[m.batch_index].entry
        return verdicts, record

    def plan_insert(self, items: list[Item]) -> tuple[list[Verdict], InsertRecord]:
        """Insert without judging (bulk loads): every item is kept unless its id is already stored."""
        self.validate(items)
        verdicts, new = [], []
        for j, item in enumerate(items):
            entry = self.by_id.get(item.id) if item.id else None
            v = Verdict(index=j, id=item.id, kept=True, already_present=entry is not None)
            if entry is None:
                v.entry = len(self.texts) + len(new)
                new.append(item)
            else:
                v.entry = entry
            verdicts.append(v)
        return verdicts, InsertRecord(new)

    def _decide(self, batch: _Batch, scope_all: bool) -> list[Verdict]:
        cfg = self.config
        exact_drops_tokens = rouge.f_can_drop(cfg.lexical.threshold, cfg.lexical.comparison) and bool(
            rouge.drops(1.0, cfg.lexical.threshold, cfg.lexical.comparison)
        )
        verdicts: list[Verdict] = []
        kept_texts: dict[str, list[int]] = {}
        kept_by_part: dict[int, list[int]] = {}
        kept_all: list[int] = []
        for j, item in enumerate(batch.items):
            part = int(batch.parts[j])
            v = Verdict(index=j, id=item.id, kept=True)
            verdicts.append(v)
            entry = self.by_id.get(item.id) if item.id else None
            if entry is not None:  # an idempotent retry of an item already stored
                v.already_present, v.entry = True, entry
                v.lexical = self._match(entry, 1.0 if batch.lengths[j] else 0.0)
                continue
            in_scope = (lambda p, part=part: scope_all or p == part or p == REFERENCE_PARTITION)
            # exact duplicate: by default only where ROUGE-L would drop it too (identical tokens: F = 1)
            if (batch.lengths[j] > 0 and exact_drops_tokens) or cfg.drop_exact_duplicates:
                twin = self._stored_twin(item.text, in_scope)
                score = 1.0 if batch.lengths[j] else 0.0
                if twin is not None:
                    v.kept, v.reason, v.lexical = False, EXACT, self._match(twin, score)
                else:
                    earlier = [i for i in kept_texts.get(item.text, ()) if in_scope(int(batch.parts[i]))]
                    if earlier:
                        v.kept, v.reason, v.lexical = False, EXACT, self._batch_match(batch, earlier[0], score)
                if not v.kept:
                    continue
            # lexical: the best stored match, then the best kept-earlier item of the batch
            best = batch.idx_best.get(j)
            if best is not None:
                v.lexical = self._match(best[1], best[0])
            for i, f, _ in batch.within.get(j, ()):
                if verdicts[i].kept and not verdicts[i].already_present and (v.lexical is None or f > v.lexical.score):
                    v.lexical = self._batch_match(batch, i, f)
            if v.lexical is not None and rouge.drops(v.lexical.score, cfg.lexical.threshold, cfg.lexical.comparison):
                v.kept, v.reason = False, LEXICAL
            # semantic
            if self.semantic is not None:
                v.semantic = self._semantic_best(batch, j, kept_all if scope_all else kept_by_part.get(part, []))
                if v.kept and v.semantic is not None and rouge.drops(
                    v.semantic.score, cfg.semantic.threshold, cfg.semantic.comparison
                ):
                    v.kept, v.reason = False, SEMANTIC
            if v.kept:
                kept_texts.setdefault(item.text, []).append(j)
                kept_by_part.setdefault(part, []).append(j)
                kept_all.append(j)
        return verdicts

    def _stored_twin(self, text: str, in_scope) -> int | None:
        found = self.by_text.get(text)
        if found is None:
            return None
        for entry in [found] if isinstance(found, int) else found:
            if in_scope(int(self.lexical.parts.view[entry])):
                return entry
        return None

    def _semantic_best(self, batch: _Batch, j: int, pool: list[int]) -> Match | None:
        scores, entries = batch.sem_best
        best = None
        if entries[j, 0] >= 0:
            best = self._match(int(entries[j, 0]), float(scores[j, 0]))
        if pool:
            sims = batch.vectors[pool] @ batch.vectors[j]
            k = int(np.argmax(sims))
            if best is None or float(sims[k]) > best.score:
                best = self._batch_match(batch, pool[k], float(sims[k]))
        return best

    def _match(self, entry: int, score: float) -> Match:
        part = int(self.lexical.parts.view[entry])
        return Match(entry, -1, self.ids[entry], self.texts[entry], self._part_name(entry), part == REFERENCE_PARTITION, score)

    def _batch_match(self, batch: _Batch, i: int, score: float) -> Match:
        item = batch.items[i]
        return Match(-1, i, item.id, item.text, item.partition, False, score)

    # ------------------------------------------------------------------ changing state
    def check_capacity(self, adding: int) -> None:
        if len(self.texts) + adding > self.limits.max_entries:
            raise ResourceExhausted(
                f"collection {self.name!r} would exceed {self.limits.max_entries} entries "
                f"({len(self.texts)} stored, {adding} more); spread data over more collections or nodes",
                reason="COLLECTION_FULL",
            )

    def embed(self, record: InsertRecord) -> None:
        if self.semantic is not None and record.vectors is None:
            record.vectors = self.embedder.encode([i.text for i in record.items])

    def apply(self, record: InsertRecord) -> None:
        """Add a record's items as entries (the caller holds the write lock and has logged it)."""
        if record.items:
            items = record.items
            if record.reference:
                parts = np.full(len(items), REFERENCE_PARTITION, np.int64)
                self.n_references += len(items)
            else:
                parts = np.array([self._part_id(i.partition) for i in items], np.int64)
            seqs = [self.vocab.encode(i.text) for i in items]
            prepared = self.lexical.prepare(seqs, parts, self.vocab)
            entries = self.lexical.add(prepared, np.arange(len(items)))
            if self.semantic is not None:
                self.embed(record)
                self.semantic.add(record.vectors, entries, parts)
            for entry, item in zip(entries.tolist(), items):
                self.texts.append(item.text)
                self.ids.append(item.id)
                if item.id:
                    self.by_id[item.id] = entry
                found = self.by_text.get(item.text)
                if found is None:
                    self.by_text[item.text] = entry
                elif isinstance(found, int):
                    self.by_text[item.text] = [found, entry]
                else:
                    found.append(entry)
        self.seq = max(self.seq, record.seq)

    def search(self, texts: list[str], partition: str, scope_all: bool, k: int) -> list[list[Match]]:
        """Nearest stored neighbours by embedding (the caller holds the read lock)."""
        vectors = self.embedder.encode(texts)
        parts = self._batch_parts([Item("", partition=partition)] * len(texts))
        scores, entries = self.semantic.search(vectors, parts, scope_all, k)
        return [
            [self._match(int(e), float(s)) for s, e in zip(srow, erow) if e >= 0]
            for srow, erow in zip(scores, entries)
        ]


def _best_per_query(scored: Scored) -> dict[int, tuple[float, int]]:
    """Highest F per query (ties: the earliest entry)."""
    if len(scored.q) == 0:
        return {}
    order = np.lexsort((scored.e, -scored.f, scored.q))
    q = scored.q[order]
    first = np.r_[True, q[1:] != q[:-1]]
    sel = order[first]
    return {int(a): (float(f), int(e)) for a, f, e in zip(scored.q[sel], scored.f[sel], scored.e[sel])}
