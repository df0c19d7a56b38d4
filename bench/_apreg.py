"""apreg nodes as `apreg serve` subprocesses, full mesh of --peers, observed
through their `/v1/watch` Server-Sent Events stream."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from _http import HttpCluster, iter_lines
from _procs import free_ports
from _systems import APP, Emit, instance_body

JSON = {"Accept": "application/json"}


def command() -> list[str]:
    """The console script installed next to this interpreter, else `-m apreg`."""
    script = Path(sys.executable).with_name("apreg")
    return [str(script)] if script.exists() else [sys.executable, "-m", "apreg"]


def serve_argv(port: int, node_id: str, peers: list[str], extra_args: list[str]) -> list[str]:
    """`apreg serve` on 127.0.0.1:`port` with these peers (none: a lone node); `{node}` in an extra argument is
    the node's id (each node's own `--data-dir`)."""
    return [*command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--node-id", node_id,
            *(["--peers", ",".join(peers)] if peers else []), *(a.replace("{node}", node_id) for a in extra_args)]


def instance_ids(payload: dict) -> list[str]:
    """Instance ids of a Eureka `GET apps/{APP}` JSON body (one instance may come
    as an object rather than a one-element list, as Eureka renders it)."""
    app = payload.get("application") or {}
    inst = app.get("instance") or []
    if isinstance(inst, dict):
        inst = [inst]
    return [i.get("instanceId", "") for i in inst]


class ApregCluster(HttpCluster):
    system = "apreg"

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            p = subprocess.run([*command(), "serve", "--help"], capture_output=True,
                               timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"apreg serve not runnable: {exc}"
        if p.returncode != 0:
            last = (p.stderr or p.stdout).decode(errors="replace").strip().splitlines()[-1:]
            return f"apreg serve not available yet ({' '.join(last)})"
        return None

    async def start(self) -> None:
        ports = free_ports(self.n)
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]
        for i, port in enumerate(ports):
            peers = [u for j, u in enumerate(self.urls) if j != i]
            argv = serve_argv(port, f"n{i + 1}", peers, self.extra_args)
            self.members.append(self.procs.spawn(f"n{i + 1}", argv))
        self.open_session()

        await self.wait_serving(self.answers_apps, 60, 0.1, "apreg nodes answering GET /eureka/apps")

    async def answers_apps(self, node: int) -> bool:
        """Whether the node serves `GET /eureka/apps` (200): it is up and takes Eureka clients."""
        async with self.session.get(self.urls[node] + "/eureka/apps", headers=JSON,
                                    timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200

    async def put(self, node: int, name: str, timeout: float) -> float:
        return await self.post_write(f"{self.urls[node]}/eureka/apps/{APP}",
                                     instance_body(self.namespace + name), (200, 204), timeout)

    async def read_names(self, node: int, timeout: float) -> set[str]:
        return await read_app(self.session, self.urls[node], self.namespace, timeout)

    def watch_endpoint(self, node: int) -> str:
        return self.urls[node]


CLUSTER = ApregCluster


async def read_app(session: aiohttp.ClientSession, base: str, namespace: str,
                   timeout: float) -> set[str]:
    async with session.get(f"{base}/eureka/apps/{APP}", headers=JSON,
                           timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        if r.status == 404:
            return set()
        r.raise_for_status()
        payload = await r.json(content_type=None)
    n = len(namespace)
    return {i[n:] for i in instance_ids(payload) if i.startswith(namespace)}


async def watch(endpoint: str, namespace: str, names: list[str], emit: Emit, ready) -> None:
    """Follow the SSE stream; on `resync` re-read the app, as a client must, and
    count everything present as seen at that moment."""
    n = len(namespace)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.get(f"{endpoint}/v1/watch", params={"app": APP},
                         headers={"Accept": "text/event-stream"}) as r:
            r.raise_for_status()
            ready()
            event, data = "message", []
            async for line, t in iter_lines(r):
                if line.startswith(b":"):
                    continue                      # heartbeat / comment
                if line:
                    field, _, value = line.decode().partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    continue
                # blank line: dispatch the event
                if event == "change" and data:
                    msg = json.loads("\n".join(data))
                    iid = str(msg.get("instance_id", ""))
                    if msg.get("action") in ("register", "modify", "status") \
                            and iid.startswith(namespace):
                        emit(iid[n:], t)
                elif event == "resync":
                    for name in await read_app(s, endpoint, namespace, 10):
                        emit(name, time.monotonic())
                event, data = "message", []
    raise RuntimeError("apreg watch stream closed")
