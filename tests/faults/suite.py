"""The fault suite: a 3-node apreg cluster in network namespaces, clients registering, renewing and cancelling at
every node, a nemesis, and a checker over the recorded history (Jepsen's and Maelstrom's ideas, our own code).

Each phase runs one nemesis against a fresh cluster while the workload runs, heals, lets the cluster settle, and
checks what the history shows:
- lost: instances whose last acknowledged write was a registration or renewal, missing anywhere after the heal;
- resurrected: cancelled instances that a node listed again after it had stopped listing them, or that any
  node still lists after the heal (a node cut off from the cancel may list it until then: that is staleness);
- false evictions: every client renews all along (failing over to another node within about a second, well
  inside its lease) until it cancels, so any eviction of an instance never cancelled is a false one (I4); the
  evictions come from each node's change history (`/v1/watch?since=0`). An instance evicted after its client
  cancelled it is not counted: a node that has not yet taken the cancel (say, one held back as stamped too far
  ahead) rightly evicts the silent lease, and one evicted while still renewing shows in `missing`, which counts a
  node's answers lacking an instance whose last acknowledged renewal was recent (not in a node's first seconds
  after an empty restart), which also catches an instance dropped some other way;
- divergence: whether every node gave the same instances (and statuses) after the heal, and how long it took;
- visible: each registration's time from its acknowledgement to being listed by every node (observer polls).
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp

from apreg.server.offset_clock import OFFSET_FILE_ENV, REREAD_S

from .netns import Network

PORT = 8761
LEASE_S, RENEW_S = 3.0, 1.0
SETTLE_S = 6.0
OBSERVE_S = 0.1
NODE_ARGS = ["--lease-duration", str(LEASE_S), "--renewal-interval", str(RENEW_S), "--eviction-interval", "1",
             "--renewal-window", "10", "--anti-entropy-interval", "0.5"]


@dataclass
class Instance:
    iid: str
    home: int  # the node its client talks to first
    registered_at: float = 0.0  # first acknowledged registration
    acks: list[float] = field(default_factory=list)  # acknowledged registrations and renewals
    cancelled_at: float | None = None  # acknowledged cancel


@dataclass
class Verdict:
    phase: str
    lost: int = 0
    resurrected: int = 0
    false_evictions: int = 0
    missing: int = 0
    converged: bool = False
    converge_s: float = 0.0
    visible_ms: list[float] = field(default_factory=list)
    acked: int = 0

    @property
    def ok(self) -> bool:
        return self.converged and not (self.lost or self.resurrected or self.false_evictions or self.missing)


class Cluster:
    """apreg serve in each namespace; kill, restart, pause and resume a node."""

    def __init__(self, network: Network, workdir: Path) -> None:
        self.network = network
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.restarted_at: dict[int, float] = {}

    def url(self, i: int) -> str:
        return f"http://{self.network.hosts[i - 1].ip}:{PORT}"

    def start(self, i: int) -> None:
        host = self.network.hosts[i - 1]
        peers = ",".join(self.url(h.index) for h in self.network.hosts if h is not host)
        argv = ["ip", "netns", "exec", host.ns, sys.executable, "-m", "apreg", "serve", "--host", host.ip,
                "--port", str(PORT), "--node-id", f"n{i}", "--peers", peers, *NODE_ARGS]
        log = open(self.workdir / f"n{i}.log", "ab")
        self.skew(i, 0)
        env = {**os.environ, OFFSET_FILE_ENV: str(self.offset_file(i))}
        self.procs[i] = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True, env=env)

    def offset_file(self, i: int) -> Path:
        return self.workdir / f"n{i}.clock-offset-ms"

    def skew(self, i: int, offset_s: float) -> None:
        """Step node i's clock to `offset_s` seconds off the wall clock (it re-reads the file every second)."""
        self.offset_file(i).write_text(f"{round(offset_s * 1000)}\n")

    def kill(self, i: int) -> None:
        proc = self.procs.pop(i)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, i: int) -> None:
        self.start(i)
        self.restarted_at[i] = time.monotonic()

    def pause(self, i: int, paused: bool) -> None:
        os.killpg(self.procs[i].pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def stop_all(self) -> None:
        for i in list(self.procs):
            self.pause(i, False)
            self.kill(i)


class Run:
    """One phase: workload, observers and a nemesis against a fresh cluster."""

    def __init__(self, cluster: Cluster, session: aiohttp.ClientSession, instances: int, seed: int) -> None:
        self.cluster = cluster
        self.session = session
        self.rng = random.Random(seed)
        n = len(cluster.network.hosts)
        self.instances = [Instance(f"f-{k:03d}", 1 + k % n) for k in range(instances)]
        self.views: dict[int, list[tuple[float, set[str]]]] = {i: [] for i in range(1, n + 1)}
        self.running = True

    async def request(self, node: int, method: str, path: str, **kwargs: object) -> int:
        try:
            async with self.session.request(method, self.cluster.url(node) + path,  # type: ignore[arg-type]
                                            timeout=aiohttp.ClientTimeout(total=1.0), **kwargs) as r:
                await r.read()
                return r.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return 0

    async def client(self, inst: Instance, cancel_at: float | None) -> None:
        """Register, then renew every RENEW_S at the home node, moving to the next node when it fails."""
        n, node = len(self.cluster.network.hosts), inst.home
        body = {"instance": {"instanceId": inst.iid, "app": "FAULTS", "hostName": inst.iid, "ipAddr": "10.0.0.1",
                             "status": "UP", "leaseInfo": {"renewalIntervalInSecs": RENEW_S,
                                                           "durationInSecs": LEASE_S},
                             "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                                                "name": "MyOwn"}}}
        registered = False
        while self.running:
            if cancel_at is not None and time.monotonic() >= cancel_at:
                if await self.request(node, "DELETE", f"/eureka/apps/FAULTS/{inst.iid}") == 200:
                    inst.cancelled_at = time.monotonic()
                    return
            elif not registered:
                registered = await self.request(node, "POST", "/eureka/apps/FAULTS", json=body) == 204
                if registered:
                    inst.registered_at = inst.registered_at or time.monotonic()
                    inst.acks.append(time.monotonic())
            else:
                status = await self.request(node, "PUT", f"/eureka/apps/FAULTS/{inst.iid}")
                if status == 200:
                    inst.acks.append(time.monotonic())
                elif status == 404:
                    registered = False  # as Eureka clients do: register again
                    continue
                else:
                    node = node % n + 1
                    continue
            await asyncio.sleep(RENEW_S * self.rng.uniform(0.8, 1.0))

    async def observe(self, node: int) -> None:
        while self.running:
            try:
                async with self.session.get(self.cluster.url(node) + "/eureka/apps/FAULTS",
                                            headers={"Accept": "application/json"},
                                            timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                    doc = await r.json() if r.status == 200 else None
                seen = {i["instanceId"] for i in doc["application"]["instance"]} if doc else set()
                if doc is not None or r.status == 404:
                    self.views[node].append((time.monotonic(), seen))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
                pass
            await asyncio.sleep(OBSERVE_S)

    async def run(self, phase: str, nemesis: Callable[["Run"], Awaitable[None]], cancels: int) -> Verdict:
        started = time.monotonic()
        cancel_times = {inst.iid: started + 4 + self.rng.uniform(0, 6) for inst in self.instances[:cancels]}
        tasks = [asyncio.create_task(self.client(inst, cancel_times.get(inst.iid))) for inst in self.instances]
        tasks += [asyncio.create_task(self.observe(i)) for i in self.views]
        try:
            await asyncio.sleep(3)  # everything registered and replicated before the fault
            await nemesis(self)
            self.cluster.network.heal()
            healed = time.monotonic()
            converge_s = await self.converged(healed)
            await asyncio.sleep(1)
            evicted = [iid for i in self.cluster.procs for iid in await self.evicted(i)]
        finally:
            self.running = False
            await asyncio.gather(*tasks, return_exceptions=True)
        verdict = self.check(phase, converge_s)
        cancelled = {inst.iid for inst in self.instances if inst.cancelled_at is not None}
        verdict.false_evictions = sum(iid not in cancelled for iid in evicted)
        return verdict

    async def until_corrected(self, node: int, corrected: bool, timeout: float = 3 * REREAD_S) -> None:
        """Wait until the node's status says its clock is (or is no longer) corrected (README, Clock skew)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.session.get(self.cluster.url(node) + "/v1/status") as r:
                if (await r.json())["clock"]["corrected"] is corrected:
                    return
            await asyncio.sleep(OBSERVE_S)
        raise RuntimeError(f"node {node} never reported its clock as {'' if corrected else 'no longer '}corrected")

    async def evicted(self, node: int) -> list[str]:
        """The instances the node evicted, from its whole change history (if that no longer reaches back to the
        start, the stream begins with `resync`, and every eviction the node counted is taken as false)."""
        out: list[str] = []
        async with self.session.get(self.cluster.url(node) + "/v1/watch?app=FAULTS&since=0") as r:
            while True:
                try:
                    line = (await asyncio.wait_for(r.content.readline(), 0.5)).decode()
                except asyncio.TimeoutError:
                    return out  # the history is all sent: what would follow is live
                if line.startswith("event: resync"):
                    async with self.session.get(self.cluster.url(node) + "/v1/status") as status:
                        return ["?"] * (await status.json())["evictions"]
                if line.startswith("data: ") and (change := json.loads(line[6:]))["action"] == "evict":
                    out.append(change["instance_id"])

    async def converged(self, since: float) -> float | None:
        deadline = since + SETTLE_S * 3
        while time.monotonic() < deadline:
            last = [views[-1][1] if views else None for views in self.views.values()]
            if all(view is not None and view == last[0] for view in last) and self.views[1][-1][0] > since:
                return time.monotonic() - since
            await asyncio.sleep(OBSERVE_S)
        return None

    def check(self, phase: str, converge_s: float | None) -> Verdict:
        verdict = Verdict(phase, converged=converge_s is not None, converge_s=converge_s or 0.0)
        final = [views[-1][1] for views in self.views.values() if views]
        for inst in self.instances:
            if not inst.registered_at:
                continue
            verdict.acked += 1
            if inst.cancelled_at is None and any(inst.iid not in view for view in final):
                verdict.lost += 1
            if inst.cancelled_at is not None and (self.reappeared(inst) or any(inst.iid in view for view in final)):
                verdict.resurrected += 1
            verdict.missing += self.missing_while_renewing(inst)
            everywhere = [min((at for at, seen in views if inst.iid in seen and at >= inst.registered_at),
                              default=None) for views in self.views.values()]
            if all(at is not None for at in everywhere):
                verdict.visible_ms.append((max(everywhere) - inst.registered_at) * 1000)  # type: ignore[type-var]
        return verdict

    def missing_while_renewing(self, inst: Instance) -> int:
        """Observations of a node lacking an instance whose last acknowledged renewal was recent enough that
        its lease runs anywhere it is known (I4): no node may drop it, partitioned or not."""
        count = 0
        for node, views in self.views.items():
            grace = self.cluster.restarted_at.get(node)
            for at, seen in views:
                if at < inst.registered_at + 2 or (inst.cancelled_at is not None and at >= inst.cancelled_at - 1):
                    continue
                if grace is not None and grace <= at <= grace + SETTLE_S:
                    continue  # an empty restart is still pulling
                last = max((ack for ack in inst.acks if ack <= at), default=None)
                count += last is not None and at - last < LEASE_S - RENEW_S and inst.iid not in seen
        return count

    def reappeared(self, inst: Instance) -> bool:
        """A node listed a cancelled instance again after it had stopped listing it (I3)."""
        assert inst.cancelled_at is not None
        for views in self.views.values():
            gone = False
            for at, seen in views:
                if at <= inst.cancelled_at:
                    continue
                if inst.iid not in seen:
                    gone = True
                elif gone:
                    return True
        return False


async def partition_2_1(run: Run) -> None:
    run.cluster.network.partition([1, 2], [3])
    await asyncio.sleep(LEASE_S * 3)


async def asymmetric(run: Run) -> None:
    run.cluster.network.one_way(blocked_from=1, at=3)  # 3 hears nothing from 1; 1 hears 3
    run.cluster.network.one_way(blocked_from=2, at=3)
    await asyncio.sleep(LEASE_S * 3)


async def lossy(run: Run) -> None:
    run.cluster.network.lossy(0.3)
    await asyncio.sleep(LEASE_S * 3)


async def delay(run: Run) -> None:
    run.cluster.network.delayed(0.25, 50, 200)
    await asyncio.sleep(LEASE_S * 3)


async def skew(run: Run) -> None:
    """Node 1's clock steps 90 s ahead (past the 60 s guard) and node 2's 30 s, then both step back. Node 1 must
    say it is correcting, and stop saying so, or the nemesis did not take (and the phase fails loudly)."""
    run.cluster.skew(1, 90)
    run.cluster.skew(2, 30)
    await run.until_corrected(1, True)
    await asyncio.sleep(LEASE_S * 3)
    run.cluster.skew(1, 0)
    run.cluster.skew(2, 0)
    await run.until_corrected(1, False)
    await asyncio.sleep(LEASE_S)


async def pause(run: Run) -> None:
    run.cluster.pause(3, True)
    await asyncio.sleep(LEASE_S + 2)  # longer than the lease, while clients renew elsewhere
    run.cluster.pause(3, False)
    await asyncio.sleep(LEASE_S)


async def kill_and_restart_empty(run: Run) -> None:
    run.cluster.kill(2)
    await asyncio.sleep(LEASE_S)
    run.cluster.restart(2)
    await asyncio.sleep(LEASE_S * 2)


PHASES: dict[str, Callable[[Run], Awaitable[None]]] = {
    "partition": partition_2_1, "asymmetric": asymmetric, "loss": lossy, "delay": delay, "pause": pause,
    "kill-restart": kill_and_restart_empty, "skew": skew}


async def run_phase(network: Network, workdir: Path, phase: str, instances: int, seed: int) -> Verdict:
    cluster = Cluster(network, workdir)
    for i in range(1, len(network.hosts) + 1):
        cluster.start(i)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, cluster)
            return await Run(cluster, session, instances, seed).run(phase, PHASES[phase], cancels=instances // 6)
    finally:
        cluster.stop_all()
        network.heal()


async def wait_ready(session: aiohttp.ClientSession, cluster: Cluster) -> None:
    deadline = time.monotonic() + 30
    for i in cluster.procs:
        while True:
            try:
                async with session.get(cluster.url(i) + "/eureka/apps", timeout=aiohttp.ClientTimeout(total=1)) as r:
                    if r.status == 200:
                        break
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {i} did not start (see its log in {cluster.workdir})")
            await asyncio.sleep(0.2)


def table(verdicts: list[Verdict]) -> str:
    lines = [f"{'phase':<14} {'acked':>5} {'lost':>4} {'resurr':>6} {'false_ev':>8} {'missing':>7} {'converged':>9} "
             f"{'vis_p50_ms':>10} {'vis_max_ms':>10}  result"]
    for v in verdicts:
        p50 = f"{statistics.median(v.visible_ms):.0f}" if v.visible_ms else "-"
        top = f"{max(v.visible_ms):.0f}" if v.visible_ms else "-"
        conv = f"{v.converge_s:.1f}s" if v.converged else "NO"
        lines.append(f"{v.phase:<14} {v.acked:>5} {v.lost:>4} {v.resurrected:>6} {v.false_evictions:>8} {v.missing:>7} "
                     f"{conv:>9} {p50:>10} {top:>10}  {'ok' if v.ok else 'FAIL'}")
    return "\n".join(lines)


async def main(phases: list[str], instances: int, rounds: int) -> int:
    network = Network(3)
    network.create()
    workdir = Path(tempfile.mkdtemp(prefix="apreg-faults-"))
    verdicts = []
    try:
        for round_no in range(rounds):
            for phase in phases:
                print(f"round {round_no + 1}: {phase}", file=sys.stderr, flush=True)
                verdicts.append(await run_phase(network, workdir, phase, instances, seed=round_no))
    finally:
        network.destroy()
    print(table(verdicts))
    print(f"node logs: {workdir}")
    return 0 if all(v.ok for v in verdicts) else 1
