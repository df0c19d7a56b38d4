"""The migration drill's clients: a fleet of instances that register and heartbeat, readers that keep reading
the registry, and an operator changing metadata; all of them check what they see as they go.

Every client behaves as a Eureka client does: it talks to its home node and, when that node refuses the
connection, to the next one in the list (each request starts from home again); a heartbeat answered 404
re-registers. The load runs on its own event loop in a thread, so the drill's steps (stopping and starting
nodes) run beside it.

What counts as a violation, kept with when and where it was seen:
- `fewer`: a read listing fewer than all the fleet's instances UP, once the cluster is steady;
- `stale`: a read missing an acknowledged metadata change more than STALE_BOUND_S after its acknowledgement;
- `refused`: a registration, heartbeat or metadata change that no node took (every node failed or said no).
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

APP = "DRILL"
RENEWAL_S = 2  # the fleet's leaseInfo: heartbeats every 2 s, leases of 6 s
LEASE_S = 6
READ_INTERVAL_S = 0.25
WRITE_INTERVAL_S = 0.25
HEARTBEAT_SLICE = 20  # heartbeats sent together
STALE_BOUND_S = 2.0  # README: a write acknowledged anywhere is visible at every running node within 2 s
TIMEOUT = aiohttp.ClientTimeout(total=5)
JSON = {"Accept": "application/json"}


def instance_body(iid: str) -> dict[str, Any]:
    return {"instance": {"instanceId": iid, "hostName": iid, "app": APP, "ipAddr": "10.0.0.9", "status": "UP",
                         "port": {"$": 8080, "@enabled": "true"}, "vipAddress": APP.lower(),
                         "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                                            "name": "MyOwn"},
                         "leaseInfo": {"renewalIntervalInSecs": RENEWAL_S, "durationInSecs": LEASE_S},
                         "metadata": {"gen": "0"}}}


@dataclass(slots=True)
class Violation:
    kind: str
    at: float  # seconds since the load started
    node: str
    detail: str


@dataclass(slots=True)
class Stats:
    reads: int = 0
    heartbeats: int = 0
    reregistrations: int = 0
    writes: int = 0
    failovers: int = 0  # requests that went past a node refusing connections
    worst_stale_s: float = 0.0  # the oldest acknowledged change a read was still missing, within the bound
    violations: list[Violation] = field(default_factory=list)


class FleetLoad:
    """`size` instances spread over `nodes` (Eureka service URLs) by home node; see the module docstring."""

    def __init__(self, nodes: list[str], size: int) -> None:
        self.nodes = nodes
        self.ids = [f"d-{k:03d}" for k in range(size)]
        self.stats = Stats()
        self.drained: set[int] = set()  # nodes the operator sends no change to (about to be stopped)
        self.acked: dict[str, list[tuple[float, int]]] = {iid: [] for iid in self.ids}  # (ack time, gen)
        self.registered = threading.Event()
        self.checking = False  # once the cluster is steady (begin_checking): changes start, reads are judged
        self._started = time.monotonic()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="fleet-load", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.registered.wait(60):
            raise RuntimeError("the fleet did not register within 60 s")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def begin_checking(self) -> None:
        """From now on: changes, judged reads, and figures (a Java cluster just started re-registers many)."""
        self.stats = Stats()
        self.checking = True

    def latest_gens(self) -> dict[str, int]:
        return {iid: acks[-1][1] if acks else 0 for iid, acks in self.acked.items()}

    def _now(self) -> float:
        return time.monotonic() - self._started

    def _violation(self, kind: str, node: str, detail: str) -> None:
        self.stats.violations.append(Violation(kind, round(self._now(), 2), node, detail))

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            await asyncio.gather(*(self._register(session, k, iid) for k, iid in enumerate(self.ids)))
            self.registered.set()
            tasks = [asyncio.create_task(self._heartbeats(session)), asyncio.create_task(self._operator(session)),
                     *(asyncio.create_task(self._reader(session, home)) for home in range(len(self.nodes)))]
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _call(self, session: aiohttp.ClientSession, home: int, method: str, path: str,
                    skip: set[int] = frozenset(), **kwargs: Any) -> tuple[int, int, bytes] | None:
        """(node index, status, body) from the first node from `home` on that takes the connection."""
        for step in range(len(self.nodes)):
            node = (home + step) % len(self.nodes)
            if node in skip:
                continue
            try:
                async with session.request(method, self.nodes[node] + path, headers=JSON, **kwargs) as response:
                    return node, response.status, await response.read()
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                self.stats.failovers += 1
        return None

    async def _register(self, session: aiohttp.ClientSession, home: int, iid: str) -> bool:
        answer = await self._call(session, home, "POST", f"apps/{APP}", json=instance_body(iid))
        if answer is None or answer[1] != 204:
            self._violation("refused", "-", f"register {iid}: {answer and answer[1]}")
            return False
        return True

    async def _heartbeats(self, session: aiohttp.ClientSession) -> None:
        """Every instance renews every RENEWAL_S: a slice of the fleet at a time, spread over the interval."""
        slices = [list(enumerate(self.ids))[k:k + HEARTBEAT_SLICE] for k in range(0, len(self.ids), HEARTBEAT_SLICE)]
        gap = RENEWAL_S / len(slices)
        while True:
            for chunk in slices:
                started = time.monotonic()
                await asyncio.gather(*(self._heartbeat(session, home, iid) for home, iid in chunk))
                await asyncio.sleep(max(0.0, gap - (time.monotonic() - started)))

    async def _heartbeat(self, session: aiohttp.ClientSession, home: int, iid: str) -> None:
        answer = await self._call(session, home, "PUT", f"apps/{APP}/{iid}?status=UP")
        self.stats.heartbeats += 1
        if answer is not None and answer[1] == 404:  # as a Eureka client: register again
            self.stats.reregistrations += 1
            await self._register(session, home, iid)
        elif answer is None or answer[1] != 200:
            self._violation("refused", "-", f"heartbeat {iid}: {answer and answer[1]}")

    async def _operator(self, session: aiohttp.ClientSession) -> None:
        """A metadata change every WRITE_INTERVAL_S, instance after instance, at the nodes in turn (drained ones
        left out, as an operator's tooling would after a node is announced for removal)."""
        gen = 0
        while not self.checking:
            await asyncio.sleep(0.1)
        while True:
            gen += 1
            iid = self.ids[gen % len(self.ids)]
            answer = await self._call(session, gen % len(self.nodes), "PUT", f"apps/{APP}/{iid}/metadata?gen={gen}",
                                      skip=set(self.drained))
            if answer is not None and answer[1] == 200:
                self.acked[iid].append((self._now(), gen))
                self.stats.writes += 1
            else:
                self._violation("refused", "-", f"metadata {iid} gen={gen}: {answer and answer[1]}")
            await asyncio.sleep(WRITE_INTERVAL_S)

    async def _reader(self, session: aiohttp.ClientSession, home: int) -> None:
        while True:
            started = self._now()
            answer = await self._call(session, home, "GET", f"apps/{APP}")
            if (answer is None or answer[1] != 200) and self.checking:
                self._violation("fewer", "-" if answer is None else self.nodes[answer[0]],
                                f"no registry: {answer and answer[1]}")
            elif self.checking:
                self._check(self.nodes[answer[0]], json.loads(answer[2])["application"]["instance"], started)
            self.stats.reads += 1
            await asyncio.sleep(READ_INTERVAL_S)

    def _check(self, node: str, listed: list[dict[str, Any]], started: float) -> None:
        up = {i["instanceId"]: int(i["metadata"].get("gen", 0)) for i in listed if i["status"] == "UP"}
        missing = [iid for iid in self.ids if iid not in up]
        if missing:
            self._violation("fewer", node, f"{len(up)} UP of {len(self.ids)}, e.g. {missing[:3]} missing")
        for iid, seen in up.items():
            acks = self.acked.get(iid)
            if not acks:
                continue
            unseen = [at for at, gen in acks if gen > seen]  # acknowledged changes this read does not show
            if unseen:
                age = started - unseen[0]
                if age > STALE_BOUND_S:
                    self._violation("stale", node, f"{iid} gen {seen}, a change acknowledged {age:.1f} s before")
                else:
                    self.stats.worst_stale_s = max(self.stats.worst_stale_s, age)
