"""The registry index and its versions against a full scan, after any mix of writes, merges, evictions and GC."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceInfo, InstanceKey, Status
from apreg.core.messages import Delta, Push
from apreg.core.replica import Replica

from .index_reference import assert_index_matches_scan
from .strategies import CLIENT_WRITES, client_write

CONFIG = CoreConfig(lease_duration_ms=1_000, renewal_interval_ms=300, renewal_window_ms=1_000,
                    tombstone_ttl_ms=3_000, max_eviction_fraction=1.0, self_preservation=False)
APPS = ("A", "B")
IDS = ("i-1", "i-2", "i-3")
VIPS = st.sampled_from([None, "", "x", "x,y", " y , x ", "y,,z"])

ops = st.lists(st.tuples(
    st.sampled_from(["register", "cancel", "status", "metadata", "renew", "peer_register", "peer_cancel",
                     "evict", "gc", "advance"]),
    st.sampled_from(APPS), st.sampled_from(IDS), VIPS, VIPS,
    st.sampled_from([Status.UP, Status.DOWN, Status.OUT_OF_SERVICE, Status.STARTING])), max_size=40)


def _info(app: str, instance_id: str, vip: str | None, svip: str | None, status: Status) -> InstanceInfo:
    return InstanceInfo(app=app, instance_id=instance_id, host_name="h", ip_addr="10.0.0.1", status=status,
                        vip_address=vip, secure_vip_address=svip)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_index_equals_a_scan_after_any_history(history: list[tuple[str, str, str, str | None, str | None,
                                                                    Status]]) -> None:
    local, peer = Replica("a", "1", CONFIG), Replica("b", "1", CONFIG)
    now = 1_000_000
    for op, app, instance_id, vip, svip, status in history:
        key = InstanceKey(app, instance_id)
        before = (local.index.version, local.index.app_version(app), {v: local.index.vip_version(v) for v in "xyz"})
        visible_before = local.visible(key)
        if op in CLIENT_WRITES:
            client_write(local, op, _info(app, instance_id, vip, svip, status), status, now)
        elif op in ("peer_register", "peer_cancel"):
            if op == "peer_register":
                record = peer.register(_info(app, instance_id, vip, svip, status), now)
            elif peer.cancel(key, now):
                record = peer.records[key]
            else:
                continue
            local.receive(Push(Delta(peer.replica_id, 0, 0, (record,), ())), now)
        elif op == "evict":
            local.evict(now)
        elif op == "gc":
            local.collect_garbage(now)
        else:
            now += 1_100  # past one lease: the next eviction pass finds it expired
        assert_index_matches_scan(local)
        if local.visible(key) != visible_before:  # a visible change to this key moves its app's version
            assert local.index.version > before[0] and local.index.app_version(app) > before[1]
        if op == "renew":  # a renewal alone invalidates nothing
            assert local.index.version == before[0]
