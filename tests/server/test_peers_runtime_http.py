"""Peers that come and go without a restart: set at runtime, found in DNS, released when gone."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import aiohttp

from apreg.server.discovery import peers_from_dns
from apreg.server.node import Node
from apreg.server.settings import NodeSettings

from .harness import LocalCluster, PortHold, eventually, free_port, instance_body, serve_node


async def test_a_peer_added_at_runtime_is_synced_and_a_removed_one_released() -> None:
    async with LocalCluster(2, peers=()) as c:
        await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-1"))
        node = c.nodes[0]
        node.set_peers((c.url(1),))
        assert await eventually(lambda: _has(c, 1, "i-1"), 5)
        await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-2"))
        assert await eventually(lambda: _has(c, 1, "i-2"), 5)  # pushed as it happens, not only pulled
        node.set_peers(())
        assert not node.links and not node.replica.peers and not node._channels
        await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-3"))
        assert not await eventually(lambda: _has(c, 1, "i-3"), 1)
        _, body, _ = await c.request(0, "GET", "/v1/status")
        assert json.loads(body)["peers"] == []


async def test_peers_follow_what_dns_says_and_leave_this_node_out() -> None:
    """Three nodes on 127.0.0.1-3 at one port, as pods behind a headless Service; the name's records change."""
    hold = PortHold()  # 127.0.0.1's port stays ours; the nodes listen on it with reuse_port
    port = hold.port
    records = {"apreg.test": ["127.0.0.1", "127.0.0.2"]}

    async def resolver(host: str, _: int) -> list[str]:
        return records.get(host, [host])

    runners, nodes = [], []
    try:
        for last in (1, 2, 3):
            settings = NodeSettings(host=f"127.0.0.{last}", port=port, node_id=f"n{last}", anti_entropy_interval=0.2,
                                    peers_dns=f"apreg.test:{port}", peers_dns_interval=0.2)
            nodes.append(Node(settings, resolver=resolver))
            runners.append(await serve_node(nodes[-1]))
        assert await eventually(lambda: _true(tuple(nodes[0].links) == (f"http://127.0.0.2:{port}",)), 3)
        records["apreg.test"] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]  # scaled up
        assert await eventually(lambda: _true(set(nodes[0].links) == {f"http://127.0.0.2:{port}",
                                                                      f"http://127.0.0.3:{port}"}), 3)
        async with aiohttp.ClientSession() as s:
            await s.post(f"http://127.0.0.3:{port}/eureka/apps/SVC", json=instance_body("svc", "i-9"))
            assert await eventually(lambda: _listed(s, f"http://127.0.0.1:{port}", "i-9"), 5)
        records["apreg.test"] = ["127.0.0.1", "127.0.0.3"]  # scaled down
        assert await eventually(lambda: _true(set(nodes[0].links) == {f"http://127.0.0.3:{port}"}), 3)
    finally:
        for runner in runners:
            await runner.cleanup()
        hold.close()


async def test_dns_names_ipv6_addresses_in_brackets_and_skips_the_advertised_one() -> None:
    async def resolver(host: str, _: int) -> list[str]:
        return {"svc": ["10.0.0.1", "10.0.0.2", "fd00::3"], "me.example": ["10.0.0.2"]}[host]

    found = await peers_from_dns("svc", 8761, "https", ("https://me.example:8761",), resolver)
    assert found == ("https://10.0.0.1:8761", "https://[fd00::3]:8761")


async def _true(value: bool) -> bool:
    return value


async def _has(c: LocalCluster, node: int, iid: str) -> bool:
    return iid in await c.ids(node)


async def _listed(s: aiohttp.ClientSession, url: str, iid: str) -> bool:
    async with s.get(url + "/eureka/apps", headers={"Accept": "application/json"}) as r:
        doc: Any = await r.json()
    return iid in {i["instanceId"] for app in doc["applications"]["application"] for i in app["instance"]}


async def test_sighup_rereads_the_config_and_the_peers_follow(tmp_path: Any) -> None:
    dead_peer = PortHold()  # refuses connections, and nothing else can be given its port
    port, peer = free_port(), dead_peer.port
    config = tmp_path / "apreg.toml"
    config.write_text(f'port = {port}\npeers = ""\n')
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "apreg", "serve", "--config", str(config),
                                                   stderr=asyncio.subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as s:
            async def peers() -> list[str]:
                try:
                    async with s.get(f"http://127.0.0.1:{port}/v1/status") as r:
                        return [p["url"] for p in (await r.json())["peers"]]
                except aiohttp.ClientError:
                    return ["not up"]

            assert await eventually(lambda: _true_async(peers(), []), 10)
            config.write_text(f'port = {port}\npeers = "http://127.0.0.1:{peer}"\n')
            os.kill(process.pid, signal.SIGHUP)
            assert await eventually(lambda: _true_async(peers(), [f"http://127.0.0.1:{peer}"]), 5)
            config.write_text(f'port = {port}\nlease-duration = "ninety"\n')  # a broken file changes nothing
            os.kill(process.pid, signal.SIGHUP)
            await asyncio.sleep(0.3)
            assert process.returncode is None and await peers() == [f"http://127.0.0.1:{peer}"]
    finally:
        process.terminate()
        await process.wait()
        dead_peer.close()


async def _true_async(got: Any, want: Any) -> bool:
    return await got == want
