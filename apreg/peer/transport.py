"""Sending peer messages over HTTP (aiohttp), with per-peer reachability and backoff while a peer is down.

Pulls are streamed: the requester POSTs its digest once to PULL_PATH, and the peer writes every page of the
answer back to back, each as a 4-byte big-endian length and one wire frame, until a page says no more follows;
TCP's flow control paces the peer to the requester. Asking page by page left each side idle half the time (the
peer while the requester decoded a page, the requester while the peer encoded the next): a 100,000-instance pull
spent a third of its time waiting (bench/sync.py). An older peer answers 404, and is asked page by page.
"""
from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Callable

import aiohttp

from apreg.core.messages import Digest, DigestReply, Message
from apreg.server.errors import PeerUnavailable

from . import auth, wire

log = logging.getLogger("apreg.peer")

MESSAGES_PATH = "/v1/peer/messages"
PULL_PATH = "/v1/peer/pull"
PAGE_LENGTH = struct.Struct(">I")  # before each page of a streamed pull
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 5.0
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)  # what a send to an unreachable peer raises


@dataclass(slots=True)
class PeerLink:
    """One peer as seen from this node: where it is, whether it answers, when to try it again."""

    url: str
    reachable: bool = False
    failures: int = 0
    retry_at: float = 0.0  # monotonic seconds; pushes wait for this while the peer is failing
    last_error: str = ""
    sent: int = 0  # messages delivered, by either channel
    streaming: bool = False  # pushes go over an open push stream (apreg.peer.stream)
    frames: int = 0  # pushes delivered as stream frames
    auth_refused: bool = False  # its last answer was 401: it does not accept our signature (a secret mismatch)
    wire_version: int = wire.OLDEST  # what we send it: its last answer's best common version (wire.negotiate)
    pulls_streamed: bool = True  # False once it answered a streamed pull with 404 (until it fails: an upgrade)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic  # seconds; injected by tests of back-off

    def ready(self) -> bool:
        return self.clock() >= self.retry_at

    def backing_off_ms(self) -> int:
        """How much longer the link backs off (it failed lately, a push or a pull), in ms."""
        return max(0, round((self.retry_at - self.clock()) * 1000))

    def succeeded(self) -> None:
        if not self.reachable:
            log.info("peer %s reachable", self.url)
        self.reachable, self.failures, self.retry_at, self.last_error = True, 0, 0.0, ""
        self.auth_refused = False

    def failed(self, error: str, auth_refused: bool = False) -> None:
        """Logged once per change of state (reachable, unreachable, refusing us), not per failure."""
        if self.reachable or not self.failures or auth_refused != self.auth_refused:
            if auth_refused:
                log.error("peer %s refuses our signature: the two nodes' secrets differ (%s)", self.url, error)
            else:
                log.warning("peer %s unreachable: %s", self.url, error)
        self.failures += 1
        self.reachable, self.last_error, self.auth_refused = False, error, auth_refused
        self.pulls_streamed = True  # it may come back as a newer node
        delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(self.failures, 16))
        self.retry_at = self.clock() + self.rng.uniform(0, delay)  # full jitter

    def delivered(self) -> None:
        self.succeeded()
        self.sent += 1

    def give_up(self, cause: Exception | str, status: int = 0) -> PeerUnavailable:
        """Mark the peer failed (it backs off) and return the error for the caller to raise; `status` is the
        HTTP status it answered, if any (401: a secret mismatch, reported as such)."""
        error = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        if status == 401:
            error = f"secret mismatch: the peer answered 401 to our signed request ({error})"
        self.failed(error, auth_refused=status == 401)
        return PeerUnavailable(error)


class PullUnsupported(Exception):
    """The peer has no streamed pull (an older node): ask it page by page."""


def length_prefixed(frame: bytes) -> bytes:
    return PAGE_LENGTH.pack(len(frame)) + frame


@dataclass(slots=True)
class PeerTransport:
    session: aiohttp.ClientSession
    secret: bytes | None
    timeout: aiohttp.ClientTimeout
    max_page_bytes: int = 64 * 1024 * 1024  # a streamed page longer than this is refused (as bodies are)
    reply_bytes: int = 0  # bytes of every reply read (anti-entropy pages: pushes are answered with empty 204s)

    def _signed(self, path: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/msgpack"}
        if self.secret is not None:
            headers.update(auth.sign(self.secret, "POST", path, body, auth.wall_ms()))
        return headers

    async def send(self, link: PeerLink, message: Message) -> Message | None:
        """POST one message; returns the decoded reply (for a Digest) or None; raises PeerUnavailable."""
        body = wire.encode(message, link.wire_version)
        try:
            async with self.session.post(link.url + MESSAGES_PATH, data=body, headers=self._signed(MESSAGES_PATH, body),
                                         timeout=self.timeout) as response:
                payload = await response.read()
            self.reply_bytes += len(payload)
            frame = wire.decode_frame(payload) if response.status == 200 and payload else None
        except (*NETWORK_ERRORS, wire.WireError) as exc:
            raise link.give_up(exc) from exc
        if response.status not in (200, 204):
            raise link.give_up(f"HTTP {response.status}: {payload[:200]!r}", response.status)
        link.delivered()
        if frame is None:
            return None
        link.wire_version = wire.negotiate(frame.peer_versions)  # follows the peer's upgrades and downgrades
        return frame.message

    async def pull(self, link: PeerLink, digest: Digest) -> AsyncGenerator[DigestReply, None]:
        """A streamed pull: yields the pages as they arrive. Raises PullUnsupported before the first page if the
        peer has no streamed pull, and PeerUnavailable (the link marked failed) if it breaks off. The peer
        timeout bounds each read, not the whole pull, which may take seconds."""
        body = wire.encode(digest, link.wire_version)
        per_read = aiohttp.ClientTimeout(sock_connect=self.timeout.connect, sock_read=self.timeout.total)
        try:
            async with self.session.post(link.url + PULL_PATH, data=body, headers=self._signed(PULL_PATH, body),
                                         timeout=per_read) as response:
                if response.status in (404, 405):
                    raise PullUnsupported(f"{link.url} answered {response.status} to a streamed pull")
                if response.status != 200:
                    payload = await response.read()
                    raise link.give_up(f"HTTP {response.status}: {payload[:200]!r}", response.status)
                more = True
                while more:
                    page, versions = await self._page(response.content)
                    link.delivered()
                    link.wire_version = wire.negotiate(versions)
                    more = page.more
                    yield page
        except (*NETWORK_ERRORS, wire.WireError, asyncio.IncompleteReadError) as exc:
            raise link.give_up(exc) from exc

    async def _page(self, content: aiohttp.StreamReader) -> tuple[DigestReply, range]:
        (size,) = PAGE_LENGTH.unpack(await content.readexactly(PAGE_LENGTH.size))
        if size > self.max_page_bytes:
            raise wire.WireError(f"a streamed page of {size} bytes is over the {self.max_page_bytes} byte limit")
        frame = wire.decode_frame(await content.readexactly(size))
        self.reply_bytes += PAGE_LENGTH.size + size
        if not isinstance(frame.message, DigestReply):
            raise wire.WireError(f"a {type(frame.message).__name__} in a streamed pull")
        return frame.message, frame.peer_versions
