"""Real apreg nodes in this process on 127.0.0.1, wired through TCP proxies the test can cut (partitions)."""
from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import time
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from apreg.peer.auth import wall_ms
from apreg.server.app import build_app
from apreg.server.node import Node
from apreg.server.settings import NodeSettings
from apreg.server.tls import server_context


def free_port() -> int:
    """A port free right now, for a child process that must bind it itself. It can be taken before the child
    binds it: in this process, hold a port with PortHold instead."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PortHold:
    """A loopback port held for as long as this object lives: bound (SO_REUSEPORT) but never listening.

    Binding port 0 and releasing it races: another process can take the port before the test listens on it
    (that collided once in three runs). A held port is never handed out again by the kernel, nothing can
    connect to it while no server listens (connections are refused, as to a dead node), and a server started
    with `reuse_port=True` can listen on it, again after a restart."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()


class LinkProxy:
    """A TCP relay in front of one node for one peer link; `cut()` drops and refuses connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0  # known once started: the relay listens on a port the kernel picks
        self.open = True
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while self.open and (data := await reader.read(65536)):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def cut(self) -> None:
        self.open = False
        for task in list(self._pipes):
            task.cancel()

    def restore(self) -> None:
        self.open = True

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class LocalCluster:
    """N nodes; node i reaches node j through proxy (i, j), so any link can be cut."""

    def __init__(self, n: int, *, node_overrides: dict[int, dict[str, Any]] | None = None,
                 client_ssl: ssl.SSLContext | None = None, clocks: dict[int, Callable[[], int]] | None = None,
                 **overrides: Any) -> None:
        self._holds = [PortHold() for _ in range(n)]  # node i listens on its port across restarts
        self.ports = [hold.port for hold in self._holds]
        self.proxies = {(i, j): LinkProxy(self.ports[j]) for i in range(n) for j in range(n) if i != j}
        self.overrides = overrides
        self.node_overrides = node_overrides or {}
        self.clocks = clocks or {}  # node i's wall clock, when not the real one
        self.client_ssl = client_ssl  # what the test's own requests trust (a TLS cluster's CA)
        self.scheme = "https" if overrides.get("tls_cert") else "http"
        self.runners: dict[int, web.AppRunner] = {}
        self.nodes: dict[int, Node] = {}
        self.session: aiohttp.ClientSession | None = None

    def settings(self, i: int) -> NodeSettings:
        peers = tuple(f"{self.scheme}://127.0.0.1:{self.proxies[(i, j)].port}" for j in range(len(self.ports))
                      if j != i)
        base = NodeSettings(port=self.ports[i], node_id=f"n{i}", peers=peers, anti_entropy_interval=0.2)
        return dataclasses.replace(base, **{**self.overrides, **self.node_overrides.get(i, {})})

    async def __aenter__(self) -> "LocalCluster":
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.client_ssl or True))
        for proxy in self.proxies.values():
            await proxy.start()
        for i in range(len(self.ports)):
            await self.start(i)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for i in list(self.runners):
            await self.kill(i)
        for proxy in self.proxies.values():
            await proxy.stop()
        for hold in self._holds:
            hold.close()
        assert self.session is not None
        await self.session.close()

    async def start(self, i: int) -> None:
        settings = self.settings(i)
        node = Node(settings, clock=self.clocks.get(i, wall_ms))
        runner = web.AppRunner(build_app(node), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.ports[i], reuse_address=True, reuse_port=True,
                          ssl_context=server_context(settings)).start()
        self.runners[i], self.nodes[i] = runner, node

    async def kill(self, i: int) -> None:
        """Stop node i; its state is gone (a restart comes back empty)."""
        await self.runners.pop(i).cleanup()
        self.nodes.pop(i)

    def isolate(self, group: set[int]) -> None:
        """Cut every link between `group` and the rest, both ways."""
        for (i, j), proxy in self.proxies.items():
            if (i in group) != (j in group):
                proxy.cut()

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.restore()

    def url(self, i: int) -> str:
        return f"{self.scheme}://127.0.0.1:{self.ports[i]}"

    async def request(self, i: int, method: str, path: str, *, json_body: Any = None, data: bytes | None = None,
                      headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
        assert self.session is not None
        hdrs = {"Accept": "application/json", **(headers or {})}
        async with self.session.request(method, self.url(i) + path, json=json_body, data=data,
                                        headers=hdrs) as response:
            body = await response.read()
            return response.status, body, response.headers

    async def ids(self, i: int) -> set[str]:
        status, body, _ = await self.request(i, "GET", "/eureka/apps")
        assert status == 200
        import json
        apps = json.loads(body)["applications"]["application"]
        return {inst["instanceId"] for app in apps for inst in app["instance"]}


async def serve_node(node: Node) -> web.AppRunner:
    """Serve `node` at its settings' host and port; reuse_port lets nodes on 127.0.0.1-3 share one port."""
    runner = web.AppRunner(build_app(node), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, node.settings.host, node.settings.port, reuse_port=True).start()
    return runner


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


async def scrape(c: LocalCluster, node: int, path: str = "/metrics") -> dict[str, list]:
    """The node's metrics by family name (and every family under "__families__"), each checked to have HELP
    and TYPE."""
    status, body, headers = await c.request(node, "GET", path)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    text = body.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for family in families.values():  # every series announced with HELP and TYPE (a counter's with `_total`)
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"# HELP {name} " in text and f"# TYPE {name} {family.type}" in text and family.documentation
    return {name: f.samples for name, f in families.items()} | {"__families__": list(families.values())}


def instance_body(app: str, iid: str, port: int = 8080, status: str = "UP", renewal: float = 30,
                  duration: float = 90) -> dict[str, Any]:
    return {"instance": {
        "instanceId": iid, "hostName": "127.0.0.1", "app": app.upper(), "ipAddr": "127.0.0.1",
        "vipAddress": app.lower(), "secureVipAddress": app.lower(), "status": status,
        "port": {"$": port, "@enabled": "true"}, "securePort": {"$": 443, "@enabled": "false"},
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
        "leaseInfo": {"renewalIntervalInSecs": renewal, "durationInSecs": duration},
        "metadata": {"zone": "z1"}}}
