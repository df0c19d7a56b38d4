"""Replica behaviour and deterministic SimCluster scenarios for the invariants with concrete times."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import pytest

from apreg.core.config import CoreConfig
from apreg.core.effects import Action
from apreg.core.instance import InstanceKey, Status
from apreg.core.messages import Delta, Push
from apreg.core.record import Record
from apreg.core.replica import Replica
from apreg.core.simnet import Faults, SimCluster

from .strategies import flush, info, push, state

T0 = 7_000_000
SHORT = CoreConfig(renewal_interval_ms=500, lease_duration_ms=1_500, renewal_window_ms=3_000)
K = InstanceKey("SVC", "i-1")


def key(i: int) -> InstanceKey:
    return InstanceKey("SVC", f"i-{i}")


# ----- single replica ------------------------------------------------------------------------------------------

def test_register_cancel_and_renew_semantics() -> None:
    r = Replica("a", "1")
    first = r.register(info(), T0)
    assert r.visible(K) == first and dict(first.vv) == {"a~1": 1}
    assert r.renew(K, T0 + 1) and not r.renew(K, T0 + 2, last_dirty_ms=1)  # client's info is newer: 404
    assert r.cancel(K, T0 + 3) and r.visible(K) is None and r.records[K].is_tombstone
    assert dict(r.records[K].vv) == {"a~1": 2} and r.records[K].stamp > first.stamp
    assert not r.cancel(K, T0 + 4) and not r.renew(K, T0 + 4)  # unknown now: 404, the client re-registers
    assert [c.action for c in r.take_effects().changes] == [Action.REGISTER, Action.CANCEL]


@pytest.mark.parametrize(("offset", "renewed"), [(-1, True), (0, True), (1, False)])
def test_renew_refuses_only_a_client_whose_info_is_newer_than_ours(offset: int, renewed: bool) -> None:
    """Eureka clients send their own lastDirtyTimestamp with every heartbeat: equal to ours is the normal case,
    and a 404 there would make every client re-register on every heartbeat."""
    r = Replica("a", "1")
    r.register(info().replace(last_dirty_timestamp=T0 - 500), T0)
    assert r.renew(K, T0 + 1, last_dirty_ms=T0 - 500 + offset) is renewed


def test_status_override_is_sticky_across_re_register_unless_instance_reports_down() -> None:
    r = Replica("a", "1")
    r.register(info(), T0)
    assert r.set_status(K, Status.OUT_OF_SERVICE, T0 + 1)
    r.register(info(status=Status.UP), T0 + 2)
    assert r.visible(K).info.status is Status.OUT_OF_SERVICE  # type: ignore[union-attr]
    r.register(info(status=Status.DOWN), T0 + 3)
    assert r.visible(K).info.status is Status.DOWN  # type: ignore[union-attr]
    assert r.remove_status(K, Status.UNKNOWN, T0 + 4)
    assert not r.renew(K, T0 + 5)  # UNKNOWN after removing the override: 404 so the client re-registers


def test_record_whose_content_key_differs_is_refused_and_changes_nothing() -> None:
    a, b = Replica("a", "1"), Replica("b", "1")
    good = a.register(info(), T0)
    forged = Record(key(9), good.info, good.vv, good.stamp)
    b.receive(push(a, forged), T0)
    assert b.records == {} and b.counters.rejected_items == 1


def test_tombstones_are_kept_for_the_ttl_then_collected() -> None:
    config = CoreConfig(tombstone_ttl_ms=10_000)
    r = Replica("a", "1", config)
    r.register(info(), T0)
    r.cancel(K, T0 + 1)
    assert r.collect_garbage(T0 + 10_000) == 0 and K in r.records
    assert r.collect_garbage(T0 + 10_001) == 1 and K not in r.records and K not in r.entries


def test_lease_view_shows_this_nodes_times_and_zero_once_the_key_is_forgotten() -> None:
    config = CoreConfig(tombstone_ttl_ms=10_000)
    r = Replica("a", "1", config)
    registered = info().replace(renewal_interval_s=5.0)
    r.register(registered, T0)
    r.renew(K, T0 + 400)
    assert r.lease_view(registered) == (5_000, config.lease_duration_ms, T0, T0 + 400)
    r.cancel(K, T0 + 500)
    r.collect_garbage(T0 + 10_501)
    assert r.lease_view(registered) == (5_000, config.lease_duration_ms, 0, 0)


def test_status_is_a_snapshot_the_shell_cannot_change_the_replica_through() -> None:
    r = Replica("a", "1", peer_names=("b",))
    r.register(info(), T0)
    status = r.status()
    assert (status.replica_id, status.synced, status.instances, status.log_head) == ("a~1", False, 1, 1)
    assert dict(status.peer_replicas) == {"b": ""} and not status.preservation.active
    status.counters.conflicts += 5
    r.register(info("i-2"), T0 + 1)
    assert (status.instances, r.status().instances, r.status().counters.conflicts) == (1, 2, 0)


def test_old_incarnations_of_a_peer_are_forgotten_after_the_ttl() -> None:
    """A restarted node is a new replica id; the old one's watermark must not ride in every digest forever."""
    config = CoreConfig(tombstone_ttl_ms=10_000)
    b = Replica("b", "1", config, ("a",))
    old, new = Replica("a", "1", config), Replica("a", "2", config)
    b.receive(Push(Delta(old.replica_id, 0, 1, (old.register(info(), T0),), ())), T0)
    b.receive(Push(Delta(new.replica_id, 0, 1, (new.register(info("i-2"), T0 + 8_000),), ())), T0 + 8_000)
    assert set(b.watermarks) == {"a~1", "a~2"}
    assert b.collect_garbage(T0 + 10_000) == 0 and set(b.watermarks) == {"a~2"}
    assert b.digest_for("a").holds == (("a~2", 1),)
    assert set(b.records) == {K, InstanceKey("SVC", "i-2")}  # what the old incarnation wrote stays


def test_concurrent_conflict_is_counted_once() -> None:
    a, b = Replica("a", "1"), Replica("b", "1")
    ra = a.register(info(host="ha"), T0)
    rb = b.register(info(host="hb"), T0 + 5)
    a.receive(push(b, rb), T0 + 10)
    b.receive(push(a, ra), T0 + 10)
    assert state(a.records[K]) == state(b.records[K]) and a.records[K].info.host_name == "hb"  # type: ignore
    assert a.counters.conflicts == 1 and b.counters.conflicts == 1
    a.receive(push(b, b.records[K]), T0 + 20)  # the settled record again: no new conflict
    assert a.counters.conflicts == 1


# ----- simulated clusters --------------------------------------------------------------------------------------

def heartbeat(cluster: SimCluster, home: dict[InstanceKey, str]) -> None:
    for k, node in home.items():
        assert cluster.node(node).renew(k, cluster.local_ms(node)), f"{k} refused at {node}"
        cluster.after_write(node)


def same_everywhere(cluster: SimCluster) -> bool:
    nodes = list(cluster.replicas.values())
    first = nodes[0]
    keys = set().union(*(r.records for r in nodes))
    return all(state(r.records.get(k)) == state(first.records.get(k)) for r in nodes for k in keys) and all(
        (r.entries[k].renewed if k in r.entries else None) == (first.entries[k].renewed if k in first.entries else None)
        for r in nodes for k in keys)


def test_i1_converges_within_bounded_anti_entropy_after_lossy_partition() -> None:
    """Writes on both sides of a partition under 30 % loss; after the heal, n-1 anti-entropy intervals suffice."""
    names = ("a", "b", "c", "d")
    cluster = SimCluster(names, seed=3, config=SHORT, faults=Faults(loss=0.3, duplicate=0.2),
                         skew_ms={"a": 400, "b": -300, "c": 0, "d": 700})
    cluster.partition({"a", "b"}, {"c", "d"})
    for i, name in enumerate(names * 3):
        cluster.node(name).register(info(f"i-{i % 5}", host=name), cluster.local_ms(name))
        cluster.after_write(name)
        cluster.run(50)
    cluster.heal()
    cluster.faults = Faults()
    cluster.run((len(names) - 1) * cluster.anti_entropy_ms + 100)
    assert same_everywhere(cluster)
    conflicts = sum(r.counters.conflicts for r in cluster.replicas.values())
    assert conflicts > 0  # there were concurrent writes, and they were settled the same way everywhere


def test_i3_cancel_is_not_resurrected_by_the_stale_side() -> None:
    """b cancels while cut off from a, whose clock is ahead and which keeps taking renewals for the instance
    (Eureka's resurrection path); after the heal it stays cancelled everywhere, until registered again."""
    cluster = SimCluster(("a", "b", "c"), seed=5, config=SHORT, skew_ms={"a": 900})
    cluster.node("a").register(info(), cluster.local_ms("a"))
    cluster.after_write("a")
    cluster.run(200)
    cluster.partition({"a"}, {"b", "c"})
    assert cluster.node("b").cancel(K, cluster.local_ms("b"))
    cluster.after_write("b")
    for _ in range(8):  # 2 s of renewals on the stale side
        cluster.run(250)
        heartbeat(cluster, {K: "a"})
    cluster.heal()
    cluster.run(3 * cluster.anti_entropy_ms)
    for replica in cluster.replicas.values():
        assert replica.records[K].is_tombstone and replica.visible(K) is None
    assert not cluster.node("a").renew(K, cluster.local_ms("a"))  # the client is told to re-register ...
    cluster.node("a").register(info(host="again"), cluster.local_ms("a"))  # ... and that write does win
    cluster.after_write("a")
    cluster.run(100)
    assert all(r.visible(K) is not None and r.visible(K).info.host_name == "again"  # type: ignore[union-attr]
               for r in cluster.replicas.values())


def cancel_during_partition(change: str) -> tuple[SimCluster, Record, Record]:
    """The instance is registered everywhere; then a cancels it while cut off from b, whose clock is ahead and
    which, not having heard of the cancel, writes `change` ("status", "metadata" or "register") to it. Returns
    the cluster (still partitioned), the tombstone and b's write, which is stamped later than the tombstone."""
    # Leases outlast the test: nothing renews, and a lone silent instance is evicted (no self-preservation).
    config = replace(SHORT, lease_duration_ms=60_000)
    cluster = SimCluster(("a", "b", "c"), seed=7, config=config, skew_ms={"a": -400, "b": 900})
    cluster.node("a").register(info(), cluster.local_ms("a"))
    cluster.after_write("a")
    cluster.run(200)
    assert all(r.visible(K) is not None for r in cluster.replicas.values())
    cluster.partition({"a", "c"}, {"b"})
    a, b = cluster.node("a"), cluster.node("b")
    assert a.cancel(K, cluster.local_ms("a"))
    cluster.after_write("a")
    cluster.run(50)
    if change == "status":
        assert b.set_status(K, Status.OUT_OF_SERVICE, cluster.local_ms("b"))
    elif change == "metadata":
        assert b.update_metadata(K, {"v": "9"}, cluster.local_ms("b"))
    else:
        b.register(info(host="b-side"), cluster.local_ms("b"))
    cluster.after_write("b")
    tombstone, written = a.records[K], b.records[K]
    assert tombstone.is_tombstone and written.stamp > tombstone.stamp  # b's clock is ahead: a later stamp
    return cluster, tombstone, written


def settle(cluster: SimCluster) -> None:
    cluster.heal()
    cluster.run(3 * cluster.anti_entropy_ms)


@pytest.mark.parametrize("change", ["status", "metadata", "register"])
def test_i3_cancel_beats_a_concurrent_write_from_a_node_that_had_not_heard_of_it(change: str) -> None:
    """Even stamped later (b's clock is ahead), a status or metadata change to the cancelled registration, or a
    registration made without having seen the cancel, loses to it on every node; b's client then gets 404 on
    its heartbeat and re-registers, and that registration, made after the cancel, wins everywhere."""
    cluster, tombstone, _ = cancel_during_partition(change)
    settle(cluster)
    for replica in cluster.replicas.values():
        record = replica.records[K]
        assert record.is_tombstone and record.stamp == tombstone.stamp and replica.visible(K) is None
    b = cluster.node("b")
    assert not b.renew(K, cluster.local_ms("b"))
    again = b.register(info(host="again"), cluster.local_ms("b"))
    cluster.after_write("b")
    cluster.run(100)
    for replica in cluster.replicas.values():
        visible = replica.visible(K)
        assert visible is not None and state(visible) == state(again)
        assert visible.info.host_name == "again" and visible.info.status is Status.UP  # type: ignore[union-attr]


@pytest.mark.parametrize("change", ["status", "metadata"])
def test_i3_a_registration_after_the_cancel_wins_over_the_cancel_and_the_concurrent_change(change: str) -> None:
    cluster, tombstone, written = cancel_during_partition(change)
    a = cluster.node("a")
    again = a.register(info(host="again"), cluster.local_ms("a"))  # still stamped before b's change
    cluster.after_write("a")
    assert tombstone.stamp < again.stamp < written.stamp
    settle(cluster)
    for replica in cluster.replicas.values():
        assert state(replica.visible(K)) == state(a.records[K])
        assert a.records[K].stamp == again.stamp and a.records[K].info == again.info


def test_i4_instances_renewing_on_each_side_survive_a_long_partition() -> None:
    """Longer than the self-preservation hold, so each side evicts the other side's instances; neither side
    evicts its own, and after the heal both are present and UP everywhere."""
    names = ("a", "b", "c", "d", "e")
    cluster = SimCluster(names, seed=11, config=SHORT)
    home = {key(1): "a", key(2): "d"}
    for k, node in home.items():
        cluster.node(node).register(info(k.instance_id), cluster.local_ms(node))
        cluster.after_write(node)
    left, right = {"a", "b"}, {"c", "d", "e"}
    cluster.partition(left, right)
    for _ in range(120):  # 30 s, twice the 15 s hold
        cluster.run(250)
        heartbeat(cluster, home)
        for n in left:
            assert cluster.node(n).visible(key(1)) is not None
        for n in right:
            assert cluster.node(n).visible(key(2)) is not None
    assert cluster.node("b").visible(key(2)) is None and cluster.node("e").visible(key(1)) is None  # evicted there
    cluster.heal()
    for _ in range(4 * len(names)):  # n anti-entropy intervals
        cluster.run(250)
        heartbeat(cluster, home)
    for replica in cluster.replicas.values():
        for k in home:
            visible = replica.visible(k)
            assert visible is not None and visible.info.status is Status.UP  # type: ignore[union-attr]


def test_i7_cut_off_node_accepts_writes_and_loses_none_of_them() -> None:
    cluster = SimCluster(("a", "b", "c"), seed=13, config=SHORT, faults=Faults(loss=0.2))
    cluster.partition({"c"}, {"a", "b"})
    c = cluster.node("c")
    acked = [c.register(info(f"i-{i}"), cluster.local_ms("c")) for i in range(5)]
    assert c.set_status(key(0), Status.OUT_OF_SERVICE, cluster.local_ms("c"))
    assert c.update_metadata(key(1), {"v": "9"}, cluster.local_ms("c"))
    assert c.cancel(key(2), cluster.local_ms("c"))
    cluster.after_write("c")
    expected = {k: state(c.records[k]) for k in map(key, range(5))}
    assert [c.records[r.key].stamp >= r.stamp for r in acked] == [True] * 5
    cluster.run(2_000)
    assert all(k not in cluster.node("a").records for k in expected)  # nothing crossed the partition
    cluster.heal()
    cluster.faults = Faults()
    cluster.run(3 * cluster.anti_entropy_ms)
    for replica in cluster.replicas.values():
        assert {k: state(replica.records[k]) for k in expected} == expected


def test_push_gap_is_not_marked_held_and_anti_entropy_fills_it() -> None:
    """A push whose base is past the receiver's watermark (an earlier push was lost) must not advance it."""
    a, b = Replica("a", "1", peer_names=("b",)), Replica("b", "1", peer_names=("a",))
    lost = a.register(info("i-1"), T0)
    flush(a, T0)  # lost in flight
    a.register(info("i-2"), T0 + 1)
    [out] = flush(a, T0 + 1)
    b.receive(out.message, T0 + 1)
    assert b.watermarks.get(a.replica_id, 0) == 0 and key(1) not in b.records
    reply = a.receive(b.digest_for("a"), T0 + 2)
    b.receive(reply, T0 + 2, peer="a")  # type: ignore[arg-type]
    assert state(b.records[key(1)]) == state(lost) and b.watermarks[a.replica_id] == a.log.head
    assert isinstance(out.message, Push) and isinstance(out.message.delta, Delta)


def test_delta_actions_are_eurekas_at_the_node_that_took_the_write_and_at_its_peers() -> None:
    """A (re-)registration is ADDED everywhere, as Eureka's registry marks it; status and metadata changes are
    MODIFIED; cancels and evictions DELETED (the shell maps actions onto these)."""
    config = CoreConfig(lease_duration_ms=1_000, max_eviction_fraction=1.0, self_preservation=False)
    a, b = Replica("a", "1", config), Replica("b", "1", config)

    def step(write: Callable[[], object], now: int) -> tuple[Action, Action]:
        write()
        local = a.take_effects().changes
        b.receive(Push(Delta(a.replica_id, 0, 0, tuple(a.records[c.key] for c in local), ())), now)
        remote = b.take_effects().changes
        assert len(local) == len(remote) == 1
        return local[0].action, remote[0].action

    assert step(lambda: a.register(info(), T0), T0) == (Action.REGISTER, Action.REGISTER)
    assert step(lambda: a.register(info(host="h2"), T0 + 1), T0 + 1) == (Action.REGISTER, Action.REGISTER)
    assert step(lambda: a.register(info(host="h2"), T0 + 2), T0 + 2) == (Action.REGISTER, Action.REGISTER)
    assert step(lambda: a.set_status(K, Status.OUT_OF_SERVICE, T0 + 3), T0 + 3) == (Action.STATUS, Action.STATUS)
    assert step(lambda: a.update_metadata(K, {"v": "2"}, T0 + 4), T0 + 4) == (Action.MODIFY, Action.MODIFY)
    assert step(lambda: a.cancel(K, T0 + 5), T0 + 5) == (Action.CANCEL, Action.CANCEL)
    a.register(info(), T0 + 6)
    a.take_effects().changes
    assert [c.action for c in (a.evict(T0 + 2_000), a.take_effects().changes)[1]] == [Action.EVICT]
