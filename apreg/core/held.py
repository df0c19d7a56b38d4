"""Replicated state stamped too far ahead of this node's clock to take yet: held back, not refused.

A record whose stamp the clock guard refuses (clock.py) would, refused, stall the sender's watermark: every
anti-entropy round would fetch the same page again and refuse it again, as fast as the network allows. Held
here instead, the delta is credited, nothing is asked for twice, and the replica applies what is held as soon
as its stamp is within the guard, exactly as if it had just arrived (merging is order-insensitive). A held
renewal's lease effect does not wait: it is a duration (clock.py), so the lease restarts at once and only the
renewal register waits. One slot per key (records merged, the highest renewal kept), so what is held is
bounded by the registry, not by how often a peer sends it; state is memory only, like everything else here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .clock import Timestamp
from .instance import InstanceKey
from .record import Record, merge

NOTHING_HELD = 2**63


@dataclass(slots=True)
class HeldRecord:
    record: Record  # the merge of every record held for the key
    highest: Timestamp  # the greatest stamp among them, which must be observed before the merge is applied


@dataclass(slots=True)
class HeldRenewal:
    renewed: Timestamp
    anchor_ms: int  # when the sender's renewal happened, on this node's clock (its age taken on arrival)


@dataclass(slots=True)
class Held:
    records: dict[InstanceKey, HeldRecord] = field(default_factory=dict)
    renewals: dict[InstanceKey, HeldRenewal] = field(default_factory=dict)
    earliest_wall_ms: int = NOTHING_HELD  # the lowest wall time among held stamps: nothing is due before it

    def __len__(self) -> int:
        return len(self.records) + len(self.renewals)

    def hold_record(self, record: Record) -> None:
        held = self.records.get(record.key)
        if held is None:
            self.records[record.key] = HeldRecord(record, record.stamp)
        else:
            held.record, held.highest = merge(held.record, record).record, max(held.highest, record.stamp)
        self.earliest_wall_ms = min(self.earliest_wall_ms, record.stamp.wall_ms)

    def hold_renewal(self, key: InstanceKey, renewed: Timestamp, anchor_ms: int) -> None:
        held = self.renewals.get(key)
        if held is None or renewed > held.renewed:
            self.renewals[key] = HeldRenewal(renewed, max(anchor_ms, held.anchor_ms if held else anchor_ms))
        self.earliest_wall_ms = min(self.earliest_wall_ms, renewed.wall_ms)

    def take_due(self, limit_wall_ms: int) -> tuple[dict[InstanceKey, HeldRenewal], dict[InstanceKey, HeldRecord]]:
        """Remove and return what is stamped at or before `limit_wall_ms` (renewals, records)."""
        if limit_wall_ms < self.earliest_wall_ms:
            return {}, {}
        renewals = {k: h for k, h in self.renewals.items() if h.renewed.wall_ms <= limit_wall_ms}
        records = {k: h for k, h in self.records.items() if h.highest.wall_ms <= limit_wall_ms}
        for key in renewals:
            del self.renewals[key]
        for key in records:
            del self.records[key]
        self.earliest_wall_ms = min([h.renewed.wall_ms for h in self.renewals.values()]
                                    + [h.highest.wall_ms for h in self.records.values()], default=NOTHING_HELD)
        return renewals, records
