"""The local copy of the registry: every instance of every status, plus per-app UP views for `choose()`.

Updates arrive as full snapshots, single change events or Eureka deltas; after each, only the apps they
touched get their views rebuilt, and listeners hear about apps whose UP list actually changed.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable

from ._codec import ACTIONS_REMOVE, ACTIONS_UPSERT, Change, reconcile_hash
from ._model import EMPTY_VIEW, AppView, Instance

log = logging.getLogger(__name__)

Listener = Callable[[str, tuple[Instance, ...]], None]
"""Called with (APP, its UP instances) whenever that list changes."""


class RegistryCache:
    """Not thread-safe; it lives on the client's event loop like everything else in the client."""

    __slots__ = ("_apps", "_views", "_listeners")

    def __init__(self) -> None:
        self._apps: dict[str, dict[str, Instance]] = {}
        self._views: dict[str, AppView] = {}
        self._listeners: list[Listener] = []

    def view(self, app: str) -> AppView:
        """The precomputed UP view of an upper-case app name (an empty view if unknown)."""
        return self._views.get(app, EMPTY_VIEW)

    def all_instances(self, app: str) -> tuple[Instance, ...]:
        return tuple(self._apps.get(app, {}).values())

    def apps(self) -> list[str]:
        return sorted(self._apps)

    def hashcode(self) -> str:
        return reconcile_hash(i.status for members in self._apps.values() for i in members.values())

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def replace(self, instances: Iterable[Instance]) -> None:
        """Adopt a full snapshot."""
        old = self._apps
        self._apps = {}
        for inst in instances:
            self._apps.setdefault(inst.app, {})[inst.instance_id] = inst
        self._refresh(set(old) | set(self._apps))

    def apply_change(self, change: Change) -> None:
        """Apply one watch-stream event; unknown actions are ignored so the server may add new ones."""
        if change.action in ACTIONS_UPSERT and change.instance is not None:
            self._upsert(change.instance)
        elif change.action in ACTIONS_REMOVE:
            self._remove(change.app, change.instance_id)
        else:
            return
        self._refresh({change.app})

    def apply_delta(self, entries: Iterable[tuple[str, Instance]]) -> None:
        """Apply a Eureka delta: ADDED/MODIFIED upsert, DELETED removes."""
        touched: set[str] = set()
        for action, inst in entries:
            if action == "DELETED":
                self._remove(inst.app, inst.instance_id)
            else:
                self._upsert(inst)
            touched.add(inst.app)
        self._refresh(touched)

    def _upsert(self, inst: Instance) -> None:
        self._apps.setdefault(inst.app, {})[inst.instance_id] = inst

    def _remove(self, app: str, instance_id: str) -> None:
        members = self._apps.get(app)
        if members is not None:
            members.pop(instance_id, None)
            if not members:
                del self._apps[app]

    def _refresh(self, apps: Iterable[str]) -> None:
        for app in apps:
            members = self._apps.get(app)
            before = self._views.get(app, EMPTY_VIEW).up
            if members:
                self._views[app] = AppView.build(app, members)
            else:
                self._views.pop(app, None)
            after = self._views.get(app, EMPTY_VIEW).up
            if after != before:
                self._notify(app, after)

    def _notify(self, app: str, up: tuple[Instance, ...]) -> None:
        for listener in list(self._listeners):
            try:
                listener(app, up)
            except Exception:  # a broken listener must not stop the cache from updating
                log.exception("registry listener %r failed", listener)
