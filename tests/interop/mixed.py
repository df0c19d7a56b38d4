"""Mixed clusters of Spring Cloud Eureka servers and apreg nodes, each node listing every other as a peer (README,
"Joining a Eureka cluster"): `mixed` is 1 Java + 2 apreg, `reverse` 2 Java + 1 apreg. A registration, status
override, metadata change and cancel at a Java node must show at every other node within 2 s, and the same at an
apreg node; an instance that heartbeats only to an apreg node stays alive at every Java node for several lease
durations, and one that heartbeats only to a Java node at every apreg node; every Java dashboard lists every apreg
node as an available replica.

Java nodes list each other as 127.0.0.1 and know their own URL (`eureka.server.my-url`: Eureka otherwise leaves
out every peer URL whose host is its own); they list the apreg nodes as `localhost`, which the apreg nodes
advertise (--eureka-app registers them under it, and a Java node calls a peer available only if an instance of
its own app has the peer's host name). Java nodes evict every second with self-preservation off, so a heartbeat
that did not reach one would show as an eviction.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from http_json import get_json, request
from procs import Procs, free_port
from spring_apps import SpringApp
from waits import check, until

MIXED_TIMEOUT_S = 2.0  # the bound for a write at one side to show at the other
LEASE_S = 3  # of the instances that heartbeat only to one side: both sides evict every second
JAVA_APP = "eureka-server"
START_TIMEOUT_S = 30.0


def java_node(procs: Procs, name: str, port: int, peers: list[str], **properties: str) -> SpringApp:
    """A Spring Cloud Eureka server at 127.0.0.1:`port` replicating with `peers` (service URLs), evicting every
    second, self-preservation off, peer reads timing out after 5 s; started, not yet waited for."""
    app = SpringApp(procs, "eureka-server", name, port, {
        "eureka.client.service-url.defaultZone": ",".join(peers),
        "eureka.server.my-url": f"http://127.0.0.1:{port}/eureka/",
        "eureka.server.eviction-interval-timer-in-ms": "1000",
        "eureka.server.enable-self-preservation": "false",
        # Eureka's default 200 ms: a JVM still warming up on 2 busy cores misses it for batches of registrations,
        # which are then retried one by one for many seconds (Java to Java as much as to apreg)
        "eureka.server.peer-node-read-timeout-ms": "5000", **properties})
    app.start()
    return app


class Mixed:
    def __init__(self, procs: Procs, javas: int, apregs: int) -> None:
        self.procs = procs
        self.java_ports = [free_port() for _ in range(javas)]
        self.apreg_ports = [free_port() for _ in range(apregs)]
        self.java_apps: list[SpringApp] = []

    @property
    def javas(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/eureka/" for port in self.java_ports]

    @property
    def apregs(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/eureka/" for port in self.apreg_ports]

    def start(self) -> None:
        """The Java nodes first, then the apreg nodes join them (each starts from a Java node's registry)."""
        for k, port in enumerate(self.java_ports):
            peers = [url for url in self.javas if f":{port}/" not in url]
            peers += [f"http://localhost:{p}/eureka/" for p in self.apreg_ports]
            self.java_apps.append(java_node(self.procs, f"eureka-mixed-{k}", port, peers))
        for app in self.java_apps:
            app.wait_ready("/eureka/apps")
        for k, port in enumerate(self.apreg_ports):
            others = [f"http://127.0.0.1:{p}" for p in self.apreg_ports if p != port]
            self.procs.start(f"apreg-mixed-{k}", [
                sys.executable, "-m", "apreg", "serve", "--port", str(port), "--node-id", f"mixed-{k}",
                *(["--peers", ",".join(others)] if others else []), "--eureka-peers", ",".join(self.javas),
                "--eureka-app", JAVA_APP, "--advertise-url", f"http://localhost:{port}", "--eviction-interval", "1"])
        for url in self.apregs:
            until(f"{url} serving", lambda url=url: request("GET", url.removesuffix("eureka/") + "healthz")[0] == 200,
                  START_TIMEOUT_S)

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


def _shows(m: Mixed, bases: list[str], iid: str, what: str, holds: Callable[[Any], bool]) -> float:
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


def _beats_only_at(m: Mixed, origin: str, others: list[str], iid: str) -> None:
    """Heartbeats only to `origin` for four lease durations: every node in `others`, evicting every second, must
    keep the instance all along, so every heartbeat reached it."""
    check(request("POST", f"{origin}apps/MIXED", body=body(iid, LEASE_S))[0] == 204, f"register {iid}")
    _shows(m, others, iid, f"{iid} registered", lambda i: i is not None)
    deadline = time.monotonic() + 4 * LEASE_S
    while time.monotonic() < deadline:
        check(request("PUT", f"{origin}apps/MIXED/{iid}")[0] == 200, f"heartbeat at {origin}")
        for base in others:
            check(m.instance(base, iid) is not None, f"{base} dropped {iid}, which heartbeats only at {origin}")
        time.sleep(1)
    check(request("DELETE", f"{origin}apps/MIXED/{iid}")[0] == 200, f"cancel {iid}")


def _available_replicas(m: Mixed) -> None:
    for java in m.javas:
        html = request("GET", java.removesuffix("eureka/"))[1].decode()
        available = html.split("available-replicas")[-1].split("</tr>")[0]
        check(all(f"localhost:{port}" in available for port in m.apreg_ports),
              f"{java} dashboard's available replicas: {available.strip()[:200]}")


def mixed_cluster(procs: Procs, javas: int, apregs: int) -> str:
    m = Mixed(procs, javas, apregs)
    m.start()
    java, apreg = m.javas[0], m.apregs[0]
    from_java = _round_trip(m, java, [*m.javas[1:], *m.apregs], "from-java")
    from_apreg = _round_trip(m, apreg, [*m.javas, *m.apregs[1:]], "from-apreg")
    _beats_only_at(m, apreg, m.javas, "beats-at-apreg")
    _beats_only_at(m, java, m.apregs, "beats-at-java")
    _available_replicas(m)
    return (f"{javas} Java + {apregs} apreg: writes at Java showed everywhere within {from_java:.1f} s, at apreg "
            f"within {from_apreg:.1f} s; {4 * LEASE_S} s of heartbeats only to apreg kept the instance at every "
            f"Java node, and only to Java at every apreg node (lease {LEASE_S} s); Java lists every apreg node as "
            "an available replica")
