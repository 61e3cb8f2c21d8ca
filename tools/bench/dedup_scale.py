"""How big one dedup node's collection can grow: load rate, memory per entry and check latency at N.

Bulk-loads ``--entries`` synthetic instructions (``dedup_corpus.py``; 25% rephrasings of recent
ones) into one lexical collection of the dedup core, in-process and in memory (no write-ahead log:
this measures the indexes, not the disk), with ``Insert`` batches of ``--batch``. Prints, every
``--report`` entries: load rate, the collection's own memory account per entry and the process's
RSS growth per entry. Then times ``Check`` of ``--checks`` batches of 1k fresh instructions at the
full size (the read path of CheckAndInsert; a full collection refuses inserts), with the postings
scanned and LCS pairs computed per item.

    python tools/bench/dedup_scale.py                          # 10M entries (~20 GB, ~25 min on 2 cores)
    python tools/bench/dedup_scale.py --entries 1000000        # a quicker look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedup_corpus import InstructionCorpus


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=100_000, help="items per Insert")
    parser.add_argument("--report", type=int, default=1_000_000, help="print a line every this many entries")
    parser.add_argument("--checks", type=int, default=5, help="1k-item Check batches timed at full size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from instructforge.dedup.collection import Item
    from instructforge.dedup.config import CollectionConfig, Limits
    from instructforge.dedup.manager import CollectionManager

    cores = len(os.sched_getaffinity(0))
    manager = CollectionManager(None, limits=Limits(max_entries=args.entries, max_batch_items=args.batch),
                                workers=cores)
    manager.open()
    coll = manager.create("scale", CollectionConfig())
    source = InstructionCorpus(args.seed)
    print(f"loading {args.entries:,} instructions into one lexical collection, {args.batch:,} per Insert, "
          f"{cores} cores")
    print(f"{'entries':>12} | {'load s':>7} | {'entries/s':>9} | {'own bytes/entry':>15} | {'RSS bytes/entry':>15} "
          f"| {'RSS GiB':>7}")
    base = rss_bytes()
    loading = generating = 0.0
    loaded = 0
    while loaded < args.entries:
        started = time.perf_counter()
        texts = source.generate(min(args.batch, args.entries - loaded))
        generating += time.perf_counter() - started
        started = time.perf_counter()
        manager.insert("scale", [Item(t) for t in texts])
        loading += time.perf_counter() - started
        loaded += len(texts)
        if loaded % args.report == 0 or loaded == args.entries:
            rss = rss_bytes()
            print(f"{loaded:>12,} | {loading:7.0f} | {loaded / loading:9,.0f} | {coll.memory_bytes() / loaded:15,.0f} | "
                  f"{(rss - base) / loaded:15,.0f} | {rss / 2**30:7.1f}", flush=True)
    print(f"(generating the texts took another {generating:.0f} s, not counted)")

    probe = InstructionCorpus(args.seed + 1)
    stats = coll.lexical.stats
    seconds, drops = [], 0
    for _ in range(args.checks):
        texts = probe.generate(1000)
        scanned, pairs = stats.postings_scanned, stats.lcs_pairs
        started = time.perf_counter()
        verdicts = manager.check("scale", [Item(t) for t in texts])
        seconds.append(time.perf_counter() - started)
        drops += sum(not v.kept for v in verdicts)
        print(f"  Check of 1k fresh instructions at {len(coll):,} entries: {seconds[-1] * 1000:.0f} ms, "
              f"{(stats.postings_scanned - scanned) / 1000:,.0f} postings scanned and "
              f"{(stats.lcs_pairs - pairs) / 1000:,.1f} LCS pairs per item", flush=True)
    print(f"median {statistics.median(seconds) * 1000:.0f} ms per 1k-item check at {len(coll):,} entries; "
          f"{drops} of {1000 * args.checks} dropped as near-duplicates of stored entries")
    manager.close()


if __name__ == "__main__":
    main()
