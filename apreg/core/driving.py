"""The Replica's driver-facing half: `tick(now_ms)` in, `take_effects()` out, and eager pushes.

What is due comes from the config's intervals and the replica's own state; the driver only brings the time and
reports how each push ended (pushes.py decides when a push goes, this module what it carries). A mixin of
`Replica`, which holds the state named below.
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .changelog import ChangeLog
from .config import CoreConfig
from .deltas import page_delta
from .effects import Change, Effects, Outgoing
from .instance import InstanceKey
from .messages import Digest, Push
from .preservation import EVALUATIONS_PER_WINDOW, SelfPreservation
from .pushes import PeerState, PushSchedule
from .sweep import SWEEP_SLICE, SweepOutcome
from .watermarks import Watermarks


class Driving:
    """Adds behaviour, no state: the state is Replica's (its dataclass slots), declared here for the checker."""

    if TYPE_CHECKING:
        replica_id: str
        config: CoreConfig
        rng: random.Random
        log: ChangeLog
        marks: Watermarks
        peers: dict[str, PeerState]
        outbox: list[Outgoing]
        changes: list[Change]
        preservation: SelfPreservation
        synced: bool
        _pushes: PushSchedule
        _started: bool
        _anti_entropy_ms: int
        _eviction_ms: int
        _passing: bool
        _collect: bool
        _evicted: list[InstanceKey]
        _eviction_requested: bool
        _preservation_due: int
        _next_peer: int

        def digest_for(self, peer: str) -> Digest: ...
        def _direct(self, now_ms: int) -> tuple[str, ...]: ...
        def request_eviction(self) -> None: ...
        def sweep(self, now_ms: int, budget: int = SWEEP_SLICE) -> SweepOutcome | None: ...
        def collect_garbage(self, now_ms: int) -> int: ...
    else:
        __slots__ = ()  # no __dict__: Replica stays slotted

    # ----- eager pushes: when is pushes.py's job, what is this one's ----------------------------------------

    def _push_soon(self, now_ms: int, urgent: bool) -> None:
        config = self.config
        self._pushes.soon(now_ms, config.push_window_ms if urgent else max(config.push_window_ms,
                                                                           config.renewal_push_window_ms))

    def _push(self, now_ms: int) -> None:
        for name, state in self._pushes.ready(now_ms, self.log.head, self.config.fanout, self.rng):
            base = state.pushed
            push = self._push_for(state, now_ms)
            if push is not None:
                state.in_flight, state.in_flight_base = push, base
                self.outbox.append(Outgoing(name, push))

    def _push_for(self, state: PeerState, now_ms: int) -> Push | None:
        """A push of what the peer has not been sent yet, or None if there is nothing to send."""
        start = max(state.pushed, state.own_until)
        if self._only_its_own(state, start):  # e.g. while pulling its registry: nothing to page through
            state.own_until = self.log.head
            return None
        page = self.log.since(start, self.config.max_batch_items)
        if page.more:  # too far behind for a push: its own anti-entropy pull catches it up
            state.pushed = self.log.head
            return None
        delta = page_delta(self.replica_id, page, state.pushed, state.replica, now_ms, self._direct(now_ms),
                           skip_direct=self.marks.peer_direct.get(state.replica, frozenset()))
        if not delta.records and not delta.renewals:
            # Nothing the peer lacks (it sent us all of it). Do not move `pushed`: the next push then starts where
            # the peer's watermark of us stands and covers this range too, so the watermark keeps up instead of
            # stalling at a gap that only a full anti-entropy page would close.
            return None
        state.pushed = page.upto
        return Push(delta)

    def _only_its_own(self, state: PeerState, since: int) -> bool:
        """Whether every change after `since` came from this peer (which holds it): a delta to it would carry
        nothing but the range, so none of the log needs reading."""
        return bool(state.replica) and self.log.newest_not_from(state.replica) <= since

    def push_done(self, peer: str, push: Push) -> None:
        """The driver delivered `push` (an eager push from our effects) to `peer`: the next tick starts what
        came due meanwhile."""
        self._pushes.done(peer, push)

    def push_failed(self, peer: str, push: Push, now_ms: int, retry_after_ms: int) -> None:
        """`peer` did not take `push` (unreachable, refused, or the link is backing off, so it was not even
        sent): the next push to it starts where this one did, and none is started for `retry_after_ms`."""
        self._pushes.failed(peer, push, now_ms, retry_after_ms)

    # ----- the driver's loop: tick, then take the effects ---------------------------------------------------

    def tick(self, now_ms: int) -> int:
        """Run whatever is due at `now_ms`: the initial pull (on the first tick), an anti-entropy digest, an
        eviction pass and garbage collection, the periodic self-preservation check, eager pushes. Returns when
        to tick next at the latest: `now_ms` itself while a pass is unfinished (tick again after letting other
        work run). Any input (a write, a message, a push report) may bring that forward: tick after it."""
        config = self.config
        if not self._started:
            self._started, self._anti_entropy_ms, self._eviction_ms = True, now_ms, now_ms
            self._preservation_due = now_ms + self._evaluation_interval_ms()
            if not self.synced:  # a node that starts empty pulls from every peer at once
                self.outbox.extend(Outgoing(name, self.digest_for(name)) for name in self.peers)
        if now_ms >= self._anti_entropy_ms + config.anti_entropy_interval_ms:
            self._anti_entropy_ms = now_ms
            self._anti_entropy()
        if now_ms >= self._eviction_ms + config.eviction_interval_ms:
            self._eviction_ms, self._collect = now_ms, True
            self.request_eviction()
        if self._passing or self._eviction_requested or now_ms >= self._preservation_due:
            outcome = self.sweep(now_ms)
            self._passing = outcome is None
            if outcome is not None:
                self._evicted.extend(outcome.evicted)
                if self._collect:
                    self._collect = False
                    self.collect_garbage(now_ms)
        self._push(now_ms)
        if self._passing:
            return now_ms
        due = [self._anti_entropy_ms + config.anti_entropy_interval_ms, self._eviction_ms + config.eviction_interval_ms,
               self._preservation_due]
        if self._pushes.due_ms is not None:
            due.append(self._pushes.due_ms)
        return max(now_ms, min(due))

    def take_effects(self) -> Effects:
        """Everything decided since the last call, to act on in the order `Effects` documents."""
        effects = Effects(tuple(self.outbox), tuple(self.changes), tuple(self._evicted),
                          tuple(self.preservation.take_transitions()))
        self.outbox, self.changes, self._evicted = [], [], []
        return effects

    def _anti_entropy(self) -> None:
        """A digest for the next peer in turn: a constant-size request when the two are in sync."""
        if not self.peers:
            return
        names = list(self.peers)
        name = names[self._next_peer % len(names)]
        self._next_peer += 1
        self.outbox.append(Outgoing(name, self.digest_for(name)))

    def _evaluation_interval_ms(self) -> int:
        return max(1, self.config.renewal_window_ms // EVALUATIONS_PER_WINDOW)
