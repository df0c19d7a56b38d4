"""Self-preservation: stop evicting when renewals collapse, because that looks like a partition, not mass death.

Each node compares the renewals it has observed (its own and replicated ones) over a sliding window with what its
live instances should have sent in that window: `sum(window / renewal_interval)`, prorated for instances younger
than the window. It engages when both hold:

- the observed renewals are below `threshold` times that expectation (Eureka's rule), and
- the missing renewals exceed `min_missing_instances` instances' worth (an instance's worth being the average
  expectation per live instance: 2 renewals at the default 30 s interval and 60 s window).

The second condition tells a crash from a silence. One silent instance can miss at most its own worth before its
lease runs out (its expectation stops counting once expired), so with the default of 2 one or two crashed
instances never engage the mode, in a registry of any size; without it, one crash among up to 6 instances at the
default settings fell below 85 % before the 90 s lease ran out and kept the dead instance listed for minutes.
Three or more silent at once in a small registry, or 15 % of a large one, still engage it: a partition that
silences half of a registry of 6 or more always does.

Observed renewals are counted as coverage, not as raw events: a renewal vouches for the instance for one renewal
interval, and an instance's count is the part of the window it was vouched for, divided by its interval (see
`lease.renewal_credit`). A raw sliding count swings by a whole renewal per instance as the window edge passes
each renewal, so clients that renew in step (one process renewing many instances) dip to (k-1)/k of the
expectation at every edge, 50 % at Eureka's defaults; and batched replication would collapse several renewals
into one event. Coverage is flat while instances renew and falls steadily, within one interval, once they stop.

Leases short against the window raise one more edge: the leases of instances that fell silent together run
out over one renewal interval, and the first of them run out before the rest tip the ratio. `wave_running_out`
asks whether the overdue leases, counted as run out too, would engage the mode; while they would, the eviction
pass holds leases that ran out less than one interval ago (passes.py), so a partition's first expiries are not
evicted half a second before the mode engages. A lone crash does not meet the rule and is evicted on time.

Release is bounded: once engaged the mode holds for at least `min_hold_windows` windows (a short partition loses
nothing), and it releases as soon as renewals are back above the threshold. Instances that stay silent stop
counting as expected once their lease has expired, so after a mass silent loss the expectation falls to what
is still renewing, the ratio recovers, and the mode releases after at most
`max(min_hold_windows * window, lease_duration) + window` from the loss: 6 minutes at the default 60 s window and
90 s leases (Eureka can hold for hours). Eviction then proceeds at most 15 % of the registry per pass.

Every transition is queued in `pending` until the shell takes it (`take_transitions`), so each is logged exactly
once whichever pass (an eviction pass or a periodic check) detected it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

EVALUATIONS_PER_WINDOW = 20  # re-evaluated every window/20: a sliding window, not a fixed minute
MAX_PENDING = 16  # transitions kept for the shell to take (a caller that never takes them keeps the latest)


@dataclass(frozen=True, slots=True)
class PreservationStatus:
    """One evaluation's figures."""

    active: bool
    renewals_in_window: float
    expected: float
    threshold: float  # renewals needed in the window to allow eviction (expected * renewal_threshold)
    instances: int = 0  # live leases the expectation is summed over
    at_ms: int = 0
    longest_lease_ms: int = 0  # of those leases: bounds when silent ones stop counting

    @property
    def instances_missing(self) -> float:
        """The missing renewals in instances' worth (the average expectation per live instance)."""
        if self.expected <= 0:
            return 0.0
        return max(0.0, self.expected - self.renewals_in_window) * self.instances / self.expected


@dataclass(frozen=True, slots=True)
class Transition:
    """The mode engaged or released; `status` holds the figures that decided it."""

    engaged: bool
    status: PreservationStatus


@dataclass(frozen=True, slots=True)
class PreservationView:
    """The mode's state and settings at one moment, read-only, for status documents, metrics and log lines."""

    active: bool
    enabled: bool
    window_ms: int
    renewal_threshold: float
    min_missing_instances: float
    transitions: int
    last: PreservationStatus
    engaged_by: PreservationStatus | None
    engaged_at_ms: int
    holds_until_ms: int
    releases_by_ms: int


@dataclass(slots=True)
class SelfPreservation:
    """The engage/hold/release state machine; counts come in, a decision comes out."""

    window_ms: int
    renewal_threshold: float = 0.85
    enabled: bool = True
    min_hold_windows: int = 5
    min_missing_instances: float = 2.0
    active: bool = False
    engaged_at_ms: int = 0
    transitions: int = 0
    last: PreservationStatus = PreservationStatus(False, 0.0, 0.0, 0.0)
    engaged_by: PreservationStatus | None = None  # the evaluation that engaged the mode, while it holds
    pending: list[Transition] = field(default_factory=list)

    def update(self, now_ms: int, observed: float, expected: float, instances: int,
               longest_lease: Callable[[], int] = lambda: 0, expired_worth: float = 0.0, expired: int = 0) -> bool:
        """Re-evaluate with the window's sums over `instances` live leases; True when the mode engaged or released.
        `longest_lease` (of those leases) is asked for only on engaging, to bound the release.

        `expired` leases that ran out within the last window (not evicted or renewed since), with
        `expired_worth` the renewals they were expected to send: to engage, they count as expected and missing.
        A lease shorter than its interval plus a sixth of the window runs out before its fading coverage alone
        tips the ratio (5 s / 10 s leases in a 60 s window: a whole silent registry was evicted unprotected),
        so without them the mode came too late. To release they do not count, which keeps the release bound: a
        silent instance stops counting once its lease has run out, and a window later it cannot engage the
        mode again either."""
        live = PreservationStatus(False, observed, expected, expected * self.renewal_threshold, instances, now_ms)
        with_expired = self._counting_expired(live, expired_worth, expired)
        held_long_enough = now_ms - self.engaged_at_ms >= self.min_hold_windows * self.window_ms
        figures, changed = live, False
        if not self.active and self._below(with_expired):
            self.active, self.engaged_at_ms, changed = True, now_ms, True
            figures = replace(with_expired, longest_lease_ms=longest_lease())
        elif self.active and (not self.enabled or (not self._below(live) and held_long_enough)):
            self.active, changed = False, True
        self.last = replace(figures, active=self.active)
        if changed:
            self.transitions += 1
            self.engaged_by = self.last if self.active else None
            self.pending.append(Transition(self.active, self.last))
            del self.pending[:-MAX_PENDING]
        return changed

    def wave_running_out(self, now_ms: int, observed: float, expected: float, instances: int,
                         expired_worth: float, expired: int, overdue_credit: float) -> bool:
        """Would the mode engage if the overdue leases (silent past their interval, not run out yet, with
        `overdue_credit` of `observed`) had run out too? Leases that fall silent together (a partition) run out
        within one renewal interval of each other, and with leases short against the window the first of them
        run out before the rest tip the ratio: evicting those would be a false eviction (I4) a moment before
        the mode engages. The eviction pass holds them for up to that interval (see `TimePasses._decide`); a
        lone crash, or a few late renewals, does not meet the rule and is evicted on time."""
        live = PreservationStatus(False, observed - overdue_credit, expected, expected * self.renewal_threshold,
                                  instances, now_ms)
        return not self.active and self._below(self._counting_expired(live, expired_worth, expired))

    def _counting_expired(self, live: PreservationStatus, expired_worth: float, expired: int) -> PreservationStatus:
        everyone = live.expected + expired_worth
        return replace(live, expected=everyone, threshold=everyone * self.renewal_threshold,
                       instances=live.instances + expired)

    def _below(self, figures: PreservationStatus) -> bool:
        return (self.enabled and figures.renewals_in_window < figures.threshold
                and figures.instances_missing > self.min_missing_instances)

    def view(self) -> PreservationView:
        return PreservationView(self.active, self.enabled, self.window_ms, self.renewal_threshold,
                                self.min_missing_instances, self.transitions, self.last, self.engaged_by,
                                self.engaged_at_ms, self.holds_until_ms, self.releases_by_ms)

    def take_transitions(self) -> list[Transition]:
        out, self.pending = self.pending, []
        return out

    @property
    def allows_eviction(self) -> bool:
        return not self.active

    @property
    def holds_until_ms(self) -> int:
        """While engaged: the earliest release (the minimum hold)."""
        return self.engaged_at_ms + self.min_hold_windows * self.window_ms

    @property
    def releases_by_ms(self) -> int:
        """While engaged: the latest release if the silent instances stay silent (their leases expire and stop
        counting), the documented bound measured from the engagement."""
        lease_ms = self.engaged_by.longest_lease_ms if self.engaged_by is not None else 0
        return self.engaged_at_ms + max(self.min_hold_windows * self.window_ms, lease_ms) + self.window_ms

