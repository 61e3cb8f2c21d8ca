"""Semantic near-duplicates: normalised embeddings, inner product, one FAISS index per partition.

Index choice by size (per partition). Up to ``exact_max`` vectors the index is exact (``IndexFlatIP``):
a 1k batch against 100k vectors is ~40 GFLOP, well under a second on two cores. Beyond that a brute-force
scan grows linearly (1M vectors: ~4 s per 1k batch), so the partition is rebuilt as an approximate
index: IVF-Flat by default (``nlist = 4 sqrt(n)`` cells, ``nprobe`` of them searched; trained on the
vectors present, retrained when the partition has grown 8x), or HNSW. Approximation can only *miss*
a neighbour, never invent one: a missed near-duplicate is kept, never a novel item dropped. The
measured recall of both kinds is in this service's README; IVF was far more robust on our data.

IVF batches are searched grouped by cell: each (query, probed cell) pair becomes one row, the rows are
sorted by cell and handed to FAISS's ``search_preassigned`` with one probe each, parallel over rows,
so the queries that probe a cell scan it one after another while it is in cache, instead of each
query streaming its ``nprobe`` cells from memory. Same FAISS kernels, so the same scores and
neighbours as ``index.search``; 2.5-3x faster for a 1k batch against 1M vectors on two cores (the
README has the figures).

On a GPU node (faiss-gpu) large Flat and IVF partitions are searched on the GPU instead (`gpu.py`).

Vectors are float32 rows of unit length; scores are cosine similarities.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instructforge.dedup import gpu
from instructforge.dedup.buffers import GrowArray
from instructforge.runtime.errors import InvalidArgument

FLAT, IVF, HNSW = "flat", "ivf", "hnsw"
_DIRECT_MAP_LOCK = threading.Lock()
_REPLICA_LOCK = threading.Lock()
_ROWS_PER_PASS = 1 << 15  # (query, cell) rows searched per FAISS call: 50 MB of query copies at 384-d
_GROUPED_MIN_QUERIES = 32  # below this a batch shares too few cells to gain from grouping


@dataclass(frozen=True)
class IndexPolicy:
    exact_max: int = 100_000
    large_kind: str = IVF
    ivf_nprobe: int = 16
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128

    def validate(self, prefix: str) -> None:
        if self.large_kind not in (IVF, HNSW):
            raise InvalidArgument(f"must be {IVF!r} or {HNSW!r}", field=f"{prefix}.large_kind")
        for name in ("exact_max", "ivf_nprobe", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search"):
            if getattr(self, name) < 1:
                raise InvalidArgument("must be at least 1", field=f"{prefix}.{name}")


def _faiss():
    import faiss  # heavy; imported only when a collection has semantic dedup

    return faiss


class VectorIndex:
    """The vectors of one partition and the entry number of each."""

    def __init__(self, dim: int, policy: IndexPolicy):
        faiss = _faiss()
        self.dim = dim
        self.policy = policy
        self.index = faiss.IndexFlatIP(dim)
        self.kind = FLAT
        self.entries = GrowArray(np.int64)
        self._trained_on = 0
        self._gpu: gpu.GpuReplica | None = None  # search twin on a GPU (gpu.py), made on demand

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray, entries: np.ndarray) -> None:
        if len(vectors) == 0:
            return
        vectors = np.ascontiguousarray(vectors, np.float32)
        self.index.add(vectors)
        self.entries.extend(entries)
        n = len(self)
        if (self.kind == FLAT and n > self.policy.exact_max) or (self.kind == IVF and n > 8 * self._trained_on):
            self._rebuild()
            self._gpu = None  # a new index: the next search copies it
        elif self._gpu is not None:
            self._gpu.add(vectors)

    def _direct_map(self) -> None:
        if self.kind == IVF and not self.index.direct_map.type:
            with _DIRECT_MAP_LOCK:  # readers may get here together
                if not self.index.direct_map.type:
                    self.index.make_direct_map()  # kept up to date by later adds

    def vectors(self) -> np.ndarray:
        self._direct_map()
        return self.index.reconstruct_n(0, len(self))

    def vector(self, local: int) -> np.ndarray:
        self._direct_map()
        return self.index.reconstruct(int(local))

    def _rebuild(self) -> None:
        faiss = _faiss()
        data = self.vectors()
        n = len(data)
        if self.policy.large_kind == HNSW:
            index = faiss.IndexHNSWFlat(self.dim, self.policy.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.policy.hnsw_ef_construction
        else:
            nlist = max(16, int(4 * math.sqrt(n)))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = data if n <= 64 * nlist else data[np.random.default_rng(n).choice(n, 64 * nlist, replace=False)]
            index.train(sample)
            self._trained_on = n
        index.add(data)
        if self.policy.large_kind == IVF:
            index.parallel_mode = 3  # search_preassigned: parallel over the rows it is given
        self.index, self.kind = index, self.policy.large_kind

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, entry numbers); entry -1 where fewer than ``k`` vectors exist."""
        n = len(vectors)
        if len(self) == 0 or n == 0:
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32)
        replica = self._replica()
        if replica is not None:
            scores, ids = replica.search(vectors, k)
        elif self.kind == IVF and n >= _GROUPED_MIN_QUERIES:
            scores, ids = self._search_ivf_grouped(vectors, k)
        else:
            if self.kind == IVF:
                self.index.nprobe = self.policy.ivf_nprobe
            elif self.kind == HNSW:
                self.index.hnsw.efSearch = max(self.policy.hnsw_ef_search, k)
            scores, ids = self.index.search(vectors, k)
        found = ids >= 0
        entries = np.where(found, self.entries.view[np.where(found, ids, 0)], -1)
        return np.where(found, scores, -np.inf).astype(np.float32), entries

    def _replica(self) -> gpu.GpuReplica | None:
        """The GPU twin to search, if this process searches on a GPU and the partition is worth it."""
        where = gpu.placement()
        if where is None or self.kind == HNSW or len(self) < where.min_vectors:
            return None
        if self._gpu is None:
            with _REPLICA_LOCK:
                if self._gpu is None:
                    self._gpu = gpu.GpuReplica(where, self.index, self.policy.ivf_nprobe if self.kind == IVF else None)
        return self._gpu

    def _search_ivf_grouped(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``index.search`` of an IVF index, with the (query, cell) pairs grouped by cell (module doc)."""
        faiss = _faiss()
        index = self.index
        index.parallel_mode = 3  # also for indexes read from a snapshot (the mode is not stored)
        nprobe = min(self.policy.ivf_nprobe, index.nlist)
        one_cell = faiss.SearchParametersIVF(nprobe=1)
        n = len(vectors)
        out_scores = np.empty((n, k), np.float32)
        out_ids = np.empty((n, k), np.int64)
        step = max(1, _ROWS_PER_PASS // nprobe)
        for start in range(0, n, step):
            x = vectors[start : start + step]
            m = len(x)
            cell_scores, cells = index.quantizer.search(x, nprobe)
            order = np.argsort(cells.ravel(), kind="stable")  # rows by cell; row r is query r // nprobe
            rows = len(order)
            q = np.ascontiguousarray(x[order // nprobe])
            assign = np.ascontiguousarray(cells.ravel()[order].reshape(rows, 1))
            assign_scores = np.ascontiguousarray(cell_scores.ravel()[order].reshape(rows, 1))
            s = np.empty((rows, k), np.float32)
            i = np.empty((rows, k), np.int64)
            index.search_preassigned_c(rows, faiss.swig_ptr(q), k, faiss.swig_ptr(assign),
                                       faiss.swig_ptr(assign_scores), faiss.swig_ptr(s), faiss.swig_ptr(i),
                                       False, one_cell)
            # back to (query, probe order), then the best k over the probes; stable, so ties go to
            # the earlier probe as in index.search
            per_s = np.empty_like(s)
            per_i = np.empty_like(i)
            per_s[order], per_i[order] = s, i
            per_s = np.where(per_i >= 0, per_s, -np.inf).reshape(m, nprobe * k)
            per_i = per_i.reshape(m, nprobe * k)
            if k == 1:
                best = np.argmax(per_s, axis=1)[:, None]
            else:
                best = np.argsort(-per_s, axis=1, kind="stable")[:, :k]
            out_scores[start : start + m] = np.take_along_axis(per_s, best, 1)
            out_ids[start : start + m] = np.take_along_axis(per_i, best, 1)
        return out_scores, out_ids

    def nbytes(self) -> int:
        per_vector = 4 * self.dim + 8
        if self.kind == HNSW:
            per_vector += 8 * self.policy.hnsw_m + 8  # level-0 links (2M int32) + upper levels
        return len(self) * per_vector

    def write(self, path: Path) -> None:
        faiss = _faiss()
        faiss.write_index(self.index, str(path))
        np.save(path.with_suffix(".entries.npy"), self.entries.view)

    @classmethod
    def read(cls, path: Path, dim: int, policy: IndexPolicy) -> VectorIndex:
        faiss = _faiss()
        out = cls(dim, policy)
        out.index = faiss.read_index(str(path))
        out.entries = GrowArray.of(np.load(path.with_suffix(".entries.npy")))
        if isinstance(out.index, faiss.IndexIVF):
            out.kind, out._trained_on = IVF, len(out)
            out.index.parallel_mode = 3
        elif isinstance(out.index, faiss.IndexHNSW):
            out.kind = HNSW
        return out


class SemanticIndex:
    """Per-partition vector indexes of one collection; references live in partition -1."""

    def __init__(self, dim: int, policy: IndexPolicy):
        self.dim = dim
        self.policy = policy
        self.partitions: dict[int, VectorIndex] = {}
        self.local = GrowArray(np.int64)  # entry -> its row in its partition's index

    def __len__(self) -> int:
        return sum(len(p) for p in self.partitions.values())

    def add(self, vectors: np.ndarray, entries: np.ndarray, parts: np.ndarray) -> None:
        """Add vectors of consecutive new entries ``entries`` (every entry has one)."""
        local = np.empty(len(entries), np.int64)
        for part in np.unique(parts).tolist():
            sel = parts == part
            index = self.partitions.get(part)
            if index is None:
                index = self.partitions[part] = VectorIndex(self.dim, self.policy)
            local[sel] = len(index) + np.arange(int(sel.sum()))
            index.add(vectors[sel], entries[sel])
        self.local.extend(local)

    def vector(self, entry: int, part: int) -> np.ndarray:
        return self.partitions[part].vector(int(self.local.view[entry]))

    def search(
        self, vectors: np.ndarray, parts: np.ndarray, scope_all: bool, k: int, reference_part: int = -1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, entries) per row, within its partition plus references, or across all."""
        n = len(vectors)
        scores = np.full((n, 0), -np.inf, np.float32)
        entries = np.full((n, 0), -1, np.int64)
        if scope_all:
            groups = [(index, np.arange(n)) for index in self.partitions.values()]
        else:
            groups = []
            ref = self.partitions.get(reference_part)
            if ref is not None:
                groups.append((ref, np.arange(n)))
            for part in np.unique(parts).tolist():
                index = self.partitions.get(part)
                if index is not None and part != reference_part:
                    groups.append((index, np.flatnonzero(parts == part)))
        for index, rows in groups:
            s, e = index.search(vectors[rows], k)
            block_s = np.full((n, k), -np.inf, np.float32)
            block_e = np.full((n, k), -1, np.int64)
            block_s[rows], block_e[rows] = s, e
            scores, entries = np.hstack([scores, block_s]), np.hstack([entries, block_e])
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            scores, entries = np.take_along_axis(scores, order, 1), np.take_along_axis(entries, order, 1)
        if scores.shape[1] < k:
            pad = k - scores.shape[1]
            scores = np.hstack([scores, np.full((n, pad), -np.inf, np.float32)])
            entries = np.hstack([entries, np.full((n, pad), -1, np.int64)])
        return scores, entries

    def nbytes(self) -> int:
        return sum(p.nbytes() for p in self.partitions.values())

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.partitions.values():
            out[p.kind] = out.get(p.kind, 0) + len(p)
        return out
