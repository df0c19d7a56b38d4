"""Work handed out in steps (documents.py's generators), run without holding the event loop for long."""
from __future__ import annotations

import asyncio
import time
from typing import Generator, TypeVar

STEP_BUDGET_S = 0.005  # work handed out in steps gives the event loop back this often
T = TypeVar("T")


async def run_steps(steps: Generator[None, None, T]) -> T:
    """Drive a generator of work steps, giving the event loop back every few milliseconds."""
    deadline = time.perf_counter() + STEP_BUDGET_S
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = time.perf_counter() + STEP_BUDGET_S
