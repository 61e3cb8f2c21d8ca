"""Where semantic search runs: the GPU when faiss-gpu sees one, else the CPU, and a GPU asked for and
missing is a clear error at start. (This machine has no GPU: the GPU search itself is not run here.)"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from instructforge.dedup import gpu
from instructforge.dedup.semantic import FLAT, IndexPolicy, VectorIndex
from instructforge.runtime.errors import InvalidArgument

needs_no_gpu = pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="checks the CPU-only behaviour")


@pytest.fixture(autouse=True)
def default_placement():
    yield
    gpu.configure("")


@needs_no_gpu
def test_by_default_a_cpu_only_faiss_searches_on_the_cpu():
    gpu.configure("", min_vectors=1)
    assert gpu.placement() is None
    index = VectorIndex(4, IndexPolicy())
    vectors = np.eye(4, dtype=np.float32)
    index.add(vectors, np.arange(10, 14))
    scores, entries = index.search(vectors[:2], 1)
    assert entries.ravel().tolist() == [10, 11] and scores.ravel().tolist() == [1.0, 1.0]
    assert index.kind == FLAT and index._gpu is None


@needs_no_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_gpu_asked_for_and_missing_stops_the_service_at_start(device):
    with pytest.raises(InvalidArgument) as info:
        gpu.configure(device)
    assert info.value.violations[0].field == "faiss_device" and "faiss-gpu" in info.value.message


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu:0"])
def test_a_device_that_is_no_device_is_named(device):
    with pytest.raises(InvalidArgument) as info:
        gpu.configure(device)
    assert repr(device) in info.value.message


def test_cpu_keeps_searches_on_the_cpu_whatever_faiss_sees():
    gpu.configure("cpu", min_vectors=1)
    assert gpu.placement() is None
