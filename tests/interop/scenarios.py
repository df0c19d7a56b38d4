"""The interop scenarios. Each asserts on what the Spring apps report and on apreg's own state, and returns a
short account of what it saw. They run in this file's order, which builds one story: later ones reuse the apps
earlier ones started, and `delta` reads the consumer's log of the whole run, so it comes last."""
from __future__ import annotations

import time
from typing import Callable

import client_log as cl
from migrate import migration_drill
from mixed import mixed_cluster
from http_json import get_json
from world import FETCH_INTERVAL_S, PROPAGATION_TIMEOUT_S, World
from waits import Failed, check, until

APP = "provider"
KILL_LEASE_S = 3  # provider-3's lease: it is the one killed with SIGKILL
KILL_RENEWAL_S = 1
SLACK_S = 1.0  # polling every 0.25 s and scheduling on 2 busy cores, on top of lease + eviction interval


def _everywhere(w: World, what: str, holds: Callable[[str], object],
                timeout: float = PROPAGATION_TIMEOUT_S) -> None:
    """Wait until `holds(node)` is true at every running apreg node."""
    for node in w.cluster.up():
        until(f"{what} at node {node}", lambda node=node: holds(node), timeout)


def _status(w: World, node: str, instance_id: str) -> tuple[str, str] | None:
    """(status, override) of an instance at a node, or None if the node does not list it."""
    info = w.cluster.instance(node, APP, instance_id)
    if info is None:
        return None
    return info["status"], info.get("overriddenstatus", info.get("overriddenStatus", ""))


def _has_provider_metadata(metadata: dict[str, str]) -> bool:
    """The zone and the key the provider's application.properties set."""
    return metadata.get("zone") == "zone-a" and metadata.get("team") == "interop"


def register(w: World) -> str:
    p1 = w.provider("provider-1")
    pid = w.instance_id("provider-1")

    def registered(node: str) -> bool:
        info = w.cluster.instance(node, APP, pid)
        return bool(info) and info["status"] == "UP" and _has_provider_metadata(info["metadata"])
    _everywhere(w, f"{pid} UP with zone-a and team=interop", registered)
    registrations = cl.statuses(p1.log(), cl.REGISTERED)
    check(registrations[:1] == [204], f"provider-1's registrations answered {registrations}")

    w.consumer()
    meta = until("consumer's DiscoveryClient listing provider-1", lambda: w.seen_metadata(pid), PROPAGATION_TIMEOUT_S)
    check(_has_provider_metadata(meta), f"consumer sees metadata {meta}")
    calls = until("@LoadBalanced calls answered by provider-1", lambda: _calls_reaching(w, {pid}),
                  PROPAGATION_TIMEOUT_S)
    return (f"{pid} registered at A, UP with its metadata at A, B, C; consumer (B, C) lists it and reached it "
            f"{len(calls)}/{len(calls)}")


def _calls_reaching(w: World, ids: set[str]) -> list[str] | None:
    """The consumer's load-balanced calls if every one succeeded and together they reached exactly `ids`."""
    calls = w.called()
    return calls if set(calls) == ids else None


def status_override(w: World) -> str:
    pid1, pid2 = _two_providers(w)
    status_path = f"apps/PROVIDER/{pid1}/status"
    check(w.cluster.write("PUT", "c", f"{status_path}?value=OUT_OF_SERVICE") == 200, "PUT status at C refused")
    _everywhere(w, f"{pid1} OUT_OF_SERVICE",
                lambda node: _status(w, node, pid1) == ("OUT_OF_SERVICE", "OUT_OF_SERVICE"))
    start = time.monotonic()
    until("consumer routing only to provider-2", lambda: pid1 not in w.seen() and _calls_reaching(w, {pid2}),
          PROPAGATION_TIMEOUT_S)
    stopped = time.monotonic() - start
    # value=UP keeps the instance UP; without it Eureka sets UNKNOWN and the next heartbeat gets 404 (a re-register).
    check(w.cluster.write("DELETE", "c", f"{status_path}?value=UP") == 200, "DELETE status at C refused")
    _everywhere(w, f"{pid1} UP without override",
                lambda node: _status(w, node, pid1) in {("UP", "UNKNOWN"), ("UP", "")})
    start = time.monotonic()
    until("consumer routing to both providers again", lambda: pid1 in w.seen() and _calls_reaching(w, {pid1, pid2}),
          PROPAGATION_TIMEOUT_S)
    return (f"OUT_OF_SERVICE at C: A, B, C agree; consumer stopped routing to it in {stopped:.1f} s and routed again "
            f"{time.monotonic() - start:.1f} s after DELETE (fetch every {FETCH_INTERVAL_S:g} s)")


def _two_providers(w: World) -> tuple[str, str]:
    """provider-1 and provider-2 running, both listed and both reached by the consumer."""
    w.provider("provider-1")
    w.provider("provider-2")
    pid1, pid2 = w.instance_id("provider-1"), w.instance_id("provider-2")
    until("consumer routing to provider-1 and provider-2", lambda: _calls_reaching(w, {pid1, pid2}),
          PROPAGATION_TIMEOUT_S)
    return pid1, pid2


def heartbeats(w: World) -> str:
    p1 = w.provider("provider-1")
    before = {node: w.cluster.status(node)["renewals"] for node in w.cluster.up()}
    beats = len(cl.statuses(p1.log(), cl.HEARTBEAT))
    until("3 more heartbeats in provider-1's log", lambda: len(cl.statuses(p1.log(), cl.HEARTBEAT)) >= beats + 3, 30.0)
    for name, app in w.providers.items():
        log = app.all_logs()
        beat_statuses = set(cl.statuses(log, cl.HEARTBEAT))
        check(beat_statuses <= {200}, f"{name}'s heartbeats answered {sorted(beat_statuses)}")
        check(cl.count(log, cl.REREGISTER) == 0, f"{name} re-registered {cl.count(log, cl.REREGISTER)} times")
        registrations = cl.statuses(log, cl.REGISTERED)
        check(set(registrations) <= {204}, f"{name}'s registrations answered {registrations}")
    after = {node: w.cluster.status(node)["renewals"] for node in before}
    check(after["a"]["local"] >= before["a"]["local"] + 3, f"node A counted renewals {before['a']} -> {after['a']}")
    for node in set(before) - {"a"}:
        check(after[node]["replicated"] > before[node]["replicated"], f"node {node} got no replicated renewal")
    return (f"{len(cl.statuses(p1.log(), cl.HEARTBEAT))} heartbeats of provider-1, all 200, no re-registration in any "
            f"provider's log; A took {after['a']['local'] - before['a']['local']}, B and C got them replicated")


def restart_same_id(w: World) -> str:
    pid1, pid2 = _two_providers(w)
    p1 = w.providers["provider-1"]
    assert p1.proc is not None
    p1.proc.kill()
    start = time.monotonic()
    w.provider("provider-1")
    until("restarted provider-1 registered", lambda: cl.statuses(p1.log(), cl.REGISTERED)[:1] == [204], 30.0)
    restarted = time.monotonic() - start
    check(restarted < 90, f"restart took {restarted:.0f} s, beyond the 90 s lease")
    check(w.instance_id("provider-1") == pid1, f"restarted under {w.instance_id('provider-1')}, not {pid1}")
    until("consumer reaching the restarted provider-1", lambda: _calls_reaching(w, {pid1, pid2}),
          PROPAGATION_TIMEOUT_S)
    # Several fetches, each of which would show a duplicate: the consumer has taken the re-registration by now.
    deadline = time.monotonic() + 3 * FETCH_INTERVAL_S
    while time.monotonic() < deadline:
        seen = w.seen()
        check(sorted(seen) == sorted([pid1, pid2]), f"consumer lists {seen}")
        for node in w.cluster.up():
            ids = [info["instanceId"] for info in w.cluster.instances(node, APP)]
            check(sorted(ids) == sorted([pid1, pid2]), f"node {node} lists {ids}")
        time.sleep(0.5)
    return (f"killed and restarted in {restarted:.0f} s under {pid1}: listed once at A, B, C and by the consumer, "
            "beside provider-2")


def shutdown(w: World) -> str:
    pid1, pid2 = _two_providers(w)
    p2 = w.providers["provider-2"]
    assert p2.proc is not None
    p2.proc.stop()
    deregistrations = cl.statuses(p2.log(), cl.DEREGISTERED)
    check(deregistrations == [200], f"provider-2's deregistrations answered {deregistrations}")
    _everywhere(w, "provider-2 gone", lambda node: w.cluster.instance(node, APP, pid2) is None, 5.0)
    until("consumer routing only to provider-1", lambda: pid2 not in w.seen() and _calls_reaching(w, {pid1}),
          PROPAGATION_TIMEOUT_S)
    return "SIGTERM: provider-2 deregistered (200), gone at A, B, C and from the consumer"


def kill(w: World) -> str:
    w.provider("provider-1")
    p3 = w.provider("provider-3", **{"eureka.instance.lease-expiration-duration-in-seconds": str(KILL_LEASE_S),
                                     "eureka.instance.lease-renewal-interval-in-seconds": str(KILL_RENEWAL_S)})
    pid3 = w.instance_id("provider-3")
    _everywhere(w, "provider-3 listed", lambda node: w.cluster.instance(node, APP, pid3) is not None)
    until("consumer listing provider-3", lambda: pid3 in w.seen(), PROPAGATION_TIMEOUT_S)
    bound = KILL_LEASE_S + w.cluster.eviction_interval + SLACK_S
    assert p3.proc is not None
    p3.proc.kill()
    start = time.monotonic()
    _everywhere(w, "provider-3 evicted", lambda node: w.cluster.instance(node, APP, pid3) is None, bound + 10)
    gone = time.monotonic() - start
    check(gone <= bound, f"provider-3 gone everywhere {gone:.1f} s after SIGKILL, beyond {bound:g} s")
    until("consumer no longer listing provider-3", lambda: pid3 not in w.seen(), PROPAGATION_TIMEOUT_S)
    evictions = sum(w.cluster.status(node)["evictions"] for node in w.cluster.up())
    check(evictions >= len(w.cluster.up()), f"nodes counted {evictions} evictions")
    return (f"SIGKILL: provider-3 (lease {KILL_LEASE_S} s) evicted at A, B, C {gone:.1f} s after (bound "
            f"{bound:g} s = lease + eviction interval + {SLACK_S:g} s polling), then gone from the consumer")


def failover(w: World) -> str:
    w.provider("provider-1")
    pid1 = w.instance_id("provider-1")
    w.consumer()

    def local(node: str) -> int:
        """Renewals the node took from clients itself: at B and C, only the consumer's."""
        return w.cluster.status(node)["renewals"]["local"]
    b0, c0 = local("b"), local("c")
    time.sleep(3 * FETCH_INTERVAL_S)
    b1, c1 = local("b"), local("c")
    check(b1 > b0 and c1 == c0, f"consumer's heartbeats not at B only before (B {b0}->{b1}, C {c0}->{c1})")
    w.cluster.stop_node("b")
    c1 = local("c")
    until("consumer's heartbeats reaching node C", lambda: local("c") > c1, PROPAGATION_TIMEOUT_S)
    check(w.cluster.write("PUT", "a", f"apps/PROVIDER/{pid1}/metadata?phase=after-b") == 200,
          "metadata update at A refused")
    until("consumer seeing the metadata written after B stopped",
          lambda: (w.seen_metadata(pid1) or {}).get("phase") == "after-b", PROPAGATION_TIMEOUT_S)
    calls, running = w.called(), w.running_ids()
    check(set(calls) == running, f"calls after B stopped reached {calls}, not every one of {sorted(running)}")
    consumers = w.cluster.instances("c", "consumer")
    check([info["status"] for info in consumers] == ["UP"], f"node C lists the consumer as {consumers}")
    return ("B stopped: consumer's heartbeats moved from B to C, it fetched a change made at A through C and still "
            "routes")


PROBE_APP, PROBE_ID = "DELTA-PROBE", "delta-probe-1"
PROBE = {"instance": {"instanceId": PROBE_ID, "hostName": "127.0.0.1", "app": PROBE_APP, "ipAddr": "127.0.0.1",
                      "status": "UP", "port": {"$": 9, "@enabled": "true"}, "vipAddress": PROBE_APP.lower(),
                      "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                                         "name": "MyOwn"}}}


def delta(w: World) -> str:
    """A new app's instance is registered, taken out of service and cancelled through apreg's REST API (at
    different nodes), so every delta action reaches the consumer for an app its first fetch never had; then the
    consumer's log of the whole run must show deltas only."""
    consumer = w.consumer()
    first, last = w.cluster.up()[0], w.cluster.up()[-1]
    try:
        _probe(w, first, last)
    except Failed as exc:  # a client stuck reconciling misses the probe's steps; its log says why first
        raise Failed(_log_problem(consumer.all_logs()) or str(exc)) from exc
    log = consumer.all_logs()
    problem = _log_problem(log)
    check(problem is None, str(problem))
    for node, proc in w.cluster.nodes.items():  # what apreg's codec refused, it logs (apreg/server/errors.py)
        refused = [line for line in proc.log().splitlines() if "apreg.http: rejected" in line]
        check(not refused, f"node {node} refused {len(refused)} requests, e.g. {refused[:1]}")
    until(f"consumer's apps hashcode matching node {last}'s",
          lambda: cl.last_hashcode(consumer.all_logs()) == w.cluster.apps_hashcode(last), PROPAGATION_TIMEOUT_S)
    client = cl.last_hashcode(consumer.all_logs())
    return (f"{cl.count(log, cl.DELTA)} delta fetches, the probe's ADDED, MODIFIED, DELETED among them; one full "
            f"fetch (at start), no hashcode mismatch, no request refused by apreg; client hashcode {client} = "
            f"node {last}'s")


def _probe(w: World, first: str, last: str) -> None:
    """Register the probe at `first`, take it out of service and cancel it at `last`, each seen by the consumer."""
    service = PROBE_APP.lower()
    check(w.cluster.write("POST", first, f"apps/{PROBE_APP}", PROBE) == 204, f"register at node {first} refused")
    until("consumer listing the probe", lambda: PROBE_ID in w.seen(service), PROPAGATION_TIMEOUT_S)
    check(w.cluster.write("PUT", last, f"apps/{PROBE_APP}/{PROBE_ID}/status?value=OUT_OF_SERVICE") == 200,
          f"PUT status at node {last} refused")
    until("consumer dropping the out-of-service probe", lambda: PROBE_ID not in w.seen(service), PROPAGATION_TIMEOUT_S)
    check(w.cluster.write("DELETE", last, f"apps/{PROBE_APP}/{PROBE_ID}") == 200, f"cancel at node {last} refused")
    for action in cl.DELTA_ACTIONS:
        until(f"consumer's log: '{action}{PROBE_ID}'", lambda: action + PROBE_ID in w.consumer().all_logs(),
              PROPAGATION_TIMEOUT_S)


def _log_problem(log: str) -> str | None:
    """The first sign in the consumer's log that a delta did not reconcile, or None."""
    for needle in (cl.MISMATCH, cl.DELTA_REFUSED, cl.REFRESH_FAILED):
        if needle in log:
            return f"consumer's log: {cl.count(log, needle)}x '{needle}'"
    if cl.count(log, cl.FULL_FETCH) != 1:
        return f"consumer's log: {cl.count(log, cl.FULL_FETCH)} full fetches, not 1 at start"
    return None


def eureka_server(w: World) -> str:
    """Smoke: the Eureka server of the build starts and answers; its registry document has apreg's shape."""
    theirs = w.eureka_server().get("/eureka/apps")["applications"]
    ours = get_json(w.cluster.eureka(w.cluster.up()[-1]) + "apps")["applications"]
    check(set(theirs) - {"application"} == set(ours) - {"application"},
          f"GET apps keys: Eureka {sorted(theirs)}, apreg {sorted(ours)}")
    return f"Spring Cloud Eureka server answers GET /eureka/apps with the keys apreg gives: {sorted(theirs)}"


SCENARIOS: dict[str, Callable[[World], str]] = {
    "register": register,
    "status": status_override,
    "heartbeats": heartbeats,
    "restart": restart_same_id,
    "shutdown": shutdown,
    "kill": kill,
    "failover": failover,
    "delta": delta,
    "eureka-server": eureka_server,
    "mixed": lambda w: mixed_cluster(w.procs, javas=1, apregs=2),  # apreg as a peer of Java Eureka servers (#11)
    "reverse": lambda w: mixed_cluster(w.procs, javas=2, apregs=1),
    "migrate": lambda w: migration_drill(w.procs),  # 3 Java nodes replaced by apreg one at a time, under load
}
