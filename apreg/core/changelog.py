"""The change log that anti-entropy and pushes read from: which keys changed, in order, on this replica.

Every change this replica applies (its own writes, and replicated ones that changed its state) takes the next
sequence number. A key's `Entry` remembers the sequence of its current record and of its current renewal, and
the log holds each key once, at its latest change, in sequence order; a page starts at the requested position
(a binary search) and reads only what follows: anti-entropy costs one (replica id, watermark) pair when in sync,
and grows with the difference, not the registry.

Paging: a page lists whole keys, ordered by their earliest change after `since`, and `upto` stops just before
the first key left out. Every change at or below `upto` then belongs to a key in the page, so a receiver that
applies the page holds everything up to `upto`, even though a key's record and renewal sit at different places.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from operator import itemgetter

from .entry import Entry
from .instance import InstanceKey

_earliest = itemgetter(0)  # sort by sequence only: entries do not compare


@dataclass(frozen=True, slots=True)
class Page:
    records: list[tuple[int, Entry]]  # (sequence of the key's record, its entry), oldest first
    renewals: list[tuple[int, Entry]]
    upto: int  # every change in (since, upto] is in this page
    more: bool

    @property
    def record_keys(self) -> list[InstanceKey]:
        return [entry.key for _, entry in self.records]

    @property
    def renewal_keys(self) -> list[InstanceKey]:
        return [entry.key for _, entry in self.renewals]


@dataclass(slots=True)
class ChangeLog:
    """Keys in sequence order, in two parallel arrays: positions (8-byte integers) and entries.

    A key that changes again leaves a hole where it was; the arrays are compacted once holes outnumber live
    positions, so they hold at most twice the live keys (amortised O(1) per change). This costs about half of
    what a dict from position to entry costs per key, which matters at 100,000 keys.
    """

    head: int = 0
    compact_after: int = 1024  # holes tolerated before compaction is considered at all
    _positions: array[int] = field(default_factory=lambda: array("q"))  # ascending
    _entries: list[Entry | None] = field(default_factory=list)  # None: a hole left by a key that moved on
    _holes: int = 0

    def note(self, entry: Entry, record: bool, renewal: bool) -> None:
        """Log a change to the entry's record, renewal, or both (a registration: one change, one sequence)."""
        position = entry.record_seq if entry.record_seq > entry.renewal_seq else entry.renewal_seq  # .position, inlined
        if position:
            self._vacate(position)
        self.head += 1
        if record:
            entry.record_seq = self.head
        if renewal:
            entry.renewal_seq = self.head
        self._positions.append(self.head)
        self._entries.append(entry)

    def forget(self, entry: Entry) -> None:
        if entry.position:
            self._vacate(entry.position)
        entry.record_seq = entry.renewal_seq = 0

    def _vacate(self, position: int) -> None:
        self._entries[bisect_left(self._positions, position)] = None
        self._holes += 1
        if self._holes > self.compact_after and 2 * self._holes > len(self._entries):
            live = [i for i, entry in enumerate(self._entries) if entry is not None]
            self._positions = array("q", [self._positions[i] for i in live])
            self._entries = [self._entries[i] for i in live]
            self._holes = 0

    def since(self, since: int, limit: int) -> Page:
        """At most `limit` changes after `since` (more only if one key alone has more), whole keys at a time;
        the cost grows with the difference, not with the log."""
        if since >= self.head:
            return Page([], [], self.head, False)
        pending: list[tuple[int, int, int, Entry]] = []  # (earliest change > since, record seq, renewal seq, entry)
        positions, entries = self._positions, self._entries
        for i in range(bisect_right(positions, since), len(entries)):
            entry = entries[i]
            if entry is None:
                continue
            position = positions[i]
            record_seq = entry.record_seq if entry.record_seq > since else 0
            renewal_seq = entry.renewal_seq if entry.renewal_seq > since else 0
            first = min(record_seq, renewal_seq) if record_seq and renewal_seq else position
            pending.append((first, record_seq, renewal_seq, entry))
        pending.sort(key=_earliest)
        taken = items = 0
        for _, record_seq, renewal_seq, _ in pending:
            items += bool(record_seq) + bool(renewal_seq)
            if items > limit and taken:
                break
            taken += 1
        more = taken < len(pending)
        upto = pending[taken][0] - 1 if more else self.head
        page = pending[:taken]
        records = sorted(((r, e) for _, r, _, e in page if r), key=_earliest)
        renewals = sorted(((n, e) for _, _, n, e in page if n), key=_earliest)
        return Page(records, renewals, upto, more)
