"""Line splitting for long-lived HTTP streams (etcd watch, SSE). aiohttp's
readline() refuses lines over its buffer limit, and a burst of watch events can
arrive as one large JSON line, so split chunks ourselves; each line is stamped
with time.monotonic() when the chunk that completed it arrived."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp

MAX_LINE = 64 * 1024 * 1024


async def iter_lines(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[bytes, float]]:
    buf = bytearray()
    async for chunk in resp.content.iter_any():
        t = time.monotonic()
        buf += chunk
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            line = bytes(buf[:i]).rstrip(b"\r")
            del buf[:i + 1]
            yield line, t
        if len(buf) > MAX_LINE:
            raise ValueError("stream line over 64 MiB")
    if buf:
        yield bytes(buf), time.monotonic()
