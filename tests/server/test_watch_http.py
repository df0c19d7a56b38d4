"""`/v1/watch`: ordered per instance, filtered by app, resumable, and slow consumers are dropped, not waited for."""
from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any, AsyncIterator

import aiohttp

from apreg.core.clock import Timestamp
from apreg.core.effects import Action, Change
from apreg.core.instance import InstanceInfo, InstanceKey
from apreg.core.record import Record
from apreg.server import feed as feed_module

from .harness import LocalCluster, instance_body


async def _events(session: aiohttp.ClientSession, url: str, count: int,
                  headers: dict[str, str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    async with session.get(url, headers=headers or {}) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for kind, data in _parse(response.content):
            out.append((kind, data))
            if len(out) >= count or kind == "resync":
                break
        response.close()  # drop the stream instead of waiting for it to end
    return out


async def _parse(stream: aiohttp.StreamReader) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    kind, data = "message", ""
    async for raw in stream:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


async def _until_cancelled(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with session.get(url) as response:
        async for _, data in _parse(response.content):
            out.append(data)
            if data["action"] == "cancel":
                break
        response.close()
    return out


async def test_changes_stream_in_order_per_instance_and_filtered_by_app() -> None:
    async with LocalCluster(2) as c:
        assert c.session is not None
        at_writer = asyncio.create_task(_until_cancelled(c.session, c.url(0) + "/v1/watch"))
        at_peer = asyncio.create_task(_until_cancelled(c.session, c.url(1) + "/v1/watch"))
        only_cart = asyncio.create_task(_events(c.session, c.url(1) + "/v1/watch?app=cart", 1))
        await asyncio.sleep(0.2)
        await c.request(0, "POST", "/eureka/apps/cart", json_body=instance_body("cart", "c-1"))
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        await c.request(0, "PUT", "/eureka/apps/ORDERS/o-1/status?value=DOWN")
        await c.request(0, "PUT", "/eureka/apps/ORDERS/o-1/metadata?k=v")
        await c.request(0, "DELETE", "/eureka/apps/ORDERS/o-1")
        writer_events = await asyncio.wait_for(at_writer, 5)
        assert [(d["app"], d["action"]) for d in writer_events] == [
            ("CART", "register"), ("ORDERS", "register"), ("ORDERS", "status"), ("ORDERS", "modify"),
            ("ORDERS", "cancel")]
        # A peer applies replicated state, so writes that arrive in one push show up as one change; what it
        # shows is in write order, with growing versions, and ends with the cancel.
        peer_orders = [d for d in await asyncio.wait_for(at_peer, 5) if d["app"] == "ORDERS"]
        counters = [sum(d["version"].values()) for d in peer_orders]
        assert counters == sorted(counters) and len(set(counters)) == len(counters)
        assert peer_orders[-1]["action"] == "cancel" and peer_orders[-1]["instance"]["instanceId"] == "o-1"
        cart = await asyncio.wait_for(only_cart, 5)
        assert [(d["app"], d["action"]) for _, d in cart] == [("CART", "register")]
        assert cart[0][1]["instance"]["instanceId"] == "c-1"


async def test_resume_from_a_position_and_resync_when_history_is_gone() -> None:
    async with LocalCluster(1) as c:
        assert c.session is not None
        for iid in ("a", "b", "c"):
            await c.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", iid))
        resumed = await _events(c.session, c.url(0) + "/v1/watch", 2, headers={"Last-Event-ID": "1"})
        assert [d["instance_id"] for _, d in resumed] == ["b", "c"]
        c.nodes[0].feed.history.popleft()  # the node no longer remembers seq 1
        gone = await _events(c.session, c.url(0) + "/v1/watch?since=0", 1)
        assert gone[0][0] == "resync"


async def test_slow_consumer_is_dropped_with_resync_and_the_node_keeps_serving(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(feed_module, "SUBSCRIBER_QUEUE", 5)
    async with LocalCluster(1) as c:
        # a watcher that stops reading, with a tiny receive buffer: the node's writes back up quickly
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", c.ports[0]))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /v1/watch HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        bulky = {f"k{i}": "v" * 1000 for i in range(20)}  # ~20 KB per change event
        started = time.monotonic()
        for k in range(200):
            body = instance_body("svc", f"i{k}")
            body["instance"]["metadata"] = bulky
            assert (await c.request(0, "POST", "/eureka/apps/svc", json_body=body))[0] == 204
        assert time.monotonic() - started < 20  # the stuck watcher never held writes up
        assert await eventually_empty(c)  # it never reads again, so its stream is cut, not kept
        try:
            await asyncio.wait_for(reader.read(), timeout=10)  # what was sent, then the end: not left hanging
        except ConnectionResetError:
            pass
        writer.close()
        assert len(await c.ids(0)) == 200


async def eventually_empty(c: LocalCluster) -> bool:
    for _ in range(200):
        if not c.nodes[0].feed.subscribers:
            return True
        await asyncio.sleep(0.02)
    return False


def test_delta_window_is_pruned_on_writes_even_if_nobody_reads_it() -> None:
    feed = feed_module.ChangeFeed()
    record = Record(InstanceKey("SVC", "i"), None, {"a~1": 1}, Timestamp(1, 0, "a~1"))
    info = InstanceInfo(app="SVC", instance_id="i", host_name="h", ip_addr="1")
    for at_ms in (0, 1_000, feed_module.DELTA_RETENTION_MS + 500):
        feed.publish([Change(record.key, Action.CANCEL, record, at_ms, info)])
    assert [event.at_ms for event in feed.recent] == [1_000, feed_module.DELTA_RETENTION_MS + 500]


async def test_an_eviction_reaches_watchers() -> None:
    async with LocalCluster(1, eviction_interval=0.1, self_preservation=False) as c:
        assert c.session is not None
        watching = asyncio.create_task(_events(c.session, c.url(0) + "/v1/watch?since=0", 2))
        body = instance_body("svc", "silent", renewal=0.2, duration=0.5)
        assert (await c.request(0, "POST", "/eureka/apps/svc", json_body=body))[0] == 204
        events = await asyncio.wait_for(watching, 5)  # never renewed: evicted about 0.5 s later
        assert [(d["instance_id"], d["action"]) for _, d in events] == [("silent", "register"), ("silent", "evict")]
        assert events[1][1]["instance"]["instanceId"] == "silent"
