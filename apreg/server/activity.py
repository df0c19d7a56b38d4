"""The node's activity in its log: a DEBUG line per change (a fleet registers thousands a minute), and at most
one INFO summary per interval, only when something changed."""
from __future__ import annotations

import logging
from typing import Callable

from apreg.core.effects import Action, Change

log = logging.getLogger("apreg.node")  # the node's lines: operators filter on it
SUMMARY_INTERVAL_S = 60.0
WORDS = {Action.REGISTER: "registered", Action.MODIFY: "metadata changes", Action.STATUS: "status changes",
         Action.CANCEL: "cancelled", Action.EVICT: "evicted"}


class ActivityLog:
    """`instances` gives the registry's size for the summary line."""

    __slots__ = ("_counts", "_instances")

    def __init__(self, instances: Callable[[], int]) -> None:
        self._instances = instances
        self._counts: dict[Action, int] = {}  # changes applied since the last summary, by action

    def note(self, changes: tuple[Change, ...]) -> None:
        counts = self._counts
        for change in changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        if log.isEnabledFor(logging.DEBUG):
            for change in changes:
                log.debug("%s %s/%s", change.action.value, change.key.app, change.key.instance_id)

    def summarize(self) -> None:
        """The INFO line for the interval just ended (the node runs this every SUMMARY_INTERVAL_S)."""
        if self._counts:
            done = ", ".join(f"{count} {WORDS[action]}" for action, count in self._counts.items())
            log.info("last %g s: %s; %d instances", SUMMARY_INTERVAL_S, done, self._instances())
            self._counts = {}
