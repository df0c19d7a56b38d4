"""Peer endpoints under /v1/peer/: msgpack messages in, msgpack replies out, authenticated first.

With a secret set, authentication runs before routing: any request under /v1/peer (unknown paths included)
without a valid signature gets 401, and is counted. That covers the push stream's handshake (a GET with an empty
body); its frames are then verified one by one (`auth.verify_frame`).
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from apreg.core.messages import Digest, DigestReply, Push
from apreg.peer import auth, wire
from apreg.peer.stream import CLOSE_TIMEOUT_S, STREAM_PATH
from apreg.peer.transport import MESSAGES_PATH, PULL_PATH, length_prefixed

from .errors import Handler, error_response, read_body, refusal
from .node import Node
from .tls import peer_certified

log = logging.getLogger("apreg.peer")
PEER_PREFIX = "/v1/peer"
AUTH_LOG_INTERVAL_S = 10.0


def is_peer_path(path: str) -> bool:
    return path == PEER_PREFIX or path.startswith(PEER_PREFIX + "/")


class PeerApi:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.secret = node.settings.secret.encode() if node.settings.secret else None
        self.window_ms = node.replica.config.max_clock_skew_ms  # signatures: as far off as the HLC accepts
        self.replays = auth.ReplayGuard(self.window_ms)
        self.streams: set[web.WebSocketResponse] = set()
        self._auth_logged: dict[str, tuple[float, int]] = {}  # peer address -> (last logged, refused since)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(MESSAGES_PATH, self.message)
        app.router.add_post(PULL_PATH, self.pull)
        app.router.add_get(STREAM_PATH, self.stream)
        app.on_shutdown.append(self.close_streams)

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.node.settings.peer_mtls and is_peer_path(request.path) and not peer_certified(request):
            self.node.rejected.auth += 1
            log.warning("refused peer request from %s to %s: no client certificate signed by the CA",
                        request.remote, request.path)
            return error_response(403, "forbidden", "peer endpoints need a client certificate signed by the CA")
        if self.secret is None or not is_peer_path(request.path):
            return await handler(request)
        if auth.SIGNATURE_HEADER not in request.headers or auth.TIMESTAMP_HEADER not in request.headers:
            unsigned = auth.AuthError("peer requests must be signed (--secret)")
            self.refused_auth(request.remote, f"request to {request.path}", unsigned)  # before reading the body
            return refusal(unsigned)
        body = await read_body(request, self.node.settings.max_peer_body_bytes)
        now = auth.wall_ms()
        try:
            auth.verify(self.secret, request.method, request.path, body, request.headers, now, self.window_ms)
            if not self.replays.first_use(request.headers[auth.SIGNATURE_HEADER],
                                          int(request.headers[auth.TIMESTAMP_HEADER]), now):
                raise auth.AuthError("peer request replayed: this signature was already used")
        except auth.AuthError as exc:
            self.refused_auth(request.remote, f"request to {request.path}", exc)
            return refusal(exc)
        return await handler(request)

    async def message(self, request: web.Request) -> web.Response:
        frame = await self._frame(request)
        if isinstance(frame, web.Response):
            return frame
        reply = self.node.receive(frame.message)
        if reply is None:
            return web.Response(status=204)
        # The highest version both speak: an older peer gets what it reads, and learns nothing it must parse.
        version = wire.negotiate(frame.peer_versions)
        encoded = self._page(reply, version) if isinstance(reply, DigestReply) else wire.encode(reply, version)
        return web.Response(body=encoded, content_type="application/msgpack")

    async def pull(self, request: web.Request) -> web.StreamResponse:
        """A streamed pull (transport.PULL_PATH): one digest in, every page of the answer out, back to back. Each
        page is made only once the previous one is written (a slow reader holds back the encoding, not memory),
        and holds the loop no longer than an asked-for page does."""
        frame = await self._frame(request)
        if isinstance(frame, web.Response):
            return frame
        digest = frame.message
        if not isinstance(digest, Digest):
            return self._refuse_message(request, wire.WireError(f"a {type(digest).__name__} is not a pull request"))
        version = wire.negotiate(frame.peer_versions)
        response = web.StreamResponse(headers={"Content-Type": "application/msgpack"})
        await response.prepare(request)
        reply = self.node.receive(digest)
        try:
            while isinstance(reply, DigestReply):
                await response.write(length_prefixed(self._page(reply, version)))
                await asyncio.sleep(0)  # the write may not have waited: let other requests in between pages
                reply = self.node.next_page(digest, reply) if reply.more else None
            await response.write_eof()
        except ConnectionResetError:  # the puller went away (it resumes from its watermark in a later round)
            log.debug("streamed pull to %s cut off by the peer", request.remote)
        return response

    async def _frame(self, request: web.Request) -> wire.Frame | web.Response:
        """The request's peer frame, or the 400 that refuses it (counted and logged)."""
        body = await read_body(request, self.node.settings.max_peer_body_bytes)
        try:
            frame = wire.decode_frame(body)
        except wire.WireError as exc:
            return self._refuse_message(request, exc)
        self.node.received.posts += 1
        return frame

    def _refuse_message(self, request: web.Request, exc: wire.WireError) -> web.Response:
        self.node.rejected.peer += 1
        log.warning("refused peer message from %s: %s", request.remote, exc)
        return refusal(exc)

    def _page(self, reply: DigestReply, version: int) -> bytes:
        encoded = wire.encode(reply, version)
        counts = self.node.anti_entropy
        counts.items_sent += len(reply.delta.records) + len(reply.delta.renewals)
        counts.bytes_sent += len(encoded)
        return encoded

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        """A peer's push stream: one push per binary frame, applied in order, nothing sent back."""
        settings = self.node.settings
        ws = web.WebSocketResponse(heartbeat=settings.peer_timeout, timeout=CLOSE_TIMEOUT_S, compress=False,
                                   max_msg_size=settings.max_peer_body_bytes + 64)  # + the signature
        await ws.prepare(request)
        self.streams.add(ws)
        try:
            async for frame in ws:
                if not self._take(frame, request.remote):
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unauthenticated frame")
                    break
        finally:
            self.streams.discard(ws)
        return ws

    def _take(self, frame: WSMessage, remote: str | None) -> bool:
        """Apply one frame; False when it fails authentication (the stream is then closed)."""
        if frame.type is not WSMsgType.BINARY:
            return self._refuse(remote, f"unexpected {frame.type.name} frame")
        body = frame.data
        if self.secret is not None:
            try:
                body = auth.verify_frame(self.secret, STREAM_PATH, body, auth.wall_ms(), self.window_ms)
            except auth.AuthError as exc:
                self.refused_auth(remote, "push stream frame (closing the stream)", exc)
                return False
        try:
            message = wire.decode(body)
        except wire.WireError as exc:
            return self._refuse(remote, str(exc))
        if not isinstance(message, Push):
            return self._refuse(remote, f"a {type(message).__name__} on the push stream")
        self.node.received.frames += 1
        self.node.receive(message)
        return True

    def refused_auth(self, remote: str | None, what: str, exc: auth.AuthError) -> None:
        """Count every refusal; log at most one line per peer address every AUTH_LOG_INTERVAL_S, with how many
        were refused meanwhile (a peer with the wrong secret retries several times a second)."""
        key, now, rejected = remote or "?", time.monotonic(), self.node.rejected
        rejected.auth, rejected.auth_from, rejected.auth_at = rejected.auth + 1, key, now
        logged_at, suppressed = self._auth_logged.get(key, (-AUTH_LOG_INTERVAL_S, 0))
        if now - logged_at < AUTH_LOG_INTERVAL_S:
            self._auth_logged[key] = (logged_at, suppressed + 1)
            return
        self._auth_logged[key] = (now, 0)
        more = f"; {suppressed} more refused since the last report" if suppressed else ""
        log.error("refused peer %s from %s: %s: is its secret different from ours?%s", what, key, exc, more)

    def _refuse(self, remote: str | None, reason: str) -> bool:
        """Count and log a frame that is not a valid push; it changes nothing and the stream stays open."""
        self.node.rejected.peer += 1
        log.warning("refused push stream frame from %s: %s", remote, reason)
        return True

    async def close_streams(self, _: web.Application) -> None:
        """On shutdown: aiohttp would otherwise wait for open streams as for slow requests."""
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutting down")
                               for ws in list(self.streams)))
