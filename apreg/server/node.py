"""The node runtime: one Replica driven by asyncio timers, peer links and HTTP handlers.

It decides nothing about merges or evictions (the core does); it turns time into `now_ms`, carries the core's
messages to peers, publishes the core's changes to the feed, and logs what operators need to see.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Generator, TypeVar

import aiohttp

from apreg.core.instance import InstanceKey
from apreg.core.messages import Digest, DigestReply, Message, Push
from apreg.core.preservation import EVALUATIONS_PER_WINDOW
from apreg.core.replica import Action as ChangeKind, Change, Outgoing, Replica
from apreg.eureka.replication import Action
from apreg.logs import NODE
from apreg.peer.auth import wall_ms
from apreg.peer.stream import PeerStream
from apreg.peer.transport import PeerLink, PeerTransport, PeerUnavailable, PullUnsupported

from . import collector
from .discovery import Resolver, SrvLookup, peers_from_dns, system_resolver, system_srv
from .acks import ReplicaAcks
from .documents import DocumentCache
from .durability import Durability
from .eureka_peers import EurekaReplicator, is_replication, self_instance
from .feed import ChangeFeed
from .instruments import Instruments
from .preservation_view import describe_transition
from .settings import NodeSettings
from .tls import client_context

log = logging.getLogger("apreg.node")
RENEWAL_PUSH_WINDOW_S = 0.1  # how long renewals alone wait to be pushed together
STEP_BUDGET_S = 0.005  # work handed out in steps gives the event loop back this often
ACTIVITY_LOG_INTERVAL_S = 60.0
REFUSAL_MEMORY_S = 30.0  # a node that refused a peer's signed message this recently is not in sync with it
ACTION_WORDS = {ChangeKind.REGISTER: "registered", ChangeKind.MODIFY: "metadata changes",
                ChangeKind.STATUS: "status changes", ChangeKind.CANCEL: "cancelled", ChangeKind.EVICT: "evicted"}
T = TypeVar("T")


@dataclass(slots=True)
class RejectCounts:
    client: int = 0  # bad client requests (4xx)
    peer: int = 0  # malformed peer messages
    auth: int = 0  # peer messages refused for a missing or wrong signature
    client_auth: int = 0  # client requests refused for a missing or wrong password, or a role short of it
    auth_from: str = ""  # the address the latest of those came from
    auth_at: float = float("-inf")  # monotonic time of the latest


@dataclass(slots=True)
class AntiEntropyCounts:
    """Records and renewals in anti-entropy replies, both ways, and the bytes of those we sent (the bytes of
    those we received are counted by the transport)."""

    items_received: int = 0
    items_sent: int = 0
    bytes_sent: int = 0


@dataclass(slots=True)
class ReceiveCounts:
    """Peer messages taken in, by channel: shows operators whether pushes ride the streams."""

    frames: int = 0  # pushes over push streams
    posts: int = 0  # HTTP POSTs: digests, and pushes from peers that have no stream


async def run_steps(steps: Generator[None, None, T]) -> T:
    """Drive a generator of work steps (documents.py), giving the event loop back every few milliseconds."""
    deadline = time.perf_counter() + STEP_BUDGET_S
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = time.perf_counter() + STEP_BUDGET_S


class Node:
    def __init__(self, settings: NodeSettings, clock: Callable[[], int] = wall_ms,
                 resolver: Resolver = system_resolver, srv: SrvLookup = system_srv) -> None:
        self.settings = settings
        self.now_ms = clock
        self.resolver, self.srv = resolver, srv
        incarnation = f"{time.time_ns():x}{os.urandom(2).hex()}"
        self.replica = Replica(settings.name, incarnation, settings.core_config(), settings.peers,
                               fanout=settings.fanout)
        self.feed = ChangeFeed()
        self.documents = DocumentCache(self.replica, self.feed, refresh_ms=self.replica.config.renewal_interval_ms,
                                       max_age_ms=round(settings.read_cache_max_age * 1000))
        self.links = {url: PeerLink(url) for url in settings.peers}
        self.started = time.monotonic()
        self.rejected = RejectCounts()
        self.received = ReceiveCounts()
        self.anti_entropy = AntiEntropyCounts()
        self.metrics = Instruments()
        self._wake = {url: asyncio.Event() for url in settings.peers}
        self._flush_timer: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._transport: PeerTransport | None = None
        self._streams: dict[str, PeerStream] = {}
        self._sweeping = asyncio.Lock()
        self._pulling: set[str] = set()  # peers a pull (a digest and its follow-ups) is running against
        self._activity: dict[ChangeKind, int] = {}  # changes applied since the last activity line, by action
        self._itself: set[str] = set()  # peer URLs that turned out to reach this very node
        self._pushers: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self.durability = Durability(settings.data_dir, self.replica, settings.fsync) if settings.data_dir else None
        self.acks = ReplicaAcks(settings.ack_replicas, settings.peer_timeout, self._probe, self._peer_urls
                                ) if settings.ack_replicas else None
        self.eureka_peers = EurekaReplicator(settings.eureka_peers, self.replica, clock, self.committed,
                                             settings.peer_timeout) if settings.eureka_peers else None

    @property
    def transport(self) -> PeerTransport | None:
        return self._transport

    @property
    def in_sync(self) -> bool:
        """The initial pull is done and no peer refuses our signature: a node whose peer turns its messages
        away (a secret mismatch) is not in sync with it, whatever it pulled from the others."""
        return self.not_ready_reason() is None

    def not_ready_reason(self) -> str | None:
        """Why the node is not ready (None when it is), for /readyz and its log."""
        refusing = [link.url for link in self.links.values() if link.auth_refused]
        if refusing:
            return f"peer(s) {', '.join(refusing)} refuse this node's signature: the secrets differ"
        refused_ago = time.monotonic() - self.rejected.auth_at
        if refused_ago < REFUSAL_MEMORY_S:
            return (f"this node refuses peer messages from {self.rejected.auth_from} (refused {refused_ago:.0f} s "
                    "ago): is its secret different?")
        if not self.replica.synced and len(self._itself) < len(self.links):
            errors = "; ".join(f"{link.url}: {link.last_error or 'no answer yet'}" for link in self.links.values())
            return f"initial pull from peers not finished ({errors})"
        return None

    # ----- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        NODE.set(s.name)  # the timers' tasks inherit it: their log lines name this node
        if self.durability is not None:  # before anything is served or pulled
            self.durability.restore(self.now_ms())
            self.committed()
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=8,
                                                                             ssl=client_context(s)))
        self._transport = PeerTransport(self._session, s.secret.encode() if s.secret else None,
                                        aiohttp.ClientTimeout(total=s.peer_timeout, connect=min(1.0, s.peer_timeout)),
                                        s.max_peer_body_bytes)
        self._streams = {url: PeerStream(link, self._transport) for url, link in self.links.items()}
        self._pushers = {url: asyncio.create_task(self._pusher(url)) for url in self.links}
        loops = [self._every(s.anti_entropy_interval, self._anti_entropy_round),
                 self._every(s.renewal_interval / 4, self._refresh_documents),
                 self._every(collector.SETTLE_INTERVAL_S, collector.settle),
                 self._every(s.eviction_interval, self._eviction_pass),
                 self._every(s.renewal_window / EVALUATIONS_PER_WINDOW, self._preservation_check),
                 self._every(ACTIVITY_LOG_INTERVAL_S, self._log_activity),
                 self._initial_sync()]
        if self.eureka_peers is not None:
            loops.append(self.eureka_peers.run(self._session))
        if s.peers_dns:
            loops.append(self._follow_dns())
        if s.eureka_app:
            loops.append(self._register_self())
        if self.durability is not None:
            loops.append(self.durability.run())
        self._tasks = [asyncio.create_task(loop) for loop in loops]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._pushers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(stream.close() for stream in self._streams.values()), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self.durability is not None:
            self.durability.close()

    async def _every(self, seconds: float, action: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = action()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a bug in one pass must not stop the timer
                log.exception("periodic task failed")

    # ----- after every state change ------------------------------------------------------------------------

    def committed(self, urgent: bool = True) -> None:
        """Schedule an eager push and publish what the core applied.

        A versioned write goes out at once (or after `push_window`); renewals alone wait up to
        `RENEWAL_PUSH_WINDOW_S` for company, so a fleet's heartbeats travel a few frames a second per peer, not
        one frame each (a lease lasts 90 s; a frame costs the receiver more than the renewals in it). Pushers
        are woken before the feed's readers so that they run first: a change reaches the other nodes (and
        their watchers) before this node spends time on its own watch streams."""
        if self.durability is not None:
            self.durability.capture()
        if self.links:
            window = self.settings.push_window
            self._schedule_flush(window if urgent else max(window, RENEWAL_PUSH_WINDOW_S))
        changes = self.replica.take_changes()
        if changes:
            self.documents.note(changes, self.feed.publish(changes))
            self._note_activity(changes)

    async def acknowledgeable(self, replicas: bool = True) -> None:
        """Returns once the client's write just made may be acknowledged: on disk when `--fsync always` asks for
        it, and held by `--ack-replicas` peers (503 otherwise; with `replicas` only), both awaited at once."""
        waits = []
        if self.acks is not None and replicas:
            waits.append(self.acks.wait(self.replica.log.head))
        if self.durability is not None:
            waits.append(self.durability.synced())
        if waits:
            await asyncio.gather(*waits)

    def _peer_urls(self) -> list[str]:
        return [url for url in self.links if url not in self._itself]

    async def _probe(self, url: str) -> None:
        """An anti-entropy exchange with one peer now, for the watermark of our log its reply carries (acks.py,
        through `_apply_page`); its repair push also brings the peer what a skipped or lost eager push did not."""
        if url in self.links:
            await self._pull(url, self.replica.digest_for(url))

    def _note_activity(self, changes: list[Change]) -> None:
        """A DEBUG line per change (a fleet registers thousands a minute), counts for the INFO summary."""
        counts = self._activity
        for change in changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        if log.isEnabledFor(logging.DEBUG):
            for change in changes:
                log.debug("%s %s/%s", change.action.value, change.key.app, change.key.instance_id)

    def _log_activity(self) -> None:
        """At most one INFO line per ACTIVITY_LOG_INTERVAL_S, and only when something changed."""
        if self._activity:
            done = ", ".join(f"{count} {ACTION_WORDS[action]}" for action, count in self._activity.items())
            log.info("last %g s: %s; %d instances", ACTIVITY_LOG_INTERVAL_S, done, self.replica.index.count)
            self._activity = {}

    def _schedule_flush(self, delay: float) -> None:
        if delay <= 0:
            self._flush()  # the pushers wake now; what piles up while a push is in flight goes in the next one
            return
        loop = asyncio.get_running_loop()
        if self._flush_timer is not None:
            if self._flush_timer.when() <= loop.time() + delay:
                return  # an earlier flush is coming: it takes this change along
            self._flush_timer.cancel()
        self._flush_timer = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        for url in self.replica.push_targets():
            self._wake[url].set()

    async def _pusher(self, url: str) -> None:
        """One sender per peer keeps pushes to it in order; whatever piles up meanwhile goes in the next one."""
        link, wake = self.links[url], self._wake[url]
        while True:
            await wake.wait()
            wake.clear()
            if not link.ready() or url in self._itself:
                continue  # backing off: anti-entropy repairs this peer once it answers again
            push = self.replica.push_for(url, self.now_ms())
            if push is not None:
                await self._send(Outgoing(url, push))

    def forward(self, headers: object, action: Action, key: InstanceKey) -> None:
        """A client's operation, done here: Java Eureka peers get it too, unless a Java peer sent it."""
        if self.eureka_peers is not None and not is_replication(headers):
            self.eureka_peers.forward(action, key)

    def set_peers(self, urls: tuple[str, ...]) -> None:
        """Peers added or removed without a restart: a new one is pulled from and pushed to, a removed one's
        link, stream, pusher and bookkeeping are released."""
        assert self._transport is not None, "only a started node changes peers"
        added, removed = self.replica.set_peers(urls)
        for url in removed:
            self._pushers.pop(url).cancel()
            self._background(self._streams.pop(url).close())
            del self.links[url], self._wake[url]
        for url in added:
            link = self.links[url] = PeerLink(url)
            self._wake[url] = asyncio.Event()
            self._streams[url] = PeerStream(link, self._transport)
            self._pushers[url] = asyncio.create_task(self._pusher(url))
            self._background(self._pull(url, self.replica.digest_for(url)))
        if added or removed:
            log.info("node %s: peers now %s (added %s, removed %s)", self.settings.name, ", ".join(urls) or "none",
                     ", ".join(added) or "none", ", ".join(removed) or "none")

    async def _register_self(self) -> None:
        """This node as an instance of the Java peers' own app (`--eureka-app`), renewed like any client's: a
        Java node lists a peer as an available replica only if one of its app's instances has the peer's host
        name (Netflix/eureka StatusUtil.isReplicaAvailable)."""
        info = self_instance(self.settings)
        self.replica.register(info, self.now_ms())
        self.committed()
        self.forward({}, Action.REGISTER, info.key)
        while True:
            await asyncio.sleep(self.settings.renewal_interval)
            if self.replica.renew(info.key, self.now_ms()):
                self.committed(urgent=False)
                self.forward({}, Action.HEARTBEAT, info.key)
            else:  # evicted or cancelled meanwhile: register again
                self.replica.register(info, self.now_ms())
                self.committed()
                self.forward({}, Action.REGISTER, info.key)

    async def _follow_dns(self) -> None:
        """The static peers plus whatever --peers-dns resolves to, now and every interval."""
        s = self.settings
        while True:
            try:
                found = await peers_from_dns(s.peers_dns, s.port, s.scheme, (s.url,), self.resolver, self.srv)
            except OSError as exc:  # the name is gone or DNS is down: keep the peers we have
                log.warning("node %s: cannot resolve --peers-dns %s: %s", s.name, s.peers_dns, exc)
            else:
                self.set_peers(tuple(dict.fromkeys((*s.peers, *found))))
            await asyncio.sleep(s.peers_dns_interval)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._running.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._running.discard)

    # ----- peer traffic ------------------------------------------------------------------------------------

    def receive(self, message: Message) -> Message | None:
        """A message from a peer (POST or push stream); returns the reply to send back, if any."""
        now_ms = self.now_ms()
        reply = self.replica.receive(message, now_ms)
        if isinstance(message, Push) and message.delta.records:
            self.metrics.observe_apply("push", message.delta.records, now_ms)
        self.committed(urgent=not isinstance(message, Push) or bool(message.delta.records))
        return reply

    async def _send(self, out: Outgoing) -> None:
        """Pushes go over the peer's push stream, fire and forget (anti-entropy repairs a loss); digests start
        a pull."""
        if isinstance(out.message, Digest):
            await self._pull(out.peer, out.message)
        elif isinstance(out.message, Push):
            stream, start = self._streams.get(out.peer), time.perf_counter()  # None: removed since the push was made
            if stream is None:
                return
            try:
                await stream.send(out.message)
            except PeerUnavailable:
                return
            channel = "stream" if stream.link.streaming else "post"
            self.metrics.push_duration.labels(channel).observe(time.perf_counter() - start)

    async def _pull(self, url: str, digest: Digest) -> None:
        """Send a digest and apply the pages it brings: streamed (transport.PeerTransport.pull), or page by page
        from an older peer. One pull per peer at a time: an anti-entropy round that comes due meanwhile would
        only fetch the same pages."""
        link = self.links.get(url)
        if link is None or url in self._pulling or url in self._itself:
            return
        self._pulling.add(url)
        try:
            if link.pulls_streamed:
                await self._pull_streamed(url, link, digest)
            else:
                await self._pull_paged(url, digest)
        finally:
            self._pulling.discard(url)

    async def _pull_streamed(self, url: str, link: PeerLink, digest: Digest) -> None:
        """If the stream breaks off, the link backs off and the next anti-entropy round resumes from the pages
        that arrived."""
        assert self._transport is not None
        start = time.perf_counter()
        try:
            async with contextlib.aclosing(self._transport.pull(link, digest)) as pages:
                async for reply in pages:
                    if start:
                        self.metrics.digest_round_trip.observe(time.perf_counter() - start)
                        start = 0.0
                    if self._is_itself(url, reply):
                        return
                    if reply.more:
                        self.replica.expect_page_after(url, reply)
                    await self._apply_page(url, reply)
        except PullUnsupported:
            link.pulls_streamed = False
            log.info("peer %s has no streamed pull (an older node): pulling page by page", url)
            await self._pull_paged(url, digest)
        except PeerUnavailable:
            return

    async def _pull_paged(self, url: str, digest: Digest) -> None:
        """While a page is applied the next one is already asked for, so the peer encodes it meanwhile."""
        next_page: asyncio.Task[Message | None] | None = None
        try:
            reply = await self._ask(url, digest)
            while isinstance(reply, DigestReply) and not self._is_itself(url, reply):
                if reply.more:
                    next_page = asyncio.create_task(self._ask(url, self.replica.digest_for(url, ahead_of=reply)))
                await self._apply_page(url, reply)
                reply, next_page = (await next_page if next_page is not None else None), None
        finally:
            if next_page is not None:  # stopped (node shutting down) while a page was on its way
                next_page.cancel()

    async def _apply_page(self, url: str, reply: DigestReply) -> None:
        if self.acks is not None:
            self.acks.held(url, reply.your_watermark)
        bulk = not self.replica.synced
        self.anti_entropy.items_received += len(reply.delta.records) + len(reply.delta.renewals)
        now_ms = self.now_ms()
        self.replica.receive(reply, now_ms, peer=url)
        self.metrics.observe_apply("anti_entropy", reply.delta.records, now_ms)
        if bulk:
            collector.settle()  # the pulled records are long-lived: keep them out of collections
        self.committed()
        for follow_up in self.replica.take_outbox():
            await self._send(follow_up)

    def _is_itself(self, url: str, reply: DigestReply) -> bool:
        if reply.delta.sender != self.replica.replica_id:
            return False
        self._found_itself(url)
        return True

    def _found_itself(self, url: str) -> None:
        """A peer URL that answers with our own replica id (a name or address of this host that the start-up
        check could not tell): it is left out from now on, as Eureka leaves itself out of its peer list."""
        self._itself.add(url)
        self.links[url].last_error = "this node itself: ignored"
        log.warning("peer %s is this node itself (it answered with our replica id): ignoring it", url)

    async def _ask(self, url: str, digest: Digest) -> Message | None:
        assert self._transport is not None
        link = self.links.get(url)
        if link is None:
            return None  # removed while a pull was running
        start = time.perf_counter()
        try:
            reply = await self._transport.send(link, digest)
        except PeerUnavailable:
            return None
        self.metrics.digest_round_trip.observe(time.perf_counter() - start)
        return reply

    async def _initial_sync(self) -> None:
        """Pull from every peer at once: a node that starts empty is in sync as soon as one answers."""
        await asyncio.gather(*(self._pull(url, self.replica.digest_for(url)) for url in self.links))

    async def _anti_entropy_round(self) -> None:
        out = self.replica.anti_entropy()
        if out is not None:
            await self._send(out)

    async def _eviction_pass(self) -> None:
        self.replica.request_eviction()
        await self._sweep()
        self.replica.collect_garbage(self.now_ms())
        self.committed()

    async def _refresh_documents(self) -> None:
        """Lease times in rendered documents, brought up to date in the background (see documents.py)."""
        await run_steps(self.documents.refresh(self.now_ms()))

    async def _preservation_check(self) -> None:
        await self._sweep()

    async def _sweep(self) -> None:
        """One pass of the core over every lease, a slice per turn of the event loop (see core/sweep.py)."""
        async with self._sweeping:
            while (outcome := self.replica.sweep(self.now_ms())) is None:
                self.committed()  # evictions are changes: publish each slice's before anything else runs
                await asyncio.sleep(0)
            self.committed()
        if outcome.evicted:
            log.info("evicted %d expired instance(s): %s", len(outcome.evicted),
                     ", ".join(f"{k.app}/{k.instance_id}" for k in outcome.evicted[:10]))
        for transition in self.replica.preservation.take_transitions():
            log.warning("%s", describe_transition(transition, self.replica.preservation))
