"""A small in-memory Eureka-like node for client tests: the endpoints the client uses, nothing more.

Each node records the requests it gets, can switch its watch stream off (to force delta polling) and can be
stopped and restarted on the same port (to play a node that dies and comes back, empty).
"""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


class FakeRegistry:
    def __init__(self, port: int | None = None, *, watch: bool = True) -> None:
        self.port = port
        self.watch = watch
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.changes: list[dict[str, Any]] = []  # every change, for the delta and the stream
        self.hashcode_override: str | None = None
        self.server: TestServer | None = None
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls(self, method: str, suffix: str = "") -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if r[0] == method and r[1].endswith(suffix)]

    async def start(self) -> "FakeRegistry":
        app = web.Application()
        app.router.add_post("/eureka/apps/{app}", self._register)
        app.router.add_put("/eureka/apps/{app}/{id}", self._renew)
        app.router.add_delete("/eureka/apps/{app}/{id}", self._cancel)
        app.router.add_put("/eureka/apps/{app}/{id}/status", self._set_status)
        app.router.add_delete("/eureka/apps/{app}/{id}/status", self._clear_status)
        app.router.add_put("/eureka/apps/{app}/{id}/metadata", self._metadata)
        app.router.add_get("/eureka/apps", self._apps)
        app.router.add_get("/eureka/apps/delta", self._delta)
        app.router.add_get("/v1/watch", self._watch)
        app.router.add_get("/v1/status", self._status)
        app.middlewares.append(self._record)
        self.server = TestServer(app, host="127.0.0.1", port=self.port, shutdown_timeout=0.1)
        await self.server.start_server()
        self.port = self.server.port
        return self

    def end_streams(self) -> None:
        """Close every open watch stream, as a connection drop would, and keep serving."""
        self._stopping.set()
        self._stopping = asyncio.Event()
        self._wake()

    async def stop(self, *, forget: bool = True) -> None:
        """Stop serving; `forget` drops the registry as a restarted node would."""
        self.end_streams()
        if self.server is not None:
            await self.server.close()
            self.server = None
        if forget:
            self.instances.clear()
            self.changes.clear()

    # state changes, also usable directly by tests

    def put(self, instance: dict[str, Any], action: str = "register") -> None:
        key = (instance["app"].upper(), instance["instanceId"])
        self.instances[key] = instance
        self._change(key, action, instance)

    def drop(self, app: str, instance_id: str, action: str = "cancel") -> bool:
        key = (app.upper(), instance_id)
        if self.instances.pop(key, None) is None:
            return False
        self._change(key, action, None)
        return True

    def _change(self, key: tuple[str, str], action: str, instance: dict[str, Any] | None) -> None:
        self.changes.append({"seq": len(self.changes) + 1, "app": key[0], "instance_id": key[1], "action": action,
                             "version": 1, "applied_ms": 0, "instance": instance})
        self._wake()

    def _wake(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def document(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
        apps: dict[str, list[dict[str, Any]]] = {}
        for inst in instances:
            apps.setdefault(inst["app"], []).append(inst)
        counts = Counter(i["status"] for i in self.instances.values())
        hashcode = "".join(f"{s}_{counts[s]}_" for s in sorted(counts))
        return {"applications": {"versions__delta": "1", "apps__hashcode": self.hashcode_override or hashcode,
                                 "application": [{"name": n, "instance": m} for n, m in apps.items()]}}

    # handlers

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        return await handler(request)

    def _known(self, request: web.Request) -> dict[str, Any] | None:
        return self.instances.get((request.match_info["app"].upper(), request.match_info["id"]))

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.put(body["instance"])
        return web.Response(status=204)

    async def _renew(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self._known(request) else 404)

    async def _cancel(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.drop(request.match_info["app"], request.match_info["id"]) else 404)

    async def _set_status(self, request: web.Request) -> web.Response:
        inst = self._known(request)
        if inst is None:
            return web.Response(status=404)
        self.put({**inst, "status": request.query["value"], "overriddenStatus": request.query["value"]}, "status")
        return web.Response(status=200)

    async def _clear_status(self, request: web.Request) -> web.Response:
        inst = self._known(request)
        if inst is None:
            return web.Response(status=404)
        status = request.query.get("value", "UNKNOWN")
        self.put({**inst, "status": status, "overriddenStatus": "UNKNOWN"}, "status")
        return web.Response(status=200)

    async def _metadata(self, request: web.Request) -> web.Response:
        inst = self._known(request)
        if inst is None:
            return web.Response(status=404)
        self.put({**inst, "metadata": {**inst.get("metadata", {}), **request.query}}, "modify")
        return web.Response(status=200)

    async def _apps(self, request: web.Request) -> web.Response:
        return web.json_response(self.document(list(self.instances.values())))

    async def _delta(self, request: web.Request) -> web.Response:
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for change in self.changes:
            key = (change["app"], change["instance_id"])
            if change["instance"] is not None:
                latest[key] = {**change["instance"], "actionType": "MODIFIED" if key in latest else "ADDED"}
            elif key in latest:
                latest[key] = {**latest[key], "actionType": "DELETED"}
        return web.json_response(self.document(list(latest.values())))

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({
            "node_id": f"fake-{self.port}", "in_sync": True, "peers": [{"url": "http://127.0.0.1:1", "reachable": False}],
            "instances": len(self.instances), "conflicts": 0,
            "self_preservation": {"active": False, "renewals_in_window": 4, "expected": 4, "threshold": 3.4}})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        if not self.watch:
            return web.json_response({"error": "not found", "detail": "no stream"}, status=404)
        since = int(request.headers.get("Last-Event-ID") or request.query.get("since") or len(self.changes))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        sent = since
        stopping = self._stopping
        if since > len(self.changes):  # a sequence number from before a restart: start over
            await resp.write(f"event: resync\nid: {len(self.changes)}\ndata: {{}}\n\n".encode())
            sent = len(self.changes)
        while not stopping.is_set():
            for change in self.changes[sent:]:
                await resp.write(f"event: change\nid: {change['seq']}\ndata: {json.dumps(change)}\n\n".encode())
            sent = len(self.changes)
            await resp.write(b": ping\n")
            wakeup = self._wakeup
            try:
                await asyncio.wait_for(wakeup.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
        return resp


def instance(app: str, instance_id: str, status: str = "UP", zone: str | None = None, port: int = 8080) -> dict[str, Any]:
    """An instance in Eureka's JSON shape, as a server would render it."""
    return {"instanceId": instance_id, "hostName": "127.0.0.1", "app": app.upper(), "ipAddr": "127.0.0.1",
            "status": status, "overriddenStatus": "UNKNOWN", "port": {"$": port, "@enabled": "true"},
            "securePort": {"$": 443, "@enabled": "false"},
            "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
            "metadata": {"zone": zone} if zone else {"@class": "java.util.Collections$EmptyMap"},
            "lastDirtyTimestamp": "1"}
