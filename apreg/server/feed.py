"""The node's change feed: what `/v1/watch` streams and what Eureka's `apps/delta` lists.

Both read the same sequence of applied changes (local writes, replicated ones, local evictions). Subscribers
get bounded queues: a consumer that falls behind is dropped with a "resync" event rather than slowing the node.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from apreg.core.instance import InstanceInfo, InstanceKey
from apreg.core.record import Record
from apreg.core.replica import Action, Change

DELTA_RETENTION_MS = 180_000  # Eureka's 3-minute delta window
HISTORY_EVENTS = 10_000  # how far back a watcher can resume
SUBSCRIBER_QUEUE = 1_000


@dataclass(frozen=True, slots=True)
class FeedEvent:
    seq: int
    key: InstanceKey
    action: Action
    record: Record
    at_ms: int
    info: InstanceInfo


@dataclass(eq=False, slots=True)
class Subscription:
    """One watcher: a bounded queue; `overflowed` is set (and the queue closed) when it falls behind."""

    app: str | None
    queue: asyncio.Queue[FeedEvent | None] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    overflowed: bool = False

    def offer(self, event: FeedEvent) -> None:
        if self.overflowed or (self.app is not None and event.key.app != self.app):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.end()  # the reader sends "resync" and closes

    def end(self) -> None:
        """Wake the reader with the end-of-stream marker (None), dropping whatever it had not read."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


@dataclass(slots=True)
class ChangeFeed:
    seq: int = 0
    delta_version: int = 1  # Eureka's versions__delta: bumped whenever the delta window changes
    history: deque[FeedEvent] = field(default_factory=lambda: deque(maxlen=HISTORY_EVENTS))
    recent: deque[FeedEvent] = field(default_factory=deque)  # the delta window, oldest first
    subscribers: set[Subscription] = field(default_factory=set)

    def publish(self, changes: list[Change]) -> None:
        if changes:
            self.prune(changes[0].at_ms)  # here, not only on reads: nobody may ever ask for the delta
        for change in changes:
            self.seq += 1
            event = FeedEvent(self.seq, change.key, change.action, change.record, change.at_ms, change.info)
            self.history.append(event)
            self.recent.append(event)
            self.delta_version += 1
            for subscriber in self.subscribers:
                subscriber.offer(event)

    def prune(self, now_ms: int) -> None:
        """Drop delta entries older than the window (Eureka prunes every 30 s; we prune on each write and read)."""
        while self.recent and now_ms - self.recent[0].at_ms > DELTA_RETENTION_MS:
            self.recent.popleft()
            self.delta_version += 1

    def delta(self, now_ms: int) -> list[FeedEvent]:
        """The latest change per key within the window."""
        self.prune(now_ms)
        latest: dict[InstanceKey, FeedEvent] = {}
        for event in self.recent:
            latest[event.key] = event
        return list(latest.values())

    def since(self, seq: int) -> list[FeedEvent] | None:
        """Events after `seq`, or None when the history no longer reaches back that far."""
        if seq > self.seq:
            return None  # a position from before this node restarted: its sequence started again
        if seq == self.seq:
            return []
        if not self.history or self.history[0].seq > seq + 1:
            return None
        return [event for event in self.history if event.seq > seq]

    def subscribe(self, app: str | None) -> Subscription:
        subscription = Subscription(app.upper() if app else None)
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)

    def close(self) -> None:
        """End every stream (the node is shutting down)."""
        for subscription in self.subscribers:
            subscription.end()
