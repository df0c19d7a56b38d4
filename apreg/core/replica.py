"""One node's replica of the registry: inputs in (writes, messages, time, push reports), effects out.

The Replica does no I/O and reads no clock: every method takes `now_ms`. Inputs are the client writes below,
`receive` (a peer's message; returns the direct answer to a digest), `tick` and `push_done` / `push_failed`
(driving.py); the one output is `take_effects()` (effects.py says in which order to act on it). The server's
Node and the simulated cluster drive it the same way, which is what lets the hard parts be tested
deterministically. Read-only views for the shell: `status()`, `lease_view(info)`, `visible`, `index`.

State it replicates: one `Record` per key (merged by `record.merge`) and one renewal max-register per key
(`Lease.renewed`). State it keeps to itself: lease clocks, evictions, self-preservation, per-peer watermarks.
Both kinds live in one `Entry` per key (see entry.py for why).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Iterable, Iterator, Mapping

from .changelog import ChangeLog, Page
from .clock import ZERO, HybridClock, Timestamp
from .config import CoreConfig
from .deltas import page_delta
from .driving import Driving
from .effects import Action, Change, Outgoing
from .instance import (InstanceInfo, InstanceKey, Status, remove_status_override, resolve_register,
                       set_status_override, update_metadata)
from .entry import Entry, RecordView
from .errors import ClockSkewError
from .held import Held
from .index import RegistryIndex
from .ledger import LeaseLedger
from .lease import Lease, LeaseView, lease_ms
from .messages import Delta, Digest, DigestReply, Message, Push, RenewalUpdate
from .passes import TimePasses
from .preservation import SelfPreservation
from .pushes import PeerState, PushSchedule
from .record import Record, merge
from .status import Counters, ReplicaStatus
from .sweep import Sweep
from .version import VersionVector, advance
from .watermarks import Watermarks


@dataclass(slots=True)
class Replica(Driving, TimePasses):
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

    # ----- applying state ----------------------------------------------------------------------------------

    def _store(self, record: Record, entry: Entry | None, now_ms: int, sender: str = "", sender_seq: int = 0,
               renewed: Timestamp | None = None, renewal_to_log: bool = False) -> None:
        """Keep a record for its key. `renewed`: a local renewal made with it (a registration);
        `renewal_to_log`: a replicated renewal applied just before, logged together with the record."""
        key = record.key
        if entry is None:
            entry = self.entries[key] = Entry(key=key, anchor_ms=now_ms, first_seen_ms=now_ms)
        previous = entry.record
        was_visible = previous is not None and previous.info is not None and not entry.evicted
        entry.record, entry.record_from, entry.record_from_seq = record, sender, sender_seq
        shown = previous if was_visible else None
        if record.info is None:
            self._tombstoned_at.pop(key, None)  # re-inserted at the end: the dict stays in time order
            self._tombstoned_at[key] = now_ms
            if shown is not None and shown.info is not None:
                self.index.hide(entry, shown.info)
        else:
            if previous is not None and previous.info is None:
                self._tombstoned_at.pop(key, None)
            if not was_visible:
                entry.first_seen_ms = now_ms
                if entry.evicted:
                    self._unevict(entry)
                    entry.anchor_ms = now_ms
            self.index.show(entry, shown.info if shown is not None else None, record.info)
        if renewed is not None:
            self._renewed(entry, renewed, now_ms)
        if record.info is None:
            self.leases.untrack(key)
        else:
            self._track(entry, record.info, now_ms)
        self.log.note(entry, record=True, renewal=renewed is not None or renewal_to_log)
        self._emit(key, _action(shown, record), record, now_ms, record.info or (shown.info if shown else None))

    def _track(self, entry: Entry, info: InstanceInfo, now_ms: int) -> None:
        self.leases.track(entry.key, entry.first_seen_ms, entry.anchor_ms, self.renewal_interval_ms(info),
                          self.lease_duration_ms(info), now_ms)

    def _unevict(self, entry: Entry) -> None:
        entry.evicted = False
        self._evicted_at.pop(entry.key, None)

    def _emit(self, key: InstanceKey, action: Action | None, record: Record, now_ms: int,
              info: InstanceInfo | None) -> None:
        if action is not None and info is not None:
            self.changes.append(Change(key, action, record, now_ms, info))

    def _apply_record(self, incoming: Record, now_ms: int, sender: str, sender_seq: int,
                      unlogged: dict[InstanceKey, Entry]) -> bool:
        info, key = incoming.info, incoming.key
        if info is not None and (info.app != key.app or info.instance_id != key.instance_id):
            self.counters.rejected_items += 1
            return False
        try:
            self.clock.observe(incoming.stamp, now_ms)
        except ClockSkewError:
            self.held.hold_record(incoming)  # applied once within the guard (held.py)
            return True
        entry = self.entries.get(key)
        merged = merge(entry.record if entry is not None else None, incoming)
        self.counters.conflicts += merged.conflict
        if merged.changed:
            if merged.record is not incoming:  # a merge that builds a new record names no source
                sender, sender_seq = "", 0
            self._store(merged.record, entry, now_ms, sender, sender_seq,
                        renewal_to_log=unlogged.pop(key, None) is not None)
        return True

    def _apply_renewal(self, update: RenewalUpdate, now_ms: int, sender: str, sender_seq: int,
                       unlogged: dict[InstanceKey, Entry]) -> bool:
        """Raise the key's renewal register; the change goes into `unlogged` for the caller to log (with the
        key's record when one follows in the same delta: one log position, one sequence, instead of two)."""
        key = update.key
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = Entry(key=key, first_seen_ms=now_ms)
        anchor_ms = now_ms - max(0, update.age_ms)
        try:
            self.clock.observe(update.renewed, now_ms)
        except ClockSkewError:
            self.held.hold_renewal(key, update.renewed, anchor_ms)  # the register waits (held.py)...
            self._extend(entry, anchor_ms, now_ms)  # ...the lease does not: its age is a duration
            return True
        if update.renewed <= entry.renewed:
            # Not newer by stamp, but perhaps a later renewal all the same: one made at a node whose clock is
            # behind a stamp held here (see clock.py). Its age says so, and a lease only ever restarts later.
            self._extend(entry, anchor_ms, now_ms)
            return True
        entry.renewed, entry.renewal_from, entry.renewal_from_seq = update.renewed, sender, sender_seq
        entry.anchor_ms = max(entry.anchor_ms, anchor_ms)
        self.counters.renewals_replicated += 1
        unlogged[key] = entry
        record = entry.record
        if record is None or record.info is None:
            return True
        if entry.evicted:
            self._unevict(entry)  # it renewed somewhere after we evicted it: it comes back
            entry.first_seen_ms = now_ms
            self.index.show(entry, None, record.info)
            self._track(entry, record.info, now_ms)
            self._emit(key, Action.REGISTER, record, now_ms, record.info)
        else:
            self.leases.renewed(key, entry.anchor_ms, now_ms)
        return True

    def _extend(self, entry: Entry, anchor_ms: int, now_ms: int) -> None:
        """Restart a lease at `anchor_ms` if that is later, without touching the renewal register."""
        if anchor_ms <= entry.anchor_ms:
            return
        entry.anchor_ms = anchor_ms
        if entry.record is not None and entry.record.info is not None and not entry.evicted:
            self.leases.renewed(entry.key, anchor_ms, now_ms)

    def _apply_delta(self, delta: Delta, now_ms: int) -> None:
        sender = delta.sender
        self.marks.heard(sender, delta.direct, now_ms)
        if delta.clock_ms:
            self.clock.learn(sender, delta.clock_ms, now_ms)
        self.release_held(now_ms)
        seqs = delta.record_seqs or (delta.upto,) * len(delta.records)
        if self._apply_items([(u, u.seq or delta.upto) for u in delta.renewals],
                             zip(delta.records, seqs, strict=True), now_ms, sender):
            self.marks.credit(sender, delta.base, delta.upto, delta.covered)

    def _apply_items(self, renewals: Iterable[tuple[RenewalUpdate, int]], records: Iterable[tuple[Record, int]],
                     now_ms: int, sender: str) -> bool:
        """Apply replicated renewals and records, each with the sender's log sequence; False if any was refused.
        Renewals first, so a record arriving with them finds its lease clock already set."""
        unlogged: dict[InstanceKey, Entry] = {}
        accepted = all([self._apply_renewal(u, now_ms, sender, seq, unlogged) for u, seq in renewals])
        accepted = all([self._apply_record(r, now_ms, sender, seq, unlogged) for r, seq in records]) and accepted
        for entry in unlogged.values():  # renewals whose record did not change
            self.log.note(entry, record=False, renewal=True)
        return accepted

    def release_held(self, now_ms: int) -> None:
        """Apply what was held back (held.py) and is now within the clock guard, as if it had just arrived from
        no particular sender (so it is forwarded to every peer)."""
        renewals, records = self.held.take_due(now_ms + self.clock.offset_ms + self.clock.max_skew_ms)
        for held in records.values():
            self.clock.observe(held.highest, now_ms)  # every stamp folded into the merge, before it applies
        self._apply_items([(RenewalUpdate(key, h.renewed, now_ms - h.anchor_ms), 0) for key, h in renewals.items()],
                          [(h.record, 0) for h in records.values()], now_ms, "")

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


def _action(previous: Record | None, record: Record) -> Action | None:
    """Classify a change by what it did to the visible registry."""
    if record.info is None:
        return None if previous is None else Action.CANCEL
    if previous is None or previous.info is None:
        return Action.REGISTER
    if previous.info.registered_ms != record.info.registered_ms and previous.info.registered_ms \
            and record.info.registered_ms:  # a re-registration (0: from a node that predates the field)
        return Action.REGISTER
    if previous.info.status is not record.info.status:
        return Action.STATUS
    return Action.MODIFY
