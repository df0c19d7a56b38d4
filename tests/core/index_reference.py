"""What the registry index must equal: the same views computed by a full scan, independently of the index code."""
from __future__ import annotations

from collections import Counter

from apreg.core.instance import InstanceInfo
from apreg.core.replica import Replica


def _vips(value: str | None) -> set[str]:
    return {v.strip() for v in (value or "").split(",")} - {""}


def assert_index_matches_scan(replica: Replica) -> None:
    visible: list[InstanceInfo] = [info for info, _ in replica.instances()]
    index = replica.index
    assert index.count == len(visible)
    assert index.status_counts == dict(Counter(info.status for info in visible))
    assert index.app_status_counts == {app: dict(Counter(i.status for i in visible if i.app == app))
                                       for app in {i.app for i in visible}}
    by_app: dict[str, set[str]] = {}
    by_vip: dict[str, set[tuple[str, str]]] = {}
    by_svip: dict[str, set[tuple[str, str]]] = {}
    for info in visible:
        by_app.setdefault(info.app, set()).add(info.instance_id)
        for vip in _vips(info.vip_address):
            by_vip.setdefault(vip, set()).add(info.key)
        for vip in _vips(info.secure_vip_address):
            by_svip.setdefault(vip, set()).add(info.key)
    assert {app: set(ids) for app, ids in index.by_app.items()} == by_app
    assert {vip: set(keys) for vip, keys in index.by_vip.items()} == by_vip
    assert {vip: set(keys) for vip, keys in index.by_svip.items()} == by_svip
    for info in visible:
        entry = index.by_instance_id(info.instance_id)
        assert entry is not None and entry.record is not None and entry.record.info is not None
        assert entry.record.info.instance_id == info.instance_id
        assert entry.record.info.app == min(i.app for i in visible if i.instance_id == info.instance_id)
        assert index.app(info.app)[info.instance_id] is replica.entries[info.key]
    assert set(index.by_id) == {info.instance_id for info in visible}
