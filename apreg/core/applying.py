"""The Replica's applying half: how a record or a renewal, written here or received, becomes its key's state.

Client writes (replica.py) store through `_store`; peers' deltas arrive through `_apply_delta`, what the clock
guard held back through `release_held` (held.py). Each keeps the entry, the visible index, the lease ledger, the
change log and the changes for the next effects in step. A mixin of `Replica`, which holds the state named below.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from .changelog import ChangeLog
from .clock import HybridClock, Timestamp
from .effects import Action, Change
from .entry import Entry
from .errors import ClockSkewError
from .held import Held
from .index import RegistryIndex
from .instance import InstanceInfo, InstanceKey
from .ledger import LeaseLedger
from .messages import Delta, RenewalUpdate
from .record import Record, merge
from .watermarks import Watermarks

if TYPE_CHECKING:
    from .status import Counters


class Applying:
    """Adds behaviour, no state: the state is Replica's (its dataclass slots), declared here for the checker."""

    if TYPE_CHECKING:
        entries: dict[InstanceKey, Entry]
        index: RegistryIndex
        log: ChangeLog
        counters: Counters
        changes: list[Change]
        clock: HybridClock
        leases: LeaseLedger[InstanceKey]
        held: Held
        marks: Watermarks
        _tombstoned_at: dict[InstanceKey, int]
        _evicted_at: dict[InstanceKey, int]

        def renewal_interval_ms(self, info: InstanceInfo) -> int: ...
        def lease_duration_ms(self, info: InstanceInfo) -> int: ...
        def _renewed(self, entry: Entry, stamp: Timestamp, now_ms: int) -> None: ...
    else:
        __slots__ = ()  # no __dict__: Replica stays slotted

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
