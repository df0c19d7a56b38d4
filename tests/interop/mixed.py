"""A mixed cluster: one Spring Cloud Eureka server and two apreg nodes, each listing the others as Eureka peers
(README, "Joining a Eureka cluster"). Writes at the Java node must show at both apreg nodes and writes at an apreg
node at the Java node, within 2 s; an instance that heartbeats only to an apreg node stays alive at the Java node
for several lease durations; the Java dashboard lists both apreg nodes as available replicas.

The Java node lists the apreg nodes as `localhost` (it calls itself 127.0.0.1, and Eureka leaves out any peer
URL whose host is its own), and the apreg nodes advertise that name (--eureka-app registers them under it).
"""
from __future__ import annotations

import sys
import time

from http_json import get_json, request
from procs import Procs, free_port
from spring_apps import SpringApp
from waits import check, until

MIXED_TIMEOUT_S = 2.0  # the bound for a write at one side to show at the other
LEASE_S = 3  # of the instance that heartbeats only to apreg: the Java node evicts every second
JAVA_APP = "eureka-server"


class Mixed:
    def __init__(self, procs: Procs) -> None:
        self.procs = procs
        self.java_port = free_port()
        self.ports = {"x": free_port(), "y": free_port()}

    def apreg(self, node: str) -> str:
        return f"http://127.0.0.1:{self.ports[node]}/eureka/"

    @property
    def java(self) -> str:
        return f"http://127.0.0.1:{self.java_port}/eureka/"

    def start(self) -> None:
        for node, port in self.ports.items():
            other = self.ports["y" if node == "x" else "x"]
            self.procs.start(f"apreg-mixed-{node}", [
                sys.executable, "-m", "apreg", "serve", "--port", str(port), "--node-id", f"mixed-{node}",
                "--peers", f"http://127.0.0.1:{other}", "--eureka-peers", self.java, "--eureka-app", JAVA_APP,
                "--advertise-url", f"http://localhost:{port}", "--eviction-interval", "1"])
        java = SpringApp(self.procs, "eureka-server", "eureka-mixed", self.java_port, {
            "eureka.client.service-url.defaultZone": ",".join(f"http://localhost:{p}/eureka/"
                                                              for p in self.ports.values()),
            "eureka.server.eviction-interval-timer-in-ms": "1000",
            "eureka.server.enable-self-preservation": "false"})  # so a missing heartbeat would show as eviction
        java.start()
        java.wait_ready("/eureka/apps")
        self.java_app = java

    def instance(self, base: str, iid: str) -> dict | None:
        doc = get_json(f"{base}apps/MIXED/{iid}")  # single instances: Eureka reads them past its response cache
        return None if doc is None else doc["instance"]


def body(iid: str, lease_s: int = 90) -> dict:
    return {"instance": {"instanceId": iid, "hostName": iid, "app": "MIXED", "ipAddr": "10.0.0.7", "status": "UP",
                         "port": {"$": 8080, "@enabled": "true"}, "vipAddress": "mixed",
                         "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                                            "name": "MyOwn"},
                         "leaseInfo": {"renewalIntervalInSecs": 1, "durationInSecs": lease_s},
                         "metadata": {"zone": "z1"}}}


def _shows(m: Mixed, bases: list[str], iid: str, what: str, holds) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    for base in bases:
        until(f"{what} at {base}", lambda base=base: holds(m.instance(base, iid)), MIXED_TIMEOUT_S)
    return time.monotonic() - started


def _round_trip(m: Mixed, origin: str, others: list[str], iid: str) -> float:
    """Register, override the status, change metadata, cancel at `origin`; each must show at `others`."""
    slowest = 0.0
    check(request("POST", f"{origin}apps/MIXED", body=body(iid))[0] == 204, f"register {iid} at {origin}")
    slowest = max(slowest, _shows(m, others, iid, f"{iid} registered", lambda i: i is not None))
    check(request("PUT", f"{origin}apps/MIXED/{iid}/status?value=OUT_OF_SERVICE")[0] == 200, "status override")
    slowest = max(slowest, _shows(m, others, iid, f"{iid} OUT_OF_SERVICE",
                                  lambda i: i is not None and i["status"] == "OUT_OF_SERVICE"))
    check(request("PUT", f"{origin}apps/MIXED/{iid}/metadata?zone=z9")[0] == 200, "metadata change")
    slowest = max(slowest, _shows(m, others, iid, f"{iid} metadata",
                                  lambda i: i is not None and i["metadata"].get("zone") == "z9"))
    check(request("DELETE", f"{origin}apps/MIXED/{iid}")[0] == 200, "cancel")
    return max(slowest, _shows(m, others, iid, f"{iid} cancelled", lambda i: i is None))


def mixed_cluster(procs: Procs) -> str:
    m = Mixed(procs)
    m.start()
    x, y = m.apreg("x"), m.apreg("y")
    from_java = _round_trip(m, m.java, [x, y], "from-java")
    from_apreg = _round_trip(m, x, [m.java, y], "from-apreg")
    # Heartbeats only to apreg node x, for four lease durations: the Java node (evicting every second, no
    # self-preservation) must keep the instance, so every heartbeat reached it.
    check(request("POST", f"{x}apps/MIXED", body=body("beats", LEASE_S))[0] == 204, "register beats at x")
    until("beats at the Java node", lambda: m.instance(m.java, "beats") is not None, MIXED_TIMEOUT_S)
    deadline = time.monotonic() + 4 * LEASE_S
    while time.monotonic() < deadline:
        check(request("PUT", f"{x}apps/MIXED/beats")[0] == 200, "heartbeat at x")
        check(m.instance(m.java, "beats") is not None, "the Java node dropped an instance heartbeating at apreg")
        time.sleep(1)
    html = request("GET", m.java.removesuffix("eureka/"))[1].decode()
    available = html.split("available-replicas")[-1].split("</tr>")[0]
    check(all(f"localhost:{port}" in available for port in m.ports.values()),
          f"the Java dashboard's available replicas: {available.strip()[:200]}")
    return (f"1 Java + 2 apreg: writes at Java showed at both apreg nodes within {from_java:.1f} s, at apreg within "
            f"{from_apreg:.1f} s at Java and the other apreg node; {4 * LEASE_S} s of heartbeats only to apreg kept "
            f"the instance at Java (lease {LEASE_S} s); Java lists both apreg nodes as available replicas")
