"""Eureka's REST API (under /eureka/ and /eureka/v2/): parse with the codec, call the core, render.

Reads are served from the replica's current state: there is no 30-second response cache in front of them.
"""
from __future__ import annotations

from typing import Callable, Iterable

from aiohttp import web

from apreg.core.instance import InstanceInfo, InstanceKey, Status
from apreg.core.lease import Lease
from apreg.core.replica import Replica
from apreg.eureka import codec
from apreg.eureka.codec import InstanceView, LeaseTimes

from .errors import error_response, read_body
from .node import Node

PREFIXES = ("/eureka", "/eureka/v2")
DELTA_ACTIONS = {"register": "ADDED", "modify": "MODIFIED", "status": "MODIFIED", "cancel": "DELETED",
                 "evict": "DELETED"}
MAX_METADATA_PARAMS = 64


class EurekaApi:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.replica = node.replica

    def add_routes(self, app: web.Application) -> None:
        for prefix in PREFIXES:
            for path in ("/apps", "/apps/"):
                app.router.add_get(prefix + path, self.get_apps)
            app.router.add_get(prefix + "/apps/delta", self.get_delta)
            app.router.add_post(prefix + "/apps/{app}", self.register)
            app.router.add_get(prefix + "/apps/{app}", self.get_app)
            app.router.add_put(prefix + "/apps/{app}/{id}", self.renew)
            app.router.add_delete(prefix + "/apps/{app}/{id}", self.cancel)
            app.router.add_get(prefix + "/apps/{app}/{id}", self.get_instance)
            app.router.add_put(prefix + "/apps/{app}/{id}/status", self.set_status)
            app.router.add_delete(prefix + "/apps/{app}/{id}/status", self.remove_status)
            app.router.add_put(prefix + "/apps/{app}/{id}/metadata", self.update_metadata)
            app.router.add_get(prefix + "/instances/{id}", self.get_instance_by_id)
            app.router.add_get(prefix + "/vips/{vip}", self.get_vip)
            app.router.add_get(prefix + "/svips/{vip}", self.get_secure_vip)

    # ----- writes ------------------------------------------------------------------------------------------

    async def register(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.node.settings.max_body_bytes)
        now = self.node.now_ms()  # one reading: the instance, its stamp and its lease then share one int
        info = codec.parse_register(body, request.content_type, request.match_info["app"], now)
        self.replica.register(info, now)
        self.node.committed()
        return web.Response(status=204)

    async def renew(self, request: web.Request) -> web.Response:
        last_dirty = codec.parse_timestamp(request.query.get("lastDirtyTimestamp"), "lastDirtyTimestamp")
        renewed = self.replica.renew(_key(request), self.node.now_ms(), last_dirty)
        if not renewed:
            return web.Response(status=404)  # empty: Eureka clients re-register on it
        self.node.committed()
        return web.Response(status=200)

    async def cancel(self, request: web.Request) -> web.Response:
        return self._done(self.replica.cancel(_key(request), self.node.now_ms()), request)

    async def set_status(self, request: web.Request) -> web.Response:
        status = codec.parse_status(request.query.get("value"), required=True)
        assert status is not None
        return self._done(self.replica.set_status(_key(request), status, self.node.now_ms()), request)

    async def remove_status(self, request: web.Request) -> web.Response:
        fallback = codec.parse_status(request.query.get("value"), required=False) or Status.UNKNOWN
        return self._done(self.replica.remove_status(_key(request), fallback, self.node.now_ms()), request)

    async def update_metadata(self, request: web.Request) -> web.Response:
        changes = dict(request.query)
        if len(changes) > MAX_METADATA_PARAMS:
            raise codec.CodecError("invalid_metadata", f"at most {MAX_METADATA_PARAMS} metadata entries per update")
        return self._done(self.replica.update_metadata(_key(request), changes, self.node.now_ms()), request)

    def _done(self, found: bool, request: web.Request) -> web.Response:
        if not found:
            return _not_found(request)
        self.node.committed()
        return web.Response(status=200)

    # ----- reads -------------------------------------------------------------------------------------------

    async def get_apps(self, request: web.Request) -> web.Response:
        return self._applications(request, self.replica.instances(), versions_delta=1)

    async def get_delta(self, request: web.Request) -> web.Response:
        feed = self.node.feed
        views = [self._view(event.info, self.replica.entries.get(event.key) or Lease(),
                            DELTA_ACTIONS[event.action.value]) for event in feed.delta(self.node.now_ms())]
        hashcode = codec.reconcile_hashcode(info.status for info, _ in self.replica.instances())
        return _render(request, codec.render_applications(views, feed.delta_version, hashcode, _format(request)))

    async def get_app(self, request: web.Request) -> web.Response:
        app = request.match_info["app"].upper()
        views = [self._view(info, lease) for info, lease in self.replica.instances() if info.app == app]
        if not views:
            return _not_found(request)
        return _render(request, codec.render_application(app, views, _format(request)))

    async def get_instance(self, request: web.Request) -> web.Response:
        key = _key(request)
        record = self.replica.visible(key)
        if record is None or record.info is None:
            return _not_found(request)
        view = self._view(record.info, self.replica.entries[key])
        return _render(request, codec.render_instance(view, _format(request)))

    async def get_instance_by_id(self, request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        for info, lease in self.replica.instances():
            if info.instance_id == wanted:
                return _render(request, codec.render_instance(self._view(info, lease), _format(request)))
        return _not_found(request)

    async def get_vip(self, request: web.Request) -> web.Response:
        return self._by_vip(request, lambda info: info.vip_address)

    async def get_secure_vip(self, request: web.Request) -> web.Response:
        return self._by_vip(request, lambda info: info.secure_vip_address)

    def _by_vip(self, request: web.Request, vips_of: Callable[[InstanceInfo], str | None]) -> web.Response:
        """Instances whose comma-separated VIP list contains the requested one (200 with none, as Eureka)."""
        vip = request.match_info["vip"]
        return self._applications(request, ((i, l) for i, l in self.replica.instances()
                                            if vip in _vips(vips_of(i))), versions_delta=1)

    def _applications(self, request: web.Request, instances: Iterable[tuple[InstanceInfo, Lease]],
                      versions_delta: int) -> web.Response:
        views = [self._view(info, lease) for info, lease in instances]
        hashcode = codec.reconcile_hashcode(info.status for info, _ in self.replica.instances())
        return _render(request, codec.render_applications(views, versions_delta, hashcode, _format(request)))

    def _view(self, info: InstanceInfo, lease: Lease, action: str | None = None) -> InstanceView:
        return instance_view(self.replica, info, lease, action)


def instance_view(replica: Replica, info: InstanceInfo, lease: Lease, action: str | None = None) -> InstanceView:
    """An instance with this node's lease times, ready for the codec."""
    times = LeaseTimes(renewal_interval_s=replica.renewal_interval_ms(info) / 1000,
                       duration_s=replica.lease_duration_ms(info) / 1000,
                       registration_ms=lease.first_seen_ms, last_renewal_ms=lease.anchor_ms,
                       service_up_ms=info.service_up_timestamp)
    return InstanceView(info, times, action)


def _key(request: web.Request) -> InstanceKey:
    return InstanceKey.of(request.match_info["app"], request.match_info["id"])


def _vips(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",")] if value else []


def _format(request: web.Request) -> str:
    return "json" if codec.wants_json(request.headers.get("Accept")) else "xml"


def _render(request: web.Request, body: bytes) -> web.Response:
    content_type = "application/json" if _format(request) == "json" else "application/xml"
    response = web.Response(body=body, content_type=content_type)
    response.enable_compression()  # gzip or deflate, only when the client's Accept-Encoding asks for it
    return response


def _not_found(request: web.Request) -> web.Response:
    return error_response(404, "not_found", f"no such instance or application: {request.path}")
