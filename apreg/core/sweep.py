"""The background pass over every entry that self-preservation and eviction need, taken a slice at a time.

Both decisions depend on every live lease and on the time: what each instance should have renewed in the
window, what it did renew, which leases have run out. A pass over 100,000 entries takes tens of milliseconds,
which one call must not hold the caller (the event loop) for; so the pass walks a snapshot of the keys in
slices (`Replica.sweep`), accumulating the sums and the expired leases, and acts when the last slice is done:
it re-evaluates self-preservation and, when an eviction pass was asked for, evicts in slices too (a mass
expiry evicts up to 15 % of the registry, each eviction a change to index, feed and documents). Keys that
disappear meanwhile are skipped; keys that appear meanwhile wait for the next pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .entry import Entry
from .instance import InstanceKey

SWEEP_SLICE = 2_000  # entries per slice: a few milliseconds of the caller's time
EVICTIONS_PER_ENTRY = 8  # an eviction (index, feed, documents) costs about as much as reading this many entries


@dataclass(slots=True)
class Sweep:
    entries: list[Entry]  # a snapshot: an Entry object stays its key's for as long as the key is known
    position: int = 0
    expected: float = 0.0  # renewals the live instances should have sent in the window
    observed: float = 0.0  # renewals' worth of the window they were vouched for
    live: int = 0  # unexpired leases the sums cover
    longest_lease_ms: int = 0  # the longest of them
    expired: list[tuple[int, InstanceKey]] = field(default_factory=list)  # (lease anchor, key): eviction candidates
    preservation_changed: bool = False
    victims: list[tuple[int, InstanceKey]] = field(default_factory=list)  # chosen for eviction, oldest last
    evicted: list[InstanceKey] = field(default_factory=list)

    @property
    def scanned(self) -> bool:
        return self.position >= len(self.entries)


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """What a finished pass decided."""

    evicted: list[InstanceKey]
    preservation_changed: bool  # self-preservation engaged or released
