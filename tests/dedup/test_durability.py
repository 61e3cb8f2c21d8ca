"""Write-ahead log and snapshots: replay, torn tails, corruption, idempotent retries after restarts."""

from __future__ import annotations

import logging
import time

import pytest
from dedup_corpus import corpus

from instructforge.dedup import wal
from instructforge.dedup.collection import Item
from instructforge.dedup.config import CollectionConfig
from instructforge.dedup.manager import CollectionManager, Durability
from instructforge.runtime.errors import DataLoss

TEXTS = corpus(600, seed=21, dup_rate=0.3)


def fill(m: CollectionManager, name: str, texts: list[str], size: int = 100) -> list[bool]:
    out = []
    for start in range(0, len(texts), size):
        out += [v.kept for v in m.check_and_insert(name, [Item(t) for t in texts[start : start + size]])]
    return out


def reopen(path, **durability) -> CollectionManager:
    m = CollectionManager(path, durability=Durability(**durability))
    m.open()
    return m


def kept_texts(m: CollectionManager, name: str) -> list[str]:
    return list(m.get(name).texts)


@pytest.mark.parametrize("fsync", [wal.ALWAYS, wal.INTERVAL, wal.NEVER])
def test_restart_replays_the_log(tmp_path, fsync):
    m = reopen(tmp_path, fsync=fsync, fsync_interval_s=0.05)
    m.create("c", CollectionConfig())
    kept = fill(m, "c", TEXTS)
    before = kept_texts(m, "c")
    m.close()
    m2 = reopen(tmp_path)
    assert kept_texts(m2, "c") == before == [t for t, k in zip(TEXTS, kept) if k]
    # the restored index judges exactly as the live one did
    assert [v.kept for v in m2.check("c", [Item(t) for t in TEXTS[:50]])] == [False] * 50
    m2.close()


def test_snapshot_then_log(tmp_path):
    m = reopen(tmp_path)
    m.create("c", CollectionConfig())
    fill(m, "c", TEXTS[:300])
    seq, _ = m.snapshot("c")
    assert (tmp_path / "collections/c/wal.log").stat().st_size == 0  # the snapshot covers the log
    fill(m, "c", TEXTS[300:])
    m.check_and_insert("c", [Item("a brand new zebra instruction")], request_id="req-7")
    before = kept_texts(m, "c")
    m.close()
    m2 = reopen(tmp_path)
    coll = m2.get("c")
    assert kept_texts(m2, "c") == before and coll.seq > seq
    # a retried request is answered from what was logged, after the restart
    again = m2.check_and_insert("c", [Item("a brand new zebra instruction")], request_id="req-7")
    assert again[0].kept and len(m2.get("c")) == len(before)
    m2.snapshot("c")
    m2.close()
    m3 = reopen(tmp_path)
    assert m3.check_and_insert("c", [Item("x")], request_id="req-7")[0].kept  # remembered in the snapshot
    assert kept_texts(m3, "c") == before
    m3.close()


def test_torn_last_record_is_dropped_and_logged(tmp_path, caplog):
    m = reopen(tmp_path)
    m.create("c", CollectionConfig())
    fill(m, "c", TEXTS[:200])
    good = kept_texts(m, "c")
    m.check_and_insert("c", [Item("the last batch, torn by a crash"), Item("zebra quagga okapi")])
    m.close()
    log_path = tmp_path / "collections/c/wal.log"
    full = log_path.read_bytes()
    payloads, end = wal.read_log(log_path)
    last_start = end - (len(payloads[-1]) + 12)
    for cut in (last_start + 3, last_start + 12, last_start + 40, len(full) - 1):
        log_path.write_bytes(full[:cut])
        with caplog.at_level(logging.WARNING):
            m2 = reopen(tmp_path)
        assert kept_texts(m2, "c") == good  # nothing half-present
        assert "torn last record" in caplog.text
        assert log_path.stat().st_size == last_start  # cut off, so new records follow intact ones
        m2.check_and_insert("c", [Item("written after recovery")])
        m2.close()
        assert kept_texts(reopen(tmp_path), "c") == good + ["written after recovery"]
        caplog.clear()
    log_path.write_bytes(full[:last_start] + b"\x00" * 37)  # garbage instead of a record
    m3 = reopen(tmp_path)
    assert kept_texts(m3, "c") == good
    m3.close()


def test_corruption_before_intact_records_is_data_loss(tmp_path):
    m = reopen(tmp_path)
    m.create("c", CollectionConfig())
    m.create("other", CollectionConfig())
    fill(m, "c", TEXTS[:300])
    m.check_and_insert("other", [Item("still fine")])
    m.close()
    log_path = tmp_path / "collections/c/wal.log"
    data = bytearray(log_path.read_bytes())
    data[30] ^= 0xFF  # inside the first record's payload
    log_path.write_bytes(bytes(data))
    m2 = reopen(tmp_path)  # the service starts; only the damaged collection is unavailable
    with pytest.raises(DataLoss) as err:
        m2.check("c", [Item("x")])
    assert "refusing to skip" in err.value.message
    assert m2.check("other", [Item("still fine")])[0].reason == "exact_duplicate"
    m2.close()


def test_periodic_snapshot_by_log_size(tmp_path):
    m = reopen(tmp_path, snapshot_wal_bytes=2000)
    m.create("c", CollectionConfig())
    fill(m, "c", TEXTS[:200])
    snap_dir = tmp_path / "collections/c"
    deadline = time.monotonic() + 30
    while not list(snap_dir.glob("snapshot-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(snap_dir.glob("snapshot-*"))
    before = kept_texts(m, "c")
    m.close()
    assert kept_texts(reopen(tmp_path), "c") == before


def test_delete_removes_files(tmp_path):
    m = reopen(tmp_path)
    m.create("c", CollectionConfig())
    fill(m, "c", TEXTS[:50])
    m.delete("c")
    assert not (tmp_path / "collections/c").exists()
    m.close()
    assert reopen(tmp_path).names() == []
