"""Probes: `GET /healthz` (the node serves) and `GET /readyz` (it has pulled from its peers and none refuses it)."""
from __future__ import annotations

from aiohttp import web

from .node import Node


class HealthApi:
    def __init__(self, node: Node) -> None:
        self.node = node

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "serving", "node_id": self.node.settings.name})

    async def readyz(self, request: web.Request) -> web.Response:
        """503 until the node's first pull from a peer has finished; reads are served meanwhile (AP), but a load
        balancer should prefer a node that holds the registry."""
        reason = self.node.not_ready_reason()
        if reason is not None:
            return web.json_response({"ready": False, "node_id": self.node.settings.name, "reason": reason},
                                     status=503)
        return web.json_response({"ready": True, "node_id": self.node.settings.name})
