"""Hybrid logical clock (HLC): wall-clock-like timestamps that never go backwards and respect causality.

Every versioned write is stamped with `clock.tick(now_ms)`; every received record's stamp goes through
`clock.observe`, so a write made after seeing another always carries a greater timestamp. That property is
what makes "greatest timestamp wins" agree with "causally later wins" (see `record.merge`).

Clock skew. A remote stamp more than `max_skew_ms` ahead of this node's time is not observed (the guard: one
clock set to next year must not drag every other one with it); the replica holds such a record back until it is
within the guard (held.py), so it is late, never lost, and never asked for again. To keep that rare, each node
learns how far its peers' wall clocks are from its own (every delta carries its sender's wall clock) and, once
it is further than a quarter of the guard from their median, stamps and guards with its wall clock moved to
within that quarter (`offset_ms`): a node 90 s ahead of two peers stamps as if 15 s ahead, a node 90 s behind
as if 15 s behind, and the median (so any one bad clock of three) never moves. Leases, expiry and
self-preservation never read the offset: they count durations on the node's own clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from types import MappingProxyType
from typing import Mapping, NamedTuple

from .errors import ClockSkewError

DEADBAND_SHARE = 4  # a node corrects its clock once it is further than guard / this from its peers' median
SAMPLE_TTL_MS = 30_000  # a peer not heard from for this long no longer counts towards the median


class Timestamp(NamedTuple):
    """(wall_ms, logical, replica): ordered lexicographically; the replica id breaks exact ties."""

    wall_ms: int
    logical: int
    replica: str


ZERO = Timestamp(0, 0, "")


@dataclass(frozen=True, slots=True)
class ClockView:
    """The correction and what it was derived from, read-only, for status documents, metrics and log lines."""

    offset_ms: int
    peer_offsets_ms: Mapping[str, int]  # replica id -> its wall clock minus ours, as its latest delta said
    deadband_ms: int  # how far off the peers' median the clock may be before it is corrected

    @property
    def corrected(self) -> bool:
        return self.offset_ms != 0


@dataclass(slots=True)
class HybridClock:
    """An HLC for one replica; time comes in as `now_ms`, the clock reads no wall clock itself.

    `offset_ms` is added to `now_ms` for stamps and for the guard; it follows the peers' clocks as `learn` hears
    them (see the module docstring). Remote stamps too far ahead even so are refused (and counted), never adopted.
    """

    replica: str
    max_skew_ms: int = 60_000
    last: Timestamp = ZERO
    skew_rejections: int = 0
    offset_ms: int = 0
    peer_offsets: dict[str, tuple[int, int]] = field(default_factory=dict)  # replica -> (offset, heard at)
    transitions: list[ClockView] = field(default_factory=list)  # the correction started or ended, not yet taken

    def tick(self, now_ms: int) -> Timestamp:
        """A fresh timestamp for a local event, greater than every timestamp seen so far."""
        wall = max(self.last.wall_ms, now_ms + self.offset_ms)
        logical = self.last.logical + 1 if wall == self.last.wall_ms else 0
        self.last = Timestamp(wall, logical, self.replica)
        return self.last

    def observe(self, remote: Timestamp, now_ms: int) -> None:
        """Fold an accepted remote timestamp in, so later local ticks exceed it (ClockSkewError if too far ahead)."""
        if remote.wall_ms - now_ms - self.offset_ms > self.max_skew_ms:
            self.skew_rejections += 1
            raise ClockSkewError(f"timestamp {remote.wall_ms} is {remote.wall_ms - now_ms} ms ahead of local time")
        if remote > self.last:
            self.last = remote  # `tick` reads only its wall and logical parts

    def learn(self, replica: str, remote_ms: int, now_ms: int) -> None:
        """A peer's wall clock read `remote_ms` when it sent what arrives now (off by the transit time:
        milliseconds, against a deadband of seconds). Re-derives `offset_ms` from the recent samples."""
        offsets = self.peer_offsets
        offsets[replica] = (remote_ms - now_ms, now_ms)
        for stale in [r for r, (_, at) in offsets.items() if now_ms - at > SAMPLE_TTL_MS]:
            del offsets[stale]
        middle = round(median([0, *(offset for offset, _ in offsets.values())]))
        deadband = self.max_skew_ms // DEADBAND_SHARE
        was_corrected = self.corrected
        self.offset_ms = 0 if abs(middle) <= deadband else middle - deadband if middle > 0 else middle + deadband
        if self.corrected != was_corrected:
            self.transitions.append(self.view())

    @property
    def corrected(self) -> bool:
        """This node's clock is off its peers' median by more than the deadband (status, metrics, logs say so)."""
        return self.offset_ms != 0

    def view(self) -> ClockView:
        offsets = {replica: offset for replica, (offset, _) in sorted(self.peer_offsets.items())}
        return ClockView(self.offset_ms, MappingProxyType(offsets), self.max_skew_ms // DEADBAND_SHARE)

    def take_transitions(self) -> list[ClockView]:
        out, self.transitions = self.transitions, []
        return out
