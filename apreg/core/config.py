"""Tunables of the replication core, with the defaults DESIGN.md fixes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """All durations in milliseconds: the core counts time, it never reads a clock."""

    renewal_interval_ms: int = 30_000  # default for instances whose leaseInfo gives none
    lease_duration_ms: int = 90_000  # expiry is last renewal + this (not Eureka's accidental 2x)
    renewal_window_ms: int = 60_000  # self-preservation counts renewals over this sliding window
    renewal_threshold: float = 0.85  # below this share of expected renewals, stop evicting
    self_preservation: bool = True
    min_hold_windows: int = 5  # once engaged, self-preservation holds at least this many windows
    # Self-preservation also needs more than this many instances' worth of renewals missing: one or two crashes
    # are evicted whatever the registry's size (preservation.py).
    min_missing_instances: float = 2.0
    max_eviction_fraction: float = 0.15  # one eviction pass removes at most this share of the registry
    tombstone_ttl_ms: int = 24 * 3600 * 1000  # the longest partition that cannot resurrect a cancel
    max_clock_skew_ms: int = 60_000  # remote timestamps further ahead than this are rejected
    max_batch_items: int = 2000  # records + renewals per push
    # Records + renewals per anti-entropy page: small enough that decoding and applying one page holds the
    # receiver's event loop well under 20 ms (bench/sync.py), big enough that the per-page round trip, hidden by
    # asking for the next page while applying one, stays a small share of a full pull.
    max_page_items: int = 400
    direct_window_ms: int = 5_000  # a replica heard from within this long needs no forwarded copies of its writes
    # How often `Replica.tick` asks the next peer in turn for a digest: the bound on how long a write lost in
    # flight stays missing (I1). 1 s is the LAN preset; each exchange costs a constant when nothing differs.
    anti_entropy_interval_ms: int = 1_000
    # How often an eviction pass (then garbage collection) runs. 60 s as Eureka's evictionIntervalTimerInMs; a
    # pass evicts at most `max_eviction_fraction` of the registry, so a shorter interval evicts a mass loss faster.
    eviction_interval_ms: int = 60_000
    # Extra wait before an eager push of a versioned write, to coalesce writes. 0 pushes at the next tick, and
    # writes arriving while a push to a peer is in flight go together in the next one (one in flight per peer).
    push_window_ms: int = 0
    # How long renewals alone wait for company before they are pushed: a fleet's heartbeats then travel a few
    # frames a second per peer, not one frame each (a lease lasts 90 s; a frame costs the receiver more than the
    # renewals in it). Never shorter than `push_window_ms`.
    renewal_push_window_ms: int = 100
    # Peers per eager push, chosen at random from the replica's seeded rng; 0 means all. Anti-entropy still
    # reaches every peer in turn, so with a fanout a write reaches the rest within a few intervals.
    fanout: int = 0

    def __post_init__(self) -> None:
        if self.renewal_interval_ms <= 0 or self.lease_duration_ms <= 0 or self.renewal_window_ms <= 0:
            raise ValueError("renewal interval, lease duration and renewal window must be positive")
        if not 0 < self.renewal_threshold <= 1:
            raise ValueError("renewal_threshold must be in (0, 1]")
        if not 0 < self.max_eviction_fraction <= 1:
            raise ValueError("max_eviction_fraction must be in (0, 1]")
        if self.anti_entropy_interval_ms <= 0 or self.eviction_interval_ms <= 0:
            raise ValueError("anti_entropy_interval_ms and eviction_interval_ms must be positive")
        if self.push_window_ms < 0 or self.renewal_push_window_ms < 0 or self.fanout < 0:
            raise ValueError("push_window_ms, renewal_push_window_ms and fanout must not be negative")
