"""Clocks past the skew guard (README "Clock skew"): one node 90 s ahead, one 30 s ahead, one on time.

Instances renew every second with 3 s leases (the fault suite's), some at one node all along and some failing
over between nodes, so every instance renews somewhere all the time and any eviction is false (I4). The guard
is the default 60 s. Each run is compared with the same run on synchronised clocks: the skewed one may not send
noticeably more messages (no refusal loop), and once the skew is gone the nodes must agree again within a few
anti-entropy rounds, with nothing left held back.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceKey
from apreg.core.messages import Digest, Push
from apreg.core.replica import Replica
from apreg.core.simnet import SimCluster

from .strategies import flush, info, state

CONFIG = CoreConfig(renewal_interval_ms=1_000, lease_duration_ms=3_000, renewal_window_ms=6_000)
EAGER = replace(CONFIG, renewal_push_window_ms=0)  # a renewal is pushed at the next tick: the tests' `flush`
NAMES = ("a", "b", "c")
SKEWED = {"a": 90_000, "b": 30_000, "c": 0}
TRANSIT_MS = 20  # the simulated network's delay plus a step: what a one-way clock reading is off by
T0 = 1_700_000_000_000
KEYS = [InstanceKey("SVC", f"i-{i}") for i in range(12)]


def home(index: int, second: int) -> str:
    """Where instance `index` renews in a given second: a third stay at one node, the others move every 5 s."""
    if index % 3 == 0:
        return NAMES[index // 3 % 3]
    return NAMES[(index + second // 5) % 3]


def heartbeats(cluster: SimCluster, seconds: int, start: int) -> None:
    for second in range(start, start + seconds):
        for i, key in enumerate(KEYS):
            name = home(i, second)
            node, now = cluster.node(name), cluster.local_ms(name)
            if not node.renew(key, now):  # 404: unknown here (yet), so the client registers, as Eureka's do
                node.register(info(key.instance_id, host=name), now)
            cluster.after_write(name)
        cluster.run(1_000)


def agree(cluster: SimCluster) -> bool:
    nodes = list(cluster.replicas.values())
    return all(state(n.records.get(k)) == state(nodes[0].records.get(k)) and n.visible(k) is not None
               for n in nodes for k in KEYS)


def run(skew: dict[str, int], step_at_s: int = 0) -> SimCluster:
    """40 s of heartbeats with `skew` (applied from the start, or as a clock step after `step_at_s` seconds),
    then the skew removed (every clock steps back) and 20 s more."""
    cluster = SimCluster(NAMES, seed=11, config=CONFIG, skew_ms={} if step_at_s else dict(skew))
    heartbeats(cluster, step_at_s, 0)
    cluster.skew_ms = dict(skew)
    heartbeats(cluster, 40 - step_at_s, step_at_s)
    cluster.skew_ms = {}
    heartbeats(cluster, 20, 40)
    return cluster


@pytest.mark.parametrize("step_at_s", [0, 10], ids=["skewed-from-start", "clock-step-mid-run"])
def test_nodes_past_the_guard_evict_nothing_loop_not_and_converge_once_the_skew_is_gone(step_at_s: int) -> None:
    baseline = run({}, step_at_s)
    cluster = SimCluster(NAMES, seed=11, config=CONFIG, skew_ms={} if step_at_s else dict(SKEWED))
    heartbeats(cluster, step_at_s, 0)
    cluster.skew_ms = dict(SKEWED)
    heartbeats(cluster, 5, step_at_s)
    a, b, c = (cluster.node(n) for n in NAMES)
    # The loud signal's source: a and c know how far off the median of the three clocks (b's) they are, and
    # correct to within a quarter of the guard of it (give or take the transit time); b, the median, stays.
    deadband = CONFIG.max_clock_skew_ms // 4
    assert abs(a.clock.offset_ms - (-60_000 + deadband)) <= TRANSIT_MS and a.clock.corrected
    assert abs(c.clock.offset_ms - (30_000 - deadband)) <= TRANSIT_MS and not b.clock.corrected
    # Stamps a and b made before they heard the others are beyond c's guard until c's corrected clock is within
    # it (90 - 60 - 15 = 15 s): held meanwhile, each once per message that carries it, and none after that.
    heartbeats(cluster, 15, step_at_s + 5)
    rejections = [n.clock.skew_rejections for n in cluster.replicas.values()]
    heartbeats(cluster, 20 - step_at_s, step_at_s + 20)
    assert agree(cluster), "the cluster converges while the skew lasts"
    assert [n.clock.skew_rejections for n in cluster.replicas.values()] == rejections
    cluster.skew_ms = {}
    heartbeats(cluster, 3, 40)
    assert agree(cluster) and not any(len(n.held) for n in cluster.replicas.values())
    assert not any(n.clock.corrected for n in cluster.replicas.values())
    heartbeats(cluster, 17, 43)
    assert [n.counters.evictions for n in cluster.replicas.values()] == [0, 0, 0], "I4: a false eviction"
    assert agree(cluster)
    assert cluster.sent <= 1.2 * baseline.sent, f"chatter: {cluster.sent} messages, {baseline.sent} in sync"


def test_a_node_lagging_past_the_guard_keeps_its_peers_leases() -> None:
    """c is 90 s behind a and b (the mirror case): it learns it, corrects forward, takes their stamps at once,
    and evicts nothing of what renews only at them."""
    cluster = SimCluster(NAMES, seed=3, config=CONFIG, skew_ms={"c": -90_000})
    heartbeats(cluster, 20, 0)
    c = cluster.node("c")
    assert abs(c.clock.offset_ms - (90_000 - CONFIG.max_clock_skew_ms // 4)) <= TRANSIT_MS
    assert agree(cluster) and c.counters.evictions == 0 and c.clock.skew_rejections == 0


def test_held_back_stamps_keep_leases_and_apply_once_in_range() -> None:
    """A peer that sends no clock reading (an older node) 150 s ahead: its record and renewals are held, not
    refused. The lease restarts at once from the renewal's age, the record and the renewal register wait until
    their stamps are within the guard, and the deltas are credited, so nothing is asked for twice."""
    a, b = Replica("a", "1", EAGER, ("b",)), Replica("b", "1", EAGER, ("a",))
    key, ahead = KEYS[0], 150_000
    b.register(info(key.instance_id, host="b"), T0)
    a.receive(Push(replace(flush(b, T0)[0].message.delta, clock_ms=0)), T0 + ahead)  # type: ignore[union-attr]
    assert a.update_metadata(key, {"at": "a"}, T0 + ahead)
    for second in range(1, 11):  # the instance moves to a, and renews there every second
        assert a.renew(key, T0 + ahead + second * 1_000)
        push = flush(a, T0 + ahead + second * 1_000)[0].message
        b.receive(Push(replace(push.delta, clock_ms=0)), T0 + second * 1_000)  # type: ignore[union-attr]
        assert b.evict(T0 + second * 1_000 + 500) == []  # b's own renewal is 10 s old by the end
    assert b.visible(key).info.metadata == {}  # type: ignore[union-attr]
    assert len(b.held) == 2 and b.clock.skew_rejections == 11 and b.entries[key].renewed.replica == b.replica_id
    assert b.watermarks[a.replica_id] == a.log.head  # credited: not asked for again
    b.sweep(T0 + ahead - CONFIG.max_clock_skew_ms + 10_000)  # the last of a's stamps is within the guard now
    assert len(b.held) == 0 and b.entries[key].renewed == a.entries[key].renewed and b.records[key] == a.records[key]
    assert b.clock.tick(T0) > a.entries[key].renewed  # observed: b's next renewal follows a's


def test_a_renewal_stamped_below_the_register_still_restarts_the_lease() -> None:
    """b holds a renewal stamped by a, 50 s ahead (within the guard); the instance moves to c, whose clock has
    not seen that stamp, so c's renewals are stamped lower. Their age still restarts b's lease: b keeps it."""
    names = ("a", "b", "c")
    a, b, c = (Replica(n, "1", EAGER, tuple(p for p in names if p != n)) for n in names)
    key = KEYS[0]
    a.register(info(key.instance_id, host="a"), T0 + 50_000)
    b.receive(next(o for o in flush(a, T0 + 50_000) if o.peer == "b").message, T0)
    c.register(info(key.instance_id, host="c"), T0 - 100_000)  # c, 150 s behind a, has not heard of it
    for second in range(1, 6):
        now = T0 + second * 1_000
        assert c.renew(key, now - 100_000)
        for out in flush(c, now - 100_000):
            if out.peer == "b":
                b.receive(out.message, now)
        assert b.evict(now + 500) == [] and b.visible(key) is not None
    assert b.entries[key].renewed.replica == a.replica_id  # the register kept a's stamp: it is the greater
    assert b.visible(key).info.host_name == "a"  # type: ignore[union-attr]  # and so did the record


def test_a_clock_step_forward_holds_evictions_until_the_clients_had_their_turn() -> None:
    """a's clock steps 90 s ahead: every lease it holds looks 90 s old. It evicts nothing until its instances
    have had a renewal interval to renew (and it has heard from its peers), then only what stayed silent."""
    config = replace(CONFIG, min_missing_instances=50.0)  # self-preservation out of the way: the hold alone
    names = ("a", "b", "c")
    a, b, c = (Replica(n, "1", config, tuple(p for p in names if p != n)) for n in names)
    for i, key in enumerate(KEYS[:3]):
        a.register(info(key.instance_id, host="a"), T0 + i)
    assert a.evict(T0 + 500) == []
    step = T0 + 90_000 + 600  # a's next pass finds its clock 90 s on: all three leases look expired
    assert a.evict(step) == []
    for peer in (b, c):  # both peers are heard from at once
        reply = peer.receive(a.digest_for(peer.node_id), T0 + 700)
        assert reply is not None
        a.receive(reply, step + 10, peer=peer.node_id)
    assert a.evict(step + 20) == []  # the clients' renewals are on their way
    assert a.renew(KEYS[0], step + 300) and a.renew(KEYS[1], step + 900)
    a.update_preservation(step + 500)  # passes go on as usual meanwhile
    turn = CONFIG.renewal_interval_ms + 2 * CONFIG.renewal_push_window_ms  # to renew, and for a peer to push it
    assert a.evict(step + turn - 1) == []
    assert a.evict(step + turn) == [KEYS[2]]  # the one that stayed silent goes


def test_timers_count_from_a_clock_stepped_back_not_from_where_it_was() -> None:
    """The skew going away steps a node's clock back 90 s: its anti-entropy goes on at its interval from then
    (a node that waited for its clock to catch up would hear nothing, so learn nothing, for 90 s), and the
    deadline `tick` returns says so (the eviction and preservation timers are moved back the same way)."""
    a = Replica("a", "1", CONFIG, ("b",))
    interval = CONFIG.anti_entropy_interval_ms

    def digests(now_ms: int) -> int:
        a.tick(now_ms)
        return sum(isinstance(out.message, Digest) for out in a.take_effects().messages)

    assert digests(T0 + 90_000) == 1  # the initial pull
    assert digests(T0 + 90_000 + interval) == 1
    back = T0 + 1_000
    assert digests(back) == 0 and a.tick(back) <= back + interval
    assert digests(back + interval) == 1 and digests(back + 2 * interval) == 1


def test_a_clock_stepped_back_evicts_nothing_early_and_the_dead_at_most_the_step_late() -> None:
    """A step back of S: renewals after it restart leases at the earlier time and keep them live; the lease
    ledger keeps its sums at the latest time it reached, so an instance that died at the step is evicted at most
    S late, never a live one early (README "Clock skew")."""
    a = Replica("a", "1", CONFIG)
    for key in KEYS[:9]:
        a.register(info(key.instance_id), T0)
    evicted: dict[InstanceKey, int] = {}

    def run(start: int, end: int, alive: list[InstanceKey]) -> None:
        for now in range(start, end, 100):
            if now % 1_000 == 0:
                for key in alive:
                    assert a.renew(key, now)
            if now % 1_000 == 500:
                evicted.update((key, now) for key in a.evict(now))
            else:
                a.update_preservation(now)  # passes every window/20, as `tick` runs them

    run(T0, T0 + 20_000, KEYS[:9])
    step_back_ms = 30_000
    back = T0 + 20_000 - step_back_ms
    run(back, back + 40_000, KEYS[1:9])  # KEYS[0] dies at the step
    assert list(evicted) == [KEYS[0]]
    last_renewal = T0 + 19_000
    assert evicted[KEYS[0]] - back <= (last_renewal - (T0 + 20_000)) + CONFIG.lease_duration_ms + step_back_ms + 1_000
