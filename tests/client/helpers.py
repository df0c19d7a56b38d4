from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from apreg.client import ClientConfig

FAST = ClientConfig(request_timeout=0.5, connect_timeout=0.2, breaker_failures=2, breaker_cooldown=0.2,
                    backoff_base=0.01, backoff_cap=0.1, poll_interval=0.05, watch_heartbeat=0.2, watch_idle_timeout=1.0,
                    watch_retry_interval=0.5, start_timeout=2.0, stale_after=0.3)
"""Client settings scaled down so HTTP behaviour shows within tenths of a second."""


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        await asyncio.sleep(0.01)
