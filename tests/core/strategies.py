"""Hypothesis strategies and small builders shared by the core tests.

Random records are drawn from deliberately tiny domains (three replicas, a few milliseconds, two hosts) so that
equal timestamps, equal vectors and concurrent vectors all come up often. Causal histories are produced by
driving real `Replica` objects, because only they can say which records honest replicas actually create.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from apreg.core.clock import ZERO, Timestamp
from apreg.core.config import CoreConfig
from apreg.core.effects import Outgoing
from apreg.core.instance import InstanceInfo, InstanceKey, Status
from apreg.core.messages import Delta, Push
from apreg.core.record import Record
from apreg.core.replica import Replica

APP = "SVC"
KEY = InstanceKey(APP, "i-1")
REPLICAS = ("a~1", "b~1", "c~1")


def info(instance_id: str = "i-1", host: str = "h1", status: Status = Status.UP, **extra: Any) -> InstanceInfo:
    return InstanceInfo(app=APP, instance_id=instance_id, host_name=host, ip_addr="10.0.0.1", status=status, **extra)


def state(record: Record | None) -> tuple[Any, ...] | None:
    """What replicas must agree on: content, vector and rank (a Record's vv may be any Mapping).

    The rank (epoch, stamp) rather than the raw `epoch` field: a tombstone's epoch field is unused (its rank is
    its own stamp), so arbitrary records that differ only there are the same state, and merge may keep either.
    """
    return None if record is None else (record.key, record.info, dict(record.vv), record.rank)


infos = st.builds(
    info,
    host=st.sampled_from(["h1", "h2"]),
    status=st.sampled_from([Status.UP, Status.DOWN, Status.OUT_OF_SERVICE]),
    metadata=st.dictionaries(st.sampled_from(["zone", "v"]), st.sampled_from(["1", "2"]), max_size=2),
)
stamps = st.builds(Timestamp, st.integers(0, 3), st.integers(0, 2), st.sampled_from(REPLICAS))
vectors = st.dictionaries(st.sampled_from(REPLICAS), st.integers(1, 3), max_size=3)
epochs = st.just(ZERO) | stamps  # any stamp, even one after the record's own (no honest replica makes those)
records = st.builds(Record, st.just(KEY), st.none() | infos, vectors, stamps, epochs)


# ----- causal histories driven through Replica objects ----------------------------------------------------------

@dataclass
class History:
    """Everything a few replicas produced for one key, and what each replica held just before each own write."""

    replicas: list[Replica]
    produced: list[Record] = field(default_factory=list)  # every record any replica stored, in order
    writes: list[tuple[Record, list[Record]]] = field(default_factory=list)  # (write, records its node held)
    # Each live write's registration (the stamp of the register that started its lineage; a status or metadata
    # change continues the lineage of the record it changed), and each cancel's replaced registration.
    lineage: dict[Timestamp, Timestamp] = field(default_factory=dict)
    cancels: list[tuple[Record, Timestamp]] = field(default_factory=list)


def flush(replica: Replica, now_ms: int) -> list[Outgoing]:
    """Tick `replica` and take the eager pushes it starts, reporting each delivered (or lost on the way, which
    a stream cannot tell apart), as a driver does; digests of the first tick's initial pull are left out."""
    replica.tick(now_ms)
    pushes = [out for out in replica.take_effects().messages if isinstance(out.message, Push)]
    for out in pushes:
        assert isinstance(out.message, Push)
        replica.push_done(out.peer, out.message)
    return pushes


def push(sender: Replica, record: Record) -> Push:
    return Push(Delta(sender.replica_id, 0, 0, (record,), ()))


SKEW_GUARD_MS = 1_000


@st.composite
def histories(draw: st.DrawFn, max_ops: int = 30) -> History:
    """Random writes at random replicas interleaved with random one-way record transfers.

    Each replica's wall clock has its own skew (within half the guard, so no transfer is refused) plus per-step
    jitter that can move it backwards: the HLC must keep causality anyway.
    """
    n = draw(st.integers(2, 3))
    config = CoreConfig(max_clock_skew_ms=SKEW_GUARD_MS)
    replicas = [Replica(f"n{i}", "1", config) for i in range(n)]
    skews = [draw(st.integers(-SKEW_GUARD_MS // 2 + 200, SKEW_GUARD_MS // 2 - 200)) for _ in range(n)]
    history = History(replicas)
    seen: list[list[Record]] = [[] for _ in range(n)]  # every record each replica has folded in or written
    now = 1_000_000
    for _ in range(draw(st.integers(1, max_ops))):
        now += draw(st.integers(0, 50))
        i = draw(st.integers(0, n - 1))
        local = now + skews[i] + draw(st.integers(-150, 150))
        node = replicas[i]
        if draw(st.booleans()):  # a transfer from another replica
            j = draw(st.integers(0, n - 1))
            record = replicas[j].records.get(KEY)
            if j != i and record is not None:
                node.receive(push(replicas[j], record), local)
                seen[i].append(record)
        else:
            held = list(seen[i])
            before = node.records.get(KEY)
            kind = draw(st.sampled_from(["register", "cancel", "status", "metadata"]))
            ok = True
            if kind == "cancel":
                ok = node.cancel(KEY, local)
            elif kind == "status":
                ok = node.set_status(KEY, draw(st.sampled_from([Status.UP, Status.OUT_OF_SERVICE])), local)
            elif kind == "metadata":
                ok = node.update_metadata(KEY, {"v": str(draw(st.integers(0, 3)))}, local)
            if kind == "register" or not ok:
                node.register(info(host=draw(st.sampled_from(["h1", "h2", "h3"]))), local)
            write = node.records[KEY]
            history.writes.append((write, held))
            seen[i].append(write)
            if write.info is None:
                assert before is not None
                history.cancels.append((write, history.lineage[before.stamp]))
            elif kind in ("status", "metadata") and ok:
                assert before is not None
                history.lineage[write.stamp] = history.lineage[before.stamp]
            else:
                history.lineage[write.stamp] = write.stamp
        record = node.records.get(KEY)
        if record is not None and (not history.produced or history.produced[-1] is not record):
            history.produced.append(record)
    return history


CLIENT_WRITES = ("register", "cancel", "status", "metadata", "renew")


def client_write(replica: Replica, op: str, instance: InstanceInfo, status: Status, now: int) -> None:
    """One of `CLIENT_WRITES` at `replica`, as a Eureka client would make it (a no-op if it does not apply)."""
    key = instance.key
    if op == "register":
        replica.register(instance, now)
    elif op == "cancel":
        replica.cancel(key, now)
    elif op == "status":
        replica.set_status(key, status, now)
    elif op == "metadata":
        replica.update_metadata(key, {"k": str(now)}, now)
    else:
        replica.renew(key, now)
