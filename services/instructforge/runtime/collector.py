"""CPython's cycle collector, tuned for a process that handles calls at a high rate.

Why: by default the collector passes over the youngest objects every 700 net allocations, and now and
then over every object the process holds. A gateway, dedup service or run with hundreds of calls in
flight allocates tens of thousands of objects a second (protobuf messages, futures, parsed answers):
the passes took a share of each process's CPU, and an older generation's held the event loop for
40-60 ms at a time, long enough for the calls waiting at the gateway to run out while answers
queued up (`tools/bench/pipeline_bench.py`, runs interleaved with and without: the enrich stage
never slower, the whole 10k-example run 8.30 -> 7.88 s at the median, the same memory).

`settle()` is called once a process's start-up is done: what start-up allocated (modules, settings,
indexes, models) is taken out of the collector's sight for good (`gc.freeze`), and young objects are
passed over every `YOUNG` allocations. Reference counting frees everything else as before; cycles
are still collected, only less often.
"""

from __future__ import annotations

import gc

YOUNG = 50_000
"""Net allocations between two passes over the youngest objects (CPython's default: 700)."""


def settle() -> None:
    """Freeze what start-up allocated and space the collector's passes out (see the module's doc)."""
    gc.collect()  # start-up's own garbage goes now, not into the frozen set
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
