"""RegistryClient against a real 3-node apreg cluster started as `apreg serve` subprocesses."""
from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import time
from typing import AsyncIterator

import aiohttp
import pytest

from apreg.client import RegistryClient

from .conftest import free_port
from .helpers import FAST, eventually

APREG = os.path.join(os.path.dirname(sys.executable), "apreg")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(APREG) or importlib.util.find_spec("apreg.server") is None,
                       reason="the apreg server is not installed"),
]
CONFIG = dataclasses.replace(FAST, request_timeout=1.0, stale_after=1.0)


class PortTaken(Exception):
    """A node exited before it answered: the port chosen for it was taken before it could bind it."""


class Cluster:
    """Nodes on free loopback ports, each peered with all the others; killed and restarted by PID."""

    def __init__(self, n: int) -> None:
        self.ports = [free_port() for _ in range(n)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    async def start(self, *which: int) -> None:
        for i in which or range(len(self.ports)):
            peers = ",".join(self.url(j) for j in range(len(self.ports)) if j != i)
            self.procs[i] = subprocess.Popen(
                [APREG, "serve", "--host", "127.0.0.1", "--port", str(self.ports[i]), "--node-id", f"n{i}",
                 "--peers", peers, "--eviction-interval", "0.5", "--anti-entropy-interval", "0.5"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for i in which or range(len(self.ports)):
            await eventually(lambda i=i: self.answers(i), timeout=15)

    async def answers(self, i: int) -> bool:
        """Node i answers as itself; PortTaken if it exited first."""
        if self.procs[i].poll() is not None:
            raise PortTaken(self.url(i))
        try:
            async with aiohttp.ClientSession() as session, session.get(self.url(i) + "/v1/status") as resp:
                return resp.status == 200 and (await resp.json())["node_id"] == f"n{i}"
        except aiohttp.ClientError:
            return False

    async def instance_ids(self, i: int) -> set[str]:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.url(i) + "/eureka/apps", headers={"Accept": "application/json"}) as resp:
                doc = await resp.json()
        return {inst["instanceId"] for app in doc["applications"]["application"] for inst in app["instance"]}

    def kill(self, *which: int) -> None:
        for i in which or range(len(self.ports)):
            proc = self.procs.pop(i, None)
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    for _ in range(5):  # each node binds its port itself: if one was taken meanwhile, all start on new ports
        nodes = Cluster(3)
        try:
            await nodes.start()
            break
        except PortTaken:
            nodes.stop()
    else:
        raise AssertionError("every set of ports tried was taken before the nodes could bind them")
    try:
        yield nodes
    finally:
        nodes.stop()


async def test_update_at_one_node_reaches_a_client_watching_another(cluster: Cluster) -> None:
    async with RegistryClient([cluster.url(0)], CONFIG) as owner, RegistryClient([cluster.url(2)], CONFIG) as watcher:
        await eventually(lambda: watcher.streaming)
        started = time.monotonic()
        await owner.register("orders", instance_id="o-1", host="127.0.0.1", port=8080, metadata={"zone": "a"},
                             renewal_interval=0.5, lease_duration=2)
        await eventually(lambda: _ids_are(watcher, "orders", ["o-1"]), timeout=2)
        assert time.monotonic() - started < 1.0
        await owner.update_metadata("orders", "o-1", {"zone": "b"})
        await eventually(lambda: _zone_is(watcher, "b"), timeout=2)
        await owner.set_status("orders", "o-1", "OUT_OF_SERVICE")
        await eventually(lambda: _ids_are(watcher, "orders", []), timeout=2)
        await owner.clear_status("orders", "o-1")
        await eventually(lambda: _ids_are(watcher, "orders", ["o-1"]), timeout=2)
        await owner.cancel("orders", "o-1")
        await eventually(lambda: _ids_are(watcher, "orders", []), timeout=2)


async def test_client_fails_over_when_its_node_dies_and_keeps_renewing(cluster: Cluster) -> None:
    async with RegistryClient([cluster.url(0), cluster.url(1)], CONFIG) as owner, \
            RegistryClient([cluster.url(2)], CONFIG) as watcher:
        await owner.register("orders", instance_id="o-1", host="127.0.0.1", port=8080,
                             renewal_interval=0.3, lease_duration=1)
        await eventually(lambda: _ids_are(watcher, "orders", ["o-1"]), timeout=2)
        cluster.kill(0)
        await asyncio.sleep(3)  # three lease durations: only renewals through node 1 can keep it
        assert "o-1" in await cluster.instance_ids(2)
        assert await _ids_are(watcher, "orders", ["o-1"])
    await eventually(lambda: _gone(cluster, 2, "o-1"), timeout=2)  # closing the client cancelled it


async def test_all_nodes_down_serves_stale_cache_then_registers_again(cluster: Cluster) -> None:
    urls = [cluster.url(i) for i in range(3)]
    async with RegistryClient(urls, CONFIG) as client:
        await client.register("orders", instance_id="o-1", host="127.0.0.1", port=8080,
                              renewal_interval=0.3, lease_duration=1)
        await eventually(lambda: _ids_are(client, "orders", ["o-1"]), timeout=2)
        for n in range(30):  # move the nodes' change sequence well past what restarted nodes will reach
            await client.update_metadata("orders", "o-1", {"n": str(n)})
        await eventually(lambda: _metadata_is(client, "n", "29"), timeout=2)
        cluster.kill()
        await eventually(lambda: client.stale, timeout=5)
        assert await _ids_are(client, "orders", ["o-1"])
        assert (await client.choose("orders")).instance_id == "o-1"  # type: ignore[union-attr]
        assert client.staleness() > CONFIG.stale_after
        await cluster.start()  # back, and empty
        await eventually(lambda: _everywhere(cluster, "o-1"), timeout=10)
        await eventually(lambda: not client.stale, timeout=5)
        async with RegistryClient([cluster.url(1)], CONFIG) as other:  # and the cache follows the new nodes
            await other.register("cart", instance_id="c-1", host="127.0.0.1", port=8081, renewal_interval=0.3,
                                 lease_duration=1)
            await eventually(lambda: _ids_are(client, "cart", ["c-1"]), timeout=3)


async def _ids_are(client: RegistryClient, app: str, ids: list[str]) -> bool:
    return [i.instance_id for i in await client.instances(app)] == ids


async def _zone_is(client: RegistryClient, zone: str) -> bool:
    up = await client.instances("orders")
    return bool(up) and up[0].zone == zone


async def _metadata_is(client: RegistryClient, key: str, value: str) -> bool:
    up = await client.instances("orders")
    return bool(up) and up[0].metadata.get(key) == value


async def _gone(cluster: Cluster, i: int, instance_id: str) -> bool:
    return instance_id not in await cluster.instance_ids(i)


async def _everywhere(cluster: Cluster, instance_id: str) -> bool:
    for i in range(len(cluster.ports)):
        if instance_id not in await cluster.instance_ids(i):
            return False
    return True
