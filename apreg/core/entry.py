"""Everything one replica keeps about one key, in a single object.

A registry of 100,000 instances pays for every per-key dict entry and every small object many times over, so
the record, the lease, the key's positions in the change log and where its replicated state came from all live
in one `Entry`, found through one dict. `Entry` extends `Lease` rather than holding one for the same reason: one
object per key instead of two.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

from .instance import InstanceKey
from .lease import Lease
from .record import Record


@dataclass(slots=True, kw_only=True)
class Entry(Lease):
    key: InstanceKey
    record: Record | None = None  # None until a record arrives (a renewal may come first)
    record_seq: int = 0  # our log sequence of the current record (0: not logged)
    renewal_seq: int = 0  # our log sequence of the current renewal
    # Where the current record / renewal came from, which forwarding uses to leave out what a peer gets from the
    # source itself: the sender's replica id ("" when written here, or merged from several) and its log sequence.
    # Two plain slots rather than one (sender, sequence) tuple: that tuple would cost 56 bytes per key.
    record_from: str = ""
    record_from_seq: int = 0
    renewal_from: str = ""
    renewal_from_seq: int = 0

    @property
    def position(self) -> int:
        """The key's one place in the change log: its latest change."""
        return max(self.record_seq, self.renewal_seq)


class RecordView(Mapping[InstanceKey, Record]):
    """The replica's records (tombstones included) as a read-only mapping over its entries."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[InstanceKey, Entry]) -> None:
        self._entries = entries

    def __getitem__(self, key: InstanceKey) -> Record:
        record = self._entries[key].record
        if record is None:
            raise KeyError(key)
        return record

    def __iter__(self) -> Iterator[InstanceKey]:
        return (key for key, entry in self._entries.items() if entry.record is not None)

    def __len__(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.record is not None)
