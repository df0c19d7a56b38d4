"""How a node reaches its peers: the `Transport` protocol the node drives, over HTTP or in memory.

What the node may assume of a transport, and no more:
- `Channel.ask` is request/response (a digest out, its reply back) and may fail as a whole;
- `Channel.push` delivers one push, in order with the other pushes to the same peer, or raises; a push that
  returned may still be lost later (a stream cannot tell), which anti-entropy repairs;
- `Channel.pull` brings every page of a digest's answer, each next page on its way before the current one is
  handed over (streamed, or asked for ahead), so the node tells the core not to ask for it;
- every failure is a `PeerUnavailable`, raised after the channel's `link` is marked failed (it then backs off);
  the node never sees a socket error.

`HttpTransport` is the real one (aiohttp: streamed pulls, falling back to POSTed digests page by page for an
older peer; a push stream per peer with POST as fallback);
`MemoryNetwork` wires nodes together in one process, through the wire codec, for tests of the node itself
(streamed pulls too, and the fallback from a peer that refuses them).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import aiohttp

from apreg.core.messages import Digest, DigestReply, Message, Push

from . import wire
from .stream import PeerStream
from .transport import PeerLink, PeerTransport, PullUnsupported

log = logging.getLogger("apreg.peer")


class Channel(Protocol):
    """One peer, as a node reaches it."""

    link: PeerLink

    async def ask(self, digest: Digest) -> Message | None:
        """Send a digest; return the peer's reply. Raises PeerUnavailable."""

    def pull(self, digest: Digest) -> AsyncGenerator[DigestReply, None]:
        """Every page of the answer to a digest, in order. Raises PeerUnavailable."""

    async def push(self, push: Push) -> None:
        """Deliver one push, after those sent before it. Raises PeerUnavailable."""

    async def close(self) -> None:
        """Release what the channel holds open (a stream); it may be used again afterwards."""


class Transport(Protocol):
    @property
    def reply_bytes(self) -> int:
        """Bytes of every reply read: the anti-entropy pages this node received."""

    def channel(self, link: PeerLink) -> Channel:
        """A channel to the peer `link` names."""


@dataclass(slots=True)
class HttpChannel:
    link: PeerLink
    transport: PeerTransport
    stream: PeerStream

    async def ask(self, digest: Digest) -> Message | None:
        return await self.transport.send(self.link, digest)

    def pull(self, digest: Digest) -> AsyncGenerator[DigestReply, None]:
        return streamed_or_paged(self.link, partial(self.transport.pull, self.link), self.ask, digest)

    async def push(self, push: Push) -> None:
        await self.stream.send(push)

    async def close(self) -> None:
        await self.stream.close()


@dataclass(slots=True)
class HttpTransport:
    """Peers over aiohttp: signed POSTs for digests, pushes over each peer's push stream (stream.py)."""

    peer: PeerTransport

    @classmethod
    def over(cls, session: aiohttp.ClientSession, secret: bytes | None, timeout: aiohttp.ClientTimeout,
             max_page_bytes: int) -> "HttpTransport":
        return cls(PeerTransport(session, secret, timeout, max_page_bytes))

    @property
    def reply_bytes(self) -> int:
        return self.peer.reply_bytes

    def channel(self, link: PeerLink) -> HttpChannel:
        return HttpChannel(link, self.peer, PeerStream(link, self.peer))


async def streamed_or_paged(link: PeerLink, streamed: Callable[[Digest], AsyncGenerator[DigestReply, None]],
                            ask: Callable[[Digest], Awaitable[Message | None]], digest: Digest
                            ) -> AsyncGenerator[DigestReply, None]:
    """Streamed while the peer takes streamed pulls; page by page once it refused one (PullUnsupported), until
    the link fails (the peer may come back upgraded)."""
    if link.pulls_streamed:
        try:
            async with contextlib.aclosing(streamed(digest)) as pages:
                async for page in pages:
                    yield page
            return
        except PullUnsupported:
            link.pulls_streamed = False
            log.info("peer %s has no streamed pull (an older node): pulling page by page", link.url)
    async with contextlib.aclosing(paged_pull(ask, digest)) as pages:
        async for page in pages:
            yield page


async def paged_pull(ask: Callable[[Digest], Awaitable[Message | None]], digest: Digest
                     ) -> AsyncGenerator[DigestReply, None]:
    """Page by page, each next page asked for before the current one is handed over, so the peer encodes it
    while this node applies (for peers without a streamed pull)."""
    reply = await ask(digest)
    next_page: asyncio.Task[Message | None] | None = None
    try:
        while isinstance(reply, DigestReply):
            next_page = asyncio.ensure_future(ask(digest.after(reply))) if reply.more else None
            yield reply
            reply, next_page = (await next_page if next_page is not None else None), None
    finally:
        if next_page is not None:  # closed (the node stops, or found itself) while a page was on its way
            next_page.cancel()


class Receiver(Protocol):
    """What a node offers its peers: a message in, the reply (for a digest) out, and the pages that follow the
    first in a streamed pull."""

    def receive(self, message: Message) -> Message | None: ...

    def next_page(self, digest: Digest, previous: DigestReply) -> DigestReply:
        """The page after `previous` of a streamed pull's answer."""


@dataclass(slots=True)
class MemoryNetwork:
    """Nodes in one process, by URL. A cut URL refuses everything sent to it, as a dead or partitioned node
    does, and a streamed pull from it breaks off at the next page. A URL in `streamless` refuses streamed pulls,
    as a node from before them answers 404. Messages go through the wire codec both ways, so the receiver never
    shares an object with the sender."""

    nodes: dict[str, Receiver] = field(default_factory=dict)
    cut: set[str] = field(default_factory=set)
    streamless: set[str] = field(default_factory=set)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)  # pushes to a URL wait for its gate (a slow peer)
    delivered: list[tuple[str, Message]] = field(default_factory=list)  # (receiver URL, message), in order
    refused: list[tuple[str, Message]] = field(default_factory=list)  # sent to a cut URL

    def transport(self) -> "MemoryTransport":
        return MemoryTransport(self)

    def deliver(self, link: PeerLink, message: Message) -> Message | None:
        reply = self._receiver(link, message).receive(self._delivered(link, message))
        link.delivered()
        return None if reply is None else wire.decode(wire.encode(reply, link.wire_version))

    async def stream(self, link: PeerLink, digest: Digest) -> AsyncGenerator[DigestReply, None]:
        """A streamed pull: one digest delivered, every page of its answer back (as peer_api.py serves it)."""
        node = self._receiver(link, digest)
        if link.url in self.streamless:
            raise PullUnsupported(f"{link.url} answered 404 to a streamed pull (memory network: streamless)")
        copy = self._delivered(link, digest)
        assert isinstance(copy, Digest)
        reply = node.receive(copy)
        while isinstance(reply, DigestReply):
            if link.url in self.cut:
                raise link.give_up("connection reset (memory network: cut)")
            page = wire.decode(wire.encode(reply, link.wire_version))
            assert isinstance(page, DigestReply)
            link.delivered()
            yield page
            reply = node.next_page(copy, reply) if reply.more else None

    def _receiver(self, link: PeerLink, message: Message) -> Receiver:
        node = self.nodes.get(link.url)
        if node is None or link.url in self.cut:
            self.refused.append((link.url, message))
            raise link.give_up("connection refused (memory network: cut)")
        return node

    def _delivered(self, link: PeerLink, message: Message) -> Message:
        """The receiver's copy of `message`, recorded as delivered."""
        copy = wire.decode(wire.encode(message, link.wire_version))
        self.delivered.append((link.url, copy))
        return copy


@dataclass(slots=True)
class MemoryChannel:
    link: PeerLink
    network: MemoryNetwork

    async def ask(self, digest: Digest) -> Message | None:
        return self.network.deliver(self.link, digest)

    def pull(self, digest: Digest) -> AsyncGenerator[DigestReply, None]:
        return streamed_or_paged(self.link, partial(self.network.stream, self.link), self.ask, digest)

    async def push(self, push: Push) -> None:
        gate = self.network.gates.get(self.link.url)
        if gate is not None:
            await gate.wait()
        self.network.deliver(self.link, push)

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class MemoryTransport:
    network: MemoryNetwork
    reply_bytes: int = 0

    def channel(self, link: PeerLink) -> MemoryChannel:
        return MemoryChannel(link, self.network)
