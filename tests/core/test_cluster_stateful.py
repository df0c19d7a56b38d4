"""A Hypothesis state machine over a simulated cluster of 3 to 5 replicas, checked against a reference model.

Rules: writes of every kind at random nodes, renewals, long-lived heartbeating instances, partitions and heals,
message loss and duplication, restarts with empty state, and time. Each node's clock is skewed (within half the
guard, so no two nodes are further apart than `max_clock_skew_ms`). After every heal the cluster runs a bounded
number of anti-entropy intervals with no faults, then every replica must equal the model and each other.

The reference model keeps every acknowledged write per key. Merge picks the greatest HLC stamp, so the expected
winner of a key is its write with the greatest stamp. A write acknowledged by a node that then restarts empty is
only *maybe* kept: if no other replica held it (or something newer) at the restart, it survives only if a message
carrying it was already in flight. Such writes may win, but never have to.

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

from .strategies import info, state

CONFIG = CoreConfig(renewal_interval_ms=500, lease_duration_ms=1_500, renewal_window_ms=3_000,
                    max_clock_skew_ms=2_000)
KEYS = [InstanceKey("SVC", f"i-{i}") for i in range(4)]
NAMES = ("n0", "n1", "n2", "n3", "n4")
HEARTBEAT_MS = 250  # heartbeating instances renew this often at their home node (well inside the lease)
QUIET_MS = 500  # after settling, renewals pause this long so the renewal registers converge too

keys = st.sampled_from(KEYS)


@dataclass
class Write:
    """An acknowledged versioned write (info None: a cancel), or an acknowledged renewal."""

    stamp: Timestamp
    info: InstanceInfo | None
    node: str
    certain: bool = True  # False once its node restarted before anyone else held it


class ClusterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster: SimCluster
        self.names: tuple[str, ...] = ()
        self.writes: dict[InstanceKey, list[Write]] = {k: [] for k in KEYS}
        self.renewals: dict[InstanceKey, list[Write]] = {k: [] for k in KEYS}
        self.heartbeats: dict[InstanceKey, str] = {}
        self.seen: dict[tuple[str, InstanceKey], Timestamp] = {}  # greatest record stamp each node has held
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

    def _acked(self, name: str, key: InstanceKey) -> None:
        """Record the write `name` just acknowledged, and push it eagerly."""
        record = self.cluster.node(name).records[key]
        previous = self.seen.get((name, key))
        assert previous is None or record.stamp > previous, "a write must follow everything its node has seen"
        self.writes[key].append(Write(record.stamp, record.info, name))
        self.cluster.after_write(name)

    def _register(self, name: str, key: InstanceKey, host: str) -> None:
        replica = self.cluster.node(name)
        record = replica.register(info(key.instance_id, host=host), self.cluster.local_ms(name))
        assert replica.records[key] == record  # I7: accepted whatever the partition
        self._acked(name, key)
        self.renewals[key].append(Write(replica.leases[key].renewed, None, name))

    @rule(name=nodes, key=keys, host=st.sampled_from(["h1", "h2", "h3"]))
    def register(self, name: str, key: InstanceKey, host: str) -> None:
        self._register(self._node(name), key, host)

    @rule(name=nodes, key=keys)
    def cancel(self, name: str, key: InstanceKey) -> None:
        name = self._node(name)
        if self.cluster.node(name).cancel(key, self.cluster.local_ms(name)):
            self._acked(name, key)

    @rule(name=nodes, key=keys, status=st.sampled_from([Status.UP, Status.DOWN, Status.OUT_OF_SERVICE]))
    def set_status(self, name: str, key: InstanceKey, status: Status) -> None:
        name = self._node(name)
        if self.cluster.node(name).set_status(key, status, self.cluster.local_ms(name)):
            self._acked(name, key)

    @rule(name=nodes, key=keys, fallback=st.sampled_from([Status.UP, Status.UNKNOWN]))
    def remove_status(self, name: str, key: InstanceKey, fallback: Status) -> None:
        name = self._node(name)
        if self.cluster.node(name).remove_status(key, fallback, self.cluster.local_ms(name)):
            self._acked(name, key)

    @rule(name=nodes, key=keys, value=st.sampled_from(["1", "2", "3"]))
    def metadata(self, name: str, key: InstanceKey, value: str) -> None:
        name = self._node(name)
        if self.cluster.node(name).update_metadata(key, {"v": value}, self.cluster.local_ms(name)):
            self._acked(name, key)

    @rule(name=nodes, key=keys)
    def renew(self, name: str, key: InstanceKey) -> None:
        name = self._node(name)
        replica = self.cluster.node(name)
        if replica.renew(key, self.cluster.local_ms(name)):
            self.renewals[key].append(Write(replica.leases[key].renewed, None, name))
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
            held = max((r.records[key].stamp for r in others if key in r.records), default=ZERO)
            for write in self.writes[key]:
                if write.certain and write.stamp > held:
                    write.certain = False  # only the restarted node held it (unless a message is in flight)
            renewed = max((r.leases[key].renewed for r in others if key in r.leases), default=ZERO)
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
                    assert not replica.leases[key].evicted, f"I4: {key} renews at {home} but was evicted there"
                if replica.renew(key, self.cluster.local_ms(home)):
                    self.renewals[key].append(Write(replica.leases[key].renewed, None, home))
                    self.cluster.after_write(home)
                else:  # 404 (cancelled, evicted, unknown after a restart, status UNKNOWN): re-register
                    self._register(home, key, "hb")

    # ----- checks --------------------------------------------------------------------------------------------

    @invariant()
    def records_are_acknowledged_writes_and_never_go_back(self) -> None:
        """No node holds content nobody wrote, and no node's record of a key ever moves to an older write (so a
        cancel, once applied, is only superseded by a later write: I3)."""
        if not self.names:
            return
        self._check_monotone()

    def _check_monotone(self) -> None:
        for name in self.names:
            for key, record in self.cluster.node(name).records.items():
                previous = self.seen.get((name, key))
                assert previous is None or record.stamp >= previous, f"{name} went back to an older {key}"
                self.seen[(name, key)] = record.stamp
                assert any(w.stamp == record.stamp and w.info == record.info for w in self.writes[key]), \
                    f"{name} holds a {key} record nobody wrote"

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
            renewed = {n: self.cluster.node(n).leases[key].renewed if key in self.cluster.node(n).leases else ZERO
                       for n in self.names}
            assert len(set(renewed.values())) == 1, f"I1: renewal registers disagree on {key}: {renewed}"

            record = replicas[0].records.get(key)
            certain = [w for w in self.writes[key] if w.certain]
            if record is None:
                assert not certain, f"I2: acknowledged writes to {key} were lost"
                continue
            best = max((w.stamp for w in certain), default=ZERO)
            assert record.stamp >= best, f"I2: {key} lost the acknowledged write stamped {best}"
            winner = next(w for w in self.writes[key] if w.stamp == record.stamp)
            assert winner.info == record.info and (winner.certain or record.stamp > best)
            if record.info is None:  # I3: a cancel that won is invisible everywhere
                assert all(r.visible(key) is None for r in replicas), f"I3: cancelled {key} is visible"
            best_renewal = max((w.stamp for w in self.renewals[key] if w.certain), default=ZERO)
            assert renewed[self.names[0]] >= best_renewal, f"I2: {key} lost an acknowledged renewal"


TestCluster = ClusterMachine.TestCase
_deep = settings.default.max_examples > 100
TestCluster.settings = settings(settings.default, max_examples=1000 if _deep else 80,
                                stateful_step_count=80 if _deep else 40)
