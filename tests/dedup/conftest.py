"""Shared pieces of the dedup tests: the synthetic corpus, the rouge-score oracle, a manager."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))


@pytest.fixture
def manager(tmp_path):
    from instructforge.dedup.manager import CollectionManager

    m = CollectionManager(tmp_path / "data")
    m.open()
    yield m
    m.close()
