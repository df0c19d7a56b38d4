"""Eager pushes over the per-peer WebSocket stream: used, authenticated frame by frame, POST for older peers,
reconnected after a peer restarts."""
from __future__ import annotations

import json
import time
from typing import AsyncGenerator, AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from apreg.core.config import CoreConfig
from apreg.core.messages import Digest, DigestReply, Message, MessageType, Push
from apreg.core.replica import Replica
from apreg.eureka.codec import parse_register
from apreg.peer import auth, wire
from apreg.peer.stream import STREAM_PATH
from apreg.peer.transport import MESSAGES_PATH, PeerLink, PeerTransport
from apreg.server.errors import Handler

from .harness import LocalCluster, eventually, instance_body

SECRET = "stream-secret"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def push_of(iid: str) -> bytes:
    """An encoded push, as a peer would send it, carrying the registration of instance `iid` of app RAW."""
    source = Replica("outsider", "1", CoreConfig(), ("target",))
    info = parse_register(json.dumps(instance_body("raw", iid)).encode(), "application/json", "RAW", now_ms())
    source.register(info, now_ms())
    source.tick(now_ms())
    [push] = [out.message for out in source.take_effects().messages if isinstance(out.message, Push)]
    return wire.encode(push)


async def same(c: LocalCluster, nodes: list[int], want: set[str]) -> bool:
    return all([await c.ids(n) == want for n in nodes])


async def settled(c: LocalCluster) -> bool:
    """Every node's initial pull from every peer is answered or has failed and backed off: nodes that started
    before their peers skip pushes to them for a moment (anti-entropy would repair those)."""
    return all(link.reachable or (link.failures > 0 and link.ready())
               for node in c.nodes.values() for link in node.links.values())


async def test_pushes_ride_the_streams_not_posts_and_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[MessageType] = []
    post = PeerTransport.send

    async def recording_post(self: PeerTransport, link: PeerLink, message: Message) -> Message | None:
        posted.append(message.type)
        return await post(self, link, message)

    pulled: list[Digest] = []
    pull = PeerTransport.pull

    def recording_pull(self: PeerTransport, link: PeerLink, digest: Digest) -> AsyncGenerator[DigestReply, None]:
        pulled.append(digest)
        return pull(self, link, digest)

    monkeypatch.setattr(PeerTransport, "send", recording_post)
    monkeypatch.setattr(PeerTransport, "pull", recording_pull)
    async with LocalCluster(3, secret=SECRET) as c:
        assert await eventually(lambda: settled(c))
        want = {f"i{k}" for k in range(30)}
        for k in range(30):
            assert (await c.request(k % 3, "POST", "/eureka/apps/svc", json_body=instance_body("svc", f"i{k}")))[0] == 204
        assert await eventually(lambda: same(c, [0, 1, 2], want))
        assert MessageType.PUSH not in posted and pulled  # digests go as streamed pulls
        for i in range(3):
            status = json.loads((await c.request(i, "GET", "/v1/status"))[1])
            assert all(peer["stream"] and peer["frames_sent"] > 0 for peer in status["peers"]), status["peers"]
            assert status["received"]["frames"] > 0
            assert status["rejected"]["auth"] == 0 and status["rejected"]["peer"] == 0
        metrics = (await c.request(0, "GET", "/v1/metrics"))[1].decode()
        assert "apreg_peer_stream{" in metrics
        assert 'apreg_peer_messages_received_total{channel="stream"} 0.0' not in metrics


@pytest.fixture
async def secured() -> AsyncIterator[LocalCluster]:
    async with LocalCluster(1, secret=SECRET) as c:
        await c.request(0, "POST", "/eureka/apps/keep", json_body=instance_body("keep", "k1"))
        yield c


async def open_stream(c: LocalCluster) -> aiohttp.ClientWebSocketResponse:
    assert c.session is not None
    headers = auth.sign(SECRET.encode(), "GET", STREAM_PATH, b"", now_ms())
    return await c.session.ws_connect(c.url(0) + STREAM_PATH, headers=headers)


@pytest.mark.parametrize("frame", [
    lambda body: body,
    lambda body: auth.sign_frame(b"wrong", STREAM_PATH, body, now_ms()),
    lambda body: auth.sign_frame(SECRET.encode(), STREAM_PATH, body, now_ms() - 120_000),
    lambda body: auth.sign_frame(SECRET.encode(), STREAM_PATH, body, now_ms() + 120_000),
    lambda body: auth.sign_frame(SECRET.encode(), STREAM_PATH, body, now_ms())[:-1] + b"\x00",  # tampered
], ids=["unsigned", "wrong-key", "stale", "ahead", "tampered"])
async def test_an_unauthenticated_frame_closes_the_stream_with_1008(
        secured: LocalCluster, frame: Callable[[bytes], bytes]) -> None:
    node = secured.nodes[0]
    ws = await open_stream(secured)
    await ws.send_bytes(frame(push_of("intruder")))
    closing = await ws.receive(timeout=5)
    assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    await ws.close()
    assert node.rejected.auth == 1 and node.received.frames == 0
    assert await secured.ids(0) == {"k1"}


async def test_signed_garbage_is_counted_and_the_stream_stays_open(secured: LocalCluster) -> None:
    node, key = secured.nodes[0], SECRET.encode()
    ws = await open_stream(secured)
    for body in (b"\xc1not msgpack", wire.encode(Digest("x~1", 0, "", 0))):
        await ws.send_bytes(auth.sign_frame(key, STREAM_PATH, body, now_ms()))
    await ws.send_str("text is not a push")
    assert await eventually(lambda: _true(node.rejected.peer == 3))
    assert await secured.ids(0) == {"k1"}
    await ws.send_bytes(auth.sign_frame(key, STREAM_PATH, push_of("late"), now_ms()))  # still open: applied
    assert await eventually(lambda: _has(secured, "late"))
    # frames from a peer whose clock is off by less than the skew guard (60 s) are applied too
    await ws.send_bytes(auth.sign_frame(key, STREAM_PATH, push_of("behind"), now_ms() - 45_000))
    await ws.send_bytes(auth.sign_frame(key, STREAM_PATH, push_of("ahead"), now_ms() + 45_000))
    assert await eventually(lambda: _has(secured, "ahead")) and await _has(secured, "behind")
    assert not ws.closed and node.rejected.auth == 0 and node.received.frames == 3
    await ws.close()


async def test_an_unsigned_handshake_gets_401(secured: LocalCluster) -> None:
    assert secured.session is not None
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await secured.session.ws_connect(secured.url(0) + STREAM_PATH)
    assert refused.value.status == 401 and secured.nodes[0].rejected.auth == 1


async def test_a_peer_without_the_stream_gets_pushes_by_post() -> None:
    """An older node: it serves only POST /v1/peer/messages, so the stream handshake gets 404."""
    seen: list[Message] = []
    handshakes: list[str] = []

    async def message(request: web.Request) -> web.Response:
        seen.append(wire.decode(await request.read()))
        return web.Response(status=204)

    @web.middleware
    async def watch(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == STREAM_PATH:
            handshakes.append(request.method)
        return await handler(request)

    old = web.Application(middlewares=[watch])
    old.router.add_post(MESSAGES_PATH, message)
    runner = web.AppRunner(old, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with LocalCluster(1, peers=(f"http://127.0.0.1:{port}",)) as c:
            for k in range(3):
                await c.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", f"i{k}"))
                want = {f"i{n}" for n in range(k + 1)}
                assert await eventually(lambda: _true(_pushed(seen) >= want))
            link = c.nodes[0].links[f"http://127.0.0.1:{port}"]
            assert handshakes == ["GET"]  # tried once, then remembered
            assert not link.streaming and link.frames == 0 and link.reachable
    finally:
        await runner.cleanup()


async def test_the_stream_reconnects_after_a_peer_restarts() -> None:
    # anti-entropy far away: whatever reaches the restarted node after its initial pull came by push
    async with LocalCluster(3, anti_entropy_interval=60.0) as c:
        assert await eventually(lambda: settled(c))  # so that node 0 pushes to node 2 itself
        await c.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", "before"))
        assert await eventually(lambda: same(c, [0, 1, 2], {"before"}))
        link = c.nodes[0].links[c.settings(0).peers[1]]  # node 0's link to node 2
        assert link.streaming
        started = time.monotonic()
        await c.kill(2)
        assert time.monotonic() - started < 5  # open streams do not hold the shutdown up
        assert await eventually(lambda: _true(not link.streaming))  # node 0 saw the stream close
        await c.start(2)
        assert await eventually(lambda: _true(c.nodes[2].replica.synced))
        frames = link.frames
        await c.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", "after"))
        assert await eventually(lambda: same(c, [0, 1, 2], {"before", "after"}))
        assert link.streaming and link.frames > frames and c.nodes[2].received.frames > 0


async def _true(value: bool) -> bool:
    return value


async def _has(c: LocalCluster, iid: str) -> bool:
    return iid in await c.ids(0)


def _pushed(messages: list[Message]) -> set[str]:
    return {r.key.instance_id for m in messages if isinstance(m, Push) for r in m.delta.records}
