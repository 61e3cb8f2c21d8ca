"""Embedding backends: offline export and load, quality against torch, and the fallbacks."""

from __future__ import annotations

import logging
import shutil
import socket
import sys

import numpy as np
import pytest
from dedup_corpus import corpus

from instructforge.dedup import embedder as E
from instructforge.dedup.settings import DedupSettings

MODEL = E.DEFAULT_MODEL
EDGE = ["", "   ", "如何烤巧克力蛋糕？", "word " * 400, "C# vs C++!", "Résumé — naïve café"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("embedders")


@pytest.fixture(scope="module")
def texts():
    return corpus(400, seed=11, dup_rate=0.5, edge_rate=0.03) + EDGE


@pytest.fixture(scope="module")
def reference(texts):
    """float32 torch through sentence-transformers' own encode: what the service used before backends."""
    return E.SentenceTransformerEmbedder("ref", str(E.packaged_model_path())).encode(texts)


def load(backend: str, cache, **kw):
    return E.load_embedder(MODEL, E.packaged_model_path(), None, E.EmbeddingOptions(backend, cache_dir=cache, **kw))


def decisions(vectors: np.ndarray, threshold: float = 0.8) -> list[bool]:
    """Keep-if-novel by cosine, in order: what semantic dedup decides."""
    kept: list[int] = []
    out = []
    for i, v in enumerate(vectors):
        keep = not kept or float(np.max(vectors[kept] @ v)) <= threshold
        out.append(keep)
        if keep:
            kept.append(i)
    return out


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in a test of the offline embedder")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.slow
def test_onnx_backends_export_once_and_load_offline(cache, no_network, monkeypatch):
    for backend, file in ((E.ONNX, "model.onnx"), (E.ONNX_INT8, "model.int8.onnx")):
        emb = load(backend, cache)
        assert emb.backend == backend and emb.path.name == file and emb.path.is_relative_to(cache)
        vectors = emb.encode(["How do I bake a chocolate cake?", "What is the recipe for a chocolate cake?"])
        assert vectors.shape == (2, 384) and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5) and vectors[0] @ vectors[1] > 0.8
    assert emb.encode([]).shape == (0, 384)

    def no_export(*args):
        raise AssertionError("exported again although the graph is cached")

    monkeypatch.setattr(E, "_export", no_export)
    monkeypatch.setattr(E, "_quantize", no_export)
    assert load(E.ONNX_INT8, cache).backend == E.ONNX_INT8  # from the cache


@pytest.mark.slow
def test_exact_backends_match_torch_and_decide_the_same(cache, texts, reference):
    for backend in (E.TORCH, E.ONNX):
        vectors = load(backend, cache).encode(texts)
        cosine = np.sum(vectors * reference, axis=1)
        assert cosine.min() > 0.99999, backend
        assert decisions(vectors) == decisions(reference), backend


@pytest.mark.slow
def test_approximate_backends_stay_within_the_bound(cache, texts, reference):
    backends = [E.ONNX_INT8] + ([E.TORCH_BF16] if E.native_bf16() else [])
    for backend in backends:
        emb = load(backend, cache)
        assert emb.backend == backend
        cosine = np.sum(emb.encode(texts) * reference, axis=1)
        assert cosine.mean() >= 0.99 and cosine.min() > 0.95, backend
        if backend == E.TORCH_BF16:
            assert cosine.min() > 0.9998


def test_falls_back_to_torch_without_onnxruntime(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with caplog.at_level(logging.WARNING, logger=E.__name__):
        emb = load(E.ONNX, tmp_path)
    assert emb.backend == E.TORCH
    assert "falling back to torch" in caplog.text and "onnxruntime" in caplog.text
    assert emb.encode(["hello"]).shape == (1, 384)


def test_falls_back_to_torch_when_the_export_cannot_run(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnx", None)  # torch's exporter needs it; nothing is cached here
    with caplog.at_level(logging.WARNING, logger=E.__name__):
        emb = load(E.ONNX_INT8, tmp_path)
    assert emb.backend == E.TORCH and "onnx" in caplog.text and "falling back to torch" in caplog.text
    assert not list(tmp_path.rglob("*.onnx"))


def test_bf16_needs_native_support(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(E, "native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger=E.__name__):
        assert load(E.TORCH_BF16, tmp_path).backend == E.TORCH
    assert "bfloat16" in caplog.text


def test_other_model_layouts_use_sentence_transformers(tmp_path, caplog):
    folder = tmp_path / "cls-model"
    shutil.copytree(E.packaged_model_path(), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (folder / "model.safetensors").symlink_to(E.packaged_model_path() / "model.safetensors")
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(pooling.read_text().replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true')
                       .replace('"pooling_mode_mean_tokens": true', '"pooling_mode_mean_tokens": false'))
    with caplog.at_level(logging.WARNING, logger=E.__name__):
        emb = E.load_embedder(str(folder), folder, None, E.EmbeddingOptions(E.ONNX, cache_dir=tmp_path))
    assert isinstance(emb, E.SentenceTransformerEmbedder) and "mean pooling" in caplog.text
    assert emb.encode(["hello"]).shape == (1, 384)


async def test_the_service_applies_its_embedding_settings(tmp_path, start_service):
    """Building settings changes nothing; starting the service applies them before any embedder loads."""
    old = E.current_options()
    try:
        settings = DedupSettings(state_dir=tmp_path, embedding_backend="onnx-int8", embedding_threads=1,
                                 embedding_batch_size=64)
        assert E.current_options() == old
        assert settings.embedding_options() == E.EmbeddingOptions("onnx-int8", 1, 64, tmp_path / "dedup" / "embedders")
        running = await start_service("dedup", state_dir=tmp_path, embedding_backend="onnx-int8",
                                      embedding_threads=1, embedding_batch_size=64)
        assert E.current_options() == running.settings.embedding_options()
        assert DedupSettings(state_dir=tmp_path).embedding_backend == "auto"
    finally:
        E.configure(old)
    with pytest.raises(Exception, match="embedding_backend"):
        E.get_embedder(MODEL, backend="fp8")
