"""Nearest neighbours of query texts: by ROUGE-L F (exact top-k) or by embedding cosine (FAISS).

Lexical search ranks *every* entry in scope, because a top-k list must include texts far below any
dedup threshold, where the prefix filter gives no guarantee. It is a multi-threaded bit-parallel LCS
scan (millions of pairs per second), fine for inspection and small query sets; novelty checks never
use it. A partition restricts the search to that partition's entries and the collection-wide
references; no partition searches the whole collection.
"""

from __future__ import annotations

import numpy as np
from rapidfuzz.distance import LCSseq
from rapidfuzz.process import cdist

from instructforge.dedup import rouge
from instructforge.dedup.collection import Collection
from instructforge.dedup.config import NO_SEMANTIC, text_problem
from instructforge.dedup.decide import Match
from instructforge.dedup.embedder import CLIENT
from instructforge.dedup.lexical import REFERENCE_PARTITION
from instructforge.dedup.supplied import ClientVectors, vectors_for
from instructforge.dedup.tokenize import VocabularyOverlay
from instructforge.runtime.errors import FailedPrecondition, ViolationCollector

_CELLS_PER_CHUNK = 20_000_000  # LCS matrix cells held at once (80 MB)


def search_collection(coll: Collection, queries: list[str], k: int, semantic: bool, partition: str | None,
                      query_embeddings: list | None = None):
    """Per query, up to ``k`` matches, best first (the caller holds the read lock).

    ``query_embeddings`` (one per query, or none) are the caller's vectors, used instead of the model's.
    """
    bad = ViolationCollector()
    bad.check(bool(queries), "queries", "must not be empty")
    bad.check(len(queries) <= coll.limits.max_batch_items, "queries",
              f"at most {coll.limits.max_batch_items} queries per call")
    for n, q in enumerate(queries[: coll.limits.max_batch_items]):
        problem = text_problem(q, coll.limits)
        if problem:
            bad.add(f"queries[{n}]", problem)
    if query_embeddings:
        bad.check(coll.semantic is not None, "query_embeddings", NO_SEMANTIC)
        bad.check(len(query_embeddings) == len(queries), "query_embeddings",
                  f"has {len(query_embeddings)} vectors for {len(queries)} queries: give one per query, or none")
    client_only = isinstance(coll.embedder, ClientVectors)
    if semantic and coll.semantic is not None and client_only and not query_embeddings:
        bad.add("query_embeddings", f"is required for a semantic search: this collection's embedding_model is {CLIENT!r}")
    bad.raise_if_any()
    if semantic and coll.semantic is None:
        raise FailedPrecondition(
            f"collection {coll.name!r} has no semantic dedup; search it with SEARCH_MODE_LEXICAL",
            reason="SEMANTIC_DISABLED",
        )
    vocab = VocabularyOverlay(coll.vocab)
    qseqs = [vocab.encode(q) for q in queries]
    qvecs = None  # a client collection searched lexically without vectors reports no cosines
    if coll.semantic is not None and (query_embeddings or not client_only):
        qvecs = vectors_for(queries, query_embeddings or [None] * len(queries), coll.embedder,
                            lambda n: f"query_embeddings[{n}]")
    part = None if not partition else int(coll.batch_parts([partition])[0])
    if semantic:
        parts = np.full(len(queries), -2 if part is None else part, np.int64)
        scores, entries = coll.semantic.search(qvecs, parts, part is None, k)
        ranked = [[(int(e), float(s)) for s, e in zip(srow, erow) if e >= 0] for srow, erow in zip(scores, entries)]
    else:
        ranked = _lexical_top_k(coll, qseqs, k, part)
    out = []
    for q, row in enumerate(ranked):
        matches = []
        for entry, score in row:
            seq = coll.lexical.seqs[entry]
            m = Match(entry, -1, coll.ids[entry], coll.texts[entry], coll._part_name(entry),
                      bool(coll.is_reference.view[entry]), 0.0)
            if semantic:
                m.cosine = score
                m.rouge_l_f = rouge.f_measure(LCSseq.similarity(qseqs[q], seq), len(qseqs[q]), len(seq))
            else:
                m.rouge_l_f = score
                if qvecs is not None:
                    m.cosine = float(coll.semantic.vector(entry, int(coll.lexical.parts.view[entry])) @ qvecs[q])
            matches.append(m)
        out.append(matches)
    return out


def _lexical_top_k(coll: Collection, qseqs: list, k: int, part: int | None) -> list[list[tuple[int, float]]]:
    parts = coll.lexical.parts.view
    scope = np.arange(len(parts)) if part is None else np.flatnonzero((parts == part) | (parts == REFERENCE_PARTITION))
    if len(scope) == 0 or not qseqs:
        return [[] for _ in qseqs]
    seqs = [coll.lexical.seqs[e] for e in scope.tolist()]
    b = coll.lexical.lengths.view[scope].astype(np.int64)
    out = []
    step = max(1, _CELLS_PER_CHUNK // len(scope))
    for start in range(0, len(qseqs), step):
        chunk = qseqs[start : start + step]
        lcs = cdist(chunk, seqs, scorer=LCSseq.similarity, workers=coll.lexical.workers, dtype=np.int32)
        a = np.array([len(s) for s in chunk], np.int64)[:, None]
        f = rouge.f_measures(lcs, a, b[None, :])
        for row in f:
            top = min(k, len(row))
            best = np.argpartition(-row, top - 1)[:top]
            best = best[np.lexsort((scope[best], -row[best]))]  # by F, ties: the earliest entry
            out.append([(int(scope[i]), float(row[i])) for i in best if row[i] > 0])
    return out
