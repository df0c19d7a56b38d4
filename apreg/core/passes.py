"""The Replica's passes over time: lease ledger, self-preservation, eviction, garbage collection.

`tick` runs them when due (driving.py), a slice at a time; `evict` and `update_preservation` run one whole
pass in one call, for tests and tools. A mixin of `Replica`, which holds the state named below.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .changelog import ChangeLog
from .config import CoreConfig
from .effects import Action
from .entry import Entry
from .index import RegistryIndex
from .instance import InstanceInfo, InstanceKey
from .ledger import LeaseLedger
from .lease import eviction_cap
from .preservation import SelfPreservation
from .pushes import PeerState
from .record import Record
from .sweep import EVICTIONS_PER_ENTRY, SWEEP_SLICE, Sweep, SweepOutcome
from .watermarks import Watermarks

if TYPE_CHECKING:
    from .status import Counters


class TimePasses:
    """Adds behaviour, no state: the state is Replica's (its dataclass slots), declared here for the checker."""

    if TYPE_CHECKING:
        config: CoreConfig
        entries: dict[InstanceKey, Entry]
        index: RegistryIndex
        log: ChangeLog
        counters: Counters
        leases: LeaseLedger[InstanceKey]
        preservation: SelfPreservation
        peers: dict[str, PeerState]
        marks: Watermarks
        _tombstoned_at: dict[InstanceKey, int]
        _evicted_at: dict[InstanceKey, int]
        _sweep: Sweep | None
        _eviction_requested: bool
        _preservation_due: int
        _last_pass_ms: int
        _resumed_ms: int | None
        _resume_wait_ms: int
        _emit: Callable[[InstanceKey, Action | None, Record, int, InstanceInfo | None], None]

        def lease_duration_ms(self, info: InstanceInfo) -> int: ...
        def _evaluation_interval_ms(self) -> int: ...
        def release_held(self, now_ms: int) -> None: ...
    else:
        __slots__ = ()  # no __dict__: Replica stays slotted

    # ----- time: leases, eviction, self-preservation, garbage collection ------------------------------------

    def sweep(self, now_ms: int, budget: int = SWEEP_SLICE) -> SweepOutcome | None:
        """Advance the lease ledger to `now_ms` by at most `budget` breakpoints, then re-evaluate self-preservation
        and, if an eviction was requested meanwhile and is allowed, evict the oldest expired leases (at most the
        capped share), `budget // EVICTIONS_PER_ENTRY` per call. None while unfinished, so the caller can publish
        each call's changes before the next (see sweep.py)."""
        self._note_gap(now_ms)
        self.release_held(now_ms)
        sweep = self._sweep
        if sweep is None:
            if not self.leases.advance(now_ms, budget):
                return None
            sweep = self._sweep = Sweep()
            self._decide(sweep, now_ms)
        else:
            self._evict_some(sweep, now_ms, max(1, budget // EVICTIONS_PER_ENTRY))
        if sweep.victims:
            return None
        self._sweep = None
        return SweepOutcome(sweep.evicted, sweep.preservation_changed)

    def request_eviction(self) -> None:
        """Evict expired leases when the current (or next) pass ends: an eviction pass, in slices."""
        self._eviction_requested = True

    def _decide(self, sweep: Sweep, now_ms: int) -> None:
        self._preservation_due = now_ms + self._evaluation_interval_ms()
        leases, preservation = self.leases, self.preservation
        observed, expected = leases.sums()
        recent = leases.recently_expired(now_ms)
        sweep.preservation_changed = preservation.update(now_ms, observed, expected, len(leases.terms),
                                                         self._longest_lease, *recent)
        if self._eviction_requested:
            self._eviction_requested = False
            if preservation.allows_eviction and not self._evictions_held(now_ms):
                overdue_credit, overdue = leases.overdue()
                wave = overdue > 0 and preservation.wave_running_out(now_ms, observed, expected, len(leases.terms),
                                                                     *recent, overdue_credit)
                cap = eviction_cap(self.index.count, self.config.max_eviction_fraction)
                # Cost grows with what has expired, not with the registry: the ledger keeps them apart. While a
                # wave of silent leases is running out, its first ones wait (at most one interval) for the rest.
                sweep.victims = sorted((term.anchor_ms, key) for key, term in leases.expired.items()
                                       if not wave or term.anchor_ms + term.duration_ms + term.interval_ms <= now_ms)
                del sweep.victims[cap:]
                sweep.victims.reverse()  # oldest last: taken from the end

    def _longest_lease(self) -> int:
        """The longest live lease: a scan, asked for only when self-preservation engages (to say by when it
        releases), never on a regular pass."""
        return max((term.duration_ms for term in self.leases.terms.values()), default=0)

    def _note_gap(self, now_ms: int) -> None:
        """Passes come every window/EVALUATIONS_PER_WINDOW; three missed means the process was stopped (SIGSTOP,
        a frozen VM, a long stall) or its clock stepped forward, and the renewals it missed (or that its leases
        now look too old for) are still on their way to it."""
        gap = 3 * self._evaluation_interval_ms()
        if self._last_pass_ms and now_ms - self._last_pass_ms > gap:
            self._resumed_ms = now_ms
            # A scan, once per stop or step: the clients of every live lease get one interval to renew, and a
            # peer's eager push of that renewal its push window twice over (it may wait for one in flight).
            config = self.config
            self._resume_wait_ms = (max((term.interval_ms for term in self.leases.terms.values()), default=0)
                                    + 2 * max(config.push_window_ms, config.renewal_push_window_ms))
        self._last_pass_ms = max(self._last_pass_ms, now_ms)

    def _evictions_held(self, now_ms: int) -> bool:
        """After a stop or a clock step, evict nothing until every peer we know has sent us a delta since and
        the longest renewal interval (and two push windows) has passed, so that the renewals this node missed,
        and its own clients' next ones, have arrived (or until one lease duration has passed, so a dead peer
        cannot hold eviction forever): every lease looks expired to a node that slept through its renewals or
        whose clock jumped past them, and with nothing expected self-preservation cannot catch that (I4)."""
        resumed = self._resumed_ms
        if resumed is None:
            return False
        heard = all(self.marks.heard_ms.get(state.replica, -1) >= resumed for state in self.peers.values()
                    if state.replica) and now_ms - resumed >= self._resume_wait_ms
        if heard or now_ms - resumed >= self.config.lease_duration_ms:
            self._resumed_ms = None
            return False
        return True

    def _evict_some(self, sweep: Sweep, now_ms: int, count: int) -> None:
        """Evict up to `count` of the chosen leases, oldest first, each if still expired and visible now."""
        for _ in range(min(count, len(sweep.victims))):
            _, key = sweep.victims.pop()
            entry = self.entries.get(key)
            record = entry.record if entry is not None else None
            if (entry is None or record is None or record.info is None or entry.evicted
                    or not entry.expired(now_ms, self.lease_duration_ms(record.info))):
                continue
            entry.evicted = True
            self._evicted_at[key] = now_ms
            self.leases.untrack(key)
            self.index.hide(entry, record.info)
            self.counters.evictions += 1
            self._emit(key, Action.EVICT, record, now_ms, record.info)
            sweep.evicted.append(key)

    def _full_sweep(self, now_ms: int) -> SweepOutcome:
        while True:
            outcome = self.sweep(now_ms, EVICTIONS_PER_ENTRY * (len(self.entries) + 1))
            if outcome is not None:
                return outcome

    def update_preservation(self, now_ms: int) -> bool:
        """Re-evaluate self-preservation now, in one call (at most once per window bucket); True on a transition."""
        if now_ms < self._preservation_due:
            return False
        return self._full_sweep(now_ms).preservation_changed

    def evict(self, now_ms: int) -> list[InstanceKey]:
        """One eviction pass in one call: expired leases, oldest first, at most the capped share of the registry,
        and none at all while self-preservation is active."""
        self.request_eviction()
        return self._full_sweep(now_ms).evicted

    def collect_garbage(self, now_ms: int) -> int:
        """Forget tombstones, instances evicted here, and replicas not heard from, once older than the TTL.

        Tombstones and evictions are kept in time order, so this reads only what is due."""
        ttl = self.config.tombstone_ttl_ms
        doomed = _due(self._tombstoned_at, now_ms - ttl) + _due(self._evicted_at, now_ms - ttl)
        self.marks.forget_silent(now_ms, ttl)
        purged = 0
        for key in doomed:
            entry = self.entries.pop(key, None)
            if entry is not None:
                self.log.forget(entry)
                purged += 1
            self._tombstoned_at.pop(key, None)
            self._evicted_at.pop(key, None)
        self.counters.purged += purged
        return purged


def _due(times: dict[InstanceKey, int], cutoff_ms: int) -> list[InstanceKey]:
    """The keys of a time-ordered dict stamped at or before `cutoff_ms`."""
    due = []
    for key, at in times.items():
        if at > cutoff_ms:
            break
        due.append(key)
    return due
