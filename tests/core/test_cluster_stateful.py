"""A Hypothesis state machine over a simulated cluster of 3 to 5 replicas, checked against a reference model.

Rules: writes of every kind at random nodes, renewals, long-lived heartbeating instances, partitions and heals, a
cancel racing a change made on the other side of a partition, message loss and duplication, restarts with empty
state, and time. Each node's clock is skewed by up to 3/4 of the guard (`max_clock_skew_ms`), so two nodes can
be up to half a guard further apart than it allows: the nodes correct towards their median clock, the node
behind holds the other's stamps back until they are in range, and no node's HLC may ever get further ahead of
its own corrected clock than the guard (nor that corrected clock outside the span of the nodes' clocks). After
every heal the cluster runs a bounded number of anti-entropy intervals (plus that excess) with no faults, then
renewals pause until held-back stamps are in range, and every replica must equal the model and each other.

The reference model does not ask the code who wins. It keeps every acknowledged write per key with the version
vector the write must carry (its node's previous vector, advanced at the node), and derives the order from
vectors and stamps alone, as DESIGN.md states the rule: a write dominates what its vector covers; between
concurrent writes the greater HLC stamp wins, except that a cancel beats writes that do not follow it, so a
write's place is (the latest cancel its vector covers, its stamp). After convergence the writes that survived
are exactly those whose vectors the converged vector covers; that vector must be their pointwise max, every
acknowledged write of a node that stayed up must be among them (I2), and the winner is the greatest survivor
(I6, I3). A write acknowledged by a node that then restarts empty before any other node held it may survive,
but need not.

Leases and the change feed are checked against the model too. Every renewal is stamped; whatever a node holds
as a key's latest renewal must be one the model saw, and the node's lease clock for it must have restarted no
earlier than that renewal happened, on the node's own clock (a node that took the sender's wall clock would
fail this with skewed clocks), and no later than now. Every change a node publishes is replayed into a view of
its registry, which must equal what the node shows (an eviction or cancel missing from the feed would not).

I3 is also checked through lineages: the model tracks which registration each live write belongs to (a
register starts one, a status or metadata change continues the one it changed) and which one each cancel
replaced, and a converged registry must never show a registration that an acknowledged cancel replaced.

A failing run prints the falsifying steps (the cluster seed and skews are arguments of `setup`) and a
`@reproduce_failure` blob, which replays it exactly: everything random in SimCluster comes from that seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from apreg.core.clock import ZERO, Timestamp
from apreg.core.config import CoreConfig
from apreg.core.effects import Action
from apreg.core.instance import InstanceInfo, InstanceKey, Status
from apreg.core.simnet import Faults, SimCluster

from .index_reference import assert_index_matches_scan
from .strategies import info, state

CONFIG = CoreConfig(renewal_interval_ms=500, lease_duration_ms=1_500, renewal_window_ms=3_000,
                    max_clock_skew_ms=2_000)
GUARD = CONFIG.max_clock_skew_ms
KEYS = [InstanceKey("SVC", f"i-{i}") for i in range(4)]
NAMES = ("n0", "n1", "n2", "n3", "n4")
HEARTBEAT_MS = 250  # heartbeating instances renew this often at their home node (well inside the lease)
TRANSIT_MS = 50  # what a one-way clock reading is off by in the simulation: delay plus a step
QUIET_MS = 500  # after settling, renewals pause this long so the renewal registers converge too

keys = st.sampled_from(KEYS)
Vector = dict[str, int]
Order = tuple[Timestamp, Timestamp]  # the model's (latest cancel covered, stamp)


def covers(big: Mapping[str, int], small: Mapping[str, int]) -> bool:
    """`big` has seen every write `small` has (pointwise >=)."""
    return all(big.get(replica, 0) >= count for replica, count in small.items())


def pointwise_max(vectors: Iterable[Mapping[str, int]]) -> Vector:
    out: Vector = {}
    for vector in vectors:
        for replica, count in vector.items():
            out[replica] = max(out.get(replica, 0), count)
    return out


@dataclass
class Write:
    """An acknowledged versioned write (info None: a cancel)."""

    stamp: Timestamp
    info: InstanceInfo | None
    node: str
    vv: Vector
    order: Order
    registration: Timestamp = ZERO  # a live write's registration; a cancel's: the one it replaced
    certain: bool = True  # False once its node restarted before anyone else held it


@dataclass
class Renewal:
    """An acknowledged renewal (a registration's included): its stamp and when it happened, in global time."""

    stamp: Timestamp
    at_ms: int
    certain: bool = True


@dataclass
class Prior:
    """What a node held for a key just before a write there."""

    vv: Vector = field(default_factory=dict)
    registration: Timestamp = ZERO  # of the live record held (ZERO: none, or a tombstone)


class ClusterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster: SimCluster
        self.names: tuple[str, ...] = ()
        self.excess = 0  # how much further apart than the guard the two most distant clocks are
        self.writes: dict[InstanceKey, list[Write]] = {k: [] for k in KEYS}
        self.renewals: dict[InstanceKey, list[Renewal]] = {k: [] for k in KEYS}
        self.heartbeats: dict[InstanceKey, str] = {}
        self.beats: dict[InstanceKey, int] = {}  # when each heartbeating instance last renewed (or registered) at home
        self.seen: dict[tuple[str, InstanceKey], Order] = {}  # the greatest write each node has held
        self.feeds: dict[str, dict[InstanceKey, InstanceInfo]] = {}  # each node's registry, replayed from its feed
        self.partitioned = False

    # ----- setup ---------------------------------------------------------------------------------------------

    @initialize(n=st.integers(3, 5), seed=st.integers(0, 2**32 - 1), skews=st.lists(
        st.integers(-GUARD * 3 // 4, GUARD * 3 // 4) | st.sampled_from([-GUARD * 3 // 4, GUARD * 3 // 4]),
        min_size=5, max_size=5))  # the extremes often, so that some clocks are further apart than the guard
    def setup(self, n: int, seed: int, skews: list[int]) -> None:
        self.names = NAMES[:n]
        skew = dict(zip(self.names, skews))
        self.cluster = SimCluster(self.names, seed=seed, config=CONFIG, skew_ms=skew)
        self.excess = max(0, max(skew.values()) - min(skew.values()) - GUARD)
        self.feeds = {name: {} for name in self.names}

    nodes = st.sampled_from(NAMES)

    def _node(self, name: str) -> str:
        return self.names[NAMES.index(name) % len(self.names)]

    # ----- the model's order -----------------------------------------------------------------------------------

    def _order(self, key: InstanceKey, stamp: Timestamp, cancel: bool, vv: Vector) -> Order:
        """A cancel's place is its own stamp; a live write's is the latest cancel its vector covers."""
        if cancel:
            return (stamp, stamp)
        covered = [w.stamp for w in self.writes[key] if w.info is None and covers(vv, w.vv)]
        return (max(covered, default=ZERO), stamp)

    # ----- writes --------------------------------------------------------------------------------------------

    def _prior(self, name: str, key: InstanceKey) -> Prior:
        record = self.cluster.node(name).records.get(key)
        if record is None:
            return Prior()
        if record.info is None:
            return Prior(dict(record.vv))
        return Prior(dict(record.vv), next(w.registration for w in self.writes[key] if w.stamp == record.stamp))

    def _acked(self, name: str, key: InstanceKey, prior: Prior, starts: bool = False) -> None:
        """Record the write `name` just acknowledged and push it eagerly. `starts`: a register, which begins a
        registration of its own; other writes apply to (a cancel: replace) the one the node held."""
        replica = self.cluster.node(name)
        record = replica.records[key]
        vv = {**prior.vv, replica.replica_id: prior.vv.get(replica.replica_id, 0) + 1}
        assert dict(record.vv) == vv, f"a write at {name} must advance the vector its node held: {record.vv}"
        order = self._order(key, record.stamp, record.info is None, vv)
        previous = self.seen.get((name, key))
        assert previous is None or order > previous, "a write must follow everything its node has seen"
        assert starts or prior.registration != ZERO, "only a register may start from nothing"
        self.writes[key].append(Write(record.stamp, record.info, name, vv, order,
                                      record.stamp if starts else prior.registration))
        self.cluster.after_write(name)

    def _renewed(self, name: str, key: InstanceKey) -> None:
        self.renewals[key].append(Renewal(self.cluster.node(name).entries[key].renewed, self.cluster.now_ms))

    def _register(self, name: str, key: InstanceKey, host: str) -> None:
        replica = self.cluster.node(name)
        prior = self._prior(name, key)
        record = replica.register(info(key.instance_id, host=host), self.cluster.local_ms(name))
        assert replica.records[key] == record  # I7: accepted whatever the partition
        self._renewed(name, key)
        self._acked(name, key, prior, starts=True)

    @rule(name=nodes, key=keys, host=st.sampled_from(["h1", "h2", "h3"]))
    def register(self, name: str, key: InstanceKey, host: str) -> None:
        self._register(self._node(name), key, host)

    @rule(name=nodes, key=keys)
    def cancel(self, name: str, key: InstanceKey) -> None:
        name = self._node(name)
        prior = self._prior(name, key)
        if self.cluster.node(name).cancel(key, self.cluster.local_ms(name)):
            self._acked(name, key, prior)

    @rule(name=nodes, key=keys, status=st.sampled_from([Status.UP, Status.DOWN, Status.OUT_OF_SERVICE]))
    def set_status(self, name: str, key: InstanceKey, status: Status) -> None:
        name = self._node(name)
        prior = self._prior(name, key)
        if self.cluster.node(name).set_status(key, status, self.cluster.local_ms(name)):
            self._acked(name, key, prior)

    @rule(name=nodes, key=keys, fallback=st.sampled_from([Status.UP, Status.UNKNOWN]))
    def remove_status(self, name: str, key: InstanceKey, fallback: Status) -> None:
        name = self._node(name)
        prior = self._prior(name, key)
        if self.cluster.node(name).remove_status(key, fallback, self.cluster.local_ms(name)):
            self._acked(name, key, prior)

    @rule(name=nodes, key=keys, value=st.sampled_from(["1", "2", "3"]))
    def metadata(self, name: str, key: InstanceKey, value: str) -> None:
        name = self._node(name)
        prior = self._prior(name, key)
        if self.cluster.node(name).update_metadata(key, {"v": value}, self.cluster.local_ms(name)):
            self._acked(name, key, prior)

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
        if self.cluster.node(name).renew(key, self.cluster.local_ms(name)):
            self._renewed(name, key)
            self.cluster.after_write(name)

    @rule(name=nodes, key=keys)
    def start_heartbeat(self, name: str, key: InstanceKey) -> None:
        """A long-lived instance: registers at `name` and renews there every HEARTBEAT_MS from now on."""
        name = self._node(name)
        self._register(name, key, "hb")
        self.heartbeats[key] = name
        self.beats[key] = self.cluster.now_ms

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
            held = [r.records[key].vv for r in others if key in r.records]
            for write in self.writes[key]:
                if write.certain and not any(covers(vv, write.vv) for vv in held):
                    write.certain = False  # only the restarted node held it (unless a message is in flight)
            renewed = max((r.entries[key].renewed for r in others if key in r.entries), default=ZERO)
            for renewal in self.renewals[key]:
                if renewal.certain and renewal.stamp > renewed:
                    renewal.certain = False
            self.seen.pop((name, key), None)
        self.cluster.restart_empty(name)
        self.feeds[name] = {}

    @rule(ms=st.integers(50, 3_000))
    def advance(self, ms: int) -> None:
        self._run(ms, heartbeats=True)

    @rule()
    def heal(self) -> None:
        """Heal everything, run a bounded number of anti-entropy intervals with no faults, and compare."""
        self.cluster.heal()
        self.partitioned = False
        self.cluster.faults = Faults()
        self._run((len(self.names) + 1) * self.cluster.anti_entropy_ms + 2 * self.excess, heartbeats=True)
        self._check_heartbeats_visible_everywhere()
        # A renewal held back as too far ahead applies once it is in range, at the node's next pass or delta (at
        # most the excess: corrections only shrink it). That may outlast the leases, so heartbeating instances
        # lapse meanwhile (and register again afterwards).
        quiet = QUIET_MS if not self.excess else self.excess + self.cluster.eviction_ms
        self._run(quiet, heartbeats=False)
        self._check_converged()

    def teardown(self) -> None:
        if self.names:
            self.heal()

    def _run(self, ms: int, heartbeats: bool) -> None:
        while ms > 0:
            step = min(ms, HEARTBEAT_MS)
            self.cluster.run(step)
            ms -= step
            self._check_state()
            if not heartbeats:
                continue
            for key, home in list(self.heartbeats.items()):
                replica = self.cluster.node(home)
                record = replica.records.get(key)
                beating = self.cluster.now_ms - self.beats[key] < CONFIG.lease_duration_ms  # not paused too long
                if record is not None and record.info is not None and beating:
                    assert not replica.entries[key].evicted, f"I4: {key} renews at {home} but was evicted there"
                if replica.renew(key, self.cluster.local_ms(home)):
                    self._renewed(home, key)
                    self.cluster.after_write(home)
                else:  # 404 (cancelled, evicted, unknown after a restart, status UNKNOWN): re-register
                    self._register(home, key, "hb")
                self.beats[key] = self.cluster.now_ms

    # ----- checks --------------------------------------------------------------------------------------------

    @invariant()
    def records_leases_clocks_and_feeds_agree_with_the_model(self) -> None:
        if not self.names:
            return
        self._check_state()
        for name in self.names:
            assert_index_matches_scan(self.cluster.node(name))

    def _check_state(self) -> None:
        for name in self.names:
            self._check_records(name)
            self._check_leases(name)
            self._check_clock(name)
            self._check_feed(name)

    def _check_records(self, name: str) -> None:
        """No node holds content nobody wrote, and no node's record of a key ever moves to an earlier write in
        the model's order (so a cancel, once applied, is only superseded by a registration that followed it: I3)."""
        for key, record in self.cluster.node(name).records.items():
            write = next((w for w in self.writes[key] if w.stamp == record.stamp and w.info == record.info), None)
            assert write is not None, f"{name} holds a {key} record nobody wrote"
            assert covers(record.vv, write.vv), f"{name}'s {key} vector lost part of its own write's"
            previous = self.seen.get((name, key))
            assert previous is None or write.order >= previous, f"{name} went back to an earlier {key} write"
            self.seen[(name, key)] = write.order

    def _check_leases(self, name: str) -> None:
        """A node's lease clock restarts at the latest renewal it knows, on its own clock: never before the
        renewal happened (transit and hops only make it later), never in its future."""
        replica, now = self.cluster.node(name), self.cluster.local_ms(name)
        skew = self.cluster.skew_ms[name]
        for key, entry in replica.entries.items():
            if entry.renewed == ZERO:
                continue
            renewal = next((r for r in self.renewals[key] if r.stamp == entry.renewed), None)
            assert renewal is not None, f"{name} holds a {key} renewal nobody made"
            assert renewal.at_ms + skew <= entry.anchor_ms <= now, (
                f"{name}'s {key} lease restarted at {entry.anchor_ms}, outside [{renewal.at_ms + skew}, {now}]")

    def _check_clock(self, name: str) -> None:
        """The guard: the correction keeps a node's clock within the span of the nodes' own clocks (give or take
        the transit), and no remote stamp drags an HLC further ahead than max_clock_skew of the corrected clock it
        was taken by, so never further than that ahead of the fastest clock. (The correction moves as a partition
        changes whom a node hears, so an HLC may be further than that ahead of the current one.)"""
        clock = self.cluster.node(name).clock
        corrected = self.cluster.local_ms(name) + clock.offset_ms
        clocks = [self.cluster.local_ms(n) for n in self.names]
        assert min(clocks) - TRANSIT_MS <= corrected <= max(clocks) + TRANSIT_MS, f"{name}'s correction overshot"
        assert clock.last.wall_ms <= max(clocks) + TRANSIT_MS + GUARD, f"{name}'s clock was dragged"

    def _check_feed(self, name: str) -> None:
        """Replay what the node published into a view of its registry; it must show what the node shows."""
        replica, view = self.cluster.node(name), self.feeds[name]
        for change in self.cluster.take_changes(name):
            if change.action is Action.REGISTER:  # new, back after an eviction, or a re-registration
                view[change.key] = change.info
            elif change.action in (Action.CANCEL, Action.EVICT):
                assert view.pop(change.key) == change.info, f"{name} published a {change.action} of another copy"
            else:
                assert change.key in view, f"{name} published a {change.action} of an instance it did not show"
                view[change.key] = change.info
        shown = {key: record.info for key in KEYS if (record := replica.visible(key)) is not None}
        assert view == shown, f"{name}'s feed says {view}, it shows {shown}"

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
            best_renewal = max((r.stamp for r in self.renewals[key] if r.certain), default=ZERO)
            assert renewed[self.names[0]] >= best_renewal, f"I2: {key} lost an acknowledged renewal"

            record = replicas[0].records.get(key)
            writes = self.writes[key]
            if record is None:
                assert not any(w.certain for w in writes), f"I2: acknowledged writes to {key} were lost"
                continue
            survived = [w for w in writes if covers(record.vv, w.vv)]
            lost = [w for w in writes if w.certain and w not in survived]
            assert not lost, f"I2: {key} lost acknowledged writes {lost}"
            assert dict(record.vv) == pointwise_max(w.vv for w in survived), f"{key}: vector is not the join"
            dominant = [w for w in survived if all(covers(w.vv, other.vv) for other in survived)]
            winner = max(survived, key=lambda w: w.order)
            assert not dominant or dominant[0] is winner, f"I6: {key}'s dominating write {dominant[0]} lost"
            assert (record.stamp, record.info) == (winner.stamp, winner.info), f"I6: {key} should be {winner}"
            if record.info is None:  # I3: a cancel that won is invisible everywhere
                assert all(r.visible(key) is None for r in replicas), f"I3: cancelled {key} is visible"
            else:  # I3: and what shows is no registration an acknowledged cancel replaced
                cancelled = {w.registration for w in writes if w.certain and w.info is None}
                assert winner.registration not in cancelled, f"I3: {key} was resurrected: {winner}"


TestCluster = ClusterMachine.TestCase
_deep = settings.default.max_examples > 100
TestCluster.settings = settings(settings.default, max_examples=1000 if _deep else 80,
                                stateful_step_count=80 if _deep else 40)
