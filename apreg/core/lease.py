"""Lease bookkeeping: renewals are a replicated max-register, expiry and eviction are each node's own decision.

A renewal never bumps a version vector: it only raises `renewed`, the HLC timestamp of the latest renewal
anywhere. What a node does with that is local: it restarts the lease clock at `anchor_ms`, its *own* time of
learning about the renewal (minus the age the sender reports, a duration measured on the sender's clock), so no
decision compares a remote wall clock with a local one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .clock import ZERO, Timestamp

# Bounds of a lease interval or duration in seconds, wherever one enters (a flag, a client's leaseInfo, a peer's
# instance). The core counts whole milliseconds: anything under one would become 0 ms and divide by zero in
# every eviction pass and preservation check; anything over ~11 days is a client bug.
MIN_LEASE_S = 0.001
MAX_LEASE_S = 1_000_000.0


def lease_ms(seconds: float) -> int:
    """Seconds as the core's milliseconds: the one conversion, for the flags' defaults and instances' own values."""
    return round(seconds * 1000)


def valid_lease_s(seconds: float) -> bool:
    return MIN_LEASE_S <= seconds <= MAX_LEASE_S  # False for NaN


@dataclass(slots=True)
class Lease:
    renewed: Timestamp = ZERO  # replicated: the greatest renewal timestamp seen anywhere
    anchor_ms: int = 0  # local: when the latest renewal happened, on this node's clock
    first_seen_ms: int = 0  # local: when this node first saw the instance (prorates expected renewals)
    evicted: bool = False  # local: evicted here; a newer renewal from anywhere brings it back

    def expired(self, now_ms: int, duration_ms: int) -> bool:
        return now_ms >= self.anchor_ms + duration_ms


class LeaseView(NamedTuple):
    """One instance's lease as this node sees it, read-only, for the shell to render. A NamedTuple (built in C):
    one is made for every instance rendered."""

    renewal_interval_ms: int
    duration_ms: int
    first_seen_ms: int  # when this node first saw the instance; 0 once it has forgotten the key (purged)
    last_renewal_ms: int  # on this node's clock; 0 likewise


def expected_renewals(now_ms: int, first_seen_ms: int, window_ms: int, interval_ms: int) -> float:
    """Renewals one live instance should send within the window (fewer if it is younger than the window)."""
    return min(window_ms, max(0, now_ms - first_seen_ms)) / interval_ms


def renewal_credit(now_ms: int, anchor_ms: int, first_seen_ms: int, window_ms: int, interval_ms: int) -> float:
    """Renewals' worth of the window one instance is vouched for: a renewal at t covers [t, t + interval].

    Equal to `expected_renewals` while the instance renews on time; falls linearly to 0 over one window once
    it has been silent for longer than its interval (see preservation.py for why coverage, not event counts).
    """
    overdue = max(0, now_ms - anchor_ms - interval_ms)
    return max(0, min(window_ms, max(0, now_ms - first_seen_ms)) - overdue) / interval_ms


def eviction_cap(registry_size: int, max_fraction: float) -> int:
    """How many instances one pass may evict: Eureka's `size - int(size * (1 - fraction))` (1 of a small registry)."""
    return registry_size - math.floor(registry_size * (1 - max_fraction) + 1e-9)
