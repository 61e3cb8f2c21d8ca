"""The dedup settings: documented defaults pinned, env and validation."""

from __future__ import annotations

import pytest

from instructforge.dedup.settings import DedupSettings
from instructforge.runtime.errors import InvalidArgument
from instructforge.runtime.settings import load_settings

DEFAULTS = {
    "fsync": "always", "fsync_interval_s": 1.0, "snapshot_wal_mb": 256, "snapshot_interval_s": 3600.0,
    "lexical_workers": 0, "embedding_device": "", "max_batch_items": 100_000, "max_text_bytes": 262_144,
    "max_entries": 10_000_000, "max_references": 100_000, "remembered_requests": 10_000,
    "exact_max_vectors": 100_000, "large_index": "ivf", "ivf_nprobe": 16, "hnsw_m": 32, "hnsw_ef_search": 128,
    "shard_addresses": [], "shard_self": "", "faiss_device": "", "faiss_gpu_min_vectors": 20_000,
}


def test_documented_defaults():
    settings = load_settings(DedupSettings)
    assert {name: getattr(settings, name) for name in DEFAULTS} == DEFAULTS
    assert settings.port == 50052 and settings.metrics_port == 9092
    assert settings.durability().snapshot_wal_bytes == 256 << 20
    assert settings.limits().max_entries == 10_000_000 and settings.workers() >= 1


def test_environment_and_shards(monkeypatch):
    monkeypatch.setenv("IFORGE_DEDUP_FSYNC", "interval")
    monkeypatch.setenv("IFORGE_DEDUP_SHARD_ADDRESSES", "dedup-0:50052, dedup-1:50052")
    monkeypatch.setenv("IFORGE_DEDUP_SHARD_SELF", "dedup-1:50052")
    settings = load_settings(DedupSettings)
    assert settings.fsync == "interval" and settings.shard_addresses == ["dedup-0:50052", "dedup-1:50052"]


@pytest.mark.parametrize("overrides, field", [
    ({"fsync": "sometimes"}, "fsync"),
    ({"max_text_bytes": 0}, "max_text_bytes"),
    ({"shard_addresses": "a:1,b:1", "shard_self": "c:1"}, "shard_self"),
])
def test_bad_settings_name_the_field(overrides, field):
    with pytest.raises(InvalidArgument) as err:
        load_settings(DedupSettings, overrides=overrides)
    assert any(field in v.field or field in v.description for v in err.value.violations)
