"""The document cache never serves what a fresh render of a full scan would not (beyond its documented bounds)."""
from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ET
from typing import Any, Generator, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceInfo, InstanceKey, Status
from apreg.core.messages import Delta, Push
from apreg.core.replica import Replica
from apreg.eureka import render
from apreg.eureka.gzip_join import gzip_member, inflate
from apreg.server import feed as feed_module
from apreg.server.documents import DELTA_ACTIONS, DocumentCache, instance_view
from apreg.server.feed import ChangeFeed

from ..core.strategies import CLIENT_WRITES, client_write

T = TypeVar("T")
CONFIG = CoreConfig(lease_duration_ms=1_000, renewal_interval_ms=300, renewal_window_ms=1_000,
                    tombstone_ttl_ms=3_000, max_eviction_fraction=1.0, self_preservation=False)
REFRESH_MS = 2_000

ops = st.lists(st.tuples(
    st.sampled_from(["register", "cancel", "status", "metadata", "renew", "peer", "evict", "gc", "advance",
                     "read_registry", "read_app", "read_delta"]),
    st.sampled_from(["A", "B", "C"]), st.integers(0, 7), st.sampled_from(list(Status)),
    st.sampled_from(["json", "xml"]), st.integers(0, 3)), max_size=80)


def drain(steps: Generator[None, None, T]) -> T:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def _canonical(doc: bytes, fmt: str) -> Any:
    """Instances by (app, id) with their fields, so that the order of apps' blocks does not matter."""
    if fmt == "json":
        root = json.loads(doc)
        apps = root["applications"]["application"] if "applications" in root else [root["application"]]
        header = {k: v for k, v in root.get("applications", {}).items() if k != "application"}
        return header, {(i["app"], i["instanceId"]): i for a in apps for i in a["instance"]}
    root = ET.fromstring(doc)
    apps = root.findall("application") if root.tag == "applications" else [root]
    header = {child.tag: child.text for child in root if child.tag != "application"} if root.tag != "application" else {}
    return header, {(i.findtext("app"), i.findtext("instanceId")): ET.tostring(i) for a in apps
                    for i in a.findall("instance")}


def _fresh_delta(replica: Replica, feed: ChangeFeed, fmt: str) -> bytes:
    """The delta by a scan of the window: the latest event per key, as Eureka's delta lists them."""
    latest = {event.key: event for event in feed.recent}
    views = [instance_view(replica, event.info, DELTA_ACTIONS[event.action]) for event in latest.values()]
    return render.render_applications(views, feed.delta_version, render.hashcode(replica.index.status_counts), fmt)


def _fresh(replica: Replica, fmt: str, app: str | None = None) -> bytes:
    views = [instance_view(replica, info) for info, _ in replica.instances()
             if app is None or info.app == app]
    if app is not None:
        return render.render_application(app, views, fmt)
    return render.render_applications(views, 1, render.reconcile_hashcode(v.info.status for v in views), fmt)


Anchors = dict[InstanceKey, list[tuple[int, int]]]  # per key: (time, lease anchor) after each step


def _without_renewal_times(doc: bytes, fmt: str, replica: Replica, anchors: Anchors, now: int) -> Any:
    """The canonical form with each lastRenewalTimestamp checked against the documented lag and then blanked
    (the whole leaseInfo of a deleted instance forgotten since: it shows its last lease, or none). The bound: a
    document shows each lease as it was at some time within the last REFRESH_MS."""
    header, instances = _canonical(doc, fmt)
    out = {}
    for (app, instance_id), body in instances.items():
        key = InstanceKey(app, instance_id)
        entry = replica.entries.get(key)
        if fmt == "json":
            shown = body["leaseInfo"]["lastRenewalTimestamp"]
            body["leaseInfo"] = {} if entry is None else {**body["leaseInfo"], "lastRenewalTimestamp": 0}
        else:
            elem = ET.fromstring(body)
            lease = elem.find("leaseInfo")
            assert lease is not None
            shown = int(lease.findtext("lastRenewalTimestamp") or "0")
            for child in lease:
                if entry is None or child.tag == "lastRenewalTimestamp":
                    child.text = ""
            body = ET.tostring(elem)
        if entry is not None:
            recent = [anchor for at, anchor in anchors[key] if at >= now - REFRESH_MS]
            older = [anchor for at, anchor in anchors[key] if at < now - REFRESH_MS][-1:]
            assert shown in recent + older, "a rendered renewal time is older than the refresh bound allows"
        out[key] = body
    return header, out


@settings(max_examples=300, deadline=None)
@given(ops, st.sampled_from([1, 2, 128]))
def test_cached_documents_equal_a_fresh_render(history: list[tuple[str, str, int, Status, str, int]],
                                               block_size: int) -> None:
    local, peer, feed = Replica("a", "1", CONFIG), Replica("b", "1", CONFIG), ChangeFeed()
    cache = DocumentCache(local, feed, refresh_ms=REFRESH_MS, max_age_ms=0, block_size=block_size)
    now = 1_000_000
    anchors: Anchors = {}
    for op, app, n, status, fmt, vips in history:
        key = InstanceKey(app, f"i-{n}")
        info = InstanceInfo(app=app, instance_id=key.instance_id, host_name=f"h{n}", ip_addr="10.0.0.1",
                            status=status, vip_address=",".join(["v1", "v2", "v3"][:vips]) or None)
        if op in CLIENT_WRITES:
            client_write(local, op, info, status, now)
        elif op == "peer":
            local.receive(Push(Delta(peer.replica_id, 0, 0, (peer.register(info, now),), ())), now)
        elif op == "evict":
            local.evict(now)
        elif op == "gc":
            local.collect_garbage(now)
        elif op == "advance":  # as the node does: a background refresh every quarter of the bound
            for _ in range(vips + 1):
                now += REFRESH_MS // 4
                drain(cache.refresh(now))
            now += feed_module.DELTA_RETENTION_MS if n == 7 else 0
        elif op == "read_registry":
            built = cache.current_registry(fmt, now) or drain(cache.build_registry(fmt, now))
            assert gzip.decompress(built.gzip) == inflate(built.piece)
            assert (_without_renewal_times(inflate(built.piece), fmt, local, anchors, now)
                    == _without_renewal_times(_fresh(local, fmt), fmt, local, anchors, now))
        elif op == "read_delta":
            cache.note((), feed.prune(now))
            built = cache.current_delta(fmt) or drain(cache.build_delta(fmt, now))
            assert (_without_renewal_times(inflate(built.piece), fmt, local, anchors, now)
                    == _without_renewal_times(_fresh_delta(local, feed, fmt), fmt, local, anchors, now))
        else:
            piece = drain(cache.application(app, fmt, now))
            if piece is None:
                assert not local.index.app(app)
            else:
                assert gzip.decompress(gzip_member(piece)) == inflate(piece)
                assert (_without_renewal_times(inflate(piece), fmt, local, anchors, now)
                        == _without_renewal_times(_fresh(local, fmt, app), fmt, local, anchors, now))
        changes = local.take_effects().changes
        cache.note(changes, feed.publish(changes))
        for key, entry in local.entries.items():
            anchors.setdefault(key, []).append((now, entry.anchor_ms))


def test_a_changing_registry_is_served_as_of_its_last_build_for_at_most_the_max_age() -> None:
    replica = Replica("a", "1", CONFIG)
    cache = DocumentCache(replica, ChangeFeed(), refresh_ms=60_000, max_age_ms=1_000)
    replica.register(InstanceInfo(app="A", instance_id="i-1", host_name="h", ip_addr="10.0.0.1"), 0)
    cache.note(replica.take_effects().changes)
    first = drain(cache.build_registry("json", 0))
    replica.register(InstanceInfo(app="A", instance_id="i-2", host_name="h", ip_addr="10.0.0.1"), 10)
    cache.note(replica.take_effects().changes)
    assert cache.current_registry("json", 999) is first  # changed, but within the max age
    assert cache.current_registry("json", 1_000) is None  # past it: the next read rebuilds
    second = drain(cache.build_registry("json", 1_000))
    assert len(json.loads(inflate(second.piece))["applications"]["application"][0]["instance"]) == 2
    assert cache.current_registry("json", 59_999) is second  # unchanged: kept (lease times: refresh's job)


def _registry(instances: int) -> tuple[Replica, DocumentCache]:
    """A replica holding `instances` of app A registered at time 0, and a document cache of 4-instance blocks."""
    replica = Replica("a", "1", CONFIG)
    cache = DocumentCache(replica, ChangeFeed(), refresh_ms=60_000, max_age_ms=0, block_size=4)
    for n in range(instances):
        replica.register(InstanceInfo(app="A", instance_id=f"i-{n}", host_name="h", ip_addr="10.0.0.1"), 0)
    cache.note(replica.take_effects().changes)
    return replica, cache


def test_the_background_refresh_re_renders_old_blocks_and_rebuilds_what_showed_them() -> None:
    replica, cache = _registry(8)
    first = drain(cache.build_registry("json", 0))
    replica.renew(InstanceKey("A", "i-3"), 20_000)
    drain(cache.refresh(29_000))  # younger than half the bound: nothing to do
    assert cache.current_registry("json", 29_000) is first
    drain(cache.refresh(31_000))
    refreshed = cache.current_registry("json", 31_000)
    assert refreshed is not None and refreshed is not first
    lease = {i["instanceId"]: i["leaseInfo"]["lastRenewalTimestamp"]
             for i in json.loads(inflate(refreshed.piece))["applications"]["application"][0]["instance"]}
    assert lease["i-3"] == 20_000 and lease["i-0"] == 0


def test_a_change_re_renders_its_block_only() -> None:
    replica, cache = _registry(64)
    drain(cache.build_registry("json", 0))
    rendered = cache.registry_blocks.rendered
    assert 1 < rendered <= 16
    replica.set_status(InstanceKey("A", "i-7"), Status.DOWN, 1)
    cache.note(replica.take_effects().changes)
    doc = json.loads(inflate(drain(cache.build_registry("json", 2)).piece))
    assert cache.registry_blocks.rendered == rendered + 1
    assert doc["applications"]["apps__hashcode"] == "DOWN_1_UP_63_"
    replica.renew(InstanceKey("A", "i-8"), 3)  # a renewal alone invalidates nothing
    drain(cache.build_registry("json", 4))
    assert cache.registry_blocks.rendered == rendered + 1
