"""Load-balancing strategies for `choose()`; they pick from precomputed views and allocate nothing per call."""
from __future__ import annotations

import random
from typing import Callable, Protocol, Sequence

from ._model import AppView, Instance


class Strategy(Protocol):
    def choose(self, view: AppView) -> Instance | None:
        """One of the view's UP instances, or None when it has none."""


class RoundRobin:
    """Cycles through an app's UP instances (sorted by id) with one cursor per app."""

    __slots__ = ("_cursors",)

    def __init__(self) -> None:
        self._cursors: dict[str, int] = {}

    def choose(self, view: AppView) -> Instance | None:
        return self.choose_from(view.app, view.up)

    def choose_from(self, key: str, candidates: Sequence[Instance]) -> Instance | None:
        if not candidates:
            return None
        cursor = self._cursors.get(key, 0)
        self._cursors[key] = cursor + 1
        return candidates[cursor % len(candidates)]


class RandomChoice:
    """Uniform choice; `rng` returns floats in [0, 1) and is injectable for tests."""

    __slots__ = ("_rng",)

    def __init__(self, rng: Callable[[], float] = random.random) -> None:
        self._rng = rng

    def choose(self, view: AppView) -> Instance | None:
        up = view.up
        return up[int(self._rng() * len(up))] if up else None


class ZonePreferring:
    """Round robin over the instances whose `zone` metadata equals ours; over all UP ones when there are none."""

    __slots__ = ("zone", "_round_robin")

    def __init__(self, zone: str) -> None:
        self.zone = zone
        self._round_robin = RoundRobin()

    def choose(self, view: AppView) -> Instance | None:
        local = view.by_zone.get(self.zone)
        if local:
            return self._round_robin.choose_from(view.app, local)
        return self._round_robin.choose_from(view.app, view.up)


def make_strategy(name: str, zone: str | None, rng: Callable[[], float]) -> Strategy:
    """The strategy a ClientConfig names (the config has already validated the name)."""
    if name == "random":
        return RandomChoice(rng)
    if name == "zone":
        assert zone is not None
        return ZonePreferring(zone)
    return RoundRobin()
