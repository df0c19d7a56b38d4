"""Keeps the cache in step with the registry: a full fetch, then the change stream, else delta polling.

The stream (GET /v1/watch, Server-Sent Events) delivers each change within milliseconds. Event ids are
sequence numbers of the node that sent them, so a stream is resumed (`since` / Last-Event-ID) only at that
node, and only if it never failed to answer since (a restarted node numbers from scratch); opening one
anywhere else, or being told `resync`, means a full fetch. A node without the stream gets
Eureka's way instead: poll apps/delta, apply it, and fetch everything when the reconcile hash disagrees.
"""
from __future__ import annotations

import asyncio
import logging
import math
from typing import Callable

import aiohttp

from ._backoff import Backoff
from ._cache import RegistryCache
from ._codec import parse_applications, parse_change
from ._config import ClientConfig
from ._errors import RegistryError, RegistryUnavailable, RequestRejected
from ._http import ACCEPT_JSON, NETWORK_ERRORS, NodeFailed, NodePool
from ._sse import SseParser

log = logging.getLogger(__name__)

WATCH_PATH = "/v1/watch"


class StreamUnsupported(RegistryError):
    """Nodes answered, but none offered the change stream."""


class Syncer:
    """Runs as one background task (`run`); `warm` is set after the first full fetch."""

    def __init__(self, pool: NodePool, cache: RegistryCache, config: ClientConfig, clock: Callable[[], float],
                 backoff: Backoff) -> None:
        self._pool = pool
        self._cache = cache
        self._config = config
        self._clock = clock
        self._backoff = backoff
        self._seq: str | None = None
        self._seq_node: str | None = None
        self._stream_retry_at = -math.inf
        self._stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout,
                                                     sock_read=config.watch_idle_timeout)
        self.last_sync: float | None = None
        self.streaming = False
        self.warm = asyncio.Event()

    def staleness(self) -> float:
        """Seconds since the registry last confirmed our copy (any stream line counts); inf if it never did."""
        return math.inf if self.last_sync is None else max(0.0, self._clock() - self.last_sync)

    async def run(self) -> None:
        failures = 0
        while True:
            polling = not (self._config.watch and self._clock() >= self._stream_retry_at)
            progressed = False
            try:
                if polling:
                    await self.poll_once()
                    progressed = True
                else:
                    progressed = await self._follow_stream()
            except StreamUnsupported as exc:
                log.info("%s; polling deltas for %.0f s", exc, self._config.watch_retry_interval)
                self._stream_retry_at = self._clock() + self._config.watch_retry_interval
                continue
            except (RegistryError, ValueError) as exc:
                log.log(logging.WARNING if failures == 0 else logging.DEBUG, "registry sync failed: %s", exc)
            if progressed:
                failures = 0
                # A jittered pause before reopening a stream keeps many clients from stampeding a node together.
                await asyncio.sleep(self._config.poll_interval if polling else self._backoff.delay(0))
            else:
                await asyncio.sleep(self._backoff.delay(failures))
                failures += 1

    async def full_fetch(self, first: str | None = None) -> None:
        reply = await self._pool.request("GET", self._config.eureka_prefix + "/apps", headers=ACCEPT_JSON,
                                         first=first)
        if reply.status != 200:
            raise RequestRejected(reply.status, f"full fetch at {reply.node}")
        _, entries = parse_applications(reply.json())
        self._cache.replace(inst for _, inst in entries)
        self._touch()
        self.warm.set()

    async def poll_once(self) -> None:
        """One round of Eureka-style delta polling (a full fetch when cold or out of step)."""
        if not self.warm.is_set():
            await self.full_fetch()
            return
        reply = await self._pool.request("GET", self._config.eureka_prefix + "/apps/delta", headers=ACCEPT_JSON)
        if reply.status != 200:
            await self.full_fetch()
            return
        hashcode, entries = parse_applications(reply.json())
        self._cache.apply_delta(entries)
        if self._cache.hashcode() != hashcode:
            log.info("delta from %s left the cache out of step (hash %r, ours %r): full fetch",
                     reply.node, hashcode, self._cache.hashcode())
            await self.full_fetch(first=reply.node)
        else:
            self._touch()

    def _touch(self) -> None:
        self.last_sync = self._clock()

    async def _follow_stream(self) -> bool:
        """Open the stream at the first node that offers it and consume it until it ends.

        Returns whether anything arrived; raises StreamUnsupported or RegistryUnavailable when no node streams.
        """
        failures: list[str] = []
        unsupported: list[str] = []
        for node in self._pool.order(self._seq_node):
            resume = self._seq is not None and node.url == self._seq_node
            params = {"heartbeat": f"{self._config.watch_heartbeat:g}"}
            headers = {"Accept": "text/event-stream"}
            if resume and self._seq is not None:
                params["since"] = headers["Last-Event-ID"] = self._seq
            try:
                resp = await self._pool.open(node, "GET", WATCH_PATH, params=params, headers=headers,
                                             timeout=self._stream_timeout)
            except NodeFailed as exc:
                failures.append(str(exc))
                if node.url == self._seq_node:
                    # It may come back restarted, its sequence numbers starting over: resuming there could skip
                    # changes, so the next stream starts fresh (with a full fetch) instead.
                    self._seq = None
                continue
            async with resp:
                if resp.status != 200 or resp.content_type != "text/event-stream":
                    unsupported.append(f"{node.url}: HTTP {resp.status} {resp.content_type}")
                    continue
                return await self._consume(node.url, resp, resume)
        if unsupported:
            raise StreamUnsupported("no change stream: " + "; ".join(unsupported))
        raise RegistryUnavailable(failures)

    async def _consume(self, node: str, resp: aiohttp.ClientResponse, resumed: bool) -> bool:
        log.info("following the change stream at %s (%s)", node, f"resumed after {self._seq}" if resumed else "fresh")
        progressed = False
        if not resumed:
            # Changes from now on are queued in the open stream, so a snapshot taken after opening it misses none.
            self._seq_node, self._seq = node, None
            await self.full_fetch(first=node)
            progressed = True
        parser = SseParser()
        self.streaming = True
        try:
            async for raw in resp.content:
                self._touch()
                progressed = True
                event = parser.feed(raw.decode("utf-8", "replace"))
                if event is None:
                    continue
                if event.event == "resync":
                    await self.full_fetch(first=node)
                elif event.event == "change":
                    self._cache.apply_change(parse_change(event.data))
                if event.id is not None:
                    self._seq = event.id
        except NETWORK_ERRORS as exc:  # broken or silent past watch_idle_timeout: reconnect, maybe elsewhere
            log.info("change stream from %s ended: %s", node, type(exc).__name__)
        finally:
            self.streaming = False
        return progressed
