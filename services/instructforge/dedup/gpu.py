"""Searching large partitions on a GPU with faiss-gpu, when this process has one.

The CPU index stays the partition's truth: adds go to it first, snapshots write it, and a process
without a GPU never notices this module. A partition of at least `min_vectors` vectors gets a GPU
replica for search, made on its first search (`faiss.index_cpu_to_gpu`, float32 storage, so the
scores are the CPU index's up to float rounding), fed every later add, and dropped when the CPU index
is rebuilt (a new kind or a retrained IVF). Flat and IVF-Flat indexes have GPU twins; HNSW has none
and stays on the CPU. Smaller partitions stay on the CPU too: below a few tens of thousands of
vectors copying the queries over costs more than the scan.

The GPU classes exist only in faiss-gpu builds (`pip install faiss-gpu-cu12` on a CUDA node, in place
of `faiss-cpu`); `faiss.get_num_gpus()` exists in both and says 0 on the CPU build.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from instructforge.runtime.errors import InvalidArgument

log = logging.getLogger(__name__)
DEFAULT_MIN_VECTORS = 20_000


@dataclass(frozen=True)
class GpuPlacement:
    """Where replicas go: a faiss GPU device and the smallest partition worth one."""

    device: int
    min_vectors: int
    resources: Any  # faiss.StandardGpuResources, shared by every replica (one scratch pool per device)


_UNRESOLVED = object()
_requested = ("", DEFAULT_MIN_VECTORS)
_placement: Any = _UNRESOLVED
_lock = threading.Lock()


def configure(device: str, min_vectors: int = DEFAULT_MIN_VECTORS) -> None:
    """Apply the `faiss_device` setting: "" = the first GPU faiss sees (if any), "cpu", or "cuda[:N]".

    A device named outright is checked now (a GPU asked for and missing stops the service at
    start); the default is resolved on the first semantic search, so a lexical-only service never
    imports faiss.
    """
    global _requested, _placement
    wanted = device.strip().lower()
    if wanted not in ("", "cpu", "cuda") and not (wanted.startswith("cuda:") and wanted[5:].isdigit()):
        raise InvalidArgument(f"{device!r} is not a device: use cpu, cuda or cuda:N, or leave it empty",
                              field="faiss_device")
    with _lock:
        _requested, _placement = (wanted, min_vectors), _UNRESOLVED
    if wanted.startswith("cuda"):
        placement()


def placement() -> GpuPlacement | None:
    """Where GPU replicas go; None when searches stay on the CPU."""
    global _placement
    if _placement is not _UNRESOLVED:
        return _placement
    with _lock:
        if _placement is _UNRESOLVED:
            _placement = _resolve(*_requested)
    return _placement


def _resolve(wanted: str, min_vectors: int) -> GpuPlacement | None:
    if wanted == "cpu":
        return None
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if wanted == "" and gpus == 0:
        return None
    index = int(wanted.partition(":")[2] or 0)
    if gpus == 0 or not hasattr(faiss, "StandardGpuResources"):
        raise InvalidArgument(f"faiss_device is {wanted!r} but this faiss build sees no GPU (install "
                              "faiss-gpu-cu12 in place of faiss-cpu on a CUDA node)", field="faiss_device")
    if index >= gpus:
        raise InvalidArgument(f"faiss_device is {wanted!r} but faiss sees {gpus} GPU(s)", field="faiss_device")
    log.info("semantic search on GPU %d for partitions of %d+ vectors", index, min_vectors)
    return GpuPlacement(index, min_vectors, faiss.StandardGpuResources())


class GpuReplica:
    """A GPU copy of one partition's CPU index, for search; kept in step by `add`."""

    def __init__(self, where: GpuPlacement, cpu_index: Any, nprobe: int | None):
        import faiss

        options = faiss.GpuClonerOptions()
        options.useFloat16 = False  # the CPU index's scores, not half-precision ones
        self.index = faiss.index_cpu_to_gpu(where.resources, where.device, cpu_index, options)
        if nprobe is not None:
            faiss.GpuParameterSpace().set_index_parameter(self.index, "nprobe", nprobe)
        self.lock = threading.Lock()  # one GPU stream per replica: searches and adds in turn

    def add(self, vectors: np.ndarray) -> None:
        with self.lock:
            self.index.add(vectors)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            return self.index.search(vectors, k)
