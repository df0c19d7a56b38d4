"""Self-preservation: stop evicting when renewals collapse, because that looks like a partition, not mass death.

Each node compares the renewals it has observed (its own and replicated ones) over a sliding window with what its
live instances should have sent in that window: `sum(window / renewal_interval)`, prorated for instances younger
than the window. Below `threshold` times that, eviction stops.

Observed renewals are counted as coverage, not as raw events: a renewal vouches for the instance for one renewal
interval, and an instance's count is the part of the window it was vouched for, divided by its interval (see
`lease.renewal_credit`). A raw sliding count swings by a whole renewal per instance as the window edge passes
each renewal, so clients that renew in step (one process renewing many instances) dip to (k-1)/k of the
expectation at every edge, 50 % at Eureka's defaults; and batched replication would collapse several renewals
into one event. Coverage is flat while instances renew and falls steadily, within one interval, once they stop.

Release is bounded: once engaged the mode holds for at least `min_hold_windows` windows (a short partition loses
nothing), and it releases as soon as renewals are back above the threshold. Instances that stay silent stop
counting as expected once their lease has expired, so after a mass silent loss the expectation falls to what
is still renewing, the ratio recovers, and the mode releases after at most
`max(min_hold_windows * window, lease_duration) + window`: 6 minutes at the default 60 s window and 90 s leases
(Eureka can hold for hours). Eviction then proceeds at most 15 % of the registry per pass.
"""
from __future__ import annotations

from dataclasses import dataclass

EVALUATIONS_PER_WINDOW = 20  # re-evaluated every window/20: a sliding window, not a fixed minute


@dataclass(frozen=True, slots=True)
class PreservationStatus:
    active: bool
    renewals_in_window: float
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

    def update(self, now_ms: int, observed: float, expected: float) -> bool:
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
