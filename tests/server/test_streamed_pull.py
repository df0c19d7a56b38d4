"""Streamed pulls (transport.PULL_PATH): one request brings every page; older peers are asked page by page; a
stream that breaks off loses nothing that arrived and is resumed by anti-entropy."""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from apreg.core.config import CoreConfig
from apreg.core.messages import Digest, DigestReply
from apreg.core.replica import Replica
from apreg.eureka.codec import parse_register
from apreg.peer import wire
from apreg.peer.transport import MESSAGES_PATH, PULL_PATH, length_prefixed

from .harness import LocalCluster, eventually, instance_body


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def source_replica(count: int, page_items: int) -> Replica:
    """A peer's core holding `count` instances of app OLD, paging `page_items` changes at a time."""
    replica = Replica("old", "1", CoreConfig(max_page_items=page_items), ("n0",))
    for k in range(count):
        body = json.dumps(instance_body("old", f"o{k}")).encode()
        replica.register(parse_register(body, "application/json", "OLD", now_ms()), now_ms())
    replica.take_effects()
    return replica


@asynccontextmanager
async def fake_peer(routes: Callable[[web.Application], None]) -> AsyncIterator[str]:
    app = web.Application()
    routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_an_empty_node_gets_every_page_from_one_request() -> None:
    async with LocalCluster(2, anti_entropy_interval=60.0) as c:
        await c.kill(1)
        source = c.nodes[0]
        source.replica.config = dataclasses.replace(source.replica.config, max_page_items=20)
        for k in range(150):
            assert (await c.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", f"i{k}")))[0] == 204
        posts_before, sent_before = source.received.posts, source.anti_entropy.items_sent
        await c.start(1)
        assert await eventually(lambda: _true(c.nodes[1].replica.synced), timeout=10)
        assert await c.ids(1) == {f"i{k}" for k in range(150)}
        assert source.anti_entropy.items_sent - sent_before >= 300  # 150 records + 150 renewals: 15 pages or more
        assert source.received.posts - posts_before <= 2  # the pull, and perhaps a push before the stream opened
        assert c.nodes[1].links[c.settings(1).peers[0]].pulls_streamed


async def test_an_older_peer_is_pulled_page_by_page() -> None:
    source = source_replica(40, page_items=10)
    asked: list[str] = []

    async def message(request: web.Request) -> web.Response:
        asked.append(request.path)
        reply = source.receive(wire.decode(await request.read()), now_ms())
        return web.Response(status=204) if reply is None else web.Response(body=wire.encode(reply))

    def routes(app: web.Application) -> None:
        app.router.add_post(MESSAGES_PATH, message)  # no PULL_PATH: 404, as from a node before streamed pulls

    async with fake_peer(routes) as url, LocalCluster(1, peers=(url,), anti_entropy_interval=60.0) as c:
        assert await eventually(lambda: _true(c.nodes[0].replica.synced), timeout=10)
        assert await c.ids(0) == {f"o{k}" for k in range(40)}
        assert not c.nodes[0].links[url].pulls_streamed and len(asked) >= 8  # 80 changes, 10 a page


async def test_a_stream_cut_after_its_first_page_keeps_that_page_and_resumes_later() -> None:
    source = source_replica(30, page_items=10)
    pulls: list[int] = []

    async def pull(request: web.Request) -> web.StreamResponse:
        digest = wire.decode(await request.read())
        assert isinstance(digest, Digest)
        pulls.append(digest.since)
        reply = source.receive(digest, now_ms())
        assert isinstance(reply, DigestReply)
        response = web.StreamResponse()
        await response.prepare(request)
        frame = length_prefixed(wire.encode(reply))
        if len(pulls) == 1:  # the first pull: one whole page, then half of the next, then the connection drops
            following = source.next_page(digest, reply, now_ms())
            await response.write(frame + length_prefixed(wire.encode(following))[:40])
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(frame)
        return response

    def routes(app: web.Application) -> None:
        app.router.add_post(PULL_PATH, pull)

    async with fake_peer(routes) as url, LocalCluster(1, peers=(url,), anti_entropy_interval=0.3) as c:
        node = c.nodes[0]
        first = {f"o{k}" for k in range(5)}  # 10 changes a page: registration and renewal of 5 instances
        assert await eventually(lambda: _true(len(pulls) >= 2), timeout=10)
        assert first <= await c.ids(0)
        assert pulls[1] > 0  # the next round asked from the watermark the first page left, not from scratch
        assert node.links[url].pulls_streamed


async def _true(value: bool) -> bool:
    return value
