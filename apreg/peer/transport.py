"""Sending peer messages over HTTP (aiohttp), with per-peer reachability and backoff while a peer is down."""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import aiohttp

from apreg.core.messages import Message
from apreg.server.errors import PeerUnavailable

from . import auth, wire

log = logging.getLogger("apreg.peer")

MESSAGES_PATH = "/v1/peer/messages"
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
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic  # seconds; injected by tests of back-off

    def ready(self) -> bool:
        return self.clock() >= self.retry_at

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


@dataclass(slots=True)
class PeerTransport:
    session: aiohttp.ClientSession
    secret: bytes | None
    timeout: aiohttp.ClientTimeout
    reply_bytes: int = 0  # bytes of every reply read (anti-entropy pages: pushes are answered with empty 204s)

    async def send(self, link: PeerLink, message: Message) -> Message | None:
        """POST one message; returns the decoded reply (for a Digest) or None; raises PeerUnavailable."""
        body = wire.encode(message, link.wire_version)
        headers = {"Content-Type": "application/msgpack"}
        if self.secret is not None:
            headers.update(auth.sign(self.secret, "POST", MESSAGES_PATH, body, auth.wall_ms()))
        try:
            async with self.session.post(link.url + MESSAGES_PATH, data=body, headers=headers,
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
