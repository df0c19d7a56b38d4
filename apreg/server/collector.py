"""CPython's cyclic garbage collector, tuned for a long-lived registry process.

A registry is mostly long-lived objects (records, leases, index and log entries: about seven per instance).
With the default thresholds (700, 10, 10) and no freezing the collector keeps rescanning all of them as writes
arrive: applying 100,000 replicated records spends about 40 % of its time in collections (bench/core.py). And every full
collection walks every tracked object: at 100,000 instances that is 0.3-0.5 s with the event loop stopped,
far beyond what a read may wait.

So: what exists at start-up is frozen, and `settle` (every half second, and after each page of a first pull)
collects the young generations and freezes what survived. Collections then only walk what arrived in the last
half second: at 2,000 registrations a second that is a few milliseconds, where a young collection of a 50,000
threshold, or a settle every 3 s, took 20-40 ms. Objects frozen stay subject to
reference counting, which frees everything the registry drops (its structures hold no reference cycles); only a
reference cycle that is still alive when frozen and dies later is never reclaimed.
"""
from __future__ import annotations

import gc

GC_GENERATION0_THRESHOLD = 10_000  # a young collection walks at most this many new objects: a few ms
SETTLE_INTERVAL_S = 0.5
_tuned = False  # only a process that runs nodes as its job (apreg serve) tunes its collector; tests do not


def tune_garbage_collector() -> None:
    global _tuned
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GENERATION0_THRESHOLD, 20, 100)
    _tuned = True


def settle() -> None:
    """Collect the young generations (cheap: only what arrived lately) and freeze the survivors."""
    if _tuned:
        gc.collect(1)
        gc.freeze()
