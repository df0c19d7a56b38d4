"""Peer endpoints under /v1/peer/: msgpack messages in, msgpack replies out, authenticated first.

With a secret set, authentication runs before routing: any request under /v1/peer (unknown paths included)
without a valid signature gets 401, and is counted.
"""
from __future__ import annotations

import logging
import time

from aiohttp import web

from apreg.peer import auth, wire
from apreg.peer.transport import MESSAGES_PATH

from .errors import Handler, error_response, read_body
from .node import Node

log = logging.getLogger("apreg.peer")
PEER_PREFIX = "/v1/peer"


def is_peer_path(path: str) -> bool:
    return path == PEER_PREFIX or path.startswith(PEER_PREFIX + "/")


class PeerApi:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.secret = node.settings.secret.encode() if node.settings.secret else None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(MESSAGES_PATH, self.message)

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.secret is None or not is_peer_path(request.path):
            return await handler(request)
        body = await read_body(request, self.node.settings.max_peer_body_bytes)
        try:
            auth.verify(self.secret, request.method, request.path, body, request.headers, time.time_ns() // 1_000_000)
        except auth.AuthError as exc:
            self.node.rejected.auth += 1
            log.warning("refused peer request from %s to %s: %s", request.remote, request.path, exc)
            return error_response(401, "unauthorized", str(exc))
        return await handler(request)

    async def message(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.node.settings.max_peer_body_bytes)
        try:
            message = wire.decode(body)
        except wire.WireError as exc:
            self.node.rejected.peer += 1
            log.warning("refused peer message from %s: %s", request.remote, exc)
            return error_response(400, "bad_peer_message", str(exc))
        reply = self.node.receive(message)
        if reply is None:
            return web.Response(status=204)
        return web.Response(body=wire.encode(reply), content_type="application/msgpack")
