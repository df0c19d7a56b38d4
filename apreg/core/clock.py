"""Hybrid logical clock (HLC): wall-clock-like timestamps that never go backwards and respect causality.

Every versioned write is stamped with `clock.tick(now_ms)`; every received record's stamp goes through
`clock.observe`, so a write made after seeing another always carries a greater timestamp. That property is
what makes "greatest timestamp wins" agree with "causally later wins" (see `record.merge`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .errors import ClockSkewError


class Timestamp(NamedTuple):
    """(wall_ms, logical, replica): ordered lexicographically; the replica id breaks exact ties."""

    wall_ms: int
    logical: int
    replica: str


ZERO = Timestamp(0, 0, "")


@dataclass(slots=True)
class HybridClock:
    """An HLC for one replica; time comes in as `now_ms`, the clock reads no wall clock itself.

    Remote timestamps more than `max_skew_ms` ahead of local wall time are rejected (and counted), never
    adopted: one node with a clock set to next year must not drag every other clock forward with it.
    Rejected records are not lost: the sender still holds them and anti-entropy offers them again, and
    they are accepted once they fall within the guard.
    """

    replica: str
    max_skew_ms: int = 60_000
    last: Timestamp = ZERO
    skew_rejections: int = 0

    def tick(self, now_ms: int) -> Timestamp:
        """A fresh timestamp for a local event, greater than every timestamp seen so far."""
        wall = max(self.last.wall_ms, now_ms)
        logical = self.last.logical + 1 if wall == self.last.wall_ms else 0
        self.last = Timestamp(wall, logical, self.replica)
        return self.last

    def check(self, remote: Timestamp, now_ms: int) -> None:
        """Raise ClockSkewError (and count it) if `remote` is too far ahead to accept."""
        if remote.wall_ms - now_ms > self.max_skew_ms:
            self.skew_rejections += 1
            raise ClockSkewError(f"timestamp {remote.wall_ms} is {remote.wall_ms - now_ms} ms ahead of local time")

    def observe(self, remote: Timestamp, now_ms: int) -> None:
        """Fold an accepted remote timestamp in, so later local ticks exceed it (ClockSkewError if too far ahead)."""
        if remote.wall_ms - now_ms > self.max_skew_ms:  # `check`, inlined: this runs for every replicated item
            self.check(remote, now_ms)
        if remote > self.last:
            self.last = remote  # `tick` reads only its wall and logical parts
