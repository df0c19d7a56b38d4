"""Spring Cloud Netflix Eureka servers as the measured anchor: 3 peer-aware JVMs of the interop build's
eureka-server jar (tests/interop/spring), written to and read through the same Eureka REST calls as apreg, and
observed by polling each node's `GET apps/{APP}` every 10 ms, since Eureka has no watch.

Two variants:
- `eureka`: Spring Cloud's defaults for a peer-aware server (it registers with and fetches from its peers). Reads
  come from the read-only response cache, refreshed every 30 s (`response-cache-update-interval-ms`).
- `eureka-tuned` (`_eureka_tuned.py`): as far as Eureka allows, `eureka.server.use-read-only-response-cache=false`,
  so reads come from the read-write cache that every write (local or replicated) invalidates. What cannot be tuned:
  peer replication batches wait up to 500 ms (PeerEurekaNode.MAX_BATCHING_DELAY_MS, a constant in Netflix/eureka).
"""
from __future__ import annotations

import asyncio
import re
import shutil
import sys
import time
from pathlib import Path
from typing import ClassVar

import aiohttp

from _apreg import JSON, ApregCluster
from _procs import free_ports
from _systems import APP, Emit

INTEROP = Path(__file__).resolve().parent.parent / "tests" / "interop"
POLL_S = 0.010
START_TIMEOUT_S = 240.0  # three JVMs starting at once on 2 cores
JVM_FLAGS = ("-Xmx512m", "-XX:+UseSerialGC")


def _maven_build():
    """tests/interop's build step (offline from the local Maven cache when it can), imported by path."""
    sys.path.insert(0, str(INTEROP))
    import maven_build
    return maven_build


class EurekaCluster(ApregCluster):
    system = "eureka"
    settings: ClassVar[dict[str, str]] = {}  # Spring Cloud's defaults
    drain_s: ClassVar[float] = 45.0  # reads lag writes by up to the read-only cache's 30 s refresh

    @classmethod
    def unavailable(cls) -> str | None:
        missing = [tool for tool in ("java", "mvn") if not shutil.which(tool)]
        return f"{', '.join(missing)} not installed (Java 17 and Maven build the Eureka server)" if missing else None

    async def start(self) -> None:
        build = _maven_build()
        await asyncio.to_thread(build.build, self.workdir / "mvn.log")
        ports = free_ports(self.n)
        self.urls = [f"http://127.0.0.1:{port}" for port in ports]
        for i, port in enumerate(ports):
            peers = ",".join(f"{url}/eureka/" for j, url in enumerate(self.urls) if j != i)
            properties = {
                "server.port": str(port),
                "eureka.client.service-url.defaultZone": peers,
                # A peer-aware server registers with and fetches from its peers: Eureka's defaults, which the
                # jar's application.properties turn off for its standalone use.
                "eureka.client.register-with-eureka": "true",
                "eureka.client.fetch-registry": "true",
                # All nodes share the host 127.0.0.1, and Eureka drops a peer URL whose host is its own unless it
                # knows its own URL exactly.
                "eureka.server.my-url": f"{self.urls[i]}/eureka/",
                **self.settings,
            }
            argv = ["java", *JVM_FLAGS, "-jar", str(build.jar("eureka-server")),
                    *(f"--{key}={value}" for key, value in properties.items()), *self.extra_args]
            self.members.append(self.procs.spawn(f"eureka{i + 1}", argv))
        self.open_session()

        await self.wait_serving(self.answers_apps, START_TIMEOUT_S, 0.5, "Eureka servers answering GET /eureka/apps")


CLUSTER = EurekaCluster


async def watch(endpoint: str, namespace: str, names: list[str], emit: Emit, ready) -> None:
    """Poll `GET apps/{APP}` every 10 ms and emit each name the first time a poll shows it. Ids are found with a
    regex over the raw body: parsing hundreds of instances as JSON every 10 ms would make the watcher the
    bottleneck."""
    pattern = re.compile(rb'"instanceId":"' + re.escape(namespace.encode()) + rb'([^"]+)"')
    seen: set[bytes] = set()
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        ready()
        while True:
            started = time.monotonic()
            async with s.get(f"{endpoint}/eureka/apps/{APP}", headers=JSON) as r:
                body = await r.read()
                t = time.monotonic()
            if r.status == 200:
                for name in set(pattern.findall(body)) - seen:
                    seen.add(name)
                    emit(name.decode(), t)
            elif r.status != 404:
                raise RuntimeError(f"GET apps/{APP}: HTTP {r.status}")
            await asyncio.sleep(max(0.0, POLL_S - (time.monotonic() - started)))
