"""Indexes of the visible registry, kept current with every change that shows or hides an instance.

Reads must cost what their answer costs, not what the registry costs: with 100,000 instances a scan per read
takes tens of milliseconds of the event loop. The Replica calls `show` / `hide` exactly where an instance
becomes visible, changes, or stops being visible (its own writes, merges, evictions, an evicted instance that
renews again), so the indexes and the per-status counts behind Eureka's `apps__hashcode` are never rebuilt.

Versions let the shell cache rendered documents: `version` moves with every visible change, `app_version(app)`
with every change to that app, `vip_version(vip)` / `svip_version(vip)` with every change to an instance that
lists the VIP (before or after the change). Renewals move none of them.

Memory: each visible instance costs one slot in the app's dict, one per VIP it lists and one in `by_id`; the
values are the replica's own `Entry` objects and interned strings, never copies.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Iterator

from .entry import Entry
from .instance import InstanceInfo, InstanceKey, Status

_NO_VIPS: tuple[str, ...] = ()


@functools.lru_cache(maxsize=4096)
def vip_list(value: str | None) -> tuple[str, ...]:
    """Eureka's comma-separated VIP list, blanks dropped. Cached: VIP strings repeat across an app's instances,
    and every applied record asks (at 100,000 records in a pull, the split was a third of the index's cost)."""
    if not value:
        return _NO_VIPS
    return tuple(v for v in (part.strip() for part in value.split(",")) if v)


@dataclass(slots=True)
class RegistryIndex:
    by_app: dict[str, dict[str, Entry]] = field(default_factory=dict)  # app -> instance id -> entry
    by_vip: dict[str, dict[InstanceKey, Entry]] = field(default_factory=dict)
    by_svip: dict[str, dict[InstanceKey, Entry]] = field(default_factory=dict)
    # instance id -> the app holding it, or a tuple of apps when several do (ids are unique in practice)
    by_id: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    status_counts: dict[Status, int] = field(default_factory=dict)
    app_status_counts: dict[str, dict[Status, int]] = field(default_factory=dict)  # for metrics, never walked
    count: int = 0
    version: int = 0
    _app_versions: dict[str, int] = field(default_factory=dict)
    _vip_versions: dict[str, int] = field(default_factory=dict)
    _svip_versions: dict[str, int] = field(default_factory=dict)

    # ----- maintenance (called by the Replica) ------------------------------------------------------------

    def show(self, entry: Entry, old: InstanceInfo | None, new: InstanceInfo) -> None:
        """`entry` is visible with `new`; it was visible with `old` before (None: it was not)."""
        key = entry.key
        self.version += 1
        self._app_versions[key.app] = self.version
        if old is None:
            self.count += 1
            self.by_app.setdefault(key.app, {})[key.instance_id] = entry
            self._add_id(key)
        else:
            self._count(key.app, old.status, -1)
        self._count(key.app, new.status, 1)
        if old is None or old.vip_address != new.vip_address or old.secure_vip_address != new.secure_vip_address:
            self._move_vips(self.by_vip, self._vip_versions, key, entry,
                            vip_list(old.vip_address) if old else _NO_VIPS, vip_list(new.vip_address))
            self._move_vips(self.by_svip, self._svip_versions, key, entry,
                            vip_list(old.secure_vip_address) if old else _NO_VIPS, vip_list(new.secure_vip_address))
        else:  # the same VIPs: only their versions move
            for vip in vip_list(new.vip_address):
                self._vip_versions[vip] = self.version
            for vip in vip_list(new.secure_vip_address):
                self._svip_versions[vip] = self.version

    def hide(self, entry: Entry, old: InstanceInfo) -> None:
        """`entry`, visible with `old` until now, is no longer visible (cancelled or evicted)."""
        key = entry.key
        self.version += 1
        self._app_versions[key.app] = self.version
        self.count -= 1
        self._count(key.app, old.status, -1)
        instances = self.by_app[key.app]
        del instances[key.instance_id]
        if not instances:
            del self.by_app[key.app]
        self._remove_id(key)
        self._move_vips(self.by_vip, self._vip_versions, key, entry, vip_list(old.vip_address), _NO_VIPS)
        self._move_vips(self.by_svip, self._svip_versions, key, entry, vip_list(old.secure_vip_address), _NO_VIPS)

    def _count(self, app: str, status: Status, delta: int) -> None:
        _add(self.status_counts, status, delta)
        per_app = self.app_status_counts.setdefault(app, {})
        _add(per_app, status, delta)
        if not per_app:
            del self.app_status_counts[app]

    def _move_vips(self, index: dict[str, dict[InstanceKey, Entry]], versions: dict[str, int], key: InstanceKey,
                   entry: Entry, old: tuple[str, ...], new: tuple[str, ...]) -> None:
        for vip in old:
            versions[vip] = self.version
            if vip not in new:
                members = index[vip]
                members.pop(key, None)
                if not members:
                    del index[vip]
        for vip in new:
            versions[vip] = self.version
            index.setdefault(vip, {})[key] = entry

    def _add_id(self, key: InstanceKey) -> None:
        held = self.by_id.get(key.instance_id)
        if held is None:
            self.by_id[key.instance_id] = key.app
        else:
            apps = (held,) if isinstance(held, str) else held
            self.by_id[key.instance_id] = tuple(sorted({*apps, key.app}))

    def _remove_id(self, key: InstanceKey) -> None:
        held = self.by_id[key.instance_id]
        rest = () if isinstance(held, str) else tuple(a for a in held if a != key.app)
        if not rest:
            del self.by_id[key.instance_id]
        else:
            self.by_id[key.instance_id] = rest[0] if len(rest) == 1 else rest

    # ----- reads --------------------------------------------------------------------------------------------

    def app(self, name: str) -> dict[str, Entry]:
        """The app's visible instances by id (empty when none); the caller must not modify it."""
        return self.by_app.get(name, {})

    def vip(self, name: str, secure: bool = False) -> dict[InstanceKey, Entry]:
        return (self.by_svip if secure else self.by_vip).get(name, {})

    def by_instance_id(self, instance_id: str) -> Entry | None:
        """The instance with this id; of several apps holding one id, the first by app name."""
        held = self.by_id.get(instance_id)
        if held is None:
            return None
        return self.by_app[held if isinstance(held, str) else held[0]][instance_id]

    def app_version(self, name: str) -> int:
        return self._app_versions.get(name, 0)

    def vip_version(self, name: str, secure: bool = False) -> int:
        return (self._svip_versions if secure else self._vip_versions).get(name, 0)

    def entries(self) -> Iterator[Entry]:
        for instances in self.by_app.values():
            yield from instances.values()


def _add(counts: dict[Status, int], status: Status, delta: int) -> None:
    left = counts.get(status, 0) + delta
    if left:
        counts[status] = left
    else:
        del counts[status]
