"""Vectors for a batch: the callers' own embeddings where they sent them, the model's for the rest.

A caller may embed its texts itself (on its own GPU, or through a provider's embeddings API) and
send the vectors with the items; the service then only normalises and searches them. A collection
whose ``embedding_model`` is ``client`` has no model at all: every item must carry its vector.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from instructforge.dedup.embedder import CLIENT, Embedder
from instructforge.runtime.errors import ViolationCollector


class ClientVectors:
    """The embedder of a ``client`` collection: it knows the vectors' length and embeds nothing."""

    backend = CLIENT

    def __init__(self, dim: int):
        self.name = CLIENT
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("a 'client' collection has no model: vectors_for() asks callers for every vector")


def vectors_for(
    texts: list[str], given: list, embedder: Embedder, where: Callable[[int], str]
) -> np.ndarray:
    """Unit-length float32 rows, one per text: ``given[k]`` when it is not None, else the model's.

    Every bad vector is named at once (``where(k)`` is its field path), before any model runs.
    """
    dim = embedder.dim
    out = np.empty((len(texts), dim), np.float32)
    missing: list[int] = []
    bad = ViolationCollector()
    for k, vector in enumerate(given):
        if vector is None:
            missing.append(k)
            continue
        row = np.asarray(vector, np.float32)
        if row.shape != (dim,):
            bad.add(where(k), f"has {row.size} values; this collection's vectors have {dim}")
            continue
        norm = float(np.linalg.norm(row))
        if not np.isfinite(norm):
            bad.add(where(k), "contains NaN or infinity")
        elif norm == 0.0:
            bad.add(where(k), "is all zeros: a zero vector has no direction to compare")
        else:
            out[k] = row / norm
    if missing and isinstance(embedder, ClientVectors):
        for k in missing:
            bad.add(where(k), f"is required: this collection's embedding_model is {CLIENT!r}")
    bad.raise_if_any()
    if missing:
        out[missing] = embedder.encode([texts[k] for k in missing])
    return out
