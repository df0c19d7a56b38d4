"""Eager pushes over one WebSocket per peer: a frame per push instead of an HTTP request per push.

An idle loopback HTTP hop costs about 1.5 ms; a frame on an open socket costs a write. Pushes stay one-way and
fire-and-forget (anti-entropy repairs what a dropped stream loses); digests keep using `PeerTransport`, which
needs replies. A peer that does not offer the stream (an older node answers the handshake with 404/405) gets its
pushes by POST, and the stream is tried again after `STREAM_RETRY_S` or once that peer has failed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import aiohttp

from apreg.core.messages import Push

from . import auth, wire
from .transport import NETWORK_ERRORS, PeerLink, PeerTransport, PeerUnavailable

log = logging.getLogger("apreg.peer")

STREAM_PATH = "/v1/peer/stream"
STREAM_RETRY_S = 60.0  # how long an older peer gets pushes by POST before the stream is tried again
CLOSE_TIMEOUT_S = 1.0  # wait for the other side's close frame; keeps shutdown quick when a peer is stuck
NO_STREAM_STATUSES = (404, 405)


@dataclass(slots=True)
class PeerStream:
    """The push channel to one peer. The eager pusher and anti-entropy's repair pushes share it, hence the lock."""

    link: PeerLink
    transport: PeerTransport
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ws: aiohttp.ClientWebSocketResponse | None = None
    reader: asyncio.Task[None] | None = None
    post_until: float = 0.0  # monotonic; the peer refused the stream, use POST until then

    async def send(self, push: Push) -> None:
        """Deliver one push (connecting first if needed); raises PeerUnavailable, with the link marked failed."""
        async with self.lock:
            await self._send(push)

    async def _send(self, push: Push) -> None:
        if self.ws is None and time.monotonic() >= self.post_until:
            await self._connect()
        if self.ws is None:
            await self._post(push)
            return
        body = wire.encode(push, self.link.wire_version)
        secret = self.transport.secret
        frame = body if secret is None else auth.sign_frame(secret, STREAM_PATH, body, auth.wall_ms())
        try:
            async with asyncio.timeout(self.transport.timeout.total):  # a peer that stopped reading
                await self.ws.send_bytes(frame)
        except NETWORK_ERRORS as exc:
            await self.close()
            raise self.link.give_up(exc) from exc
        self.link.delivered()
        self.link.frames += 1

    async def close(self) -> None:
        ws, reader, self.ws, self.reader = self.ws, self.reader, None, None
        self.link.streaming = False
        if ws is not None:
            await ws.close()  # ends the reader too
        if reader is not None:
            await reader

    async def _connect(self) -> None:
        secret, url = self.transport.secret, self.link.url
        headers = None if secret is None else auth.sign(secret, "GET", STREAM_PATH, b"", auth.wall_ms())
        try:
            async with asyncio.timeout(self.transport.timeout.total):
                ws = await self.transport.session.ws_connect(
                    url + STREAM_PATH, headers=headers, heartbeat=self.transport.timeout.total,
                    timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S))
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status not in NO_STREAM_STATUSES:
                raise self.link.give_up(exc, exc.status) from exc
            log.info("peer %s has no push stream (HTTP %d): pushing to it by POST", url, exc.status)
            self.post_until = time.monotonic() + STREAM_RETRY_S
            return
        except NETWORK_ERRORS as exc:
            raise self.link.give_up(exc) from exc
        log.info("push stream to %s open", url)
        self.ws, self.link.streaming = ws, True
        self.reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The peer sends nothing but control frames, which aiohttp answers (pong, close) only while someone
        reads; this also notices at once when the peer closes, so the next push reconnects."""
        async for _ in ws:
            pass
        if self.ws is ws:
            log.info("push stream to %s closed by the peer (code %s)", self.link.url, ws.close_code)
            self.ws, self.reader, self.link.streaming = None, None, False

    async def _post(self, push: Push) -> None:
        try:
            await self.transport.send(self.link, push)
        except PeerUnavailable:
            self.post_until = 0.0  # it went away: it may come back upgraded, so try the stream next time
            raise
