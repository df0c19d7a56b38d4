"""Version vectors: replica id -> counter of that replica's writes to one key (counters are positive: a replica
that has not written the key is absent, and the wire codec refuses anything else)."""
from __future__ import annotations

from enum import Enum
from typing import Mapping

VersionVector = Mapping[str, int]


class Order(Enum):
    EQUAL = "equal"
    BEFORE = "before"  # the left vector is dominated by the right one
    AFTER = "after"  # the left vector dominates the right one
    CONCURRENT = "concurrent"


def compare(left: VersionVector, right: VersionVector) -> Order:
    """Causal order of two vectors (missing entries count as 0)."""
    if left == right:  # the common case (the same record again), settled by one C-level comparison
        return Order.EQUAL
    left_bigger = right_bigger = False
    for replica, count in left.items():  # plain loops: `any()` over a generator costs twice as much here
        if count > right.get(replica, 0):
            left_bigger = True
            break
    for replica, count in right.items():
        if count > left.get(replica, 0):
            right_bigger = True
            break
    if left_bigger and right_bigger:
        return Order.CONCURRENT
    if left_bigger:
        return Order.AFTER
    if right_bigger:
        return Order.BEFORE
    return Order.EQUAL


def join(left: VersionVector, right: VersionVector) -> dict[str, int]:
    """Pointwise maximum: the vector that has seen both."""
    out = dict(left)
    for replica, count in right.items():
        if count > out.get(replica, 0):
            out[replica] = count
    return out


def advance(vector: VersionVector, replica: str) -> dict[str, int]:
    """The vector of a new write at `replica` that follows everything in `vector`."""
    out = dict(vector)
    out[replica] = out.get(replica, 0) + 1
    return out
