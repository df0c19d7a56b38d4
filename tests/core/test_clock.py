"""HybridClock: monotone, causal, and guarded against far-future remote clocks without losing anything."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apreg.core.clock import ClockSkewError, HybridClock, Timestamp
from apreg.core.config import CoreConfig
from apreg.core.messages import Delta, Push
from apreg.core.replica import Replica
from apreg.core.simnet import SimCluster

from .strategies import KEY, info

GUARD = 1_000

clock_ops = st.lists(
    st.tuples(st.booleans(), st.integers(0, 3_000), st.integers(0, 4_000), st.integers(0, 3), st.sampled_from("xyz")),
    min_size=1, max_size=60)


@given(clock_ops)
def test_clock_never_goes_backwards_and_ticks_exceed_everything_seen(ops: list[tuple[bool, int, int, int, str]]) -> None:
    """Wall time jumps around (including backwards); ticks stay strictly increasing and above accepted remotes."""
    clock = HybridClock("me", max_skew_ms=GUARD)
    last_tick = Timestamp(-1, 0, "")
    highest_seen = Timestamp(-1, 0, "")
    for is_tick, now, remote_wall, remote_logical, remote_id in ops:
        before = clock.last
        if is_tick:
            stamp = clock.tick(now)
            assert stamp > last_tick and stamp > highest_seen and stamp.wall_ms >= now and stamp.replica == "me"
            last_tick = stamp
        else:
            remote = Timestamp(remote_wall, remote_logical, remote_id)
            try:
                clock.observe(remote, now)
                highest_seen = max(highest_seen, remote)
            except ClockSkewError:
                assert remote_wall - now > GUARD
                assert clock.last == before
        assert clock.last >= before


def test_skew_beyond_guard_is_rejected_and_counted() -> None:
    clock = HybridClock("me", max_skew_ms=GUARD)
    clock.tick(10_000)
    with pytest.raises(ClockSkewError):
        clock.observe(Timestamp(10_000 + GUARD + 1, 0, "far"), 10_000)
    assert clock.skew_rejections == 1 and clock.last == Timestamp(10_000, 0, "me")
    clock.observe(Timestamp(10_000 + GUARD, 7, "edge"), 10_000)  # exactly at the guard: accepted
    assert clock.skew_rejections == 1
    assert clock.tick(10_000) == Timestamp(10_000 + GUARD, 8, "me")


def test_replica_holds_a_far_future_record_then_applies_it_once_in_range() -> None:
    config = CoreConfig(max_clock_skew_ms=GUARD)
    a = Replica("a", "1", config)
    b = Replica("b", "1", config)
    record = a.register(info(), 50_000)  # a's clock is 5 s ahead of b's (and its push carries no clock reading)
    push = Push(Delta(a.replica_id, 0, a.log.head, (record,), ()))
    b.receive(push, 45_000)
    assert KEY not in b.records and len(b.held) == 1 and b.clock.skew_rejections == 1
    assert b.watermarks[a.replica_id] == a.log.head  # held, so taken: the sender is not asked for it again
    b.sweep(48_999)
    assert KEY not in b.records
    b.sweep(49_000)  # now within the guard
    assert b.records[KEY] == record and len(b.held) == 0 and b.counters.rejected_items == 0
    assert b.clock.tick(49_000) > record.stamp  # the applied stamp was observed: b's next write follows it


def test_simulated_node_too_far_ahead_loses_nothing() -> None:
    """A node 3 s past a 1 s guard writes before it has heard its peer: the peer holds the write while it is
    too fresh and applies it once it is old enough; by then both clocks have corrected towards each other."""
    config = CoreConfig(max_clock_skew_ms=GUARD)
    cluster = SimCluster(("a", "b"), seed=1, config=config, skew_ms={"a": 3_000})
    a, b = cluster.node("a"), cluster.node("b")
    written = a.register(info(), cluster.local_ms("a"))
    cluster.after_write("a")
    cluster.run(100)
    assert KEY not in b.records and len(b.held) == 2  # the record and its registration's renewal
    cluster.run(1_000)
    assert b.records[KEY].stamp == written.stamp and b.records[KEY].info == written.info and len(b.held) == 0
    assert a.clock.offset_ms < 0 < b.clock.offset_ms


def test_the_correction_starting_and_ending_comes_out_once_each_in_the_effects() -> None:
    """The shell logs clock transitions from `take_effects()` (no reading of the clock): one when a peer's
    deltas move the median past the deadband, none while it stays there, one when it is back."""
    config = CoreConfig(max_clock_skew_ms=4 * GUARD)  # deadband: GUARD
    b = Replica("b", "1", config, ("a",))

    def heard(offset_ms: int, now_ms: int) -> tuple[object, ...]:
        b.receive(Push(Delta("a~1", 0, 0, (), (), clock_ms=now_ms + offset_ms)), now_ms)
        return b.take_effects().clock_transitions

    assert heard(GUARD, 10_000) == ()  # the median of {0, GUARD}: within the deadband
    started = heard(6 * GUARD, 11_000)
    assert [view.corrected for view in started] == [True] and started[0].offset_ms == 2 * GUARD
    assert started[0].peer_offsets_ms == {"a~1": 6 * GUARD} and started[0].deadband_ms == GUARD
    assert heard(5 * GUARD, 12_000) == ()  # still corrected: no new transition
    assert b.status().clock.offset_ms == 3 * GUARD // 2
    ended = heard(0, 13_000)
    assert [view.corrected for view in ended] == [False] and b.take_effects().clock_transitions == ()
