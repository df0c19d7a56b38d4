"""The node's change feed: what `/v1/watch` streams and what Eureka's `apps/delta` lists.

Both read the same sequence of applied changes (local writes, replicated ones, local evictions). Subscribers
get bounded queues: a consumer that falls behind is dropped with a "resync" event rather than slowing the node.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

from apreg.core.effects import Action, Change
from apreg.core.instance import InstanceInfo, InstanceKey
from apreg.core.record import Record

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
    on_overflow: Callable[[], None] | None = None  # the reader may be stuck writing to a peer that never reads

    def offer(self, event: FeedEvent) -> None:
        if self.overflowed or (self.app is not None and event.key.app != self.app):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.end()  # the reader sends "resync" and closes
            if self.on_overflow is not None:
                self.on_overflow()

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
    # The window's latest event per instance, by app and instance id: what `apps/delta` lists (documents.py).
    window: dict[str, dict[str, FeedEvent]] = field(default_factory=dict)
    subscribers: set[Subscription] = field(default_factory=set)

    def publish(self, changes: Sequence[Change]) -> list[FeedEvent]:
        """Append the changes; returns what fell out of the delta window meanwhile (see `prune`)."""
        pruned = self.prune(changes[0].at_ms) if changes else []  # here too: nobody may ever ask for the delta
        for change in changes:
            self.seq += 1
            event = FeedEvent(self.seq, change.key, change.action, change.record, change.at_ms, change.info)
            self.history.append(event)
            self.recent.append(event)
            self.window.setdefault(event.key.app, {})[event.key.instance_id] = event
            self.delta_version += 1
            for subscriber in self.subscribers:
                subscriber.offer(event)
        return pruned

    def prune(self, now_ms: int) -> list[FeedEvent]:
        """Drop delta entries older than the window (Eureka prunes every 30 s; we prune on each write and read);
        returns them, so the delta's rendered blocks that held them can be dropped too."""
        pruned = []
        while self.recent and now_ms - self.recent[0].at_ms > DELTA_RETENTION_MS:
            event = self.recent.popleft()
            pruned.append(event)
            self.delta_version += 1
            app, instance_id = event.key
            latest = self.window[app]
            if latest.get(instance_id) is event:
                del latest[instance_id]
                if not latest:
                    del self.window[app]
        return pruned

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
