"""The change log that anti-entropy and pushes read from: which keys changed, in order, on this replica.

Every change this replica applies (its own writes and replicated ones that changed its state) gets the next
sequence number; a key keeps only its latest number, so the log holds at most one entry per key and kind.
A peer remembers, per replica, the sequence it holds everything up to (its watermark). Anti-entropy then costs
one (replica id, watermark) pair when in sync, and walks back from the head only as far as the difference:
`dict` keeps insertion order, which is sequence order, and `reversed()` stops at the watermark.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from .instance import InstanceKey


@dataclass(slots=True)
class _Index:
    by_seq: dict[int, InstanceKey] = field(default_factory=dict)
    by_key: dict[InstanceKey, int] = field(default_factory=dict)

    def note(self, key: InstanceKey, seq: int) -> None:
        old = self.by_key.get(key)
        if old is not None:
            del self.by_seq[old]
        self.by_seq[seq] = key
        self.by_key[key] = seq

    def forget(self, key: InstanceKey) -> None:
        seq = self.by_key.pop(key, None)
        if seq is not None:
            del self.by_seq[seq]

    def after(self, since: int) -> Iterator[tuple[int, InstanceKey]]:
        """Entries with sequence > since, newest first."""
        for seq in reversed(self.by_seq):
            if seq <= since:
                return
            yield seq, self.by_seq[seq]


@dataclass(frozen=True, slots=True)
class Page:
    records: list[tuple[int, InstanceKey]]  # (sequence, key), oldest first
    renewals: list[tuple[int, InstanceKey]]
    upto: int  # every change in (since, upto] is in this page
    more: bool

    @property
    def record_keys(self) -> list[InstanceKey]:
        return [key for _, key in self.records]

    @property
    def renewal_keys(self) -> list[InstanceKey]:
        return [key for _, key in self.renewals]


@dataclass(slots=True)
class ChangeLog:
    head: int = 0
    records: _Index = field(default_factory=_Index)
    renewals: _Index = field(default_factory=_Index)

    def note_record(self, key: InstanceKey) -> None:
        self.head += 1
        self.records.note(key, self.head)

    def note_renewal(self, key: InstanceKey) -> None:
        self.head += 1
        self.renewals.note(key, self.head)

    def forget(self, key: InstanceKey) -> None:
        self.records.forget(key)
        self.renewals.forget(key)

    def since(self, since: int, limit: int) -> Page:
        """The oldest `limit` changes after `since` (cost grows with the difference, not the log)."""
        if since >= self.head:
            return Page([], [], self.head, False)
        entries = sorted([(seq, 0, key) for seq, key in self.records.after(since)]
                         + [(seq, 1, key) for seq, key in self.renewals.after(since)])
        more = len(entries) > limit
        if more:
            entries = entries[:limit]
        upto = entries[-1][0] if more else self.head
        return Page([(seq, k) for seq, kind, k in entries if kind == 0],
                    [(seq, k) for seq, kind, k in entries if kind == 1], upto, more)
