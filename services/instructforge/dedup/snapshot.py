"""Snapshots: a collection's whole state in one folder, written aside and renamed into place.

A snapshot holds the texts, ids and partitions of every entry, the vocabulary, the token store
(sequences, elements, bitmap signatures) and each partition's FAISS index (``write_index``). The
prefix index is not stored: it is re-derived when a check first needs it (one vectorised pass), with a
fresh rarest-first order. A snapshot covers every log record up to its ``seq``; records after it
replay from the write-ahead log.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from instructforge.dedup.buffers import GrowArray
from instructforge.dedup.collection import Collection
from instructforge.dedup.lexical import sequence_id_array
from instructforge.dedup.semantic import VectorIndex
from instructforge.dedup.tokenize import MAX_CODEPOINT_IDS, ids_to_sequence
from instructforge.dedup.wal import fsync_dir
from instructforge.runtime.errors import DataLoss

FORMAT = 1
PREFIX = "snapshot-"


def _pack_strings(strings: list[str]) -> tuple[bytes, np.ndarray]:
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return b"".join(encoded), offsets


def _unpack_strings(blob: bytes, offsets: np.ndarray) -> list[str]:
    bounds = offsets.tolist()
    return [blob[bounds[k] : bounds[k + 1]].decode("utf-8") for k in range(len(bounds) - 1)]


def write_snapshot(root: Path, coll: Collection) -> Path:
    """Write ``coll`` (read-locked by the caller) under ``root``; returns the snapshot folder."""
    final = root / f"{PREFIX}{coll.seq:016d}"
    if final.exists():  # nothing was added since that snapshot
        return final
    tmp = root / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lex = coll.lexical
    texts, text_off = _pack_strings(coll.texts)
    ids, id_off = _pack_strings(coll.ids)
    (tmp / "texts.bin").write_bytes(texts)
    (tmp / "ids.bin").write_bytes(ids)
    (tmp / "vocab.bin").write_bytes("\n".join(coll.vocab.tokens).encode("utf-8"))
    arrays = {
        "text_offsets": text_off, "id_offsets": id_off, "parts": lex.parts.view, "lengths": lex.lengths.view,
        "elems": lex.elems.view, "elem_offsets": lex.offsets.view, "sigs": lex.sigs.view,
        "tokens": sequence_id_array(lex.seqs) if lex.seqs else np.zeros(0, np.int64),
        "is_reference": coll.is_reference.view,
    }
    if coll.semantic is not None:
        arrays["semantic_local"] = coll.semantic.local.view
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr)
    if coll.semantic is not None:
        for part, index in coll.semantic.partitions.items():
            index.write(tmp / f"vectors.{part}.faiss")
    meta = {
        "format": FORMAT, "seq": coll.seq, "entries": len(coll), "references": coll.n_references,
        "partitions": coll.partition_names, "created_unix": time.time(),
        "semantic_partitions": sorted(coll.semantic.partitions) if coll.semantic is not None else [],
        "requests": list(coll.requests.items()),
    }
    (tmp / "meta.json").write_text(json.dumps(meta))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(tmp)
    os.replace(tmp, final)
    fsync_dir(root)
    for old in root.glob(f"{PREFIX}*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_snapshot(root: Path) -> Path | None:
    found = sorted(root.glob(f"{PREFIX}*"))
    return found[-1] if found else None


def load_snapshot(path: Path, coll: Collection) -> None:
    """Fill an empty collection from a snapshot folder."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise DataLoss(f"{path}: snapshot format {meta.get('format')} is not {FORMAT}", reason="SNAPSHOT_FORMAT")
        arr = {p.stem: np.load(p) for p in path.glob("*.npy") if not p.name.endswith(".entries.npy")}
        vocab_text = (path / "vocab.bin").read_bytes().decode("utf-8")
        texts = _unpack_strings((path / "texts.bin").read_bytes(), arr["text_offsets"])
        ids = _unpack_strings((path / "ids.bin").read_bytes(), arr["id_offsets"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataLoss(f"{path}: unreadable snapshot ({exc})", reason="SNAPSHOT_CORRUPT") from exc
    for token in vocab_text.split("\n") if vocab_text else []:
        coll.vocab.id_of(token)
    lex = coll.lexical
    lengths = arr["lengths"].astype(np.int64)
    bounds = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=bounds[1:])
    tokens = arr["tokens"]
    if len(tokens) == 0 or tokens.max() < MAX_CODEPOINT_IDS:
        cps = np.where(tokens < 0xD800, tokens, tokens + 0x800).astype(np.uint32)
        whole = cps.tobytes().decode("utf-32-le")
        b = bounds.tolist()
        lex.seqs = [whole[b[k] : b[k + 1]] for k in range(len(lengths))]
    else:
        lex.seqs = [ids_to_sequence(tokens[bounds[k] : bounds[k + 1]].tolist()) for k in range(len(lengths))]
    lex.lengths = GrowArray.of(arr["lengths"].astype(np.int32))
    lex.parts = GrowArray.of(arr["parts"].astype(np.int32))
    lex.elems = GrowArray.of(arr["elems"].astype(np.int32))
    lex.offsets = GrowArray.of(arr["elem_offsets"].astype(np.int64))
    lex.sigs = GrowArray.of(arr["sigs"].astype(np.uint64))
    lex.partitioned = bool(np.any(lex.parts.view > 0))
    lex.rebuild()
    coll.texts, coll.ids = texts, ids
    coll.text_bytes = sum(sys.getsizeof(t) + sys.getsizeof(i) + 16 for t, i in zip(texts, ids))
    coll.partition_names = list(meta["partitions"])
    coll.partition_ids = {name: k for k, name in enumerate(coll.partition_names)}
    coll.n_references = int(meta["references"])
    coll.is_reference = GrowArray.of(arr["is_reference"].astype(np.bool_))
    coll.partition_sizes.update(lex.parts.view[~coll.is_reference.view].tolist())
    for request_id, results in meta["requests"]:
        coll.remember(request_id, results)
    coll.seq = int(meta["seq"])
    for entry, text in enumerate(texts):
        found = coll.by_text.get(text)
        if found is None:
            coll.by_text[text] = entry
        elif isinstance(found, int):
            coll.by_text[text] = [found, entry]
        else:
            found.append(entry)
    if coll.semantic is not None:
        coll.semantic.local = GrowArray.of(arr["semantic_local"].astype(np.int64))
        for part in meta["semantic_partitions"]:
            coll.semantic.partitions[part] = VectorIndex.read(
                path / f"vectors.{part}.faiss", coll.semantic.dim, coll.semantic.policy
            )


def snapshot_time(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return float(json.loads((path / "meta.json").read_text())["created_unix"])
    except (OSError, ValueError, KeyError):
        return None

