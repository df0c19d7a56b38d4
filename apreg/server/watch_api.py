"""`GET /v1/watch`: a Server-Sent Events stream of the node's registry changes.

Each change is `id: <seq>`, `event: change`, `data: <json>`; `?app=` filters; `?since=` or the standard
`Last-Event-ID` header resumes, and when the node's history no longer reaches back that far the stream says
`event: resync` first (refetch, then carry on). Comment lines (`: keepalive`) keep idle streams alive through
proxies. A consumer that falls behind by more than its queue is sent `resync` and dropped: it never slows the
node down.
"""
from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any

from aiohttp import web

from apreg.eureka import render

from .documents import DELTA_ACTIONS, instance_view
from .feed import ChangeFeed, FeedEvent, Subscription
from .node import Node

HEARTBEAT_S = 15.0
FRAME_CACHE = 4096
STUCK_WRITER_S = 1.0  # a watcher that overflowed and whose stream has not ended by then is cut off


class WatchApi:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._frames: OrderedDict[int, bytes] = OrderedDict()  # rendered once, shared by every watcher

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/watch", self.watch)
        app.on_shutdown.append(self._end_streams)

    async def _end_streams(self, _: web.Application) -> None:
        self.node.feed.close()

    async def watch(self, request: web.Request) -> web.StreamResponse:
        since = _since(request)
        try:
            heartbeat = float(request.query.get("heartbeat", HEARTBEAT_S))
        except ValueError:
            heartbeat = -1.0
        if not 0.05 <= heartbeat <= 300:
            raise web.HTTPBadRequest(text="heartbeat must be between 0.05 and 300 seconds")
        feed = self.node.feed
        subscription = feed.subscribe(request.query.get("app"))
        subscription.on_overflow = lambda: _cut_if_stuck(request, feed, subscription)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        try:
            await response.prepare(request)
            await response.write(f": apreg {self.node.settings.name} seq {feed.seq}\n\n".encode())
            last = feed.seq if since is None else since
            if since is not None:
                backlog = feed.since(since)
                if backlog is None:
                    await response.write(_resync("history no longer reaches back to the requested position"))
                    last = feed.seq
                else:
                    for event in backlog:
                        if subscription.app is None or event.key.app == subscription.app:
                            await response.write(self._frame(event))
                    last = backlog[-1].seq if backlog else last
            await self._stream(response, subscription, last, heartbeat)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            feed.unsubscribe(subscription)
        return response

    async def _stream(self, response: web.StreamResponse, subscription: Subscription, last: int,
                      heartbeat: float) -> None:
        """Send events as they come, everything already queued in one write (one syscall for a burst)."""
        queue = subscription.queue
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    events = [await queue.get()]
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            while not queue.empty():
                events.append(queue.get_nowait())
            frames = []
            for event in events:
                if event is None:  # the end (alone in the queue, see Subscription.end): too slow, or stopping
                    if subscription.overflowed:
                        await response.write(_resync("consumer too slow; refetch and reconnect"))
                    response.force_close()  # end the connection, not just the stream
                    return
                if event.seq > last:
                    frames.append(self._frame(event))
            if frames:
                await response.write(b"".join(frames))

    def _frame(self, event: FeedEvent) -> bytes:
        frame = self._frames.get(event.seq)
        if frame is None:
            frame = self._frames[event.seq] = self._render(event)
            if len(self._frames) > FRAME_CACHE:
                self._frames.popitem(last=False)
        return frame

    def _render(self, event: FeedEvent) -> bytes:
        replica = self.node.replica
        view = instance_view(replica, event.info, DELTA_ACTIONS[event.action])
        data: dict[str, Any] = {
            "seq": event.seq, "app": event.key.app, "instance_id": event.key.instance_id,
            "action": event.action.value, "version": dict(event.record.vv), "stamp": list(event.record.stamp),
            "applied_ms": event.at_ms, "node_id": self.node.settings.name, "instance": render.instance_dict(view),
        }
        return f"id: {event.seq}\nevent: change\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _cut_if_stuck(request: web.Request, feed: ChangeFeed, subscription: Subscription) -> None:
    """A consumer that stopped reading leaves its writer waiting on a full socket, where it never sees the
    end marker: if the stream is still subscribed a moment after overflowing, drop the connection."""
    def cut() -> None:
        if subscription in feed.subscribers and request.transport is not None:
            request.transport.abort()

    asyncio.get_running_loop().call_later(STUCK_WRITER_S, cut)


def _resync(reason: str) -> bytes:
    return f"event: resync\ndata: {json.dumps({'reason': reason})}\n\n".encode()


def _since(request: web.Request) -> int | None:
    raw = request.query.get("since") or request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19):  # "²" is a digit to str.isdigit, not to int()
        raise web.HTTPBadRequest(text="since / Last-Event-ID must be a non-negative integer")
    return int(raw)
