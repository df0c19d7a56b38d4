"""Exponential backoff with full jitter: spreads retries of many clients instead of synchronising them."""
from __future__ import annotations

import random
from typing import Callable

# 2.0 ** 1024 overflows a float; past this many doublings every ceiling is the cap anyway.
_MAX_EXPONENT = 1000


class Backoff:
    """Delay before retry number `attempt` (0-based): uniform in [0, min(cap, base * 2**attempt)].

    `rng` returns floats in [0, 1); inject a fixed one to make delays deterministic in tests.
    """

    __slots__ = ("base", "cap", "_rng")

    def __init__(self, base: float, cap: float, rng: Callable[[], float] = random.random) -> None:
        if base < 0 or cap < 0:
            raise ValueError("base and cap must not be negative")
        self.base = base
        self.cap = cap
        self._rng = rng

    def ceiling(self, attempt: int) -> float:
        return min(self.cap, self.base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))

    def delay(self, attempt: int) -> float:
        return self.ceiling(attempt) * self._rng()
