"""`GET /`: the dashboard, a static page shipped in the package, and `GET /v1/apps`, the per-app summary it shows.

The page reads `/v1/status` (node, peers, self-preservation), `/v1/apps` (a line per app: its cost is the number
of apps, counted by the index as instances change) and follows `/v1/watch` for the latest changes; it asks for an
app's instances (`/eureka/apps/{APP}`) only when one is opened, so it never downloads the registry.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .node import Node

STATIC = Path(__file__).with_name("dashboard")
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


class DashboardApi:
    def __init__(self, node: Node) -> None:
        self.node = node
        # Read once: a handful of small files, served from memory.
        self.files = {p.name: (p.read_bytes(), CONTENT_TYPES[p.suffix]) for p in STATIC.iterdir()
                      if p.suffix in CONTENT_TYPES}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/dashboard/{name}", self.asset)
        app.router.add_get("/v1/apps", self.apps)

    async def page(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def asset(self, request: web.Request) -> web.Response:
        return self._file(request.match_info["name"])

    def _file(self, name: str) -> web.Response:
        if name not in self.files:
            raise web.HTTPNotFound(text=f"no dashboard file {name!r}")
        body, content_type = self.files[name]
        return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-cache"})

    async def apps(self, request: web.Request) -> web.Response:
        index = self.node.replica.index
        apps = [{"app": app, "instances": sum(counts.values()),
                 "status": {status.value: count for status, count in sorted(counts.items())}}
                for app, counts in sorted(index.app_status_counts.items())]
        return web.json_response({"instances": index.count, "apps": apps})
