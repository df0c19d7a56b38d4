"""The lease ledger's running sums and expired set against a scan of every lease, after any history."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apreg.core.clock import Timestamp
from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceInfo, InstanceKey, Status
from apreg.core.ledger import LeaseLedger
from apreg.core.lease import expected_renewals, renewal_credit
from apreg.core.messages import Delta, Push, RenewalUpdate
from apreg.core.replica import Replica

WINDOW = 1_000
STEPS = st.sampled_from([0, 1, 99, 299, 300, 301, 500, 999, 1_000, 1_001, 1_500])  # around every breakpoint


@dataclass
class Lease:
    first_seen: int
    anchor: int
    interval: int
    duration: int


def scan(leases: dict[str, Lease], now: int) -> tuple[float, float, set[str], float, int]:
    """(observed, expected, expired, overdue credit, overdue count) from every lease."""
    observed = expected = overdue_credit = 0.0
    expired = set()
    overdue = 0
    for key, lease in leases.items():
        if now >= lease.anchor + lease.duration:
            expired.add(key)
            continue
        expected += expected_renewals(now, lease.first_seen, WINDOW, lease.interval)
        credit = renewal_credit(now, lease.anchor, lease.first_seen, WINDOW, lease.interval)
        observed += credit
        if now >= lease.anchor + lease.interval:
            overdue_credit += credit
            overdue += 1
    return observed, expected, expired, overdue_credit, overdue


ledger_ops = st.lists(st.tuples(
    st.sampled_from(["track", "untrack", "renew", "renew_late"]), st.sampled_from("abcd"), STEPS,
    st.sampled_from([100, 300, 700]), st.sampled_from([200, 900, 2_000])), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ledger_ops, st.integers(1, 5))
def test_the_sums_and_expired_set_equal_a_scan_at_every_step(history: list[tuple[str, str, int, int, int]],
                                                             budget: int) -> None:
    ledger: LeaseLedger[str] = LeaseLedger(WINDOW)
    model: dict[str, Lease] = {}  # what a node holds: every lease, live or run out
    now, slices = 1_700_000_000_000, 0  # real epoch times: sums kept far from them would lose precision
    for op, key, step, interval, duration in history:
        now += step
        lease = model.get(key)
        if op == "track":
            model[key] = Lease(now - step // 2, now - step // 3, interval, duration)
            ledger.track(key, *vars(model[key]).values(), now)
        elif op == "untrack":
            model.pop(key, None)
            ledger.untrack(key)
        elif lease is not None:  # a renewal, now or as a peer reports it (an age back), never moving back
            lease.anchor = max(lease.anchor, now if op == "renew" else now - step)
            ledger.renewed(key, lease.anchor, now)
        while not ledger.advance(now, budget):  # in slices, as the node takes it
            slices += 1
        observed, expected, expired, overdue_credit, overdue = scan(model, now)
        assert ledger.sums() == (pytest.approx(observed, abs=1e-6), pytest.approx(expected, abs=1e-6))
        assert ledger.overdue() == (pytest.approx(overdue_credit, abs=1e-6), overdue)
        assert set(ledger.expired) == expired and set(ledger.terms) == model.keys() - expired
        # What the recently expired were expected to renew when they ran out: at most a full window each.
        worth, count = ledger.recently_expired(now)
        recent = [k for k in expired if ledger.expired[k].recent]
        assert count == len(recent) and worth == pytest.approx(sum(ledger.expired[k].expected for k in recent),
                                                                abs=1e-6)
        assert worth <= sum(WINDOW / model[k].interval for k in recent) + 1e-6
    # A lease has at most four breakpoints (ramp end, overdue, credit gone, expiry) and a renewal leaves one
    # stale: a ledger that re-took leases every millisecond would be right, and far too slow.
    assert slices <= 5 * len(history)


CONFIG = CoreConfig(lease_duration_ms=1_000, renewal_interval_ms=300, renewal_window_ms=WINDOW,
                    tombstone_ttl_ms=3_000, max_eviction_fraction=1.0, self_preservation=False)
IDS = ("i-1", "i-2", "i-3")
replica_ops = st.lists(st.tuples(
    st.sampled_from(["register", "renew", "peer_renew", "peer_register", "status", "cancel", "evict", "gc"]),
    st.sampled_from(IDS), STEPS, st.sampled_from([None, 0.2, 0.5]), st.sampled_from([None, 0.8, 3.0])),
    max_size=40)


def replica_scan(replica: Replica, now: int) -> tuple[float, float, set[InstanceKey]]:
    """What the old pass over every entry computed: the reference for the ledger inside a Replica."""
    observed = expected = 0.0
    expired = set()
    for entry in replica.entries.values():
        record = entry.record
        if record is None or record.info is None or entry.evicted:
            continue
        if entry.expired(now, replica.lease_duration_ms(record.info)):
            expired.add(entry.key)
            continue
        interval = replica.renewal_interval_ms(record.info)
        expected += expected_renewals(now, entry.first_seen_ms, WINDOW, interval)
        observed += renewal_credit(now, entry.anchor_ms, entry.first_seen_ms, WINDOW, interval)
    return observed, expected, expired


@settings(max_examples=150, deadline=None)
@given(replica_ops)
def test_a_replicas_ledger_follows_every_write_renewal_merge_and_eviction(
        history: list[tuple[str, str, int, float | None, float | None]]) -> None:
    local, peer = Replica("a", "1", CONFIG), Replica("b", "1", CONFIG)
    now = 1_700_000_000_000
    for op, instance_id, step, interval_s, duration_s in history:
        now += step
        key = InstanceKey("SVC", instance_id)
        info = InstanceInfo(app="SVC", instance_id=instance_id, host_name="h", ip_addr="10.0.0.1",
                            renewal_interval_s=interval_s, lease_duration_s=duration_s)
        if op == "register":
            local.register(info, now)
        elif op == "renew":
            local.renew(key, now)
        elif op == "status":
            local.set_status(key, Status.OUT_OF_SERVICE, now)
        elif op == "cancel":
            local.cancel(key, now)
        elif op == "evict":
            local.evict(now)
        elif op == "gc":
            local.collect_garbage(now)
        elif op == "peer_register":
            record = peer.register(info, now)
            local.receive(Push(Delta(peer.replica_id, 0, 0, (record,), ())), now)
        else:  # a renewal made at the peer `step` ms ago, as its push reports it
            renewal = RenewalUpdate(key, Timestamp(now, 0, peer.replica_id), step, 0)
            local.receive(Push(Delta(peer.replica_id, 0, 0, (), (renewal,))), now)
        while local.sweep(now + 1) is None:  # takes the ledger to now + 1 and re-evaluates
            pass
        observed, expected, expired = replica_scan(local, now + 1)
        status = local.preservation.last
        assert (status.renewals_in_window, status.expected) == (pytest.approx(observed, abs=1e-6),
                                                                pytest.approx(expected, abs=1e-6))
        assert set(local.leases.expired) == expired


def test_the_sums_keep_their_precision_at_epoch_times() -> None:
    """Thousands of leases tracked before the first pass, at today's clock: sums taken near the leases' own
    times, not at 0 (where every term would add and remove values of 10^8 renewals and leave the residue)."""
    start, ledger = 1_700_000_000_000, LeaseLedger[int](60_000)
    model = {}
    for i in range(5_000):
        model[i] = (start + i, start + i)
        ledger.track(i, start + i, start + i, 30_000, 90_000, start + i)
    now = start + 45_000
    assert ledger.advance(now, 100_000)
    observed, expected = ledger.sums()
    assert expected == pytest.approx(sum(expected_renewals(now, f, 60_000, 30_000) for f, _ in model.values()),
                                     abs=1e-6)
    assert observed == pytest.approx(sum(renewal_credit(now, a, f, 60_000, 30_000) for f, a in model.values()),
                                     abs=1e-6)
