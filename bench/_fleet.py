"""What `fleet.py` serves and how it times the reads that need more than `_load.phase`:
the Spring-style instances of a fleet, the count of what a node lists, the freshness probes
(ack at one node to visible in another's reads) and the empty-peer sync."""
from __future__ import annotations

import asyncio
import gzip
import json
import time
from dataclasses import dataclass

import aiohttp

from _apreg import serve_argv
from _load import WRITE_HEADERS
from _procs import ProcessSet, free_port

PLAIN_JSON = {"Accept": "application/json", "Accept-Encoding": "identity"}
GZIP_JSON = {"Accept": "application/json", "Accept-Encoding": "gzip"}
DATA_CENTER = {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}
ZONES = ("zone-a", "zone-b", "zone-c")


@dataclass(frozen=True, slots=True)
class Fleet:
    """Instance i is `host-i`, of app `APP<i % apps>`, registered as a Spring Cloud client
    registers (instanceId `host-i:app7:8080`, lowercase VIPs, two metadata keys)."""

    apps: int
    dirty_ms: int

    def app(self, i: int) -> str:
        return f"APP{i % self.apps}"

    def instance_id(self, i: int) -> str:
        return f"host-{i}:app{i % self.apps}:8080"

    def path(self, i: int) -> str:
        return f"/eureka/apps/{self.app(i)}/{self.instance_id(i)}"

    def body(self, i: int) -> bytes:
        host, ip, vip = f"host-{i}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", self.app(i).lower()
        return json.dumps({"instance": {
            "instanceId": self.instance_id(i), "hostName": host, "app": self.app(i), "ipAddr": ip,
            "status": "UP", "overriddenstatus": "UNKNOWN",
            "port": {"$": 8080, "@enabled": "true"}, "securePort": {"$": 8443, "@enabled": "false"},
            "countryId": 1, "dataCenterInfo": DATA_CENTER,
            "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
            "vipAddress": vip, "secureVipAddress": vip,
            "homePageUrl": f"http://{host}:8080/", "statusPageUrl": f"http://{host}:8080/actuator/info",
            "healthCheckUrl": f"http://{host}:8080/actuator/health",
            "metadata": {"management.port": "8081", "zone": ZONES[i % len(ZONES)]},
            "isCoordinatingDiscoveryServer": "false", "lastDirtyTimestamp": str(self.dirty_ms),
        }}, separators=(",", ":")).encode()

    def renew_url(self, base: str, i: int) -> str:
        return f"{base}{self.path(i)}?status=UP&lastDirtyTimestamp={self.dirty_ms}"


async def register(session: aiohttp.ClientSession, base: str, fleet: Fleet, i: int) -> None:
    async with session.post(f"{base}/eureka/apps/{fleet.app(i)}", data=fleet.body(i),
                            headers=WRITE_HEADERS) as r:
        await r.read()
        if r.status != 204:
            raise RuntimeError(f"register {fleet.instance_id(i)} at {base}: HTTP {r.status}")


async def listed(session: aiohttp.ClientSession, url: str) -> int:
    """How many instances a Eureka-style JSON answer at `url` (full fetch, delta) lists, counted in the raw body:
    a count is all that is needed, and parsing 10,000 instances would time the client."""
    async with session.get(url, headers=PLAIN_JSON) as r:
        r.raise_for_status()
        return (await r.read()).count(b'"instanceId"')


async def status(session: aiohttp.ClientSession, base: str) -> dict:
    async with session.get(f"{base}/v1/status", timeout=aiohttp.ClientTimeout(total=30)) as r:
        r.raise_for_status()
        return await r.json()


async def time_to_visible(session: aiohttp.ClientSession, url: str, needle: bytes, since: float,
                          interval: float, wait: float) -> float | None:
    """ms from `since` (perf_counter) until a GET of `url` answers with `needle` in its body,
    polling one request at a time with `interval` s between; None after `wait` s. Bodies are
    asked for gzipped, as Eureka clients ask, and the time is taken when one has arrived, before
    the client inflates it to look (at 100,000 instances that is 87 MB of JSON)."""
    while time.perf_counter() - since < wait:
        async with session.get(url, headers=GZIP_JSON) as r:
            body = await r.read()
            arrived = time.perf_counter()
            if body[:2] == b"\x1f\x8b":  # not inflated by the session
                body = gzip.decompress(body)
        if needle in body:
            return (arrived - since) * 1000.0
        await asyncio.sleep(interval)
    return None


async def freshness(session: aiohttp.ClientSession, writer: str, reader_url: str, fleet: Fleet,
                    first: int, count: int, seconds: float, wait: float) -> dict:
    """Register instances `first`.. at `writer` one at a time and time each from the writer's
    204 to visible at `reader_url` (a body is matched on the quoted instance id, unparsed, so
    the client's cost stays out). New writes stop after `seconds`; each one started gets its
    full `wait`."""
    samples: list[float] = []
    unseen = 0
    t0 = time.perf_counter()
    attempted = 0
    while attempted < count and time.perf_counter() - t0 < seconds:
        i = first + attempted
        attempted += 1
        await register(session, writer, fleet, i)
        ms = await time_to_visible(session, reader_url, f'"{fleet.instance_id(i)}"'.encode(),
                                   time.perf_counter(), 0.002, wait)
        if ms is None:
            unseen += 1
        else:
            samples.append(ms)
    return {"attempted": attempted, "unseen": unseen, "ms": samples}


async def empty_peer_sync(procs: ProcessSet, session: aiohttp.ClientSession, peer: str, name: str,
                          extra_args: list[str], expect: int, timeout: float) -> dict:
    """Start a node that knows only `peer` and time it (from spawn, so its own start-up is
    included and shown apart) until its status says in sync and holds `expect` instances."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    node = procs.spawn(name, serve_argv(port, name, [peer], extra_args))
    t0 = time.perf_counter()
    answered: float | None = None
    try:
        while time.perf_counter() - t0 < timeout:
            if not node.alive():
                raise RuntimeError(f"{name} exited rc={node.proc.returncode}:\n{node.tail()}")
            try:
                doc = await status(session, url)
            except aiohttp.ClientError:
                await asyncio.sleep(0.02)
                continue
            answered = answered or time.perf_counter()
            if doc["in_sync"] and doc["instances"] >= expect:
                return {"sync_s": round(time.perf_counter() - t0, 3),
                        "startup_s": round(answered - t0, 3), "instances": doc["instances"]}
            await asyncio.sleep(0.02)
        return {"sync_s": None, "startup_s": None if answered is None else round(answered - t0, 3),
                "instances": None}
    finally:
        node.stop()

