"""Versioned records of one instance key and the merge rule that settles concurrent writes.

Merge rule (DESIGN.md section 1): a record whose version vector dominates wins; between concurrent records the
greater HLC timestamp wins; the merged vector is the pointwise max.

How it is implemented: the winner is the record with the greater `rank`, which is (epoch, stamp): `stamp` is
the HLC timestamp of the write; `epoch` is the timestamp of the cancel the write's lineage follows (ZERO if none),
and a tombstone's epoch is its own stamp.

- Causally later writes always win: a replica stamps a write only after observing (HybridClock.observe) every
  record folded into the vector it advances, and a write inherits the epoch of the highest-ranked record it
  holds (a cancel starts a new one), so its rank exceeds that of everything it dominates (a property test over
  generated causal histories checks this).
- Between concurrent live writes of the same epoch, the greater HLC timestamp wins, exactly as the rule says.
- One refinement of the rule, for I3 (no resurrection): a cancel beats every write concurrent with it, even one
  stamped later, because that write's epoch predates the cancel. Otherwise a node that had not yet heard of a
  cancel could bring the instance back by changing its status or metadata. A registration made after seeing the
  cancel carries the cancel's epoch and wins; a concurrent one loses, and the client re-registers on its next
  heartbeat (which gets 404).
- A rank is a total order, so the merge is a join: commutative, associative and idempotent for *any* inputs,
  including ones no honest replica would produce. Exact rank ties (never produced by honest replicas) fall back
  to comparing content.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

from .clock import ZERO, Timestamp
from .instance import InstanceInfo, InstanceKey
from .version import Order, VersionVector, compare, join


@dataclass(frozen=True, slots=True)
class Record:
    """The state of one key: an instance, or a tombstone (`info is None`) left by a cancel."""

    key: InstanceKey
    info: InstanceInfo | None
    vv: VersionVector
    stamp: Timestamp
    epoch: Timestamp = ZERO  # the cancel this live record's lineage follows (unused for tombstones)

    @property
    def rank(self) -> tuple[Timestamp, Timestamp]:
        return (self.stamp if self.info is None else self.epoch, self.stamp)

    @property
    def is_tombstone(self) -> bool:
        return self.info is None


class Merged(NamedTuple):
    """The outcome of merging an incoming record into a local one (a NamedTuple: one is made per merge)."""

    record: Record
    changed: bool  # the local state differs afterwards (content or vector)
    conflict: bool  # the two vectors were concurrent: a real concurrent-write conflict


def merge(local: Record | None, incoming: Record) -> Merged:
    """Fold `incoming` into `local` (same key); see the module docstring for the rule."""
    if local is None:
        return Merged(incoming, True, False)
    order = compare(local.vv, incoming.vv)
    local_rank, incoming_rank = local.rank, incoming.rank
    if order is Order.EQUAL and local_rank == incoming_rank and local.info == incoming.info:
        return Merged(local, False, False)
    if incoming_rank != local_rank:
        winner = incoming if incoming_rank > local_rank else local
    else:
        winner = incoming if _tiebreak(incoming) > _tiebreak(local) else local
    # The pointwise max, without building a new vector when one side already is it.
    vv: VersionVector
    if order is Order.CONCURRENT:
        vv = join(local.vv, incoming.vv)
    else:
        vv = incoming.vv if order is Order.BEFORE else local.vv
    merged = winner if vv == winner.vv else Record(winner.key, winner.info, vv, winner.stamp, winner.epoch)
    merged_rank = local_rank if winner is local else incoming_rank
    changed = merged is not local and (merged_rank != local_rank or merged.vv != local.vv or merged.info != local.info)
    return Merged(merged, changed, order is Order.CONCURRENT)


def _tiebreak(record: Record) -> str:
    """A content order for records with identical timestamps, which honest replicas never produce.

    Content only, not the vector: merging joins vectors, so ordering by them would let an earlier merge change
    a later tie's winner (not associative). Equal content with different vectors needs no winner: the join
    makes the results identical.
    """
    content = None if record.info is None else record.info.to_dict()
    return json.dumps(content, sort_keys=True)
