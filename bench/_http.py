"""What the drivers that speak HTTP (apreg, etcd) share: a session and write
path common to their clusters, and line splitting for long-lived streams (etcd
watch, SSE)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Container

import aiohttp

from _systems import Cluster, WriteError

MAX_LINE = 64 * 1024 * 1024


class HttpCluster(Cluster):
    """A cluster whose members are driven over HTTP through one pooled session,
    so that every system's writes are timed the same way, over kept-alive
    connections."""

    session: aiohttp.ClientSession  # set by open_session() during start()

    def open_session(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))

    async def close(self) -> None:
        # start() may have failed before the session was opened.
        if getattr(self, "session", None):
            await self.session.close()

    async def post_write(self, url: str, body: dict, ok: Container[int], timeout: float) -> float:
        """POST one write; time.monotonic() once its response is read, or raise
        WriteError labelled with the HTTP status, "timeout" or the transport error."""
        try:
            async with self.session.post(url, json=body,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                await r.read()
                t = time.monotonic()
                if r.status not in ok:
                    raise WriteError(f"HTTP {r.status}")
                return t
        except asyncio.TimeoutError:
            raise WriteError("timeout") from None
        except aiohttp.ClientError as exc:
            raise WriteError(type(exc).__name__) from None


async def iter_lines(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[bytes, float]]:
    """aiohttp's readline() refuses lines over its buffer limit, and a burst of
    watch events can arrive as one large JSON line, so split chunks ourselves;
    each line is stamped with time.monotonic() when the chunk that completed it
    arrived."""
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
