"""Self-preservation: stop evicting when renewals collapse, because that looks like a partition, not mass death.

Each node counts the renewals it observes (its own and replicated ones) in a sliding window and compares them
with what its live instances should have sent in that window: `sum(window / renewal_interval)`, prorated for
instances younger than the window. Below `threshold` times that, eviction stops.

Release is bounded: once engaged the mode holds for at least `min_hold_windows` windows (a short partition loses
nothing), and it releases as soon as renewals are back above the threshold. Instances that stay silent stop
counting as expected once their lease has expired, so after a mass silent loss the expectation falls to what
is still renewing, the ratio recovers, and the mode releases after at most
`max(min_hold_windows * window, lease_duration) + window`: 5 minutes at the default 60 s window and 90 s leases
(Eureka can hold for hours). Eviction then proceeds at most 15 % of the registry per pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

BUCKETS_PER_WINDOW = 20


@dataclass(slots=True)
class RenewalWindow:
    """Renewals counted over a sliding window, in sub-buckets of window/20 (not Eureka's fixed minute).

    The current partial bucket counts too, so the window spans between 1 and 1.05 windows: a slight bias
    towards "renewals are fine", which keeps timing jitter from engaging self-preservation.
    """

    window_ms: int
    buckets: dict[int, int] = field(default_factory=dict)  # bucket index -> renewals in it

    @property
    def bucket_ms(self) -> int:
        return max(1, self.window_ms // BUCKETS_PER_WINDOW)

    def add(self, at_ms: int, count: int = 1) -> None:
        """Count renewals that happened at `at_ms` (which may lie in an earlier bucket, for replicated ones)."""
        index = at_ms // self.bucket_ms
        self.buckets[index] = self.buckets.get(index, 0) + count
        if len(self.buckets) > 2 * BUCKETS_PER_WINDOW:
            self._trim(max(self.buckets))

    def total(self, now_ms: int) -> int:
        self._trim(now_ms // self.bucket_ms)
        return sum(self.buckets.values())

    def _trim(self, index: int) -> None:
        oldest = index - BUCKETS_PER_WINDOW
        for stale in [i for i in self.buckets if i < oldest]:
            del self.buckets[stale]


@dataclass(frozen=True, slots=True)
class PreservationStatus:
    active: bool
    renewals_in_window: int
    expected: float
    threshold: float  # renewals needed in the window to allow eviction (expected * renewal_threshold)


@dataclass(slots=True)
class SelfPreservation:
    """The engage/hold/release state machine; counts come in, a decision comes out."""

    window_ms: int
    renewal_threshold: float = 0.85
    enabled: bool = True
    min_hold_windows: int = 5
    active: bool = False
    engaged_at_ms: int = 0
    transitions: int = 0
    last: PreservationStatus = PreservationStatus(False, 0, 0.0, 0.0)

    def update(self, now_ms: int, observed: int, expected: float) -> bool:
        """Re-evaluate; returns True when the mode engaged or released on this call."""
        needed = expected * self.renewal_threshold
        below = self.enabled and expected > 0 and observed < needed
        held_long_enough = now_ms - self.engaged_at_ms >= self.min_hold_windows * self.window_ms
        changed = False
        if below and not self.active:
            self.active, self.engaged_at_ms, changed = True, now_ms, True
        elif self.active and (not self.enabled or (not below and held_long_enough)):
            self.active, changed = False, True
        self.transitions += changed
        self.last = PreservationStatus(self.active, observed, expected, needed)
        return changed

    @property
    def allows_eviction(self) -> bool:
        return not self.active
