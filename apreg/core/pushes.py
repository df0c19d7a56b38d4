"""When eager pushes go, and to whom: one in flight per peer, what comes meanwhile coalesced into the next.

The replica decides what a push carries (deltas.py); this decides when. A write asks for a push after the push
window (renewals alone: after the renewal window), unless an earlier one is due. When it is due and the log
moved, the targets (every peer, or `fanout` of them at random) are marked; a marked peer with no push in flight
gets one now, a peer with one in flight gets the rest once the driver reports it done. A failed push is rewound
(the next starts where it did) and its peer held for the link's back-off; what comes due meanwhile waits for the
next write, or for anti-entropy.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .messages import Push


@dataclass(slots=True)
class PeerState:
    replica: str = ""  # the peer's replica id, learned from its messages ("" until it answers)
    pushed: int = 0  # our log sequence up to which we have pushed to it
    # Past `pushed`, our log up to here held nothing but the peer's own changes when last looked at (a pull of
    # its registry): the next push reads the log from here, and still covers the range from `pushed`.
    own_until: int = 0
    asked_ahead: int = 0  # the end of a page whose successor is on its way unasked (see expect_page_after)
    in_flight: Push | None = None  # the eager push the driver is sending it: one at a time per peer
    in_flight_base: int = 0  # `pushed` before that push, restored if it fails
    again: bool = False  # a push came due while one was in flight (or on this tick): send the rest next
    held_until_ms: int = 0  # after a failed push, no eager push before this (the link backs off)


@dataclass(slots=True)
class PushSchedule:
    peers: dict[str, PeerState] = field(default_factory=dict)
    due_ms: int | None = None  # when the next push is due (None: nothing waits for one)
    flushed_head: int = 0  # the log head when targets were last marked

    def soon(self, now_ms: int, delay_ms: int) -> None:
        if self.peers and (self.due_ms is None or now_ms + delay_ms < self.due_ms):
            self.due_ms = now_ms + delay_ms

    def ready(self, now_ms: int, head: int, fanout: int, rng: random.Random) -> list[tuple[str, PeerState]]:
        """The peers to start a push to now (marking the targets first if a push is due and the log moved)."""
        if self.due_ms is not None and now_ms >= self.due_ms:
            self.due_ms = None
            if head != self.flushed_head:
                self.flushed_head = head
                names = list(self.peers)
                for name in rng.sample(names, fanout) if 0 < fanout < len(names) else names:
                    self.peers[name].again = True
        ready = []
        for name, state in self.peers.items():
            if state.again and state.in_flight is None:
                state.again = False
                if now_ms >= state.held_until_ms:  # backing off: anti-entropy repairs it once it answers
                    ready.append((name, state))
        return ready

    def done(self, peer: str, push: Push) -> None:
        state = self.peers.get(peer)
        if state is not None and state.in_flight is push:
            state.in_flight = None

    def failed(self, peer: str, push: Push, now_ms: int, retry_after_ms: int) -> None:
        state = self.peers.get(peer)
        if state is not None and state.in_flight is push:
            state.in_flight, state.pushed, state.again = None, state.in_flight_base, False
            state.held_until_ms = now_ms + retry_after_ms
