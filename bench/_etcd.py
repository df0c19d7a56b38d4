"""etcd 3.4 (Debian etcd-server) driven through its v3 JSON gRPC-gateway with
aiohttp, as in anchors-measured.md: no grpc client needed, same HTTP stack as apreg."""
from __future__ import annotations

import base64
import json
import shutil

import aiohttp

from _http import HttpCluster, iter_lines
from _procs import free_ports
from _systems import Emit, instance_bytes


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def _prefix_end(prefix: str) -> str:
    """range_end that selects every key starting with `prefix` (last byte + 1)."""
    b = prefix.encode()
    return _b64(b[:-1] + bytes([b[-1] + 1]))


class EtcdCluster(HttpCluster):
    system = "etcd"

    @classmethod
    def unavailable(cls) -> str | None:
        if not shutil.which("etcd"):
            return "etcd not installed (apt-get install etcd-server)"
        return None

    async def start(self) -> None:
        ports = free_ports(2 * self.n)
        self.client_urls = [f"http://127.0.0.1:{ports[2 * i]}" for i in range(self.n)]
        peer_urls = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(self.n)]
        initial = ",".join(f"e{i + 1}={u}" for i, u in enumerate(peer_urls))
        for i in range(self.n):
            argv = [
                "etcd", "--name", f"e{i + 1}", "--data-dir", str(self.workdir / f"e{i + 1}"),
                "--listen-client-urls", self.client_urls[i],
                "--advertise-client-urls", self.client_urls[i],
                "--listen-peer-urls", peer_urls[i], "--initial-advertise-peer-urls", peer_urls[i],
                "--initial-cluster", initial, "--initial-cluster-token", self.namespace,
                "--initial-cluster-state", "new",
                "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
                *self.extra_args,
            ]
            self.members.append(self.procs.spawn(f"e{i + 1}", argv))
        self.open_session()

        async def healthy(node: int) -> bool:
            async with self.session.get(self.client_urls[node] + "/health",
                                        timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200 and (await r.json(content_type=None)).get("health") == "true"

        await self.wait_serving(healthy, 60, 0.1, "etcd members healthy")

    async def put(self, node: int, name: str, timeout: float) -> float:
        body = {"key": _b64(self.namespace + name), "value": _b64(instance_bytes(name))}
        return await self.post_write(self.client_urls[node] + "/v3/kv/put", body, (200,), timeout)

    async def read_names(self, node: int, timeout: float) -> set[str]:
        # serializable: this member's local store, i.e. what it would show a client.
        body = {"key": _b64(self.namespace), "range_end": _prefix_end(self.namespace),
                "keys_only": True, "serializable": True}
        async with self.session.post(self.client_urls[node] + "/v3/kv/range", json=body,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            r.raise_for_status()
            data = await r.json(content_type=None)
        n = len(self.namespace)
        return {base64.b64decode(kv["key"]).decode()[n:] for kv in data.get("kvs", [])}

    def watch_endpoint(self, node: int) -> str:
        return self.client_urls[node]

    async def role(self, node: int) -> str | None:
        async with self.session.post(self.client_urls[node] + "/v3/maintenance/status", json={},
                                     timeout=aiohttp.ClientTimeout(total=2)) as r:
            st = await r.json(content_type=None)
        return "leader" if st.get("leader") == st.get("header", {}).get("member_id") else "follower"


CLUSTER = EtcdCluster


async def watch(endpoint: str, namespace: str, names: list[str], emit: Emit,
                ready) -> None:
    """Stream `POST /v3/watch` on the prefix; one JSON message per line."""
    req = {"create_request": {"key": _b64(namespace), "range_end": _prefix_end(namespace)}}
    n = len(namespace)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.post(endpoint + "/v3/watch", json=req) as r:
            r.raise_for_status()
            async for line, t in iter_lines(r):
                if not line.strip():
                    continue
                msg = json.loads(line).get("result", {})
                if msg.get("created"):
                    ready()
                for ev in msg.get("events", []):
                    if ev.get("type", "PUT") == "PUT":
                        emit(base64.b64decode(ev["kv"]["key"]).decode()[n:], t)
    raise RuntimeError("etcd watch stream closed")
