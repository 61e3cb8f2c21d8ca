"""The semantic check's search half: IVF batches grouped by cell give exactly FAISS's own answers."""

from __future__ import annotations

import numpy as np
import pytest

from instructforge.dedup import semantic
from instructforge.dedup.semantic import IVF, IndexPolicy, VectorIndex


@pytest.fixture(scope="module")
def ivf():
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((40, 64)).astype(np.float32)
    data = centers[rng.integers(0, 40, 6000)] + 0.5 * rng.standard_normal((6000, 64)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    index = VectorIndex(64, IndexPolicy(exact_max=1000, ivf_nprobe=8))
    for start in range(0, 6000, 1500):
        index.add(data[start : start + 1500], np.arange(start, start + 1500) + 100)  # entries != rows
    assert index.kind == IVF
    near = data[rng.integers(0, 6000, 200)] + 0.05 * rng.standard_normal((200, 64)).astype(np.float32)
    far = rng.standard_normal((150, 64)).astype(np.float32)
    queries = np.vstack([near, far, data[:5]])  # and exact copies: ties within a cell
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return index, queries


def faiss_answer(index: VectorIndex, queries: np.ndarray, k: int):
    index.index.nprobe = index.policy.ivf_nprobe
    scores, rows = index.index.search(queries, k)
    entries = np.where(rows >= 0, index.entries.view[np.where(rows >= 0, rows, 0)], -1)
    return np.where(rows >= 0, scores, -np.inf), entries


@pytest.mark.parametrize("k", [1, 5, 2000])  # 2000: more than the probed cells hold, so -1 padding
@pytest.mark.parametrize("rows_per_pass", [1 << 15, 100])  # one FAISS call, or many
def test_grouped_ivf_search_is_faiss_search(ivf, k, rows_per_pass, monkeypatch):
    index, queries = ivf
    monkeypatch.setattr(semantic, "_ROWS_PER_PASS", rows_per_pass)
    scores, entries = index.search(queries, k)
    want_scores, want_entries = faiss_answer(index, queries, k)
    assert np.array_equal(scores, want_scores.astype(np.float32))
    if k == 1:
        assert np.array_equal(entries, want_entries)  # ties too: the earlier probe wins, as in FAISS
    else:  # FAISS's heap orders equal scores its own way: the same entries with the same scores
        for row in range(len(queries)):
            assert sorted(zip(scores[row], entries[row])) == sorted(zip(want_scores[row], want_entries[row]))
    if k == 2000:
        assert (entries == -1).any() and np.isneginf(scores[entries == -1]).all()


def test_small_batches_and_snapshots_keep_the_answers(ivf, tmp_path):
    index, queries = ivf
    few = index.search(queries[:3], 3)  # below the grouping threshold: FAISS's search itself
    assert np.array_equal(few[1], faiss_answer(index, queries[:3], 3)[1])
    index.write(tmp_path / "part.faiss")
    back = VectorIndex.read(tmp_path / "part.faiss", 64, index.policy)
    assert back.kind == IVF
    for a, b in zip(back.search(queries, 4), index.search(queries, 4)):
        assert np.array_equal(a, b)
