"""The change log that anti-entropy and pushes read from: which keys changed, in order, on this replica.

Every change this replica applies (its own writes, and replicated ones that changed its state) takes the next
sequence number. A key's `Entry` remembers the sequence of its current record and of its current renewal, and
the log holds each key twice, in two tracks in sequence order: once at its record's change and once at its
renewal's (a registration is one change: the same sequence in both). A page starts at the requested position (a
binary search per track) and walks both tracks together, in sequence order, as far as the page reaches: anti-entropy
costs one (replica id, watermark) pair when in sync, and a page costs its own size, not the registry's (with one
track holding each key at its latest change, a key's earlier change could sit anywhere after `since`, so every
page had to scan and sort the rest of the log: quadratic in a full pull of 100,000 keys).

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


_END = 2**63  # past every sequence: an exhausted track


@dataclass(slots=True)
class _Track:
    """Keys in sequence order, in two parallel arrays: positions (8-byte integers) and entries.

    A key that changes again leaves a hole where it was; the arrays are compacted once holes outnumber live
    positions, so they hold at most twice the live keys (amortised O(1) per change). This costs about half of
    what a dict from position to entry costs per key, which matters at 100,000 keys.
    """

    compact_after: int
    positions: array[int] = field(default_factory=lambda: array("q"))  # ascending
    entries: list[Entry | None] = field(default_factory=list)  # None: a hole left by a key that moved on
    holes: int = 0

    def add(self, position: int, entry: Entry) -> None:
        self.positions.append(position)
        self.entries.append(entry)

    def vacate(self, position: int) -> None:
        self.entries[bisect_left(self.positions, position)] = None
        self.holes += 1
        if self.holes > self.compact_after and 2 * self.holes > len(self.entries):
            live = [i for i, entry in enumerate(self.entries) if entry is not None]
            self.positions = array("q", [self.positions[i] for i in live])
            self.entries = [self.entries[i] for i in live]
            self.holes = 0


@dataclass(slots=True)
class ChangeLog:
    """Two tracks: every key at its record's sequence, and at its renewal's."""

    head: int = 0
    compact_after: int = 1024  # holes tolerated per track before compaction is considered at all
    _records: _Track = field(init=False)
    _renewals: _Track = field(init=False)
    # The newest change and its origin (the replica that sent it to us, "" for our own), and the newest change
    # from any other origin: enough to tell in O(1) that a peer would get only its own changes back.
    _newest: tuple[int, str] = (0, "")
    _newest_other: int = 0

    def __post_init__(self) -> None:
        self._records, self._renewals = _Track(self.compact_after), _Track(self.compact_after)

    def note(self, entry: Entry, record: bool, renewal: bool) -> None:
        """Log a change to the entry's record, renewal, or both (a registration: one change, one sequence)."""
        self.head += 1
        if record:
            self._noted(entry.record_from)
            if entry.record_seq:
                self._records.vacate(entry.record_seq)
            entry.record_seq = self.head
            self._records.add(self.head, entry)
        if renewal:
            self._noted(entry.renewal_from)
            if entry.renewal_seq:
                self._renewals.vacate(entry.renewal_seq)
            entry.renewal_seq = self.head
            self._renewals.add(self.head, entry)

    def _noted(self, origin: str) -> None:
        newest, newest_origin = self._newest
        if origin != newest_origin:
            self._newest_other = newest
        self._newest = (self.head, origin)

    def newest_not_from(self, origin: str) -> int:
        """At least the sequence of the newest change whose origin is not `origin` (0 if none). A bound, not
        the exact figure: a change superseded since still counts. A node that has just pulled a peer's whole
        registry asks this before paging through it to find nothing to send back."""
        newest, newest_origin = self._newest
        return self._newest_other if origin == newest_origin else newest

    def forget(self, entry: Entry) -> None:
        if entry.record_seq:
            self._records.vacate(entry.record_seq)
        if entry.renewal_seq:
            self._renewals.vacate(entry.renewal_seq)
        entry.record_seq = entry.renewal_seq = 0

    def since(self, since: int, limit: int) -> Page:
        """At most `limit` changes after `since` (more only if one key alone has more), whole keys at a time;
        the cost grows with the page, not with the log."""
        if since >= self.head:
            return Page([], [], self.head, False)
        rec_pos, rec_entries = self._records.positions, self._records.entries
        ren_pos, ren_entries = self._renewals.positions, self._renewals.entries
        i, j = bisect_right(rec_pos, since), bisect_right(ren_pos, since)
        rec_end, ren_end = len(rec_pos), len(ren_pos)
        records: list[tuple[int, Entry]] = []
        renewals: list[tuple[int, Entry]] = []
        taken: set[int] = set()  # ids of the entries in the page (entries do not hash)
        items = 0
        while True:  # the next change of both tracks, in sequence order
            while i < rec_end and rec_entries[i] is None:
                i += 1
            while j < ren_end and ren_entries[j] is None:
                j += 1
            at_record = rec_pos[i] if i < rec_end else _END
            at_renewal = ren_pos[j] if j < ren_end else _END
            if at_record <= at_renewal:
                if at_record == _END:
                    return Page(_by_seq(records), _by_seq(renewals), self.head, False)
                seq, entry = at_record, rec_entries[i]
                i += 1
                j += at_record == at_renewal  # one change in both tracks: the same entry
            else:
                seq, entry = at_renewal, ren_entries[j]
                j += 1
            assert entry is not None
            if id(entry) in taken:
                continue  # the key's other change, already in the page
            record = entry.record_seq > since
            renewal = entry.renewal_seq > since
            items += record + renewal
            if items > limit and taken:
                return Page(_by_seq(records), _by_seq(renewals), seq - 1, True)
            taken.add(id(entry))
            if record:
                records.append((entry.record_seq, entry))
            if renewal:
                renewals.append((entry.renewal_seq, entry))


def _by_seq(changes: list[tuple[int, Entry]]) -> list[tuple[int, Entry]]:
    """Oldest first: a key taken at its earlier change lists its later one out of order (nearly sorted)."""
    changes.sort(key=_earliest)
    return changes
