"""The pass over the leases runs in slices: no call takes more breakpoints or evicts more than its budget allows."""
from __future__ import annotations

import dataclasses

from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceKey
from apreg.core.replica import Replica
from apreg.core.sweep import EVICTIONS_PER_ENTRY

from .strategies import flush, info

CONFIG = CoreConfig(lease_duration_ms=1_000, renewal_interval_ms=300, max_eviction_fraction=0.5,
                    self_preservation=False)


def test_a_mass_expiry_is_evicted_a_slice_at_a_time_oldest_first() -> None:
    replica = Replica("a", "1", CONFIG)
    for n in range(200):
        replica.register(info(f"i-{n:03}"), 1_000 + n)
    replica.take_effects().changes
    replica.request_eviction()
    budget, calls, evicted = 4 * EVICTIONS_PER_ENTRY, 0, []
    while (outcome := replica.sweep(10_000, budget)) is None:
        calls += 1
        changes = replica.take_effects().changes
        assert len(changes) <= budget // EVICTIONS_PER_ENTRY
        evicted += [change.key.instance_id for change in changes]
    evicted += [change.key.instance_id for change in replica.take_effects().changes]
    assert calls >= 200 // budget + 100 // 4 - 1  # reading 200 entries, then 100 evictions, 4 per call
    assert evicted == [f"i-{n:03}" for n in range(100)] == [key.instance_id for key in outcome.evicted]
    assert replica.index.count == 100


def test_renewing_during_a_pass_saves_an_instance_chosen_for_eviction() -> None:
    replica = Replica("a", "1", CONFIG)
    for n in range(10):
        replica.register(info(f"i-{n}"), 1_000)
    replica.request_eviction()
    assert replica.sweep(10_000, 100) is None  # the ledger caught up, chose 5 victims, evicted none yet
    assert replica.renew(replica.index.app("SVC")["i-0"].key, 10_000)
    while (outcome := replica.sweep(10_000, EVICTIONS_PER_ENTRY)) is None:
        pass
    assert "i-0" not in {key.instance_id for key in outcome.evicted} and len(outcome.evicted) == 4


def test_a_node_stopped_past_the_lease_evicts_nothing_until_its_peers_have_spoken() -> None:
    """I4 after SIGSTOP: the instance kept renewing at the other node all along; the resumed node must not evict
    it on its first pass, before the renewals it slept through arrive (self-preservation off: nothing else
    would stop it)."""
    config = dataclasses.replace(CONFIG, renewal_window_ms=1_000)  # passes every 50 ms
    a, b = Replica("a", "1", config, ("b",)), Replica("b", "1", config, ("a",))
    key = InstanceKey("SVC", "i-1")
    b.register(info("i-1"), 1_000)
    a.receive(b.receive(a.digest_for("b"), 1_000), 1_000, peer="b")  # type: ignore[arg-type]  # a pulls: knows b
    for now in range(1_000, 1_500, 50):  # a passes on schedule
        a.sweep(now)
    for now in range(1_500, 5_000, 250):  # a is stopped; the instance renews at b
        b.renew(key, now)
    pushes = flush(b, 5_000)
    assert a.evict(5_000) == []  # resumed: every lease looks expired here, but b has not spoken since
    for push in pushes:
        a.receive(push.message, 5_000)
    assert a.evict(5_010) == [] and a.visible(key) is not None
    evicted = []
    for now in range(5_050, 6_200, 50):  # b spoke; the instance then truly stops renewing
        a.request_eviction()
        while (outcome := a.sweep(now)) is None:
            pass
        evicted += outcome.evicted
    assert evicted == [key]
