"""The background pass that self-preservation and eviction need, taken a slice at a time.

Both decisions depend on every live lease and on the time: what each instance should have renewed in the
window, what it did renew, which leases have run out. The lease ledger (ledger.py) keeps those as running sums
and a set, so a pass only visits the leases' breakpoints that came due since the last one; after a partition
heals or a mass expiry that can still be most of the registry at once, so the pass advances the ledger
`SWEEP_SLICE` breakpoints per call (`Replica.sweep`), then re-evaluates self-preservation and, when an eviction
pass was asked for, evicts in slices too (a mass expiry evicts up to 15 % of the registry, each eviction a
change to index, feed and documents).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .instance import InstanceKey

SWEEP_SLICE = 500  # ledger breakpoints per slice: 2,000 held a 100,000-instance node's loop 30-50 ms (bench/sync.py)
EVICTIONS_PER_ENTRY = 8  # an eviction (index, feed, documents) costs about as much as this many breakpoints


@dataclass(slots=True)
class Sweep:
    """A pass between deciding and finishing its evictions."""

    preservation_changed: bool = False
    victims: list[tuple[int, InstanceKey]] = field(default_factory=list)  # chosen for eviction, oldest last
    evicted: list[InstanceKey] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """What a finished pass decided."""

    evicted: list[InstanceKey]
    preservation_changed: bool  # self-preservation engaged or released
