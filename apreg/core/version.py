"""Version vectors: replica id -> counter of that replica's writes to one key."""
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
    left_bigger = any(count > right.get(replica, 0) for replica, count in left.items())
    right_bigger = any(count > left.get(replica, 0) for replica, count in right.items())
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
