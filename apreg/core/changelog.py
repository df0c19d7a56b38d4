"""The change log that anti-entropy and pushes read from: which keys changed, in order, on this replica.

Every change this replica applies (its own writes, and replicated ones that changed its state) takes the next
sequence number. A key's `Entry` remembers the sequence of its current record and of its current renewal, and
the log holds each key once, at its latest change: one dict entry per key. `dict` keeps insertion order, which
is sequence order, so a page walks back from the head only as far as the requested position: anti-entropy costs
one (replica id, watermark) pair when in sync, and grows with the difference, not the registry.

Paging: a page lists whole keys, ordered by their earliest change after `since`, and `upto` stops just before
the first key left out. Every change at or below `upto` then belongs to a key in the page, so a receiver that
applies the page holds everything up to `upto`, even though a key's record and renewal sit at different places.
"""
from __future__ import annotations

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
    head: int = 0
    _by_seq: dict[int, Entry] = field(default_factory=dict)

    def note(self, entry: Entry, record: bool, renewal: bool) -> None:
        """Log a change to the entry's record, renewal, or both (a registration: one change, one sequence)."""
        position = entry.record_seq if entry.record_seq > entry.renewal_seq else entry.renewal_seq  # .position, inlined
        if position:
            del self._by_seq[position]
        self.head += 1
        if record:
            entry.record_seq = self.head
        if renewal:
            entry.renewal_seq = self.head
        self._by_seq[self.head] = entry

    def forget(self, entry: Entry) -> None:
        self._by_seq.pop(entry.position, None)
        entry.record_seq = entry.renewal_seq = 0

    def since(self, since: int, limit: int) -> Page:
        """At most `limit` changes after `since` (more only if one key alone has more), whole keys at a time;
        the cost grows with the difference, not with the log."""
        if since >= self.head:
            return Page([], [], self.head, False)
        pending: list[tuple[int, int, int, Entry]] = []  # (earliest change > since, record seq, renewal seq, entry)
        by_seq = self._by_seq
        for position in reversed(by_seq):
            if position <= since:
                break
            entry = by_seq[position]
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
