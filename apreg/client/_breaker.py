"""A circuit breaker per registry node, so a dead node costs nothing once it is known to be dead.

closed --(N consecutive failures)--> open --(cooldown elapsed)--> half-open --(probe succeeds)--> closed
                                      ^---------------------(probe fails)-----------'
"""
from __future__ import annotations

import enum
from typing import Callable


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Decides whether a request may go to a node; the caller reports each outcome.

    `clock` returns monotonic seconds and is injected so tests can move time without sleeping. In half-open
    state one probe is allowed per cooldown: a probe whose outcome is never reported (its task was cancelled)
    cannot wedge the breaker.
    """

    __slots__ = ("_threshold", "_cooldown", "_clock", "_state", "_failures", "_since")

    def __init__(self, failure_threshold: int, cooldown: float, clock: Callable[[], float]) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._threshold = failure_threshold
        self._cooldown = cooldown
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._since = 0.0  # when the circuit opened, or when the last probe was let through

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """True if a request may be sent now; in open state past the cooldown this admits one probe."""
        if self._state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if now - self._since < self._cooldown:
            return False
        self._state = BreakerState.HALF_OPEN
        self._since = now
        return True

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0

    def record_failure(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._failures >= self._threshold:
            self._open()

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._since = self._clock()
        self._failures = 0
