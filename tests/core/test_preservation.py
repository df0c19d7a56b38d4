"""Self-preservation (I5): engage below the threshold, hold at least min_hold_windows, release within the
documented bound after a mass silent loss, never release while live leases under-renew."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceKey
from apreg.core.lease import eviction_cap, renewal_credit
from apreg.core.preservation import SelfPreservation
from apreg.core.replica import Replica
from apreg.core.simnet import SimCluster

from .strategies import info

WINDOW = 60_000
T0 = 3_000_000


def test_engages_below_threshold_and_holds_for_min_hold_windows() -> None:
    sp = SelfPreservation(WINDOW, 0.85, True, min_hold_windows=5)
    # exactly at the threshold: fine
    assert not sp.update(T0, observed=170, expected=200, instances=100) and not sp.active
    assert sp.update(T0 + 1, observed=169, expected=200, instances=100) and sp.active and not sp.allows_eviction
    assert sp.last.threshold == 170.0 and sp.last.renewals_in_window == 169
    # recovered, but held
    assert not sp.update(T0 + 1 + 5 * WINDOW - 1, observed=200, expected=200, instances=100) and sp.active
    assert sp.update(T0 + 1 + 5 * WINDOW, observed=200, expected=200, instances=100) and not sp.active
    assert sp.transitions == 2


def test_never_releases_while_renewals_stay_low() -> None:
    sp = SelfPreservation(WINDOW, 0.85, True, min_hold_windows=5)
    for minute in range(30):
        sp.update(T0 + minute * WINDOW, observed=100, expected=200, instances=100)
        assert sp.active
    assert sp.transitions == 1


def test_disabled_never_engages_and_no_expectation_never_engages() -> None:
    off = SelfPreservation(WINDOW, 0.85, enabled=False)
    assert not off.update(T0, 0, 200, 100) and not off.active
    empty = SelfPreservation(WINDOW, 0.85)
    assert not empty.update(T0, 0, 0.0, 0) and not empty.active


def test_renewal_credit_is_flat_while_renewing_and_falls_within_a_window_once_silent() -> None:
    """Observed renewals count as coverage: 2 per 60 s window at 30 s renewals whatever the phase."""
    for since_renewal in (0, 10_000, 29_999, 30_000):
        assert renewal_credit(T0 + since_renewal, T0, T0 - 600_000, WINDOW, 30_000) == 2.0
    assert renewal_credit(T0 + 45_000, T0, T0 - 600_000, WINDOW, 30_000) == 1.5
    assert renewal_credit(T0 + 90_000, T0, T0 - 600_000, WINDOW, 30_000) == 0.0
    assert renewal_credit(T0 + 30_000, T0, T0, WINDOW, 30_000) == 1.0  # young: prorated like the expectation


# ----- a replica under concrete renewal schedules ---------------------------------------------------------------

@dataclass
class Fleet:
    """One replica and `size` instances renewing every `period_ms`, phases spread evenly."""

    replica: Replica
    size: int
    period_ms: int
    alive: set[int]
    evicted_at: dict[str, int] = field(default_factory=dict)  # instance id -> when an eviction pass took it

    @staticmethod
    def start(size: int, period_ms: int, config: CoreConfig | None = None) -> "Fleet":
        replica = Replica("a", "1", config or CoreConfig())
        for i in range(size):
            replica.register(info(f"i-{i}"), T0)
        return Fleet(replica, size, period_ms, set(range(size)))

    def run(self, start: int, end: int, step: int = 500, eviction_every: int = 60_000) -> list[tuple[int, bool]]:
        """Drive renewals and timers from `start` to `end`; returns (time, active) at every step."""
        trace = []
        for now in range(start, end, step):
            for i in self.alive:
                if (now - T0 - i * self.period_ms // self.size) % self.period_ms < step and now > T0:
                    assert self.replica.renew(InstanceKey("SVC", f"i-{i}"), now)
            if (now - T0) % eviction_every < step:
                evicted = self.replica.evict(now)
                self.evicted_at.update((k.instance_id, now) for k in evicted)
                assert not any(int(k.instance_id[2:]) in self.alive for k in evicted), "evicted a live one"
            else:
                self.replica.update_preservation(now)
            trace.append((now, self.replica.preservation.active))
        return trace


def test_steady_renewals_never_engage() -> None:
    fleet = Fleet.start(100, 30_000)
    assert not any(active for _, active in fleet.run(T0, T0 + 10 * WINDOW))


def test_mass_silent_loss_engages_then_releases_within_the_documented_bound() -> None:
    """85 of 100 instances die silently. The bound (preservation.py): release after at most
    max(min_hold_windows * window, lease_duration) + window, then eviction at most 15 % per pass."""
    config = CoreConfig()
    fleet = Fleet.start(100, 30_000, config)
    fleet.run(T0, T0 + 3 * WINDOW)
    loss = T0 + 3 * WINDOW
    fleet.alive = set(range(85, 100))
    trace = fleet.run(loss, loss + 30 * WINDOW)  # 15 % per pass of what is left: ~20 passes drain 85
    engaged = next(t for t, active in trace if active)
    released = next(t for t, active in trace if t > engaged and not active)
    bound = max(config.min_hold_windows * config.renewal_window_ms, config.lease_duration_ms) + WINDOW
    assert engaged - loss < WINDOW
    assert released - engaged >= config.min_hold_windows * WINDOW  # a short partition would have lost nothing
    assert released - loss <= bound, f"released {(released - loss) / 1000} s after the loss, bound {bound / 1000} s"
    assert fleet.replica.counters.evictions == 85  # the dead are gone (15 % per pass), the living all stayed
    visible = {info.instance_id for info, _ in fleet.replica.instances()}
    assert visible == {f"i-{i}" for i in range(85, 100)}


def test_never_releases_while_live_leases_under_renew() -> None:
    """Instances renew every 80 s on a 30 s contract: leases (90 s) stay live, coverage stays near 75 % of the
    expectation, so the mode engages and never releases, and nothing is evicted."""
    fleet = Fleet.start(100, 80_000)
    trace = fleet.run(T0, T0 + 20 * WINDOW)
    engaged = next(t for t, active in trace if active)
    assert all(active for t, active in trace if t >= engaged)
    assert fleet.replica.counters.evictions == 0 and fleet.replica.preservation.transitions == 1


# ----- I5 in a simulated cluster --------------------------------------------------------------------------------

SHORT = CoreConfig(renewal_interval_ms=500, lease_duration_ms=1_500, renewal_window_ms=3_000)


def renew_all(cluster: SimCluster, home: str, keys: list[InstanceKey]) -> None:
    for key in keys:
        assert cluster.node(home).renew(key, cluster.local_ms(home))
    cluster.after_write(home)


def test_i5_cut_off_node_stops_evicting_then_resumes_after_recovery() -> None:
    """c is cut off from the node its 20 instances renew at: its renewals collapse, it engages and evicts
    nothing although every lease has expired there; after the heal renewals recover, it releases after the
    hold, and eviction resumes: an instance that then really stops is evicted everywhere."""
    cluster = SimCluster(("a", "b", "c"), seed=7, config=SHORT)
    keys = [InstanceKey("SVC", f"i-{i}") for i in range(20)]
    for key in keys:
        cluster.node("a").register(info(key.instance_id), cluster.local_ms("a"))
    cluster.after_write("a")
    for _ in range(40):  # 10 s of steady renewals: nobody engages
        cluster.run(250)
        renew_all(cluster, "a", keys)
    assert not any(r.preservation.active for r in cluster.replicas.values())

    c = cluster.node("c")
    cluster.partition({"a", "b"}, {"c"})
    for _ in range(40):  # 10 s cut off: shorter than the 15 s hold
        cluster.run(250)
        renew_all(cluster, "a", keys)
        assert c.counters.evictions == 0
    assert c.preservation.active and c.preservation.transitions == 1
    assert all(c.entries[k].expired(cluster.local_ms("c"), SHORT.lease_duration_ms) for k in keys)

    cluster.heal()
    released_at = None
    for _ in range(60):  # renewals recover; after the hold the mode releases
        cluster.run(250)
        renew_all(cluster, "a", keys)
        if released_at is None and not c.preservation.active:
            released_at = cluster.now_ms
    assert released_at is not None and c.preservation.transitions == 2
    assert c.counters.evictions == 0 and all(c.visible(k) is not None for k in keys)

    silent, living = keys[0], keys[1:]
    for _ in range(16):  # 4 s: `silent` stops renewing, its lease (1.5 s) runs out, eviction has resumed
        cluster.run(250)
        renew_all(cluster, "a", living)
    for replica in cluster.replicas.values():
        assert replica.visible(silent) is None and all(replica.visible(k) is not None for k in living)
        assert not replica.preservation.active


# ----- a crash is not a silence: the minimum number of instances' worth missing ----------------------------------

def test_engaging_needs_more_than_two_instances_worth_of_renewals_missing() -> None:
    """6 instances expect 12 renewals a window: one or two silent (10 or 8 seen, both under the 10.2 threshold)
    are crashes; three silent is a silence."""
    sp = SelfPreservation(WINDOW, 0.85, True, min_hold_windows=5, min_missing_instances=2)
    assert not sp.update(T0, observed=10, expected=12, instances=6) and not sp.active
    assert not sp.update(T0, observed=8, expected=12, instances=6) and not sp.active
    assert sp.update(T0, observed=5.9, expected=12, instances=6) and sp.active
    assert sp.last.instances_missing > 3


@pytest.mark.parametrize("size", [1, 3, 6])
def test_a_lone_crash_is_evicted_one_lease_after_its_last_renewal_at_default_settings(size: int) -> None:
    """The crash of one instance in a small registry, at default settings (30 s renewals, 90 s lease, 60 s window
    and eviction passes): never self-preservation, and gone at the first eviction pass after its lease ran out."""
    config = CoreConfig()
    fleet = Fleet.start(size, 30_000, config)
    crash = T0 + 3 * WINDOW
    fleet.run(T0, crash)
    last_renewal = fleet.replica.entries[InstanceKey("SVC", "i-0")].anchor_ms
    fleet.alive.discard(0)
    trace = fleet.run(crash, crash + 5 * WINDOW)
    assert not any(active for _, active in trace)
    assert fleet.evicted_at.keys() == {"i-0"}
    assert last_renewal + config.lease_duration_ms <= fleet.evicted_at["i-0"] \
        <= last_renewal + config.lease_duration_ms + 60_000


@pytest.mark.parametrize("size", [6, 20, 200])
def test_a_partition_silencing_half_the_registry_engages_before_any_lease_runs_out(size: int) -> None:
    fleet = Fleet.start(size, 30_000)
    silence = T0 + 3 * WINDOW
    fleet.run(T0, silence)
    fleet.alive = set(range(size // 2, size))
    trace = fleet.run(silence, silence + 4 * WINDOW)
    engaged = next(t for t, active in trace if active)
    assert engaged - silence < CoreConfig().lease_duration_ms
    assert fleet.evicted_at == {} and fleet.replica.preservation.transitions == 1


def test_every_transition_waits_to_be_taken_whichever_pass_found_it() -> None:
    """An eviction pass (Replica.evict) that engages the mode drops nothing: the shell takes the transition."""
    fleet = Fleet.start(20, 30_000)
    fleet.run(T0, T0 + 3 * WINDOW)
    replica = fleet.replica
    assert replica.preservation.take_transitions() == []
    assert replica.evict(T0 + 3 * WINDOW + 50_000) == []  # all silent for 50 s: engaged, no lease has run out
    taken = replica.preservation.take_transitions()
    assert [t.engaged for t in taken] == [True] and taken[0].status.instances == 20
    assert replica.preservation.take_transitions() == []


@given(size=st.integers(1, 40), crashed=st.integers(1, 2), interval_s=st.sampled_from([10, 30]),
       offset=st.integers(0, 59))
def test_property_one_or_two_crashes_never_engage_and_are_evicted_one_lease_on(
        size: int, crashed: int, interval_s: int, offset: int) -> None:
    """Any registry size, either renewal interval (lease 3 intervals), crashes at any moment: self-preservation
    never engages, and the dead are evicted at the first eviction pass after their lease ran out (the second
    one for the second of two in a registry under 7, where a pass may evict only 1: the 15 % cap)."""
    interval = interval_s * 1000
    config = CoreConfig(renewal_interval_ms=interval, lease_duration_ms=3 * interval)
    fleet = Fleet.start(size, interval, config)
    crash = T0 + 2 * WINDOW + offset * 1000
    fleet.run(T0, crash, step=1000)
    dead = set(range(min(crashed, size)))
    last = {i: fleet.replica.entries[InstanceKey("SVC", f"i-{i}")].anchor_ms for i in dead}
    fleet.alive -= dead
    trace = fleet.run(crash, crash + 6 * interval + 2 * WINDOW, step=1000)
    assert not any(active for _, active in trace)
    assert fleet.evicted_at.keys() == {f"i-{i}" for i in dead}
    passes = 1 if eviction_cap(size, config.max_eviction_fraction) >= len(dead) else len(dead)
    for i in dead:
        assert last[i] + config.lease_duration_ms <= fleet.evicted_at[f"i-{i}"] \
            <= max(last.values()) + config.lease_duration_ms + passes * 60_000 + 1000


@given(size=st.integers(6, 60), silent_share=st.floats(0.5, 1.0), offset=st.integers(0, 29))
def test_property_a_partition_silencing_half_or_more_engages_before_a_lease_runs_out(
        size: int, silent_share: float, offset: int) -> None:
    fleet = Fleet.start(size, 30_000)
    silence = T0 + 2 * WINDOW + offset * 1000
    fleet.run(T0, silence, step=1000)
    fleet.alive = set(range(round(size * silent_share), size))
    trace = fleet.run(silence, silence + 90_000, step=1000)
    assert any(active for _, active in trace) and fleet.evicted_at == {}


def test_a_silence_engages_before_short_leases_run_out() -> None:
    """Spring-style leases (renewal 5 s, lease 10 s) in the default 60 s window: a lease runs out before the
    fading coverage of silent instances tips the ratio, and all 20 were evicted within 16 s of a partition.
    Leases that just ran out count as missing when deciding to engage; a lone crash still does not engage."""
    config = CoreConfig(renewal_interval_ms=5_000, lease_duration_ms=10_000)
    fleet = Fleet.start(20, 5_000, config)
    fleet.run(T0, T0 + 2 * WINDOW, eviction_every=1_000)
    silence = T0 + 2 * WINDOW
    fleet.alive = set()  # a partition: every renewal goes to the other side
    trace = fleet.run(silence, silence + WINDOW, eviction_every=1_000)
    assert any(active for _, active in trace)
    assert fleet.replica.counters.evictions == 0  # the first to run out waited for the rest of the wave
    lone = Fleet.start(20, 5_000, config)
    lone.run(T0, T0 + 2 * WINDOW, eviction_every=1_000)
    lone.alive = set(range(1, 20))  # one crash
    trace = lone.run(silence, silence + WINDOW, eviction_every=1_000)
    assert not any(active for _, active in trace) and lone.evicted_at.keys() == {"i-0"}


FAST = CoreConfig(renewal_interval_ms=1_000, lease_duration_ms=3_000, renewal_window_ms=10_000)


@given(size=st.integers(9, 60), silent_share=st.floats(0.3, 1.0), offset=st.integers(0, 9))
def test_property_a_wave_of_short_leases_is_not_evicted_before_the_mode_engages(
        size: int, silent_share: float, offset: int) -> None:
    """The fault suite's settings (1 s renewals, 3 s leases, 10 s window, a pass every second): the silent
    leases run out over one interval, and the ratio tips only once most have. Their first ones used to be
    evicted as lone crashes half a second before the mode engaged (a false eviction at partition onset)."""
    fleet = Fleet.start(size, 1_000, FAST)
    silence = T0 + 20_000 + offset * 100
    fleet.run(T0, silence, step=100, eviction_every=1_000)
    fleet.alive = set(range(round(size * silent_share), size))
    trace = fleet.run(silence, silence + 10_000, step=100, eviction_every=1_000)
    assert any(active for _, active in trace) and fleet.evicted_at == {}


@given(size=st.integers(3, 60), offset=st.integers(0, 9))
def test_property_with_short_leases_a_lone_crash_waits_at_most_one_interval(size: int, offset: int) -> None:
    """Holding a wave's first leases never holds a crash for long: a lease that ran out one interval ago is
    evicted whatever the others do, so a crash is gone within lease + interval + one pass of its last renewal."""
    fleet = Fleet.start(size, 1_000, FAST)
    crash = T0 + 20_000 + offset * 100
    fleet.run(T0, crash, step=100, eviction_every=1_000)
    last = fleet.replica.entries[InstanceKey("SVC", "i-0")].anchor_ms
    fleet.alive.discard(0)
    trace = fleet.run(crash, crash + 10_000, step=100, eviction_every=1_000)
    assert not any(active for _, active in trace) and fleet.evicted_at.keys() == {"i-0"}
    assert last + 3_000 <= fleet.evicted_at["i-0"] <= last + 3_000 + 1_000 + 1_000
