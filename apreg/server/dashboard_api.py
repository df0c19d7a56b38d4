"""`GET /`: the dashboard, a static page shipped in the package; `GET /v1/apps`, the per-app summary it shows; and
`GET /v1/session`, the admin actions it may offer.

The page reads `/v1/status` (node, peers, Java Eureka peers, self-preservation), `/v1/apps` (a line per app: its
cost is the number of apps, counted by the index as instances change) and follows `/v1/watch` for the latest
changes; it asks for an app's instances (`/eureka/apps/{APP}`) only when one is opened, so it never downloads the
registry.

Admin actions are Eureka requests the page sends as the logged-in user (the browser's HTTP Basic credentials).
The server lists those this user may make, each checked with the very rule the users middleware applies to it
(`users.required_role` on the request's method and path), so the page never offers one the server would refuse.
Without `--users` it lists none: a page anyone can open offers no button that takes instances out of traffic
(the Eureka API still takes the same requests from anyone; README, "Operate it").
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .client_auth import USER
from .node import Node
from .users import User, required_role

STATIC = Path(__file__).with_name("dashboard")
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# name, button label, method, path ({app} and {id} filled in by the page). "UP" removes the override, as
# `DELETE .../status?value=UP` does: the instance is UP again and its own status reports count again.
ACTIONS = (("out_of_service", "Out of service", "PUT", "/eureka/apps/{app}/{id}/status?value=OUT_OF_SERVICE"),
           ("up", "UP", "DELETE", "/eureka/apps/{app}/{id}/status?value=UP"),
           ("deregister", "Deregister", "DELETE", "/eureka/apps/{app}/{id}"))


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
        app.router.add_get("/v1/session", self.session)

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

    async def session(self, request: web.Request) -> web.Response:
        """Who the page runs as, and the admin actions that user may take (none without --users)."""
        user = request.get(USER)
        allowed = [] if user is None else [
            {"name": name, "label": label, "method": method, "path": path} for name, label, method, path in ACTIONS
            if _may(user, method, path)]
        return web.json_response({"users": bool(self.node.settings.users),
                                  "user": user.name if user is not None else None,
                                  "role": user.role.name.lower() if user is not None else None,
                                  "actions": allowed})


def _may(user: User, method: str, path: str) -> bool:
    needed = required_role(method, path.split("?")[0])
    return needed is None or user.role >= needed
