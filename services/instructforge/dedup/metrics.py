"""Prometheus metrics of the dedup service, read from the collections at scrape time.

A collector (not counters bumped on the hot path) so the numbers are exactly the core's own and a
scrape costs O(collections). Counters: items judged, kept and dropped by reason, LCS pairs compared,
postings scanned, seconds in lexical checks; gauges: entries, index bytes by engine, vectors by
index kind, LCS pairs per second (lifetime), snapshot age, log bytes.
"""

from __future__ import annotations

import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .decide import REASONS


class DedupCollector(Collector):
    def __init__(self, manager):
        self.manager = manager

    def collect(self):
        p = "iforge_dedup_"
        labels = ["collection"]
        checked = CounterMetricFamily(p + "items_checked", "Items judged by CheckAndInsert.", labels=labels)
        kept = CounterMetricFamily(p + "items_kept", "Items kept by CheckAndInsert.", labels=labels)
        dropped = CounterMetricFamily(p + "items_dropped", "Items dropped by CheckAndInsert, by reason.",
                                      labels=labels + ["reason"])
        read_only = CounterMetricFamily(p + "check_items", "Items judged by Check (nothing inserted).", labels=labels)
        inserted = CounterMetricFamily(p + "items_inserted", "Items inserted unjudged by Insert.", labels=labels)
        pairs = CounterMetricFamily(p + "lcs_pairs", "Candidate pairs whose LCS was computed.", labels=labels)
        scanned = CounterMetricFamily(p + "postings_scanned", "Prefix-index postings examined.", labels=labels)
        seconds = CounterMetricFamily(p + "lexical_check_seconds", "Time in lexical checks.", labels=labels)
        rate = GaugeMetricFamily(p + "lcs_pairs_per_second", "LCS pairs per second of LCS kernel time.",
                                 labels=labels)
        entries = GaugeMetricFamily(p + "entries", "Entries stored (references excluded).", labels=labels)
        memory = GaugeMetricFamily(p + "index_bytes", "Memory of a collection, by part.", labels=labels + ["part"])
        vectors = GaugeMetricFamily(p + "vectors", "Vectors by index kind.", labels=labels + ["kind"])
        age = GaugeMetricFamily(p + "snapshot_age_seconds", "Seconds since the last snapshot (or since open).",
                                labels=labels)
        wal = GaugeMetricFamily(p + "wal_bytes", "Bytes in the write-ahead log since the last snapshot.",
                                labels=labels)
        now = time.time()
        for name, h in self.manager.handles():
            c, coll, stats = h.verdicts, h.coll, h.coll.lexical.stats
            checked.add_metric([name], c["items"])
            kept.add_metric([name], c["kept"])
            for reason in REASONS[1:]:
                dropped.add_metric([name, reason], c["dropped_" + reason])
            read_only.add_metric([name], c["check_items"])
            inserted.add_metric([name], c["inserted"])
            pairs.add_metric([name], stats.lcs_pairs)
            scanned.add_metric([name], stats.postings_scanned)
            seconds.add_metric([name], stats.check_seconds)
            rate.add_metric([name], stats.lcs_pairs / stats.lcs_seconds if stats.lcs_seconds else 0.0)
            entries.add_metric([name], coll.entry_count)
            memory.add_metric([name, "texts"], coll.text_bytes)
            memory.add_metric([name, "lexical"], coll.lexical.nbytes())
            if coll.semantic is not None:
                memory.add_metric([name, "semantic"], coll.semantic.nbytes())
                for kind, count in coll.semantic.kinds().items():
                    vectors.add_metric([name, kind], count)
            age.add_metric([name], now - h.snapshot_at)
            wal.add_metric([name], h.wal.bytes if h.wal is not None else 0)
        yield from (checked, kept, dropped, read_only, inserted, pairs, scanned, seconds, rate, entries, memory,
                    vectors, age, wal)
