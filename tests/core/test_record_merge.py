"""record.merge: a join (commutative, associative, idempotent) whose winner agrees with causality and with I3.

The algebraic laws are checked over arbitrary records, including ones no honest replica produces (equal ranks
with different content, dominance against the rank order, epochs after their own stamp), because the merge must
still converge on them. Causality and no-resurrection are checked over histories produced by real Replicas.
"""
from __future__ import annotations

from functools import reduce

from hypothesis import given
from hypothesis import strategies as st

from apreg.core.clock import ZERO, Timestamp
from apreg.core.instance import Status
from apreg.core.record import Record, merge
from apreg.core.version import Order, compare

from .strategies import KEY, History, histories, info, records, state


def m(a: Record | None, b: Record) -> Record:
    return merge(a, b).record


@given(records, records)
def test_merge_is_commutative(a: Record, b: Record) -> None:
    assert state(m(a, b)) == state(m(b, a))


@given(records, records, records)
def test_merge_is_associative(a: Record, b: Record, c: Record) -> None:
    assert state(m(m(a, b), c)) == state(m(a, m(b, c)))


@given(records, records)
def test_merge_is_idempotent(a: Record, b: Record) -> None:
    assert state(m(a, a)) == state(a)
    ab = m(a, b)
    assert state(m(ab, b)) == state(ab)
    assert not merge(ab, b).changed and not merge(ab, ab).changed


@given(records, records)
def test_merged_vector_is_pointwise_max_and_rank_is_max(a: Record, b: Record) -> None:
    merged = m(a, b)
    replicas = set(a.vv) | set(b.vv)
    assert dict(merged.vv) == {r: max(a.vv.get(r, 0), b.vv.get(r, 0)) for r in replicas}
    assert merged.rank == max(a.rank, b.rank)
    winners = [r for r in (a, b) if r.rank == merged.rank]
    assert any((merged.info, merged.stamp, merged.epoch) == (r.info, r.stamp, r.epoch) for r in winners)


@given(st.lists(records, min_size=1, max_size=6), st.data())
def test_any_delivery_order_duplication_or_grouping_gives_the_same_record(batch: list[Record],
                                                                          data: st.DataObject) -> None:
    """I6 at the record level: fold a permuted, duplicated, arbitrarily grouped delivery of the same set."""
    expected = state(reduce(m, batch[1:], batch[0]))
    delivered = data.draw(st.permutations(batch + data.draw(st.lists(st.sampled_from(batch), max_size=4))))
    split = data.draw(st.integers(1, len(delivered)))
    left = reduce(m, delivered[1:split], delivered[0])  # one replica folds a prefix ...
    right = delivered[split:]
    right_folded = reduce(m, right[1:], right[0]) if right else None
    total = left if right_folded is None else m(right_folded, left)  # ... another the rest, then they exchange
    assert state(total) == expected


def test_concurrent_conflict_sets_joined_vector() -> None:
    a = Record(KEY, info(host="a"), {"a~1": 1}, Timestamp(100, 0, "a~1"))
    b = Record(KEY, info(host="b"), {"b~1": 1}, Timestamp(99, 5, "b~1"))  # same epoch: the later stamp wins
    out = merge(a, b)
    assert out.conflict and out.changed
    assert out.record.info == a.info and dict(out.record.vv) == {"a~1": 1, "b~1": 1}
    again = merge(out.record, b)  # settled once: the same record again is neither a change nor a conflict
    assert not again.changed and not again.conflict


def test_equal_stamps_break_on_replica_id() -> None:
    a = Record(KEY, info(host="a"), {"a~1": 1}, Timestamp(100, 0, "a~1"))
    b = Record(KEY, info(host="b"), {"b~1": 1}, Timestamp(100, 0, "b~1"))
    assert m(a, b).info == b.info and m(b, a).info == b.info


def test_cancel_beats_a_concurrent_later_stamped_change_but_not_a_registration_that_followed_it() -> None:
    """I3 at the record level: the change was made to the registration the cancel replaced."""
    registered = Timestamp(100, 0, "a~1")
    cancel = Record(KEY, None, {"a~1": 2}, Timestamp(200, 0, "a~1"), ZERO)
    change = Record(KEY, info(status=Status.OUT_OF_SERVICE), {"a~1": 1, "b~1": 1}, Timestamp(900, 0, "b~1"), ZERO)
    assert change.stamp > cancel.stamp and registered < cancel.stamp
    for out in (merge(cancel, change), merge(change, cancel)):
        assert out.conflict and out.record.is_tombstone and out.record.stamp == cancel.stamp
        assert dict(out.record.vv) == {"a~1": 2, "b~1": 1}
    again = Record(KEY, info(host="again"), {"a~1": 3, "b~1": 1}, Timestamp(300, 0, "b~1"), cancel.stamp)
    for local in (cancel, change, m(cancel, change)):
        assert m(local, again).info == again.info and m(again, local).info == again.info


# ----- causality, over histories produced by Replicas -----------------------------------------------------------

@given(histories())
def test_a_causally_later_write_wins(history: History) -> None:
    assert all(r.counters.rejected_items == 0 for r in history.replicas)
    for write, held in history.writes:
        for earlier in held:
            assert compare(write.vv, earlier.vv) is Order.AFTER
            for winner in (m(earlier, write), m(write, earlier)):
                assert (winner.info, winner.stamp, winner.epoch) == (write.info, write.stamp, write.epoch)


@given(histories())
def test_vector_dominance_implies_greater_rank(history: History) -> None:
    """What record.py relies on: if a's vector dominates b's, a's rank is greater -- or equal when a is b's
    write with a vector enlarged by a later join (same content), so picking by rank never contradicts it."""
    for a in history.produced:
        for b in history.produced:
            if compare(a.vv, b.vv) is Order.AFTER:
                assert a.rank > b.rank or (a.rank == b.rank and a.stamp == b.stamp and a.info == b.info)


@given(histories())
def test_a_cancel_beats_every_change_to_the_registration_it_replaced(history: History) -> None:
    """I3 over real histories: whatever the clocks, no status or metadata change to a cancelled registration
    (made before the cancel or concurrently, at a node that had not heard of it) wins over the cancel."""
    for cancel, replaced in history.cancels:
        for write, _ in history.writes:
            if write.info is not None and history.lineage[write.stamp] == replaced:
                assert compare(write.vv, cancel.vv) is not Order.AFTER  # nobody changes what it saw cancelled
                for winner in (m(cancel, write), m(write, cancel)):
                    assert winner.is_tombstone and winner.stamp == cancel.stamp


@given(histories())
def test_replicas_that_exchanged_everything_agree(history: History) -> None:
    """Whatever the replicas did, a final all-to-all exchange of their records leaves them identical."""
    finals = [r.records.get(KEY) for r in history.replicas]
    present = [f for f in finals if f is not None]
    if not present:
        return
    expected = state(reduce(m, present[1:], present[0]))
    assert expected is not None and expected[3] == max(f.rank for f in present)
    for f in present:
        assert state(reduce(m, present, f)) == expected
