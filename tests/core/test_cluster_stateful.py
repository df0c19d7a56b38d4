"""A Hypothesis state machine over a simulated cluster of 3 to 5 replicas, checked against a reference model.

Rules: writes of every kind at random nodes, renewals, long-lived heartbeating instances, partitions and heals, a
cancel racing a change made on the other side of a partition, message loss and duplication, restarts with empty
state, and time. Each node's clock is skewed (within half the guard, so no two nodes are further apart than
`max_clock_skew_ms`). After every heal the cluster runs a bounded
number of anti-entropy intervals with no faults, then every replica must equal the model and each other.

The reference model keeps every acknowledged write per key. Merge picks the greatest rank (record.py), so the
expected winner of a key is its write with the greatest rank. A write acknowledged by a node that then restarts
empty is only *maybe* kept: if no other replica held it (or something ranked higher) at the restart, it survives
only if a message carrying it was already in flight. Such writes may win, but never have to.

I3 is also checked independently of the rank arithmetic: the model tracks which registration each live write
belongs to (a register starts one, a status or metadata change continues the one it changed) and which one each
cancel replaced, and a converged registry must never show a registration that an acknowledged cancel replaced.

A failing run prints the falsifying steps (the cluster seed and skews are arguments of `setup`) and a
`@reproduce_failure` blob, which replays it exactly: everything random in SimCluster comes from that seed.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from apreg.core.clock import ZERO, Timestamp
from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceInfo, InstanceKey, Status
from apreg.core.simnet import Faults, SimCluster

from .index_reference import assert_index_matches_scan
from .strategies import info, state

CONFIG = CoreConfig(renewal_interval_ms=500, lease_duration_ms=1_500, renewal_window_ms=3_000,
                    max_clock_skew_ms=2_000)
KEYS = [InstanceKey("SVC", f"i-{i}") for i in range(4)]
NAMES = ("n0", "n1", "n2", "n3", "n4")
HEARTBEAT_MS = 250  # heartbeating instances renew this often at their home node (well inside the lease)
QUIET_MS = 500  # after settling, renewals pause this long so the renewal registers converge too

keys = st.sampled_from(KEYS)


Rank = tuple[Timestamp, Timestamp]


@dataclass
class Write:
    """An acknowledged versioned write (info None: a cancel), or an acknowledged renewal (rank unused)."""

    stamp: Timestamp
    info: InstanceInfo | None
    node: str
    rank: Rank = (ZERO, ZERO)
    registration: Timestamp = ZERO  # a live write's registration; a cancel's: the one it replaced
    certain: bool = True  # False once its node restarted before anyone else held it


class ClusterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster: SimCluster
        self.names: tuple[str, ...] = ()
        self.writes: dict[InstanceKey, list[Write]] = {k: [] for k in KEYS}
        self.renewals: dict[InstanceKey, list[Write]] = {k: [] for k in KEYS}
        self.heartbeats: dict[InstanceKey, str] = {}
        self.seen: dict[tuple[str, InstanceKey], Rank] = {}  # greatest record rank each node has held
        self.partitioned = False

    # ----- setup ---------------------------------------------------------------------------------------------

    @initialize(n=st.integers(3, 5), seed=st.integers(0, 2**32 - 1),
                skews=st.lists(st.integers(-CONFIG.max_clock_skew_ms // 2, CONFIG.max_clock_skew_ms // 2),
                               min_size=5, max_size=5))
    def setup(self, n: int, seed: int, skews: list[int]) -> None:
        self.names = NAMES[:n]
        self.cluster = SimCluster(self.names, seed=seed, config=CONFIG,
                                  skew_ms=dict(zip(self.names, skews)))

    nodes = st.sampled_from(NAMES)

    def _node(self, name: str) -> str:
        return self.names[NAMES.index(name) % len(self.names)]

    # ----- writes --------------------------------------------------------------------------------------------

    def _before(self, name: str, key: InstanceKey) -> Timestamp:
        """The registration of the record `name` holds for `key` (ZERO if none or a tombstone)."""
        record = self.cluster.node(name).records.get(key)
        if record is None or record.info is None:
            return ZERO
        return next(w.registration for w in self.writes[key] if w.stamp == record.stamp)

    def _acked(self, name: str, key: InstanceKey, registration: Timestamp | None) -> None:
        """Record the write `name` just acknowledged (`registration`: the one a status or metadata change or a
        cancel applied to; None for a register, which starts its own), and push it eagerly."""
        record = self.cluster.node(name).records[key]
        previous = self.seen.get((name, key))
        assert previous is None or record.rank > previous, "a write must follow everything its node has seen"
        assert registration != ZERO, "only a register may start from nothing"
        self.writes[key].append(Write(record.stamp, record.info, name, record.rank,
                                      record.stamp if registration is None else registration))
        self.cluster.after_write(name)

    def _register(self, name: str, key: InstanceKey, host: str) -> None:
        replica = self.cluster.node(name)
        record = replica.register(info(key.instance_id, host=host), self.cluster.local_ms(name))
        assert replica.records[key] == record  # I7: accepted whatever the partition
        self._acked(name, key, None)
        self.renewals[key].append(Write(replica.entries[key].renewed, None, name))

    @rule(name=nodes, key=keys, host=st.sampled_from(["h1", "h2", "h3"]))
    def register(self, name: str, key: InstanceKey, host: str) -> None:
        self._register(self._node(name), key, host)

    @rule(name=nodes, key=keys)
    def cancel(self, name: str, key: InstanceKey) -> None:
        name = self._node(name)
        before = self._before(name, key)
        if self.cluster.node(name).cancel(key, self.cluster.local_ms(name)):
            self._acked(name, key, before)

    @rule(name=nodes, key=keys, status=st.sampled_from([Status.UP, Status.DOWN, Status.OUT_OF_SERVICE]))
    def set_status(self, name: str, key: InstanceKey, status: Status) -> None:
        name = self._node(name)
        before = self._before(name, key)
        if self.cluster.node(name).set_status(key, status, self.cluster.local_ms(name)):
            self._acked(name, key, before)

    @rule(name=nodes, key=keys, fallback=st.sampled_from([Status.UP, Status.UNKNOWN]))
    def remove_status(self, name: str, key: InstanceKey, fallback: Status) -> None:
        name = self._node(name)
        before = self._before(name, key)
        if self.cluster.node(name).remove_status(key, fallback, self.cluster.local_ms(name)):
            self._acked(name, key, before)

    @rule(name=nodes, key=keys, value=st.sampled_from(["1", "2", "3"]))
    def metadata(self, name: str, key: InstanceKey, value: str) -> None:
        name = self._node(name)
        before = self._before(name, key)
        if self.cluster.node(name).update_metadata(key, {"v": value}, self.cluster.local_ms(name)):
            self._acked(name, key, before)

    @rule(canceller=nodes, other=nodes, key=keys, change=st.sampled_from(["status", "metadata", "register"]))
    def cancel_races_a_change(self, canceller: str, other: str, key: InstanceKey, change: str) -> None:
        """The race behind I3, which random rules seldom line up: `other` is cut off, then the instance is
        cancelled at `canceller` and changed at `other`, which has not heard of the cancel (its clock may be
        ahead). The partition stays until a later `heal`."""
        canceller, other = self._node(canceller), self._node(other)
        if canceller == other:
            return
        self.cluster.heal()
        self.cluster.partition(set(self.names) - {other}, {other})
        self.partitioned = True
        self.cancel(canceller, key)
        if change == "status":
            self.set_status(other, key, Status.OUT_OF_SERVICE)
        elif change == "metadata":
            self.metadata(other, key, "9")
        else:
            self.register(other, key, "h2")

    @rule(name=nodes, key=keys)
    def renew(self, name: str, key: InstanceKey) -> None:
        name = self._node(name)
        replica = self.cluster.node(name)
        if replica.renew(key, self.cluster.local_ms(name)):
            self.renewals[key].append(Write(replica.entries[key].renewed, None, name))
            self.cluster.after_write(name)

    @rule(name=nodes, key=keys)
    def start_heartbeat(self, name: str, key: InstanceKey) -> None:
        """A long-lived instance: registers at `name` and renews there every HEARTBEAT_MS from now on."""
        name = self._node(name)
        self._register(name, key, "hb")
        self.heartbeats[key] = name

    @rule(key=keys)
    def stop_heartbeat(self, key: InstanceKey) -> None:
        self.heartbeats.pop(key, None)

    # ----- faults and time -----------------------------------------------------------------------------------

    @rule(loss=st.sampled_from([0.0, 0.1, 0.3]), duplicate=st.sampled_from([0.0, 0.2]))
    def faults(self, loss: float, duplicate: float) -> None:
        self.cluster.faults = Faults(loss=loss, duplicate=duplicate)

    @rule(sides=st.lists(st.booleans(), min_size=5, max_size=5))
    def partition(self, sides: list[bool]) -> None:
        left = {n for n, side in zip(self.names, sides) if side}
        right = set(self.names) - left
        if left and right:
            self.cluster.heal()
            self.cluster.partition(left, right)
            self.partitioned = True

    @rule(name=nodes)
    def restart_empty(self, name: str) -> None:
        name = self._node(name)
        others = [self.cluster.node(n) for n in self.names if n != name]
        for key in KEYS:
            held = max((r.records[key].rank for r in others if key in r.records), default=(ZERO, ZERO))
            for write in self.writes[key]:
                if write.certain and write.rank > held:
                    write.certain = False  # only the restarted node held it (unless a message is in flight)
            renewed = max((r.entries[key].renewed for r in others if key in r.entries), default=ZERO)
            for renewal in self.renewals[key]:
                if renewal.certain and renewal.stamp > renewed:
                    renewal.certain = False
            self.seen.pop((name, key), None)
        self.cluster.restart_empty(name)

    @rule(ms=st.integers(50, 3_000))
    def advance(self, ms: int) -> None:
        self._run(ms, heartbeats=True)

    @rule()
    def heal(self) -> None:
        """Heal everything, run a bounded number of anti-entropy intervals with no faults, and compare."""
        self.cluster.heal()
        self.partitioned = False
        self.cluster.faults = Faults()
        self._run((len(self.names) + 1) * self.cluster.anti_entropy_ms, heartbeats=True)
        self._check_heartbeats_visible_everywhere()
        self._run(QUIET_MS, heartbeats=False)
        self._check_converged()

    def teardown(self) -> None:
        if self.names:
            self.heal()

    def _run(self, ms: int, heartbeats: bool) -> None:
        while ms > 0:
            step = min(ms, HEARTBEAT_MS)
            self.cluster.run(step)
            ms -= step
            self._check_monotone()
            if not heartbeats:
                continue
            for key, home in list(self.heartbeats.items()):
                replica = self.cluster.node(home)
                record = replica.records.get(key)
                if record is not None and record.info is not None:
                    assert not replica.entries[key].evicted, f"I4: {key} renews at {home} but was evicted there"
                if replica.renew(key, self.cluster.local_ms(home)):
                    self.renewals[key].append(Write(replica.entries[key].renewed, None, home))
                    self.cluster.after_write(home)
                else:  # 404 (cancelled, evicted, unknown after a restart, status UNKNOWN): re-register
                    self._register(home, key, "hb")

    # ----- checks --------------------------------------------------------------------------------------------

    @invariant()
    def records_are_acknowledged_writes_and_never_go_back(self) -> None:
        """No node holds content nobody wrote, and no node's record of a key ever moves to a lower-ranked write
        (so a cancel, once applied, is only superseded by a registration that followed it: I3)."""
        if not self.names:
            return
        self._check_monotone()
        for name in self.names:
            assert_index_matches_scan(self.cluster.node(name))

    def _check_monotone(self) -> None:
        for name in self.names:
            for key, record in self.cluster.node(name).records.items():
                previous = self.seen.get((name, key))
                assert previous is None or record.rank >= previous, f"{name} went back to a lower-ranked {key}"
                self.seen[(name, key)] = record.rank
                assert any(w.stamp == record.stamp and w.info == record.info and w.rank == record.rank
                           for w in self.writes[key]), f"{name} holds a {key} record nobody wrote"

    def _check_heartbeats_visible_everywhere(self) -> None:
        """I4 after the heal: an instance that kept renewing is present everywhere, whatever was evicted."""
        for key in self.heartbeats:
            for name in self.names:
                assert self.cluster.node(name).visible(key) is not None, f"I4: {key} not visible at {name}"

    def _check_converged(self) -> None:
        replicas = [self.cluster.node(n) for n in self.names]
        for key in KEYS:
            states = {n: state(self.cluster.node(n).records.get(key)) for n in self.names}
            assert all(s == states[self.names[0]] for s in states.values()), f"I1/I6: replicas disagree: {states}"
            renewed = {n: self.cluster.node(n).entries[key].renewed if key in self.cluster.node(n).entries else ZERO
                       for n in self.names}
            assert len(set(renewed.values())) == 1, f"I1: renewal registers disagree on {key}: {renewed}"

            record = replicas[0].records.get(key)
            certain = [w for w in self.writes[key] if w.certain]
            if record is None:
                assert not certain, f"I2: acknowledged writes to {key} were lost"
                continue
            best = max((w.rank for w in certain), default=(ZERO, ZERO))
            assert record.rank >= best, f"I2: {key} lost the acknowledged write ranked {best}"
            winner = next(w for w in self.writes[key] if w.stamp == record.stamp)
            assert winner.info == record.info and winner.rank == record.rank
            assert winner.certain or record.rank > best
            if record.info is None:  # I3: a cancel that won is invisible everywhere
                assert all(r.visible(key) is None for r in replicas), f"I3: cancelled {key} is visible"
            else:  # I3: and what shows is no registration an acknowledged cancel replaced
                cancelled = {w.registration for w in certain if w.info is None}
                assert winner.registration not in cancelled, f"I3: {key} was resurrected: {winner}"
            best_renewal = max((w.stamp for w in self.renewals[key] if w.certain), default=ZERO)
            assert renewed[self.names[0]] >= best_renewal, f"I2: {key} lost an acknowledged renewal"


TestCluster = ClusterMachine.TestCase
_deep = settings.default.max_examples > 100
TestCluster.settings = settings(settings.default, max_examples=1000 if _deep else 80,
                                stateful_step_count=80 if _deep else 40)
