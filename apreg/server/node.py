"""The node runtime: a plain driver around one Replica, as the simulator (core/simnet.py) drives one.

It decides nothing about merges, pushes or evictions (the core does). One loop wakes (at the deadline the
last tick returned, or when an input arrives), ticks the replica, takes its effects and acts on them in the
order `Effects` documents: hand the messages to the peer links, publish the changes, log evictions and
self-preservation and clock transitions. Handlers change state only through `write`, which publishes at once and
wakes the loop, so no change can wait unpublished; how each push ended goes back into the core.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any, Callable, Coroutine, TypeVar

import aiohttp

from apreg.core.effects import Effects, Outgoing
from apreg.core.instance import InstanceKey
from apreg.core.messages import Digest, DigestReply, Message, Push
from apreg.core.replica import Replica
from apreg.eureka.replication import Action
from apreg.logs import NODE
from apreg.peer.auth import wall_ms
from apreg.peer.channels import Channel, HttpTransport, Transport
from apreg.peer.transport import PeerLink, PeerUnavailable

from . import collector, discovery
from .acks import ReplicaAcks
from .activity import SUMMARY_INTERVAL_S, ActivityLog
from .clock_view import describe as describe_clock
from .counts import AntiEntropyCounts, ReceiveCounts, RejectCounts
from .discovery import Resolver, SrvLookup, system_resolver, system_srv
from .documents import DocumentCache
from .durability import Durability
from .eureka_peers import EurekaReplicator, is_replication, register_self
from .feed import ChangeFeed
from .instruments import Instruments
from .preservation_view import describe_transition
from .settings import NodeSettings
from .steps import run_steps
from .tls import client_context

log = logging.getLogger("apreg.node")
EUREKA_FLUSH_S = 2.0  # a stopping node sends what its Java peers have not got yet for at most this long
REFUSAL_MEMORY_S = 30.0  # a node that refused a peer's signed message this recently is not in sync with it
TICK_FAILED_RETRY_S = 1.0  # after a tick raised (a bug), the loop tries again this much later
T = TypeVar("T")


class Node:
    """`clock` gives the core's time (wall ms), `monotonic` the links' back-off time (s); tests inject both."""

    def __init__(self, settings: NodeSettings, clock: Callable[[], int] = wall_ms,
                 resolver: Resolver = system_resolver, monotonic: Callable[[], float] = time.monotonic,
                 srv: SrvLookup = system_srv) -> None:
        self.settings = settings
        self.now_ms = clock
        self.monotonic = monotonic
        self.resolver, self.srv = resolver, srv
        incarnation = f"{time.time_ns():x}{os.urandom(2).hex()}"
        self.replica = Replica(settings.name, incarnation, settings.core_config(), settings.peers)
        self.feed = ChangeFeed()
        self.documents = DocumentCache(self.replica, self.feed, refresh_ms=self.replica.config.renewal_interval_ms,
                                       max_age_ms=round(settings.read_cache_max_age * 1000))
        self.links = {url: PeerLink(url, clock=monotonic) for url in settings.peers}
        self.started = time.monotonic()
        self.rejected = RejectCounts()
        self.received = ReceiveCounts()
        self.anti_entropy = AntiEntropyCounts()
        self.activity = ActivityLog(lambda: self.replica.status().instances)
        self.metrics = Instruments()
        self._wake = asyncio.Event()  # an input arrived: tick now rather than at the deadline
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._transport: Transport | None = None
        self._channels: dict[str, Channel] = {}
        self._pulling: set[str] = set()  # peers a pull (a digest and its follow-ups) is running against
        self._itself: set[str] = set()  # peer URLs that turned out to reach this very node
        self._running: set[asyncio.Task[None]] = set()
        self.durability = Durability(settings.data_dir, self.replica, settings.fsync) if settings.data_dir else None
        self.acks = ReplicaAcks(settings.ack_replicas, settings.peer_timeout, self._probe, self._peer_urls
                                ) if settings.ack_replicas else None
        self.eureka_peers = self._eureka_replicator(settings.eureka_peers) if settings.eureka_peers else None
        self._first_pulls = set(self.links)  # peers whose initial pull has not ended yet
        self.first_pull_done = asyncio.Event()  # set once the initial pull ended, done or failed (app.py waits)

    @property
    def transport(self) -> Transport | None:
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

    def open(self, transport: Transport | None = None) -> None:
        """Reach the peers through `transport` (default: HTTP with this node's secret, TLS and timeouts). Only
        `start` also runs the driver and the timers; tests open a node and drive it with `step`."""
        s = self.settings
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=8,
                                                                             ssl=client_context(s)))
        chosen = transport or HttpTransport.over(
            self._session, s.secret.encode() if s.secret else None,
            aiohttp.ClientTimeout(total=s.peer_timeout, connect=min(1.0, s.peer_timeout)), s.max_peer_body_bytes)
        self._transport, self._channels = chosen, {url: chosen.channel(link) for url, link in self.links.items()}

    async def start(self, transport: Transport | None = None) -> None:
        s = self.settings
        NODE.set(s.name)  # the timers' tasks inherit it: their log lines name this node
        durability = self.durability
        if durability is not None:  # before anything is served or pulled
            self.write(lambda _replica, now: durability.restore(now))
        self.open(transport)
        loops = [self._drive(),
                 self._every(s.renewal_interval / 4, self._refresh_documents),
                 self._every(collector.SETTLE_INTERVAL_S, collector.settle),
                 self._every(SUMMARY_INTERVAL_S, self.activity.summarize)]
        if self.eureka_peers is not None and self._session is not None:
            loops.append(self.eureka_peers.run(self._session))
            if not self.links:
                self._background(self._start_from_eureka(self.eureka_peers, self._session))
        elif not self.links:
            self.first_pull_done.set()  # nothing to start from
        if s.peers_dns:
            loops.append(discovery.follow(s, self.resolver, self.srv, self.set_peers))
        if s.eureka_app:
            loops.append(register_self(s, self.write, self.forward))
        if self.durability is not None:
            loops.append(self.durability.run())
        self._tasks = [asyncio.create_task(loop) for loop in loops]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(channel.close() for channel in self._channels.values()), return_exceptions=True)
        if self._session is not None:
            if self.eureka_peers is not None:
                await self.eureka_peers.flush(self._session, EUREKA_FLUSH_S)
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

    # ----- the driver ----------------------------------------------------------------------------------------

    async def _drive(self) -> None:
        """Wake, tick, act on the effects; sleep until the deadline the tick gave, or until an input."""
        while True:
            self._wake.clear()
            now = self.now_ms()
            try:
                due = self.step(now)
            except Exception:  # a bug in one tick must not stop the node
                log.exception("tick failed")
                due = now + round(TICK_FAILED_RETRY_S * 1000)
            if due <= now:  # a pass is unfinished: give the event loop back, then continue it
                await asyncio.sleep(0)
                continue
            try:  # not asyncio.wait_for: on 3.11 it swallows a cancel that comes as the wait ends (stop hung)
                async with asyncio.timeout((due - now) / 1000):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def step(self, now_ms: int | None = None) -> int:
        """One turn of the driver: tick at `now_ms` (default: now) and act on the effects; returns the tick's
        deadline."""
        due = self.replica.tick(self.now_ms() if now_ms is None else now_ms)
        self._act(self.replica.take_effects())
        return due

    def write(self, change: Callable[[Replica, int], T], now_ms: int | None = None) -> T:
        """Change the replica (a client's write, a peer's message, a pulled page) at `now_ms` (default: now):
        the one way to, so what it changed is published before the caller answers, and the loop wakes to push
        it (the core decides when)."""
        result = change(self.replica, self.now_ms() if now_ms is None else now_ms)
        self._act(self.replica.take_effects())
        self._wake.set()
        return result

    def _act(self, effects: Effects) -> None:
        """Act on effects in their documented order: send, publish, log; with --data-dir, what the core applied
        is appended to the data dir's log first (from the core's change log, which also holds what changed no
        visible state)."""
        if self.durability is not None:  # on disk before it is sent on or shown
            self.durability.capture()
        if not effects:
            return
        for out in effects.messages:
            self._dispatch(out)
        if effects.changes:
            self.documents.note(effects.changes, self.feed.publish(effects.changes))
            self.activity.note(effects.changes)
        if effects.evicted:
            log.info("evicted %d expired instance(s): %s", len(effects.evicted),
                     ", ".join(f"{k.app}/{k.instance_id}" for k in effects.evicted[:10]))
        for transition in effects.transitions:
            log.warning("%s", describe_transition(transition, self.replica.status().preservation))
        for clock in effects.clock_transitions:
            log.warning("%s", describe_clock(clock))

    def _dispatch(self, out: Outgoing) -> None:
        """A digest starts a pull; a push goes over the peer's push stream, and how it ended goes back to the
        core (a link backing off gets none: it counts as failed at once, for the rest of its back-off)."""
        message = out.message
        if isinstance(message, Digest):
            self._background(self._pull(out.peer, message))
        elif isinstance(message, Push):
            link = self.links.get(out.peer)
            if link is None:  # removed since
                return
            if out.peer in self._itself:
                self.replica.push_done(out.peer, message)  # this very node holds it all already
            elif not link.ready():
                self.replica.push_failed(out.peer, message, self.now_ms(), link.backing_off_ms())
            else:
                self._background(self._push(out.peer, message))

    async def _push(self, url: str, push: Push) -> None:
        channel, start = self._channels.get(url), time.perf_counter()
        if channel is None:  # removed since
            return
        try:
            await channel.push(push)
        except PeerUnavailable:
            self.replica.push_failed(url, push, self.now_ms(), channel.link.backing_off_ms())
        else:
            self.replica.push_done(url, push)
            way = "stream" if channel.link.streaming else "post"
            self.metrics.push_duration.labels(way).observe(time.perf_counter() - start)
        self._wake.set()  # what came due meanwhile goes next

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

    # ----- peers, and Java Eureka peers -----------------------------------------------------------------------

    def forward(self, headers: object, action: Action, key: InstanceKey) -> None:
        """A client's operation, done here: Java Eureka peers get it too, unless a Java peer sent it."""
        if self.eureka_peers is not None and not is_replication(headers):
            self.eureka_peers.forward(action, key)

    def set_peers(self, urls: tuple[str, ...]) -> None:
        """Peers added or removed without a restart: a new one is pulled from and pushed to, a removed one's
        link, stream, pusher and bookkeeping are released."""
        assert self._transport is not None, "only a started node changes peers"
        for url in urls:
            if url not in self.links:
                link = self.links[url] = PeerLink(url, clock=self.monotonic)
                self._channels[url] = self._transport.channel(link)
        added, removed = self.write(lambda replica, _: replica.set_peers(urls))  # the new ones are pulled from
        for url in removed:
            self._background(self._channels.pop(url).close())
            del self.links[url]
            self._pull_ended(url)
        if added or removed:
            log.info("node %s: peers now %s (added %s, removed %s)", self.settings.name, ", ".join(urls) or "none",
                     ", ".join(added) or "none", ", ".join(removed) or "none")

    def _eureka_replicator(self, urls: tuple[str, ...]) -> EurekaReplicator:
        return EurekaReplicator(urls, self.replica, self.now_ms, self.write, self.settings.peer_timeout, self.metrics)

    def set_eureka_peers(self, urls: tuple[str, ...]) -> None:
        """Java peers added or removed without a restart (SIGHUP): during a migration, an address whose Java node
        was replaced by an apreg node moves from --eureka-peers to --peers."""
        if self.eureka_peers is None:
            if not urls:
                return
            self.eureka_peers = self._eureka_replicator(urls)
            assert self._session is not None, "only a started node changes peers"
            self._tasks.append(asyncio.create_task(self.eureka_peers.run(self._session)))
        self.eureka_peers.set_urls(urls)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._running.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._running.discard)

    # ----- peer traffic ------------------------------------------------------------------------------------

    def receive(self, message: Message) -> Message | None:
        """A message from a peer (POST or push stream); returns the reply to send back, if any."""
        now_ms = self.now_ms()
        reply = self.write(lambda replica, now: replica.receive(message, now), now_ms)
        if isinstance(message, Push) and message.delta.records:
            self.metrics.observe_apply("push", message.delta.records, now_ms)
        return reply

    def next_page(self, digest: Digest, previous: DigestReply) -> DigestReply:
        """The page after `previous` of a streamed pull this node serves (a read: nothing to publish)."""
        return self.replica.next_page(digest, previous, self.now_ms())

    async def _pull(self, url: str, digest: Digest) -> None:
        """Send a digest and apply the pages it brings, each next page already on its way (Channel.pull). One
        pull per peer at a time: an anti-entropy round that comes due meanwhile would only fetch the same pages.
        If the peer breaks off, the link backs off and a later round resumes from the pages that arrived."""
        channel = self._channels.get(url)
        if channel is None or url in self._pulling or url in self._itself:
            return
        self._pulling.add(url)
        start = time.perf_counter()
        try:
            async with contextlib.aclosing(channel.pull(digest)) as pages:
                async for reply in pages:
                    if start:
                        self.metrics.digest_round_trip.observe(time.perf_counter() - start)
                        start = 0.0
                    if reply.delta.sender == self.replica.replica_id:
                        self._found_itself(url)
                        return
                    if url not in self._channels:
                        return  # removed while the pull was running
                    self._apply_page(url, reply)
                    await asyncio.sleep(0)  # pages already read would otherwise be applied back to back
        except PeerUnavailable:
            return
        finally:
            self._pulling.discard(url)
            self._pull_ended(url)

    def _pull_ended(self, url: str) -> None:
        """A pull from `url` ended, done or failed (or the peer was removed): once every initial pull has, the
        node has what its peers could give it and app.py opens its port."""
        self._first_pulls.discard(url)
        if not self._first_pulls:
            self.first_pull_done.set()

    async def _start_from_eureka(self, peers: EurekaReplicator, session: aiohttp.ClientSession) -> None:
        """A node with Java Eureka peers only starts from one of their registries (Eureka's syncUp)."""
        try:
            await peers.pull(session)
        finally:
            self.first_pull_done.set()

    def _apply_page(self, url: str, page: DigestReply) -> None:
        if self.acks is not None:
            self.acks.held(url, page.your_watermark)
        if page.more:
            self.replica.expect_page_after(url, page)
        bulk = not self.replica.synced
        self.anti_entropy.items_received += len(page.delta.records) + len(page.delta.renewals)
        now_ms = self.now_ms()
        self.write(lambda replica, now: replica.receive(page, now, peer=url), now_ms)  # repairs go out
        self.metrics.observe_apply("anti_entropy", page.delta.records, now_ms)
        if bulk:
            collector.settle()  # the pulled records are long-lived: keep them out of collections

    def _found_itself(self, url: str) -> None:
        """A peer URL that answers with our own replica id (a name or address of this host that the start-up
        check could not tell): it is left out from now on, as Eureka leaves itself out of its peer list."""
        self._itself.add(url)
        self.links[url].last_error = "this node itself: ignored"
        log.warning("peer %s is this node itself (it answered with our replica id): ignoring it", url)

    async def _refresh_documents(self) -> None:
        """Lease times in rendered documents, brought up to date in the background (see documents.py)."""
        await run_steps(self.documents.refresh(self.now_ms()))

