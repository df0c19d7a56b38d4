"""Running sums of what self-preservation compares, and the leases that have run out, kept as leases change.

Each live lease adds two piecewise-linear functions of time to the sums: the renewals it should send in the
window (`lease.expected_renewals`) and the renewals' worth it is vouched for (`lease.renewal_credit`). Between
breakpoints the sums are linear, and a lease has only a few: its ramp ends one window after it was first seen,
it falls overdue one interval after its anchor, its credit reaches zero, it expires one lease duration after
its anchor. So the ledger keeps the sums with their slopes, and a heap with each lease's next breakpoint;
`advance(now)` visits only the breakpoints that came due. Re-evaluating self-preservation, or finding what an
eviction pass may evict, then costs what changed, not one read of every lease.

A lease's values after a renewal depend only on its new anchor, and until it falls overdue they grow as they
did before it: so a renewal of a lease whose piece in the sums is not yet an overdue one (renewed on time, or
late but before `advance` reached its overdue breakpoint, which is most late renewals: clients renew every
interval, give or take network delay) changes neither a sum nor a slope. It only notes the new anchor on the
lease's term; the breakpoint already queued for the old anchor comes due first, finds the lease renewed, and
queues the next one. A fleet's renewals cost a dict lookup each, and about one breakpoint per lease and renewal
interval reaches the heap.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, Hashable, TypeVar

from .lease import expected_renewals, renewal_credit

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class Term:
    """One lease's part of the sums: the value and slope (per ms) of each function, as taken at `since_ms`."""

    first_seen_ms: int
    anchor_ms: int
    interval_ms: int
    duration_ms: int
    version: int = 0  # the breakpoint queued last for this term: older ones in the heap are stale
    since_ms: int = 0
    overdue: bool = False  # as of `since_ms`: the values below count the lease as overdue
    recent: bool = False  # ran out within the last window (counted in LeaseLedger.recent_worth)
    expected: float = 0.0
    observed: float = 0.0
    expected_slope: float = 0.0
    observed_slope: float = 0.0

    def expired(self, now_ms: int) -> bool:
        return now_ms >= self.anchor_ms + self.duration_ms


@dataclass(slots=True)
class LeaseLedger(Generic[K]):
    """Leases of the visible instances: `expected` and `observed` renewals in the window, and `expired`."""

    window_ms: int
    at_ms: int = 0  # the time the sums below are taken at (they are linear until the next breakpoint)
    expected_at: float = 0.0
    observed_at: float = 0.0
    expected_slope: float = 0.0
    observed_slope: float = 0.0
    # The overdue live leases' part of `observed`, and how many they are: a silence that has begun and whose
    # leases have not run out yet (see `overdue`).
    overdue_observed_at: float = 0.0
    overdue_observed_slope: float = 0.0
    overdue_count: int = 0
    terms: dict[K, Term] = field(default_factory=dict)  # live leases
    expired: dict[K, Term] = field(default_factory=dict)  # run out, not yet evicted (in the order they ran out)
    # Leases that ran out within the last window, oldest first, and what they were expected to renew in it: a
    # silence that has just begun, which self-preservation must see even when short leases run out before the
    # fading coverage tips the ratio (older expiries are old news: what a pass may evict).
    _recent: deque[tuple[int, Term]] = field(default_factory=deque)
    recent_worth: float = 0.0
    recent_count: int = 0
    _due: list[tuple[int, int, K]] = field(default_factory=list)  # (time, term version, key): next breakpoints
    _queued: int = 0

    def track(self, key: K, first_seen_ms: int, anchor_ms: int, interval_ms: int, duration_ms: int,
              now_ms: int) -> None:
        """Count a visible instance's lease (anew, if it was counted before)."""
        previous = self.terms.get(key)
        if (previous is not None and previous.first_seen_ms == first_seen_ms and previous.anchor_ms == anchor_ms
                and previous.interval_ms == interval_ms and previous.duration_ms == duration_ms):
            return  # a write that left the lease as it was (a status or metadata change)
        self.untrack(key)
        self._move(now_ms)
        term = Term(first_seen_ms, anchor_ms, max(1, interval_ms), duration_ms)
        if term.expired(now_ms):
            self._expire(key, term, now_ms)
        else:
            self.terms[key] = term
            self._take(key, term, now_ms)

    def untrack(self, key: K) -> None:
        """Stop counting a lease: its instance was cancelled, evicted or forgotten."""
        gone = self.expired.pop(key, None)
        if gone is not None:
            self._forget_recent(gone)
        term = self.terms.pop(key, None)
        if term is not None:
            self._remove(term)

    def renewed(self, key: K, anchor_ms: int, now_ms: int) -> None:
        """A counted lease restarted at `anchor_ms` (never earlier than before)."""
        term = self.terms.get(key)
        if term is not None and not term.overdue:
            term.anchor_ms = anchor_ms  # sums and slopes unchanged, see the module docstring
            return
        term = term or self.expired.get(key)
        if term is not None:
            self.track(key, term.first_seen_ms, anchor_ms, term.interval_ms, term.duration_ms, now_ms)

    def advance(self, now_ms: int, budget: int) -> bool:
        """Take the breakpoints due by `now_ms`, at most `budget` of them; True once none is left, and the
        sums are then those of `now_ms`."""
        due = self._due
        while due and due[0][0] <= now_ms:
            if budget <= 0:
                return False
            budget -= 1
            at, version, key = heapq.heappop(due)
            term = self.terms.get(key)
            if term is None or term.version != version:
                continue  # tracked anew or dropped since this breakpoint was queued
            self._move(at)
            self._remove(term)
            if term.expired(at):
                del self.terms[key]
                self._expire(key, term, at)
            else:
                self._take(key, term, at)
        self._move(now_ms)
        return True

    def sums(self) -> tuple[float, float]:
        """(observed, expected) at `at_ms`: call after `advance` returns True. Rounded to a millionth of a
        renewal: adding and removing terms leaves float residue (1e-12), which must not tip a threshold."""
        return max(0.0, round(self.observed_at, 6)), max(0.0, round(self.expected_at, 6))

    def overdue(self) -> tuple[float, int]:
        """(credit, count) of the live leases silent for longer than their interval, at `at_ms`: what `sums`
        would lose if they had all run out (leases that fell silent together run out within one interval of each
        other, so these are the rest of a wave whose first leases are running out)."""
        if not self.overdue_count:
            return 0.0, 0
        return max(0.0, round(self.overdue_observed_at, 6)), self.overdue_count

    def _expire(self, key: K, term: Term, at_ms: int) -> None:
        """The lease ran out: out of the sums, into `expired`, and for one window into the recent ones."""
        term.expected = expected_renewals(at_ms, term.first_seen_ms, self.window_ms, term.interval_ms)
        term.recent = True
        self.expired[key] = term
        self._recent.append((at_ms, term))
        self.recent_worth += term.expected
        self.recent_count += 1

    def recently_expired(self, now_ms: int) -> tuple[float, int]:
        """(worth, count) of the leases that ran out within the last window and are not evicted or renewed."""
        while self._recent and self._recent[0][0] <= now_ms - self.window_ms:
            self._forget_recent(self._recent.popleft()[1])
        return max(0.0, round(self.recent_worth, 6)), self.recent_count

    def _forget_recent(self, term: Term) -> None:
        if term.recent:
            term.recent = False
            self.recent_count -= 1
            self.recent_worth = self.recent_worth - term.expected if self.recent_count else 0.0  # no float residue

    def _move(self, to_ms: int) -> None:
        """Take the sums at a later time (never an earlier one): near the terms' own times, where floats are
        exact enough (taken at 0, each term would add and remove values of 10^8 renewals)."""
        if to_ms <= self.at_ms:
            return
        elapsed = to_ms - self.at_ms
        self.expected_at += self.expected_slope * elapsed
        self.observed_at += self.observed_slope * elapsed
        self.overdue_observed_at += self.overdue_observed_slope * elapsed
        self.at_ms = to_ms

    def _take(self, key: K, term: Term, now_ms: int) -> None:
        """Add the lease's exact values and slopes at `now_ms` to the sums, and queue its next breakpoint."""
        window, first, interval = self.window_ms, term.first_seen_ms, term.interval_ms
        ramping = now_ms - first < window
        overdue_at = term.anchor_ms + interval
        overdue = now_ms >= overdue_at
        term.since_ms, term.overdue = now_ms, overdue
        term.expected = expected_renewals(now_ms, first, window, interval)
        term.observed = renewal_credit(now_ms, term.anchor_ms, first, window, interval)
        term.expected_slope = ramping / interval
        net = ramping - overdue
        term.observed_slope = net / interval if term.observed > 0 or net > 0 else 0.0
        breakpoints = [term.anchor_ms + term.duration_ms]
        if ramping:
            breakpoints.append(first + window)
        if not overdue:
            breakpoints.append(overdue_at)
        elif term.observed_slope < 0:
            breakpoints.append(now_ms + math.ceil(term.observed * interval))  # its credit reaches zero
        self._add(term, 1)
        term.version = self._queued
        self._queued += 1
        heapq.heappush(self._due, (max(now_ms + 1, min(breakpoints)), term.version, key))

    def _remove(self, term: Term) -> None:
        self._add(term, -1)

    def _add(self, term: Term, sign: int) -> None:
        """The term's linear piece, as of the sums' own time (terms are taken at other times than `at_ms`)."""
        shift = self.at_ms - term.since_ms
        self.expected_at += sign * (term.expected + term.expected_slope * shift)
        self.observed_at += sign * (term.observed + term.observed_slope * shift)
        self.expected_slope += sign * term.expected_slope
        self.observed_slope += sign * term.observed_slope
        if term.overdue:
            self.overdue_observed_at += sign * (term.observed + term.observed_slope * shift)
            self.overdue_observed_slope += sign * term.observed_slope
            self.overdue_count += sign
            if not self.overdue_count:  # no float residue
                self.overdue_observed_at = self.overdue_observed_slope = 0.0
