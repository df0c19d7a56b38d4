"""Lease and eviction arithmetic with concrete numbers (DESIGN.md section 1, Leases)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from apreg.core.config import CoreConfig
from apreg.core.effects import Action
from apreg.core.instance import InstanceKey
from apreg.core.lease import Lease, eviction_cap, expected_renewals
from apreg.core.messages import Delta, Push, RenewalUpdate
from apreg.core.preservation import EVALUATIONS_PER_WINDOW
from apreg.core.replica import Replica

from .strategies import flush, info, push

T0 = 3_000_000  # a multiple of the window bucket, so bucket edges fall on round numbers
NO_SP = CoreConfig(self_preservation=False)


def key(i: int) -> InstanceKey:
    return InstanceKey("SVC", f"i-{i}")


def passes(replica: Replica, start_ms: int, end_ms: int) -> None:
    """The regular passes of a running node over [start_ms, end_ms): one much later than the last would look
    like a stop or a clock step, after which the node gives its clients a renewal interval (replica.py)."""
    for now_ms in range(start_ms, end_ms, replica.config.renewal_window_ms // EVALUATIONS_PER_WINDOW):
        replica.update_preservation(now_ms)


@pytest.mark.parametrize(("size", "cap"), [(100, 15), (20, 3), (1, 1), (7, 2), (0, 0), (1000, 150)])
def test_eviction_cap_is_eurekas_rounding_and_at_least_one(size: int, cap: int) -> None:
    assert eviction_cap(size, 0.15) == cap


def test_expected_renewals_per_instance_are_prorated_by_age() -> None:
    assert expected_renewals(T0 + 600_000, T0, 60_000, 30_000) == 2.0
    assert expected_renewals(T0 + 30_000, T0, 60_000, 30_000) == 1.0  # seen for half a window
    assert expected_renewals(T0, T0, 60_000, 30_000) == 0.0


def test_hundred_instances_expect_200_renewals_with_threshold_170() -> None:
    replica = Replica("a", "1")
    for i in range(100):
        replica.register(info(f"i-{i}"), T0)
    for t in (T0 + 30_000, T0 + 60_000):
        for i in range(100):
            assert replica.renew(key(i), t)
    replica.update_preservation(T0 + 61_000)
    status = replica.preservation.last
    assert status.expected == pytest.approx(200.0)
    assert status.threshold == pytest.approx(170.0)
    assert status.renewals_in_window >= 200 and not status.active


def test_lease_expires_exactly_at_last_renewal_plus_duration() -> None:
    replica = Replica("a", "1", NO_SP)
    replica.register(info("i-0"), T0)
    passes(replica, T0, T0 + 40_000)
    replica.renew(key(0), T0 + 40_000)
    passes(replica, T0 + 40_000, T0 + 90_000)
    assert replica.evict(T0 + 90_000) == []
    passes(replica, T0 + 90_000, T0 + 130_000 - 1)
    assert replica.evict(T0 + 130_000 - 1) == []  # not T0 + 90 s: the renewal restarted the lease
    assert replica.evict(T0 + 130_000) == [key(0)]  # not 2 x 90 s after the renewal, as Eureka would
    assert replica.visible(key(0)) is None and not replica.renew(key(0), T0 + 130_001)  # 404: re-register


def test_instance_lease_info_overrides_the_default_duration() -> None:
    replica = Replica("a", "1", NO_SP)
    replica.register(info("i-0", lease_duration_s=10.0, renewal_interval_s=5.0), T0)
    assert replica.evict(T0 + 9_999) == []
    assert replica.evict(T0 + 10_000) == [key(0)]
    assert Lease(anchor_ms=5).expired(15, 10) and not Lease(anchor_ms=5).expired(14, 10)


@pytest.mark.parametrize(("size", "first_pass"), [(100, 15), (20, 3), (1, 1)])
def test_one_pass_evicts_at_most_the_cap_oldest_first(size: int, first_pass: int) -> None:
    replica = Replica("a", "1", NO_SP)
    for i in range(size):
        replica.register(info(f"i-{i}"), T0 + i)  # i-0 has the oldest lease
    evicted = replica.evict(T0 + 200_000)
    assert evicted == [key(i) for i in range(first_pass)]
    assert replica.counters.evictions == first_pass
    passes = 1
    while len(evicted) < size:  # later passes cap on what is left, so the registry drains in bounded passes
        evicted += replica.evict(T0 + 200_000 + passes)
        passes += 1
    assert passes <= 30 and sorted(evicted) == sorted(key(i) for i in range(size))


def test_evicted_instance_returns_when_it_renews_elsewhere() -> None:
    """Eviction is local: a newer renewal from a peer brings the instance back (no replicated delete)."""
    a, b = Replica("a", "1", NO_SP), Replica("b", "1", NO_SP)
    record = a.register(info("i-0"), T0)
    b.receive(push(a, record), T0)
    assert b.evict(T0 + 90_000) == [key(0)]
    a.renew(key(0), T0 + 89_000)
    renewal = RenewalUpdate(key(0), a.entries[key(0)].renewed, age_ms=1_500)  # a learned of it 1.5 s ago
    b.receive(Push(Delta(a.replica_id, 0, a.log.head, (), (renewal,))), T0 + 90_500)
    assert b.visible(key(0)) is not None
    assert b.evict(T0 + 90_600) == []  # its lease restarted at the renewal, 1.5 s ago on a's clock
    passes(b, T0 + 90_600, T0 + 89_000 + 90_000 - 1)
    assert b.evict(T0 + 89_000 + 90_000 - 1) == [] and b.evict(T0 + 89_000 + 90_000) == [key(0)]


@given(skew=st.integers(-60_000, 60_000), held=st.integers(0, 5_000), transit=st.integers(0, 2_000))
@example(skew=-30_000, held=0, transit=0)
@example(skew=30_000, held=0, transit=0)
def test_a_replicated_renewal_restarts_the_lease_on_the_receivers_clock(skew: int, held: int, transit: int) -> None:
    """a's clock reads `skew` ms off b's; a pushes its renewal `held` ms after taking it, and the push travels
    `transit` ms. b restarts the lease at its own receipt time minus the age a reports: a's wall clock (the
    renewal's stamp) never enters, so b evicts exactly one lease duration after that, whatever the skew."""
    eager = replace(NO_SP, renewal_push_window_ms=0)  # a renewal is pushed at a's next tick: `held` sets when
    a, b = Replica("a", "1", eager, ("b",)), Replica("b", "1", eager, ("a",))
    a.register(info("i-0"), T0 + skew)
    b.receive(flush(a, T0 + skew)[0].message, T0)
    a.renew(key(0), T0 + 10_000 + skew)
    b.receive(flush(a, T0 + 10_000 + held + skew)[0].message, T0 + 10_000 + held + transit)
    expires = T0 + 10_000 + transit + NO_SP.lease_duration_ms  # on b's clock
    assert b.evict(expires - 1) == [] and b.visible(key(0)) is not None
    assert b.evict(expires) == [key(0)]


def test_an_eviction_is_published_as_a_change_and_a_return_as_a_registration() -> None:
    a, b = Replica("a", "1", NO_SP), Replica("b", "1", NO_SP)
    record = a.register(info("i-0"), T0)
    b.receive(push(a, record), T0)
    assert [(c.key, c.action) for c in b.take_effects().changes] == [(key(0), Action.REGISTER)]
    assert b.evict(T0 + 90_000) == [key(0)]
    evicted = b.take_effects().changes
    assert [(c.key, c.action, c.at_ms) for c in evicted] == [(key(0), Action.EVICT, T0 + 90_000)]
    assert evicted[0].info == record.info and evicted[0].record == record  # the instance as it was last shown
    a.renew(key(0), T0 + 91_000)
    renewal = RenewalUpdate(key(0), a.entries[key(0)].renewed, age_ms=0)
    b.receive(Push(Delta(a.replica_id, 0, a.log.head, (), (renewal,))), T0 + 91_000)
    assert [(c.key, c.action) for c in b.take_effects().changes] == [(key(0), Action.REGISTER)]
