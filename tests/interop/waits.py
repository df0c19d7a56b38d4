"""Bounded waiting and the failure the scenarios raise: every wait in the interop run ends by a deadline."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class Failed(Exception):
    """A scenario's assertion did not hold; the message is the short reason printed after FAIL."""


def check(condition: object, reason: str) -> None:
    """Fail the scenario with `reason` unless `condition` holds."""
    if not condition:
        raise Failed(reason)


def until(what: str, probe: Callable[[], T], timeout: float, interval: float = 0.25) -> T:
    """Poll `probe` until it returns something truthy, at most `timeout` seconds; the failure names `what` and
    the last value seen (or the last error), since that is what tells a timeout's cause."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # a probe may hit a process that is still starting; keep the error for the report
            value, last = None, f"{type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise Failed(f"{what}: not within {timeout:g} s (last: {_short(last)})")
        time.sleep(interval)


def _short(value: object, limit: int = 160) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."
