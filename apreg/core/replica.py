"""One node's replica of the registry: inputs in (writes, messages, time), effects out (messages, changes).

The Replica does no I/O and reads no clock: every method takes `now_ms`. The aiohttp shell and the simulated
cluster drive it the same way, which is what lets the hard parts be tested deterministically.

State it replicates: one `Record` per key (merged by `record.merge`) and one renewal max-register per key
(`Lease.renewed`). State it keeps to itself: lease clocks, evictions, self-preservation, per-peer watermarks.
Both kinds live in one `Entry` per key (see entry.py for why).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Callable, Iterator, Mapping, NamedTuple

from .changelog import ChangeLog, Page
from .clock import ZERO, ClockSkewError, HybridClock, Timestamp
from .config import CoreConfig
from .instance import (InstanceInfo, InstanceKey, Status, remove_status_override, resolve_register,
                       set_status_override, update_metadata)
from .entry import Entry, RecordView
from .index import RegistryIndex
from .ledger import LeaseLedger
from .lease import Lease, eviction_cap, lease_ms
from .messages import Delta, Digest, DigestReply, Message, Push, RenewalUpdate
from .preservation import EVALUATIONS_PER_WINDOW, SelfPreservation
from .sweep import EVICTIONS_PER_ENTRY, SWEEP_SLICE, Sweep, SweepOutcome
from .record import Record, merge
from .version import VersionVector, advance


MAX_UNCREDITED = 64  # deltas per sender waiting to be credited to its watermark


class Action(str, Enum):
    """What a change did to the visible registry, as the change feed and Eureka's delta report it."""

    REGISTER = "register"
    MODIFY = "modify"
    STATUS = "status"
    CANCEL = "cancel"
    EVICT = "evict"


class Change(NamedTuple):
    """A change applied to this replica (local or replicated), for observers such as the watch feed.

    A NamedTuple rather than a frozen dataclass: one is made for every applied change, and a tuple is built in C."""

    key: InstanceKey
    action: Action
    record: Record
    at_ms: int
    info: InstanceInfo  # the instance as last visible (for a cancel: the copy the tombstone replaced)


@dataclass(frozen=True, slots=True)
class Outgoing:
    peer: str  # the peer's name as the shell knows it (a base URL, or a simulated node name)
    message: Message


@dataclass(slots=True)
class PeerState:
    replica: str = ""  # the peer's replica id, learned from its messages ("" until it answers)
    pushed: int = 0  # our log sequence up to which we have pushed to it
    # Past `pushed`, our log up to here held nothing but the peer's own changes when last looked at (a pull of
    # its registry): the next push reads the log from here, and still covers the range from `pushed`.
    own_until: int = 0
    asked_ahead: int = 0  # the page start of a digest the shell sent before applying the page that ends there


@dataclass(slots=True)
class Counters:
    conflicts: int = 0  # concurrent writes to one key, settled by timestamp
    rejected_items: int = 0  # replicated records or renewals refused (clock skew, malformed)
    evictions: int = 0
    renewals_local: int = 0
    renewals_replicated: int = 0
    purged: int = 0  # tombstones and long-evicted records garbage-collected


@dataclass(slots=True)
class Replica:
    node_id: str
    incarnation: str  # distinct per process start, so a restarted node never reuses its old counters
    config: CoreConfig = field(default_factory=CoreConfig)
    peer_names: tuple[str, ...] = ()
    fanout: int = 0  # peers per eager push; 0 means all
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
    watermarks: dict[str, int] = field(default_factory=dict)  # peer replica id -> its log seq we hold all of
    _first_vv: VersionVector = field(init=False)  # the vector of every first write here, shared (memory)
    _heard_ms: dict[str, int] = field(default_factory=dict)  # replica id -> when a delta from it last arrived
    _peer_direct: dict[str, frozenset[str]] = field(default_factory=dict)  # what each peer hears directly
    _uncredited: dict[str, list[tuple[int, int, tuple[tuple[str, int], ...]]]] = field(default_factory=dict)
    # When keys became tombstones / were evicted here, oldest first, so garbage collection reads only what is due.
    _tombstoned_at: dict[InstanceKey, int] = field(default_factory=dict)
    _evicted_at: dict[InstanceKey, int] = field(default_factory=dict)
    _sweep: Sweep | None = None
    _eviction_requested: bool = False
    _next_peer: int = 0
    _flushed_head: int = 0
    _preservation_due: int = 0
    _last_pass_ms: int = 0  # when the shell last asked for a pass
    _resumed_ms: int | None = None  # when a pass found the node had been stopped (see _evictions_held)

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
        self.synced = not self.peer_names

    def set_peers(self, names: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """Peers added or removed at runtime (DNS, a reloaded config); returns (added, removed). A new peer
        starts with nothing pushed to it: its first push finds it too far behind and leaves it to a pull."""
        added = [name for name in names if name not in self.peers]
        removed = [name for name in self.peers if name not in names]
        for name in removed:
            del self.peers[name]
        for name in added:
            self.peers[name] = PeerState()
        self.peer_names = tuple(self.peers)
        return added, removed

    # ----- reads -------------------------------------------------------------------------------------------

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
        return self._write(key, resolve_register(info, current.info if current else None, now_ms), now_ms,
                           renew=True)

    def cancel(self, key: InstanceKey, now_ms: int) -> bool:
        """Replace the instance by a tombstone; False if it is not visible here."""
        if self.visible(key) is None:
            return False
        self._write(key, None, now_ms)
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
        return True

    def _modify(self, key: InstanceKey, now_ms: int, change: Callable[[InstanceInfo], InstanceInfo]) -> bool:
        record = self.visible(key)
        if record is None or record.info is None:
            return False
        self._write(key, change(record.info), now_ms)
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
            self.counters.rejected_items += 1
            return False
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
        try:
            self.clock.observe(update.renewed, now_ms)
        except ClockSkewError:
            self.counters.rejected_items += 1
            return False
        key = update.key
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = Entry(key=key, first_seen_ms=now_ms)
        if update.renewed <= entry.renewed:
            return True
        age = max(0, update.age_ms)
        entry.renewed, entry.renewal_from, entry.renewal_from_seq = update.renewed, sender, sender_seq
        entry.anchor_ms = max(entry.anchor_ms, now_ms - age)
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

    def _apply_delta(self, delta: Delta, now_ms: int) -> None:
        sender = delta.sender
        self._heard_ms[sender] = now_ms
        self._peer_direct[sender] = frozenset(delta.direct)
        # Renewals first, so a record arriving in the same delta finds its lease clock already set.
        unlogged: dict[InstanceKey, Entry] = {}
        accepted = all([self._apply_renewal(u, now_ms, sender, u.seq or delta.upto, unlogged)
                        for u in delta.renewals])
        seqs = delta.record_seqs or (delta.upto,) * len(delta.records)
        accepted = all([self._apply_record(r, now_ms, sender, seq, unlogged)
                        for r, seq in zip(delta.records, seqs, strict=True)]) and accepted
        for entry in unlogged.values():  # renewals whose record did not change
            self.log.note(entry, record=False, renewal=True)
        if accepted:
            self._credit(sender, delta.base, delta.upto, delta.covered)

    def _credit(self, sender: str, base: int, upto: int, covered: tuple[tuple[str, int], ...]) -> None:
        """Move the sender's watermark over (base, upto] once it is contiguous and we hold what it left out.

        Deltas that cannot be credited yet (one before them is missing, or their source's own push has not
        arrived) wait, a bounded number per sender; whatever falls off is repaired by anti-entropy.
        """
        waiting = self._uncredited.setdefault(sender, [])
        waiting.append((base, upto, covered))
        del waiting[:-MAX_UNCREDITED]
        progressed = True
        while progressed:
            progressed = False
            for replica, entries in self._uncredited.items():
                mark = self.watermarks.get(replica, 0)
                for entry in sorted(entries):
                    start, end, left_out = entry
                    if end <= mark:
                        entries.remove(entry)
                    elif start <= mark and all(self.watermarks.get(s, 0) >= seq for s, seq in left_out):
                        self.watermarks[replica] = mark = end
                        entries.remove(entry)
                        progressed = True
        for replica in [r for r, entries in self._uncredited.items() if not entries]:
            del self._uncredited[replica]

    # ----- replication -------------------------------------------------------------------------------------

    def receive(self, message: Message, now_ms: int, peer: str | None = None) -> Message | None:
        """Apply a peer's message; returns the reply for request/response messages (a Digest).

        `peer` names the peer a DigestReply came from (the answer to our own Digest), so follow-ups go to it.
        """
        if isinstance(message, Push):
            self._apply_delta(message.delta, now_ms)
            return None
        if isinstance(message, Digest):
            since = message.since if message.expect == self.replica_id else 0
            page = self.log.since(since, self.config.max_page_items)
            delta = self._delta(page, since, message.sender, now_ms, holds=dict(message.holds))
            return DigestReply(delta, page.more, self.watermarks.get(message.sender, 0))
        self._apply_digest_reply(message, now_ms, peer)
        return None

    def _apply_digest_reply(self, reply: DigestReply, now_ms: int, peer: str | None) -> None:
        self._apply_delta(reply.delta, now_ms)
        if peer is None or peer not in self.peers:
            return
        state = self.peers[peer]
        state.replica = reply.delta.sender
        if reply.more:
            if state.asked_ahead != reply.delta.upto:  # unless the shell already asked for the next page
                self.outbox.append(Outgoing(peer, self.digest_for(peer)))
        else:
            self.synced = True
        if reply.your_watermark < self.log.head:  # a repair push per page answered: sized like a page
            base = reply.your_watermark
            page = (Page([], [], self.log.head, False) if self._only_its_own(state, base)
                    else self.log.since(base, self.config.max_page_items))
            self.outbox.append(Outgoing(peer, Push(self._delta(page, base, state.replica, now_ms))))

    def _only_its_own(self, state: PeerState, since: int) -> bool:
        """Whether every change after `since` came from this peer (which holds it): a delta to it would carry
        nothing but the range, so none of the log needs reading."""
        return bool(state.replica) and self.log.newest_not_from(state.replica) <= since

    def digest_for(self, peer: str, ahead_of: DigestReply | None = None) -> Digest:
        """Ask `peer` for what follows our watermark of it (everything, if we do not know its replica yet).

        With `ahead_of` (a reply with more to come, not applied yet): ask for the page after it, so that the
        peer encodes the next page while we apply this one; the reply then asks for nothing more itself."""
        state = self.peers[peer]
        if ahead_of is None:
            expect, state.asked_ahead = state.replica, 0
            since = self.watermarks.get(expect, 0) if expect else 0
        else:
            expect, since = ahead_of.delta.sender, ahead_of.delta.upto
            self.expect_page_after(peer, ahead_of)
        return Digest(self.replica_id, self.log.head, expect, since, tuple(sorted(self.watermarks.items())))

    def expect_page_after(self, peer: str, reply: DigestReply) -> None:
        """The page after `reply` is on its way unasked (asked ahead, or a streamed pull sends every page): so
        applying `reply` asks `peer` for nothing more."""
        self.peers[peer].asked_ahead = reply.delta.upto

    def next_page(self, digest: Digest, previous: DigestReply, now_ms: int) -> DigestReply:
        """The page after `previous`, our answer to `digest` (a streamed pull: the requester asked once)."""
        reply = self.receive(replace(digest, expect=self.replica_id, since=previous.delta.upto), now_ms)
        assert isinstance(reply, DigestReply)
        return reply

    def _delta(self, page: Page, base: int, receiver: str, now_ms: int, direct: frozenset[str] = frozenset(),
               holds: Mapping[str, int] | None = None) -> Delta:
        """The page as a Delta for `receiver`, leaving out what the receiver itself sent us, what it says it
        holds (`holds`, from its digest), and what came from replicas it hears directly (`direct`, for eager
        pushes: their own pushes bring it, so a full mesh carries each change once, while a receiver cut off from
        the source still gets it through us). What is left out is named in `covered`, and the receiver credits
        the range only once it holds those changes, so a source that dies mid-push loses nothing: anti-entropy,
        which never leaves out on the strength of `direct`, fills the gap."""
        holds = holds or {}
        covered: dict[str, int] = {}

        def wanted(replica: str, seq: int) -> bool:
            if not replica:
                return True
            if replica == receiver:
                return False
            if replica in direct or holds.get(replica, 0) >= seq:
                covered[replica] = max(covered.get(replica, 0), seq)
                return False
            return True

        records = [(seq, e.record) for seq, e in page.records
                   if e.record is not None and wanted(e.record_from, e.record_from_seq)]
        renewals = tuple(RenewalUpdate(e.key, e.renewed, now_ms - e.anchor_ms, seq)
                         for seq, e in page.renewals if wanted(e.renewal_from, e.renewal_from_seq))
        return Delta(self.replica_id, base, page.upto, tuple(r for _, r in records), renewals,
                     tuple(seq for seq, _ in records), tuple(sorted(covered.items())), self._direct(now_ms))

    def _direct(self, now_ms: int) -> tuple[str, ...]:
        """Replicas whose deltas reached us recently, i.e. that do not need others to forward to us."""
        window = self.config.direct_window_ms
        return tuple(sorted(r for r, at in self._heard_ms.items() if now_ms - at < window))

    def flush(self, now_ms: int) -> list[Outgoing]:
        """Eager push of everything changed since the last flush (the shell calls this after a few ms)."""
        out = []
        for name in self.push_targets():
            push = self.push_for(name, now_ms)
            if push is not None:
                out.append(Outgoing(name, push))
        return out

    def push_targets(self) -> list[str]:
        """The peers to push to now: all of them, or `fanout` chosen at random; none if nothing changed."""
        if self.log.head == self._flushed_head:
            return []
        self._flushed_head = self.log.head
        names = list(self.peers)
        return self.rng.sample(names, self.fanout) if 0 < self.fanout < len(names) else names

    def push_for(self, peer: str, now_ms: int) -> Push | None:
        """A push of what `peer` has not been sent yet, or None if there is nothing to send."""
        state = self.peers[peer]
        start = max(state.pushed, state.own_until)
        if self._only_its_own(state, start):  # e.g. while pulling its registry: nothing to page through
            state.own_until = self.log.head
            return None
        page = self.log.since(start, self.config.max_batch_items)
        if page.more:  # too far behind for a push: its own anti-entropy pull catches it up
            state.pushed = self.log.head
            return None
        delta = self._delta(page, state.pushed, state.replica, now_ms,
                            direct=self._peer_direct.get(state.replica, frozenset()))
        if not delta.records and not delta.renewals:
            # Nothing the peer lacks (it sent us all of it). Do not move `pushed`: the next push then starts where
            # the peer's watermark of us stands and covers this range too, so the watermark keeps up instead of
            # stalling at a gap that only a full anti-entropy page would close.
            return None
        state.pushed = page.upto
        return Push(delta)

    def anti_entropy(self) -> Outgoing | None:
        """A digest for the next peer in turn: a constant-size request when the two are in sync."""
        if not self.peers:
            return None
        names = list(self.peers)
        name = names[self._next_peer % len(names)]
        self._next_peer += 1
        return Outgoing(name, self.digest_for(name))

    def take_outbox(self) -> list[Outgoing]:
        out, self.outbox = self.outbox, []
        return out

    def take_changes(self) -> list[Change]:
        out, self.changes = self.changes, []
        return out

    # ----- time: leases, eviction, self-preservation, garbage collection ------------------------------------

    def sweep(self, now_ms: int, budget: int = SWEEP_SLICE) -> SweepOutcome | None:
        """Advance the lease ledger to `now_ms` by at most `budget` breakpoints, then re-evaluate self-preservation
        and, if an eviction was requested meanwhile and is allowed, evict the oldest expired leases (at most the
        capped share), `budget // EVICTIONS_PER_ENTRY` per call. None while unfinished, so the caller can publish
        each call's changes before the next (see sweep.py)."""
        self._note_gap(now_ms)
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
        window = self.config.renewal_window_ms
        self._preservation_due = now_ms + max(1, window // EVALUATIONS_PER_WINDOW)
        observed, expected = self.leases.sums()
        leases = self.leases
        sweep.preservation_changed = self.preservation.update(now_ms, observed, expected, len(leases.terms),
                                                              self._longest_lease, *leases.recently_expired(now_ms))
        if self._eviction_requested:
            self._eviction_requested = False
            if self.preservation.allows_eviction and not self._evictions_held(now_ms):
                cap = eviction_cap(self.index.count, self.config.max_eviction_fraction)
                # Cost grows with what has expired, not with the registry: the ledger keeps them apart.
                sweep.victims = sorted((term.anchor_ms, key) for key, term in self.leases.expired.items())[:cap]
                sweep.victims.reverse()  # oldest last: taken from the end

    def _longest_lease(self) -> int:
        """The longest live lease: a scan, asked for only when self-preservation engages (to say by when it
        releases), never on a regular pass."""
        return max((term.duration_ms for term in self.leases.terms.values()), default=0)

    def _note_gap(self, now_ms: int) -> None:
        """Passes come every window/EVALUATIONS_PER_WINDOW; three missed means the process was stopped (SIGSTOP,
        a frozen VM, a long stall), and the renewals it missed are still on their way to it."""
        gap = 3 * max(1, self.config.renewal_window_ms // EVALUATIONS_PER_WINDOW)
        if self._last_pass_ms and now_ms - self._last_pass_ms > gap:
            self._resumed_ms = now_ms
        self._last_pass_ms = max(self._last_pass_ms, now_ms)

    def _evictions_held(self, now_ms: int) -> bool:
        """After a stop, evict nothing until every peer we know has sent us a delta since (or one lease duration
        has passed, so a dead peer cannot hold eviction forever): every lease looks expired to a node that slept
        through its renewals, and with nothing expected self-preservation cannot catch that (I4)."""
        resumed = self._resumed_ms
        if resumed is None:
            return False
        heard = all(self._heard_ms.get(state.replica, -1) >= resumed for state in self.peers.values()
                    if state.replica)
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
        for replica in [r for r, at in self._heard_ms.items() if now_ms - at >= ttl]:
            del self._heard_ms[replica]  # old incarnations and long-gone peers: every digest would carry them
            self._peer_direct.pop(replica, None)
            self.watermarks.pop(replica, None)
            self._uncredited.pop(replica, None)
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
