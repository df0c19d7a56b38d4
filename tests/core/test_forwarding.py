"""Forwarding: a full mesh carries each change once; a node cut off from the writer still gets it eagerly."""
from __future__ import annotations

from collections import Counter

from apreg.core.instance import InstanceInfo, InstanceKey
from apreg.core.messages import Message, Push
from apreg.core.simnet import SimCluster


def _info(n: int) -> InstanceInfo:
    return InstanceInfo(app="SVC", instance_id=f"i-{n}", host_name="h", ip_addr="10.0.0.1")


def pushed_records(cluster: SimCluster) -> Counter[tuple[str, str]]:
    """Records carried by the pushes delivered from now on, by (sender, receiver)."""
    counts: Counter[tuple[str, str]] = Counter()

    def observe(sender: str, receiver: str, message: Message) -> None:
        if isinstance(message, Push):
            counts[sender, receiver] += len(message.delta.records)

    cluster.observe = observe
    return counts


def test_full_mesh_does_not_forward_what_the_receiver_gets_from_the_writer() -> None:
    c = SimCluster(("a", "b", "c"), seed=3)
    c.run(3000)  # anti-entropy rounds teach each node which replicas its peers hear directly
    pushed = pushed_records(c)
    c.node("a").register(_info(1), c.local_ms("a"))
    c.after_write("a")
    c.run(20, step_ms=1)
    assert all(InstanceKey("SVC", "i-1") in c.node(n).records for n in "bc")
    assert +pushed == {("a", "b"): 1, ("a", "c"): 1}  # b and c forwarded no record (+: pushes with none)
    c.run(3000)  # the left-out range is credited: watermarks keep up, so anti-entropy has nothing to resend
    b, cc = c.node("b"), c.node("c")
    assert cc.watermarks[b.replica_id] == b.log.head and b.watermarks[cc.replica_id] == cc.log.head


def test_a_node_cut_off_from_the_writer_gets_its_writes_through_a_peer_at_once() -> None:
    c = SimCluster(("a", "b", "c"), seed=4, anti_entropy_ms=10_000)
    c.partition(["a"], ["c"])  # a and c cannot talk; b talks to both
    c.run(12_000)
    c.node("a").register(_info(2), c.local_ms("a"))
    c.after_write("a")
    c.run(50, step_ms=1)  # far less than an anti-entropy interval: b forwarded it eagerly
    assert InstanceKey("SVC", "i-2") in c.node("c").records


def test_when_the_writer_dies_mid_push_anti_entropy_fills_what_was_left_out() -> None:
    c = SimCluster(("a", "b", "c"), seed=5)
    c.run(3000)
    c.partition(["a"], ["c"])  # a's push to c is lost, but b still believes c hears a directly
    c.node("a").register(_info(3), c.local_ms("a"))
    c.after_write("a")
    c.run(20, step_ms=1)
    c.node("b").register(_info(4), c.local_ms("b"))  # b's push to c carries its own write and leaves a's out
    c.after_write("b")
    c.run(20, step_ms=1)
    assert InstanceKey("SVC", "i-4") in c.node("c").records and InstanceKey("SVC", "i-3") not in c.node("c").records
    c.down.add("a")  # and a is gone for good
    c.heal()
    c.run(8000)
    assert InstanceKey("SVC", "i-3") in c.node("c").records


def test_a_push_with_nothing_to_carry_leaves_the_pointer_so_the_watermark_keeps_up_without_repair() -> None:
    """b has nothing to forward to c of a's write (c hears a directly), so it sends nothing and must not count
    that range as pushed: its next push then starts where c's watermark of b stands, names a's write as left
    out, and c credits the whole range at once. Were the range counted as pushed, the next push would start past
    c's watermark, which would then wait for anti-entropy; here there is none."""
    c = SimCluster(("a", "b", "c"), seed=3)
    c.run(3000)  # anti-entropy rounds teach each node which replicas its peers hear directly
    b, cc = c.node("b"), c.node("c")
    assert cc.watermarks.get(b.replica_id, 0) == b.log.head
    c.configure(anti_entropy_interval_ms=10**9 + 7)  # from here on, eager pushes only
    c.node("a").register(_info(5), c.local_ms("a"))
    c.after_write("a")
    c.run(20, step_ms=1)
    assert b.log.head > cc.watermarks.get(b.replica_id, 0)  # b logged a's write and sent c nothing of it
    b.register(_info(6), c.local_ms("b"))
    c.after_write("b")
    c.run(20, step_ms=1)
    assert InstanceKey("SVC", "i-6") in cc.records
    assert cc.watermarks[b.replica_id] == b.log.head
