"""The migration drill (README, "Joining a Eureka cluster"): a cluster of 3 Spring Cloud Eureka servers with 300
instances registered and heartbeating (drill_load.py), turned into 3 apreg nodes one node at a time while clients
keep reading, as the README's procedure says:

1. drain the Java node (no operator change goes to it; its clients keep heartbeating there) until every change it
   acknowledged shows at every node, then stop it (a Java node drops the replication it has not sent yet);
2. at every apreg node already running, move its address from `eureka-peers` to `peers` in the config file and
   send SIGHUP;
3. start apreg on the same address, with the apreg nodes as `peers` and the remaining Java nodes as
   `eureka-peers`: it opens its port once it holds the registry (pulled from an apreg peer, or from a Java peer's
   `GET apps` while it has none), so no client reads it empty.

The Java nodes and clients are never reconfigured: their peer lists and service URLs keep the same addresses.
After each step, two leases of heartbeats must cross the two protocols without any eviction. Throughout, no
client may read fewer than 300 UP or miss an acknowledged change beyond the documented bound, and no write may be
refused; at the end every node shows every acknowledged change.
"""
from __future__ import annotations

import signal
import sys
import time

from drill_load import APP, LEASE_S, STALE_BOUND_S, FleetLoad
from http_json import get_json, request
from mixed import java_node
from procs import Proc, Procs, free_port
from spring_apps import SpringApp
from waits import check, until

FLEET = 300
IN_FLIGHT_S = 0.3  # a change sent to a node just before it was drained is acknowledged by then
DRAIN_TIMEOUT_S = 10.0
SETTLE_S = 2 * LEASE_S  # the Java cluster, freshly started, must keep the whole fleet this long before the drill
HOLD_S = 2 * LEASE_S
READY_TIMEOUT_S = 30.0


class Drill:
    def __init__(self, procs: Procs) -> None:
        self.procs = procs
        self.ports = [free_port() for _ in range(3)]
        self.java: dict[int, SpringApp] = {}
        self.apreg: dict[int, Proc] = {}
        self.converted: set[int] = set()  # addresses served by apreg now (or about to be)

    def url(self, k: int) -> str:
        return f"http://127.0.0.1:{self.ports[k]}"

    def eureka(self, k: int) -> str:
        return f"{self.url(k)}/eureka/"

    def start_java(self) -> None:
        for k, port in enumerate(self.ports):
            self.java[k] = java_node(self.procs, f"eureka-drill-{k}", port,
                                     [self.eureka(j) for j in range(3) if j != k],
                                     **{"eureka.server.use-read-only-response-cache": "false"})
        for app in self.java.values():
            app.wait_ready("/eureka/apps")

    def _config(self, k: int) -> str:
        """Node k's config file: the other apreg nodes as apreg peers, the Java ones as Eureka peers."""
        path = self.procs.log_dir / f"apreg-drill-{k}.toml"
        peers = [f'"{self.url(j)}"' for j in sorted(self.converted) if j != k]
        eureka = [f'"{self.eureka(j)}"' for j in sorted(self.java) if j != k]
        path.write_text(f"peers = [{', '.join(peers)}]\neureka-peers = [{', '.join(eureka)}]\n")
        return str(path)

    def replace(self, k: int, load: FleetLoad) -> tuple[float, float]:
        """Node k from Java to apreg; returns (seconds the step took, seconds nothing listened at k)."""
        started = time.monotonic()
        load.drained.add(k)
        time.sleep(IN_FLIGHT_S)
        acknowledged = load.latest_gens()
        until(f"node {k} drained (its changes at every node)", lambda: all(
            self.shows(node, acknowledged) for node in range(3)), DRAIN_TIMEOUT_S, interval=0.1)
        self.java.pop(k).proc.stop()  # type: ignore[union-attr]
        stopped = time.monotonic()
        self.converted.add(k)
        for j, proc in self.apreg.items():
            self._config(j)
            proc.send(signal.SIGHUP)
        self.apreg[k] = self.procs.start(f"apreg-drill-{k}", [
            sys.executable, "-m", "apreg", "serve", "--port", str(self.ports[k]), "--node-id", f"drill-{k}",
            "--config", self._config(k), "--eviction-interval", "1", "--no-self-preservation"])
        until(f"apreg at node {k} ready", lambda: request("GET", f"{self.url(k)}/readyz")[0] == 200, READY_TIMEOUT_S)
        down = time.monotonic() - stopped
        load.drained.discard(k)
        return time.monotonic() - started, down

    def shows(self, k: int, gens: dict[str, int]) -> bool:
        listed = self.listed(k)
        return all(listed.get(iid, ("", -1))[1] >= gen for iid, gen in gens.items())

    def settle(self) -> None:
        """Until every node has listed the whole fleet UP for SETTLE_S without a break: JVMs just started on 2
        busy cores replicate slowly at first (a heartbeat can overtake its registration and expire it)."""
        deadline = time.monotonic() + 90
        since = time.monotonic()
        while time.monotonic() - since < SETTLE_S:
            check(time.monotonic() < deadline, "the Java cluster never kept the whole fleet for two leases")
            if not all(_up(self, node) == FLEET for node in range(3)):
                since = time.monotonic()
            time.sleep(0.5)

    def listed(self, k: int) -> dict[str, tuple[str, int]]:
        doc = get_json(f"{self.eureka(k)}apps/{APP}") or {"application": {"instance": []}}
        return {i["instanceId"]: (i["status"], int(i["metadata"].get("gen", 0)))
                for i in doc["application"]["instance"]}


def migration_drill(procs: Procs) -> str:
    drill = Drill(procs)
    begun = time.monotonic()
    drill.start_java()
    load = FleetLoad([drill.eureka(k) for k in range(3)], FLEET)
    load.start()
    steps = []
    try:
        drill.settle()
        logged = {p.name: len(p.log()) for p in procs.started if p.name.startswith("eureka-drill")}
        load.begin_checking()
        for k in range(3):
            took, down = drill.replace(k, load)
            time.sleep(HOLD_S)  # heartbeats cross the two protocols for two leases
            for node in range(3):
                up = _up(drill, node)
                check(up == FLEET, f"after step {k + 1}, node {node} lists {up} of {FLEET} UP")
            steps.append(f"node {k}: {took:.1f} s (down {down:.1f} s)")
            _no_violations(load, f"step {k + 1}")
    finally:
        load.stop()
    time.sleep(STALE_BOUND_S)
    latest = load.latest_gens()
    for node in range(3):
        listed = drill.listed(node)
        lost = [f"{iid} gen {listed.get(iid, ('', -1))[1]} < {gen}" for iid, gen in latest.items()
                if listed.get(iid, ("", -1))[1] < gen]  # a change cut off by the stop may show without its ack
        check(not lost, f"node {node} lost acknowledged changes of {len(lost)} instances: {lost[:3]}")
        status = get_json(f"{drill.url(node)}/v1/status")
        check(status["eureka_peers"] == [] and len(status["peers"]) == 2, f"node {node} is not all-apreg: {status}")
        check(status["evictions"] == 0, f"node {node} evicted {status['evictions']} instances")
    expired = [p.name for p in procs.started if p.name in logged and "expired lease for DRILL" in p.log()[logged[p.name]:]]
    check(not expired, f"Java nodes expired leases: {expired}")
    s = load.stats
    return (f"3 Java -> 3 apreg with {FLEET} instances in {time.monotonic() - begun:.0f} s; steps: "
            f"{'; '.join(steps)}; {s.reads} reads never fewer than {FLEET} UP nor staler than {STALE_BOUND_S:g} s "
            f"(worst {s.worst_stale_s:.2f} s), {s.writes} changes none lost, {s.heartbeats} heartbeats, "
            f"{s.reregistrations} re-registrations, {s.failovers} fail-overs, no eviction")


def _up(drill: Drill, node: int) -> int:
    return sum(1 for status, _ in drill.listed(node).values() if status == "UP")


def _no_violations(load: FleetLoad, when: str) -> None:
    found = load.stats.violations
    first = found[0] if found else None
    check(first is None, f"{when}: {len(found)} violations ({', '.join(sorted({v.kind for v in found}))}), first "
                         f"at {first and first.at} s at {first and first.node}: {first and first.detail}")
