"""Eureka's REST API (under /eureka/ and /eureka/v2/): parse with the codec, call the core, render.

Reads never walk the registry: single instances come from the core's index, apps and the whole registry from
the versioned document cache (documents.py), the delta and VIP documents from a small cache keyed by their
versions. Nothing here is timed like Eureka's 30-second response cache.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Generator

from aiohttp import web

from apreg.core.instance import InstanceKey, Status
from apreg.eureka import codec, render
from apreg.eureka.views import InstanceView
from apreg.eureka.gzip_join import Piece, gzip_member, inflate
from apreg.eureka.replication import Action

from .documents import Built, SmallDocument, SmallDocuments, entry_view, instance_view
from .errors import error_response, read_body
from .node import Node
from .steps import run_steps

INLINE_INFLATE_BYTES = 1 << 20  # larger documents are inflated in a thread
VARY = {"Vary": "Accept, Accept-Encoding"}
WRITE_SLICE_BYTES = 256 << 10  # larger bodies are written in slices of this size

PREFIXES = ("/eureka", "/eureka/v2")


class EurekaApi:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.replica = node.replica
        self.documents = node.documents
        self._small = SmallDocuments()
        self._building: dict[tuple[str, str], asyncio.Future[Built]] = {}
        self._plain: dict[tuple[str, str], tuple[Built, bytes]] = {}

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
        self.node.write(lambda replica, now: replica.register(info, now), now)
        self.node.forward(request.headers, Action.REGISTER, info.key)
        await self.node.acknowledgeable()
        return web.Response(status=204)

    async def renew(self, request: web.Request) -> web.Response:
        last_dirty = codec.parse_timestamp(request.query.get("lastDirtyTimestamp"), "lastDirtyTimestamp")
        key = _key(request)
        if not self.node.write(lambda replica, now: replica.renew(key, now, last_dirty)):
            return web.Response(status=404)  # empty: Eureka clients re-register on it
        self.node.forward(request.headers, Action.HEARTBEAT, key)
        return web.Response(status=200)

    async def cancel(self, request: web.Request) -> web.Response:
        key = _key(request)
        found = self.node.write(lambda replica, now: replica.cancel(key, now))
        return await self._done(found, request, Action.CANCEL, key)

    async def set_status(self, request: web.Request) -> web.Response:
        status = codec.parse_status(request.query.get("value"), required=True)
        assert status is not None
        key = _key(request)
        found = self.node.write(lambda replica, now: replica.set_status(key, status, now))
        return await self._done(found, request, Action.STATUS_UPDATE, key)

    async def remove_status(self, request: web.Request) -> web.Response:
        fallback = codec.parse_status(request.query.get("value"), required=False) or Status.UNKNOWN
        key = _key(request)
        found = self.node.write(lambda replica, now: replica.remove_status(key, fallback, now))
        return await self._done(found, request, Action.DELETE_STATUS_OVERRIDE, key)

    async def update_metadata(self, request: web.Request) -> web.Response:
        key = _key(request)
        record = self.replica.visible(key)
        if record is None or record.info is None:
            return _not_found(request)
        changes = codec.parse_metadata_update(request.query, record.info.metadata)
        # Eureka replicates a metadata change as a Register of the whole instance (InstanceResource).
        found = self.node.write(lambda replica, now: replica.update_metadata(key, changes, now))
        return await self._done(found, request, Action.REGISTER, key)

    async def _done(self, found: bool, request: web.Request, action: Action, key: InstanceKey) -> web.Response:
        if not found:
            return _not_found(request)
        self.node.forward(request.headers, action, key)
        await self.node.acknowledgeable()
        return web.Response(status=200)

    # ----- reads ---------------------------------------------------------------------------------------------

    async def get_apps(self, request: web.Request) -> web.StreamResponse:
        """The whole registry, from the document cache (see documents.py for what it may lag by)."""
        fmt, docs = _format(request), self.documents
        built = docs.current_registry(fmt, self.node.now_ms()) or await self._build(("registry", fmt),
                                                                                     docs.build_registry)
        return await self._send(request, ("registry", fmt), built)

    async def get_delta(self, request: web.Request) -> web.StreamResponse:
        fmt, docs = _format(request), self.documents
        docs.note((), self.node.feed.prune(self.node.now_ms()))
        built = docs.current_delta(fmt) or await self._build(("delta", fmt), docs.build_delta)
        return await self._send(request, ("delta", fmt), built)

    async def _build(self, key: tuple[str, str], build: Callable[[str, int], Generator[None, None, Built]]
                     ) -> Built:
        """One build per document and format at a time: concurrent readers share it."""
        task = self._building.get(key)
        if task is None or task.done():
            task = self._building[key] = asyncio.ensure_future(run_steps(build(key[1], self.node.now_ms())))
        return await asyncio.shield(task)

    async def _send(self, request: web.Request, key: tuple[str, str], built: Built) -> web.StreamResponse:
        """gzip as built; plain text inflated once per built document, kept while it is the latest one (so a
        plain full fetch costs the document's plain size in memory, only while plain readers exist)."""
        if _wants_gzip(request):
            return await _reply(request, built.gzip, gzipped=True)
        plain = self._plain.get(key)
        if plain is None or plain[0] is not built:
            plain = self._plain[key] = (built, await _inflate(built.piece))
        return await _reply(request, plain[1])

    async def get_app(self, request: web.Request) -> web.StreamResponse:
        piece = await run_steps(self.documents.application(request.match_info["app"].upper(), _format(request),
                                                           self.node.now_ms()))
        if piece is None:
            return _not_found(request)
        if _wants_gzip(request):
            return await _reply(request, gzip_member(piece), gzipped=True)
        return await _reply(request, await _inflate(piece))

    async def get_instance(self, request: web.Request) -> web.Response:
        record = self.replica.visible(_key(request))
        if record is None or record.info is None:
            return _not_found(request)
        return self._instance(request, instance_view(self.replica, record.info))

    async def get_instance_by_id(self, request: web.Request) -> web.Response:
        entry = self.replica.index.by_instance_id(request.match_info["id"])
        return _not_found(request) if entry is None else self._instance(request, entry_view(self.replica, entry))

    def _instance(self, request: web.Request, view: InstanceView) -> web.Response:
        body = render.render_instance(view, _format(request))
        response = web.Response(body=body, content_type=_content_type(request), headers=VARY)
        response.enable_compression()  # gzip or deflate, only when the client's Accept-Encoding asks for it
        return response

    async def get_vip(self, request: web.Request) -> web.StreamResponse:
        return await self._by_vip(request, secure=False)

    async def get_secure_vip(self, request: web.Request) -> web.StreamResponse:
        return await self._by_vip(request, secure=True)

    async def _by_vip(self, request: web.Request, secure: bool) -> web.StreamResponse:
        """Instances whose comma-separated VIP list contains the requested one (200 with none, as Eureka), with
        the hashcode of what is returned, as Eureka's response cache computes it for VIP documents."""
        vip, fmt, index = request.match_info["vip"], _format(request), self.replica.index
        key = ("svip" if secure else "vip", fmt, vip, index.vip_version(vip, secure))
        doc = self._small.get(key)
        if doc is None:
            views = [entry_view(self.replica, entry) for entry in index.vip(vip, secure).values()]
            hashcode = render.reconcile_hashcode(view.info.status for view in views)
            doc = self._small.put(key, render.render_applications(views, 1, hashcode, fmt))
        return await self._small_response(request, doc)

    async def _small_response(self, request: web.Request, doc: SmallDocument) -> web.StreamResponse:
        if _wants_gzip(request):
            return await _reply(request, doc.gzipped(), gzipped=True)
        return await _reply(request, doc.plain)


async def _inflate(piece: Piece) -> bytes:
    """A document's text; large ones in a thread (zlib releases the GIL), so the event loop keeps serving."""
    if piece.length <= INLINE_INFLATE_BYTES:
        return inflate(piece)
    return await asyncio.get_running_loop().run_in_executor(None, inflate, piece)


def _key(request: web.Request) -> InstanceKey:
    return InstanceKey.of(request.match_info["app"], request.match_info["id"])


def _format(request: web.Request) -> str:
    return "json" if render.wants_json(request.headers.get("Accept")) else "xml"


def _wants_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


def _content_type(request: web.Request) -> str:
    return "application/json" if _format(request) == "json" else "application/xml"


async def _reply(request: web.Request, body: bytes, gzipped: bool = False) -> web.StreamResponse:
    """A document as the body. Large ones are written a slice at a time: handing aiohttp 100 MB at once makes
    it join the body to the headers and the transport copy it, both on the event loop (a second of stall);
    small slices also keep 200 readers answered at once from filling one turn of the loop with copying."""
    headers = {**VARY, "Content-Encoding": "gzip"} if gzipped else VARY
    if len(body) <= WRITE_SLICE_BYTES:
        return web.Response(body=body, content_type=_content_type(request), headers=headers)
    response = web.StreamResponse(headers=headers)
    response.content_type = _content_type(request)
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    for start in range(0, len(body), WRITE_SLICE_BYTES):
        await response.write(view[start:start + WRITE_SLICE_BYTES])  # waits while the socket drains
    await response.write_eof()
    return response


def _not_found(request: web.Request) -> web.Response:
    return error_response(404, "not_found", f"no such instance or application: {request.path}")
