"""Eager pushes: one in flight per peer, what comes meanwhile coalesced, failures rewound and backed off.

The driver (the server's Node, or the simulator) only reports how each push ended; these tests play the
driver by hand, and a Hypothesis state machine checks the rules over arbitrary interleavings."""
from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceKey
from apreg.core.messages import Push
from apreg.core.replica import Replica

from .strategies import info

T0 = 5_000_000
CONFIG = CoreConfig(self_preservation=False)
PEERS = ("b", "c")


def pushes(replica: Replica, now_ms: int) -> dict[str, Push]:
    replica.tick(now_ms)
    out = {o.peer: o.message for o in replica.take_effects().messages if isinstance(o.message, Push)}
    assert all(isinstance(push, Push) for push in out.values())
    return out  # type: ignore[return-value]


def ids(push: Push) -> list[str]:
    return sorted(record.key.instance_id for record in push.delta.records)


def test_writes_during_a_push_in_flight_go_together_in_the_next_one() -> None:
    a = Replica("a", "1", CONFIG, ("b",))
    a.register(info("i-1"), T0)
    first = pushes(a, T0)["b"]
    for n in (2, 3, 4):
        a.register(info(f"i-{n}"), T0 + n)
        assert pushes(a, T0 + n) == {}  # one in flight: the rest waits for it
    a.push_done("b", first)
    assert ids(pushes(a, T0 + 5)["b"]) == ["i-2", "i-3", "i-4"]  # the next tick starts what waited


def test_a_report_about_another_push_changes_nothing() -> None:
    a = Replica("a", "1", CONFIG, ("b",))
    a.register(info("i-1"), T0)
    first = pushes(a, T0)["b"]
    a.push_done("b", Push(first.delta))  # an equal push, but not the one in flight (a repair push, say)
    a.push_done("x", first)  # a peer it does not have
    a.register(info("i-2"), T0 + 1)
    assert pushes(a, T0 + 1) == {}


def test_renewals_alone_wait_for_the_renewal_window_and_a_write_takes_them_along() -> None:
    a = Replica("a", "1", CONFIG, ("b",))
    a.register(info("i-1"), T0)
    a.push_done("b", pushes(a, T0)["b"])
    a.renew(InstanceKey("SVC", "i-1"), T0 + 10)
    assert a.tick(T0 + 10) == T0 + 10 + CONFIG.renewal_push_window_ms and pushes(a, T0 + 10) == {}
    a.register(info("i-2"), T0 + 20)
    push = pushes(a, T0 + 20)["b"]
    assert ids(push) == ["i-2"] and [u.key.instance_id for u in push.delta.renewals] == ["i-1", "i-2"]


def test_a_failed_push_is_rewound_and_the_peer_held_for_its_back_off() -> None:
    a = Replica("a", "1", CONFIG, ("b",))
    a.register(info("i-1"), T0)
    lost = pushes(a, T0)["b"]
    a.push_failed("b", lost, T0 + 1, retry_after_ms=500)
    a.register(info("i-2"), T0 + 2)
    assert pushes(a, T0 + 2) == {}  # backing off: nothing is started, and nothing waits for the hold to end
    assert pushes(a, T0 + 600) == {}
    a.register(info("i-3"), T0 + 601)
    assert ids(pushes(a, T0 + 601)["b"]) == ["i-1", "i-2", "i-3"]  # from where the failed push started


def test_fanout_pushes_to_that_many_peers_chosen_by_the_replicas_rng() -> None:
    a = Replica("a", "1", CoreConfig(fanout=1), ("b", "c", "d"))
    chosen = set()
    for n in range(12):
        a.register(info(f"i-{n}"), T0 + n)
        out = pushes(a, T0 + n)
        assert len(out) <= 1
        for peer, push in out.items():
            a.push_done(peer, push)
            chosen.add(peer)
    assert chosen == {"b", "c", "d"}


class PushMachine(RuleBasedStateMachine):
    """Writes, ticks and push reports in any order: never two pushes in flight to one peer, and once reports
    stop failing, every peer ends up holding every write (failed pushes are resent, none is skipped)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.a = Replica("a", "1", CONFIG, PEERS)
        self.peers = {name: Replica(name, "1", CONFIG) for name in PEERS}
        self.in_flight: dict[str, Push] = {}

    def _tick(self) -> None:
        for peer, push in pushes(self.a, self.now).items():
            assert peer not in self.in_flight, f"a second push to {peer} while one is in flight"
            self.in_flight[peer] = push

    @rule(n=st.integers(0, 6), renew=st.booleans())
    def write(self, n: int, renew: bool) -> None:
        if not (renew and self.a.renew(InstanceKey("SVC", f"i-{n}"), self.now)):
            self.a.register(info(f"i-{n}"), self.now)

    @rule(ms=st.integers(0, 300))
    def tick(self, ms: int) -> None:
        self.now += ms
        self._tick()

    @rule(peer=st.sampled_from(PEERS))
    def delivered(self, peer: str) -> None:
        push = self.in_flight.pop(peer, None)
        if push is not None:
            self.peers[peer].receive(push, self.now)
            self.a.push_done(peer, push)

    @rule(peer=st.sampled_from(PEERS), retry_after_ms=st.integers(0, 1_000))
    def failed(self, peer: str, retry_after_ms: int) -> None:
        push = self.in_flight.pop(peer, None)
        if push is not None:
            self.a.push_failed(peer, push, self.now, retry_after_ms)

    def teardown(self) -> None:
        """Heal: past every hold, one more write, then deliver everything until nothing is in flight."""
        self.now += 2_000
        self.a.register(info("i-last"), self.now)
        for _ in range(10):
            self._tick()
            for peer in list(self.in_flight):
                self.delivered(peer)
            self.now += CONFIG.renewal_push_window_ms
        assert not self.in_flight
        for name, peer in self.peers.items():
            assert {k: r.stamp for k, r in peer.records.items()} == {k: r.stamp for k, r in self.a.records.items()}, \
                f"{name} misses writes"


def test_push_rules_hold_over_any_interleaving() -> None:
    run_state_machine_as_test(PushMachine, settings=settings(max_examples=150, stateful_step_count=40,
                                                             deadline=None))
