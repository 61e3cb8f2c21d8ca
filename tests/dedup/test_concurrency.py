"""Many clients at once: writers' batches apply whole and in one order, readers run alongside."""

from __future__ import annotations

import threading

from dedup_corpus import corpus

from instructforge.dedup.collection import Item
from instructforge.dedup.config import CollectionConfig

from .reference import novelty_filter


def test_interleaved_writers_and_readers(manager):
    manager.create("c", CollectionConfig())
    texts = corpus(1200, seed=8, dup_rate=0.4)
    chunks = [texts[i : i + 40] for i in range(0, len(texts), 40)]
    results: dict[int, list] = {}
    errors: list[Exception] = []
    stop = threading.Event()

    def writer(k: int) -> None:
        try:
            for n in range(k, len(chunks), 6):
                results[n] = manager.check_and_insert("c", [Item(t) for t in chunks[n]])
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                for v in manager.check("c", [Item(t) for t in texts[:30]]):
                    assert v.kept or v.best is not None
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    coll = manager.get("c")
    # The stored entries, in entry order, are exactly what the sequential loop keeps of themselves:
    # no kept item is a near-duplicate of one kept before it.
    assert all(novelty_filter(coll.texts, skip_hopeless=True))
    # Each batch is contiguous in entry order (applied whole) and every drop names an earlier entry.
    for verdicts in results.values():
        entries = [v.entry for v in verdicts if v.kept]
        if entries:
            assert entries == list(range(entries[0], entries[0] + len(entries)))
        for v in verdicts:
            if not v.kept:
                assert 0 <= v.best.entry <= max(entries, default=len(coll))
    # Replaying the batches in the order they were applied gives the same decisions (a batch that kept
    # nothing changed nothing, so its place does not matter; it goes last).
    order = sorted(results, key=lambda n: min([v.entry for v in results[n] if v.kept] or [10**9]))
    replay = [t for n in order for t in chunks[n]]
    assert [v.kept for n in order for v in results[n]] == novelty_filter(replay, skip_hopeless=True)
