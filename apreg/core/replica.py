"""One node's replica of the registry: inputs in (writes, messages, time, push reports), effects out.

The Replica does no I/O and reads no clock: every method takes `now_ms`. Inputs are the client writes below,
`receive` (a peer's message; returns the direct answer to a digest), `tick` and `push_done` / `push_failed`
(driving.py); the one output is `take_effects()` (effects.py says in which order to act on it). The server's
Node and the simulated cluster drive it the same way, which is what lets the hard parts be tested
deterministically. Read-only views for the shell: `status()`, `lease_view(info)`, `visible`, `index`.

State it replicates: one `Record` per key (merged by `record.merge`) and one renewal max-register per key
(`Lease.renewed`). State it keeps to itself: lease clocks, evictions, self-preservation, per-peer watermarks.
Both kinds live in one `Entry` per key (see entry.py for why).

This module holds that state, the client writes and the replication messages; mixins add the rest as behaviour
only: driving.py (tick, effects, eager pushes), passes.py (leases, eviction, self-preservation, garbage
collection) and applying.py (how a written or received record or renewal becomes its key's state).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Iterator, Mapping

from .applying import Applying
from .changelog import ChangeLog, Page
from .clock import ZERO, HybridClock, Timestamp
from .config import CoreConfig
from .deltas import page_delta
from .driving import Driving
from .effects import Change, Outgoing
from .instance import (InstanceInfo, InstanceKey, Status, remove_status_override, resolve_register,
                       set_status_override, update_metadata)
from .entry import Entry, RecordView
from .held import Held
from .index import RegistryIndex
from .ledger import LeaseLedger
from .lease import Lease, LeaseView, lease_ms
from .messages import Digest, DigestReply, Message, Push
from .passes import TimePasses
from .preservation import SelfPreservation
from .pushes import PeerState, PushSchedule
from .record import Record
from .status import Counters, ReplicaStatus
from .sweep import Sweep
from .version import VersionVector, advance
from .watermarks import Watermarks


@dataclass(slots=True)
class Replica(Driving, TimePasses, Applying):
    node_id: str
    incarnation: str  # distinct per process start, so a restarted node never reuses its old counters
    config: CoreConfig = field(default_factory=CoreConfig)
    peer_names: tuple[str, ...] = ()
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    entries: dict[InstanceKey, Entry] = field(default_factory=dict)  # every key this replica knows
    index: RegistryIndex = field(default_factory=RegistryIndex)  # the visible ones, by app, VIP and id
    log: ChangeLog = field(default_factory=ChangeLog)
    counters: Counters = field(default_factory=Counters)
    changes: list[Change] = field(default_factory=list)
    outbox: list[Outgoing] = field(default_factory=list)
    synced: bool = False
    replica_id: str = field(init=False)  # node id + incarnation: the id in version vectors, stamps and messages
    clock: HybridClock = field(init=False)
    preservation: SelfPreservation = field(init=False)
    leases: LeaseLedger[InstanceKey] = field(init=False)  # what self-preservation and eviction read
    peers: dict[str, PeerState] = field(init=False)
    held: Held = field(default_factory=Held)  # replicated state stamped beyond the clock guard, until it is not
    marks: Watermarks = field(default_factory=Watermarks)  # what we hold of each replica's log, who hears whom
    _pushes: PushSchedule = field(init=False)
    _first_vv: VersionVector = field(init=False)  # the vector of every first write here, shared (memory)
    # When keys became tombstones / were evicted here, oldest first, so garbage collection reads only what is due.
    _tombstoned_at: dict[InstanceKey, int] = field(default_factory=dict)
    _evicted_at: dict[InstanceKey, int] = field(default_factory=dict)
    _sweep: Sweep | None = None
    _eviction_requested: bool = False
    _next_peer: int = 0
    _started: bool = False  # the first tick started the timers (and the initial pull)
    _anti_entropy_ms: int = 0  # when the latest anti-entropy round was asked for
    _eviction_ms: int = 0  # when the latest eviction pass was requested
    _passing: bool = False  # a pass (sweep.py) is under way: tick continues it at once
    _collect: bool = False  # collect garbage when the current eviction pass ends
    _evicted: list[InstanceKey] = field(default_factory=list)  # for the next effects
    _preservation_due: int = 0
    _last_pass_ms: int = 0  # when the shell last asked for a pass
    _resumed_ms: int | None = None  # when a pass found the node had been stopped (see _evictions_held)
    _resume_wait_ms: int = 0  # how long after that its clients' renewals need to arrive (see _note_gap)

    def __post_init__(self) -> None:
        self.replica_id = f"{self.node_id}~{self.incarnation}"
        self._first_vv = MappingProxyType({self.replica_id: 1})
        self.clock = HybridClock(self.replica_id, self.config.max_clock_skew_ms)
        config = self.config
        self.preservation = SelfPreservation(config.renewal_window_ms, config.renewal_threshold,
                                             config.self_preservation, config.min_hold_windows,
                                             config.min_missing_instances)
        self.leases = LeaseLedger(config.renewal_window_ms)
        self.peers = {name: PeerState() for name in self.peer_names}
        self._pushes = PushSchedule(self.peers)
        self.synced = not self.peer_names

    def set_peers(self, names: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """Peers added or removed at runtime (DNS, a reloaded config); returns (added, removed). A new peer is
        pulled from at once (its digest is in the next effects); it starts with nothing pushed to it, so its
        first push finds it too far behind and leaves the rest to that pull."""
        added = [name for name in names if name not in self.peers]
        removed = [name for name in self.peers if name not in names]
        for name in removed:
            del self.peers[name]
        for name in added:
            self.peers[name] = PeerState()
            self.outbox.append(Outgoing(name, self.digest_for(name)))
        self.peer_names = tuple(self.peers)
        return added, removed

    # ----- reads -------------------------------------------------------------------------------------------

    @property
    def watermarks(self) -> dict[str, int]:
        """Peer replica id -> its log sequence we hold all of."""
        return self.marks.marks

    @property
    def records(self) -> Mapping[InstanceKey, Record]:
        """Every key's current record, tombstones included."""
        return RecordView(self.entries)

    def visible(self, key: InstanceKey) -> Record | None:
        """The live record of `key`, unless cancelled or evicted here."""
        entry = self.entries.get(key)
        if entry is None or entry.evicted or entry.record is None or entry.record.info is None:
            return None
        return entry.record

    def instances(self) -> Iterator[tuple[InstanceInfo, Lease]]:
        for entry in self.entries.values():
            record = entry.record
            if record is not None and record.info is not None and not entry.evicted:
                yield record.info, entry

    def status(self) -> ReplicaStatus:
        return ReplicaStatus(self.replica_id, self.synced, self.index.count, self.log.head, replace(self.counters),
                             self.clock.skew_rejections,
                             MappingProxyType({name: state.replica for name, state in self.peers.items()}),
                             self.preservation.view(), self.clock.view(), len(self.held))

    def lease_view(self, info: InstanceInfo) -> LeaseView:
        """The lease of `info`'s instance as this node sees it; its times are 0 once the key is forgotten (a
        purged tombstone's last copy may still be shown, in a delta or a watch stream)."""
        entry = self.entries.get(info.key)
        return LeaseView(self.renewal_interval_ms(info), self.lease_duration_ms(info),
                         entry.first_seen_ms if entry is not None else 0, entry.anchor_ms if entry is not None else 0)

    def renewal_interval_ms(self, info: InstanceInfo) -> int:
        seconds = info.renewal_interval_s
        return lease_ms(seconds) if seconds else self.config.renewal_interval_ms

    def lease_duration_ms(self, info: InstanceInfo) -> int:
        seconds = info.lease_duration_s
        return lease_ms(seconds) if seconds else self.config.lease_duration_ms

    # ----- client writes -----------------------------------------------------------------------------------

    def register(self, info: InstanceInfo, now_ms: int) -> Record:
        """A (re-)registration: a versioned write that also starts the lease."""
        key = info.key
        current = self.visible(key)
        record = self._write(key, resolve_register(info, current.info if current else None, now_ms), now_ms,
                             renew=True)
        self._push_soon(now_ms, urgent=True)
        return record

    def cancel(self, key: InstanceKey, now_ms: int) -> bool:
        """Replace the instance by a tombstone; False if it is not visible here."""
        if self.visible(key) is None:
            return False
        self._write(key, None, now_ms)
        self._push_soon(now_ms, urgent=True)
        return True

    def set_status(self, key: InstanceKey, status: Status, now_ms: int) -> bool:
        return self._modify(key, now_ms, lambda info: set_status_override(info, status, now_ms))

    def remove_status(self, key: InstanceKey, fallback: Status, now_ms: int) -> bool:
        return self._modify(key, now_ms, lambda info: remove_status_override(info, fallback, now_ms))

    def update_metadata(self, key: InstanceKey, changes: Mapping[str, str], now_ms: int) -> bool:
        return self._modify(key, now_ms, lambda info: update_metadata(info, changes, now_ms))

    def renew(self, key: InstanceKey, now_ms: int, last_dirty_ms: int | None = None) -> bool:
        """A heartbeat. False (404 to the client, which re-registers) when the instance is unknown or evicted
        here, when the client's info is newer than ours, or when its status resolved to UNKNOWN (as Eureka)."""
        record = self.visible(key)
        if record is None or record.info is None:
            return False
        if last_dirty_ms is not None and last_dirty_ms > record.info.last_dirty_timestamp:
            return False
        if record.info.status is Status.UNKNOWN:
            return False
        entry = self.entries[key]
        self._renewed(entry, self.clock.tick(now_ms), now_ms)
        self.leases.renewed(key, now_ms, now_ms)
        self.log.note(entry, record=False, renewal=True)
        self._push_soon(now_ms, urgent=False)
        return True

    def _modify(self, key: InstanceKey, now_ms: int, change: Callable[[InstanceInfo], InstanceInfo]) -> bool:
        record = self.visible(key)
        if record is None or record.info is None:
            return False
        self._write(key, change(record.info), now_ms)
        self._push_soon(now_ms, urgent=True)
        return True

    def _write(self, key: InstanceKey, info: InstanceInfo | None, now_ms: int, renew: bool = False) -> Record:
        """A versioned write: it follows the key's current record in vector, clock and epoch (see record.py).

        With `renew` (a registration) the write is also a renewal, stamped with the same timestamp."""
        entry = self.entries.get(key)
        previous = entry.record if entry is not None else None
        if previous is None:
            vv, epoch = self._first_vv, ZERO
        else:
            vv, epoch = advance(previous.vv, self.replica_id), previous.rank[0]
        record = Record(key, info, vv, self.clock.tick(now_ms), epoch)
        self._store(record, entry, now_ms, renewed=record.stamp if renew else None)
        return record

    def _renewed(self, entry: Entry, stamp: Timestamp, now_ms: int) -> None:
        """A renewal made here (only of a visible instance): the lease clock restarts now."""
        entry.renewed, entry.anchor_ms = stamp, now_ms
        entry.renewal_from, entry.renewal_from_seq = "", 0
        self.counters.renewals_local += 1

    # ----- replication -------------------------------------------------------------------------------------

    def receive(self, message: Message, now_ms: int, peer: str | None = None) -> Message | None:
        """Apply a peer's message; returns the reply for request/response messages (a Digest).

        `peer` names the peer a DigestReply came from (the answer to our own Digest), so follow-ups go to it.
        What the message changed is pushed on to the other peers (renewals alone after the renewal window).
        """
        if isinstance(message, Push):
            head = self.log.head
            self._apply_delta(message.delta, now_ms)
            if self.log.head != head:
                self._push_soon(now_ms, urgent=bool(message.delta.records))
            return None
        if isinstance(message, Digest):
            since = message.since if message.expect == self.replica_id else 0
            page = (Page([], [], self.log.head, False) if self.log.newest_not_from(message.sender) <= since
                    else self.log.since(since, self.config.max_page_items))  # (all it lacks is its own changes)
            delta = page_delta(self.replica_id, page, since, message.sender, now_ms, self._direct(now_ms),
                               holds=dict(message.holds))
            return DigestReply(delta, page.more, self.watermarks.get(message.sender, 0))
        head = self.log.head
        self._apply_digest_reply(message, now_ms, peer)
        if self.log.head != head:
            self._push_soon(now_ms, urgent=True)
        return None

    def _apply_digest_reply(self, reply: DigestReply, now_ms: int, peer: str | None) -> None:
        self._apply_delta(reply.delta, now_ms)
        if peer is None or peer not in self.peers:
            return
        state = self.peers[peer]
        state.replica = reply.delta.sender
        if reply.more:
            if state.asked_ahead != reply.delta.upto:  # unless the next page is on its way already
                self.outbox.append(Outgoing(peer, self.digest_for(peer)))
        else:
            self.synced = True
        if reply.your_watermark < self.log.head:  # a repair push per page answered: sized like a page
            base = reply.your_watermark
            page = (Page([], [], self.log.head, False) if self._only_its_own(state, base)
                    else self.log.since(base, self.config.max_page_items))
            delta = page_delta(self.replica_id, page, base, state.replica, now_ms, self._direct(now_ms))
            self.outbox.append(Outgoing(peer, Push(delta)))

    def digest_for(self, peer: str) -> Digest:
        """Ask `peer` for what follows our watermark of it (everything, if we do not know its replica yet)."""
        state = self.peers[peer]
        expect, state.asked_ahead = state.replica, 0
        since = self.watermarks.get(expect, 0) if expect else 0
        return Digest(self.replica_id, self.log.head, expect, since, tuple(sorted(self.watermarks.items())))

    def expect_page_after(self, peer: str, reply: DigestReply) -> None:
        """The page after `reply` is on its way unasked (asked ahead, or a streamed pull sends every page): so
        applying `reply` asks `peer` for nothing more."""
        self.peers[peer].asked_ahead = reply.delta.upto

    def next_page(self, digest: Digest, previous: DigestReply, now_ms: int) -> DigestReply:
        """The page after `previous`, our answer to `digest` (a streamed pull: the requester asked once)."""
        reply = self.receive(digest.after(previous), now_ms)
        assert isinstance(reply, DigestReply)
        return reply

    def _direct(self, now_ms: int) -> tuple[str, ...]:
        return self.marks.direct(now_ms, self.config.direct_window_ms)

