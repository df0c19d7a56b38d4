"""Versioned records of one instance key and the merge rule that settles concurrent writes.

Merge rule (DESIGN.md section 1): a record whose version vector dominates wins; between concurrent records the
greater HLC timestamp wins; the merged vector is the pointwise max.

How it is implemented: the winner is always the record with the greater timestamp. The two statements agree on
every record a replica can produce, because a replica stamps a write only after observing (HybridClock.observe)
every record folded into the vector it advances, so dominance implies a greater timestamp, or an equal one when
the dominating record is the same write with a vector enlarged by a join (tested as a property over generated
causal histories). Choosing by timestamp alone makes the merge a join over a total order, hence
commutative, associative and idempotent for *any* inputs, including ones no honest replica would produce.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .clock import Timestamp
from .instance import InstanceInfo, InstanceKey
from .version import Order, VersionVector, compare, join


@dataclass(frozen=True, slots=True)
class Record:
    """The state of one key: an instance, or a tombstone (`info is None`) left by a cancel."""

    key: InstanceKey
    info: InstanceInfo | None
    vv: VersionVector
    stamp: Timestamp

    @property
    def is_tombstone(self) -> bool:
        return self.info is None


@dataclass(frozen=True, slots=True)
class Merged:
    """The outcome of merging an incoming record into a local one."""

    record: Record
    changed: bool  # the local state differs afterwards (content or vector)
    conflict: bool  # the two vectors were concurrent: a real concurrent-write conflict


def merge(local: Record | None, incoming: Record) -> Merged:
    """Fold `incoming` into `local` (same key); see the module docstring for the rule."""
    if local is None:
        return Merged(incoming, changed=True, conflict=False)
    order = compare(local.vv, incoming.vv)
    if order is Order.EQUAL and local.stamp == incoming.stamp and local.info == incoming.info:
        return Merged(local, changed=False, conflict=False)
    if incoming.stamp != local.stamp:
        winner = incoming if incoming.stamp > local.stamp else local
    else:
        winner = incoming if _tiebreak(incoming) > _tiebreak(local) else local
    vv = join(local.vv, incoming.vv)
    merged = winner if vv == winner.vv else Record(winner.key, winner.info, vv, winner.stamp)
    changed = merged.stamp != local.stamp or merged.vv != local.vv or merged.info != local.info
    return Merged(merged, changed=changed, conflict=order is Order.CONCURRENT)


def _tiebreak(record: Record) -> str:
    """A content order for records with identical timestamps, which honest replicas never produce.

    Content only, not the vector: merging joins vectors, so ordering by them would let an earlier merge change
    a later tie's winner (not associative). Equal content with different vectors needs no winner: the join
    makes the results identical.
    """
    content = None if record.info is None else record.info.to_dict()
    return json.dumps(content, sort_keys=True)
