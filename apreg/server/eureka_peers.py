"""apreg as a peer of Java Eureka servers: batches they send applied here, and this node's client writes and
heartbeats sent to them.

Who sends what (README, "Joining a Eureka cluster"): each apreg node forwards to its Java peers exactly the
operations its own clients made at it, the way each Java node forwards what its clients send it. An operation
that came from a Java peer (a batch, or any request with `x-netflix-discovery-replication: true`) is applied
and never forwarded to a Java peer (Eureka needs a full mesh: its origin sent it to every peer); it reaches the
other apreg nodes through apreg's own replication, as any write made at this node does, and they do not forward
it either (it is not their clients'). So no write is lost while the mesh is complete, none is sent twice in
steady state, and none loops between the two protocols.

Per Java peer there is one bounded queue, de-duplicated per (action, instance) as Eureka's task batcher is, and
one sender: batches of up to 250 items, at most 500 ms after the first item queued (Eureka's defaults). A 404 to
a heartbeat queues a Register of our copy; a 409 hands us the peer's newer copy, which we adopt; a 503 or an
unreachable peer backs off, keeping the batch. Nothing here runs on a client's request path but a dict insert.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp

from apreg.core.instance import InstanceInfo, InstanceKey, Status
from apreg.core.replica import Replica
from apreg.eureka import codec, render
from apreg.eureka.replication import BATCH_PATH, REPLICATION_HEADER, Action, Answer, Item, item_dict, parse_answers, \
    parse_applications, render_batch

from .documents import instance_view
from .instruments import Instruments
from .settings import NodeSettings

log = logging.getLogger("apreg.eureka_peers")
BATCH_ITEMS = 250  # Eureka's batchSize
BATCH_DELAY_S = 0.5  # Eureka's maxBatchingDelay
MAX_QUEUED = 10_000  # Eureka's maxElementsInPeerReplicationPool; beyond it the oldest item is dropped
BACKOFF_S = (0.5, 5.0)  # first and longest wait after a failed batch: a peer back up waits at most 5 s


def apply_item(replica: Replica, item: Item, now_ms: int) -> Answer:
    """One replicated operation from a Java peer, answered as Eureka's PeerReplicationResource answers it."""
    key = InstanceKey(item.app, item.instance_id)
    current = replica.visible(key)
    if item.action is Action.REGISTER:
        assert item.instance is not None
        if current is not None and current.info is not None and (
                current.info.last_dirty_timestamp > item.instance.last_dirty_timestamp):
            replica.renew(key, now_ms)  # Eureka keeps the copy dirtied later, and starts its lease anew
        else:
            replica.register(item.instance, now_ms)
        return Answer(200)
    if current is None or current.info is None:
        return Answer(404)
    if item.action is Action.HEARTBEAT:
        if not replica.renew(key, now_ms):
            return Answer(404)
        ours = current.info.last_dirty_timestamp
        if item.last_dirty_ms is None or item.last_dirty_ms == ours:
            return Answer(200)
        if item.last_dirty_ms > ours:
            return Answer(404)  # the sender's copy is newer: it registers it with us
        return Answer(409, render.instance_dict(instance_view(replica, current.info)))  # ours is newer
    if item.action is Action.CANCEL:
        return Answer(200 if replica.cancel(key, now_ms) else 404)
    if item.action is Action.STATUS_UPDATE:
        assert item.status is not None
        return Answer(200 if replica.set_status(key, item.status, now_ms) else 404)
    return Answer(200 if replica.remove_status(key, item.status or Status.UNKNOWN, now_ms) else 404)


def start_from(url: str, found: list[InstanceInfo | codec.CodecError], replica: Replica, now_ms: int) -> None:
    """A Java peer's registry (`GET apps`), each instance applied as its Register would be: one write."""
    for info in found:
        if isinstance(info, codec.CodecError):
            log.info("Eureka peer %s: an instance of its registry refused: %s", url, info)
        else:
            apply_item(replica, Item(Action.REGISTER, info.app, info.instance_id, instance=info), now_ms)


def self_instance(settings: NodeSettings) -> InstanceInfo:
    """This node as an instance of `--eureka-app`, under the host name its peers' service URLs use for it."""
    url = urlsplit(settings.url)
    host = url.hostname or settings.host
    port = url.port or settings.port
    app = settings.eureka_app.upper()
    ip = host if _is_ip(host) else settings.host
    return InstanceInfo(app=app, instance_id=f"{host}:{app.lower()}:{port}", host_name=host, ip_addr=ip,
                        port=port, port_enabled=url.scheme == "http", secure_port=port,
                        secure_port_enabled=url.scheme == "https", vip_address=app.lower(),
                        secure_vip_address=app.lower(), home_page_url=f"{settings.url}/",
                        status_page_url=f"{settings.url}/v1/status", health_check_url=f"{settings.url}/v1/status",
                        renewal_interval_s=settings.renewal_interval, lease_duration_s=settings.lease_duration)


async def register_self(settings: NodeSettings, write: Callable[[Callable[[Replica, int], object]], object],
                        forward: Callable[[object, Action, InstanceKey], None]) -> None:
    """This node as an instance of the Java peers' own app (`--eureka-app`), renewed like any client's: a
    Java node lists a peer as an available replica only if one of its app's instances has the peer's host
    name (Netflix/eureka StatusUtil.isReplicaAvailable). `write` and `forward` are the node's."""
    info = self_instance(settings)
    write(lambda replica, now: replica.register(info, now))
    forward({}, Action.REGISTER, info.key)
    while True:
        await asyncio.sleep(settings.renewal_interval)
        if write(lambda replica, now: replica.renew(info.key, now)):
            forward({}, Action.HEARTBEAT, info.key)
        else:  # evicted or cancelled meanwhile: register again
            write(lambda replica, now: replica.register(info, now))
            forward({}, Action.REGISTER, info.key)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_replication(headers: Any) -> bool:
    """A request a Java peer forwarded (never to be forwarded again)."""
    return str(headers.get(REPLICATION_HEADER, "")).lower() == "true"


ANSWERS = frozenset({200, 400, 404, 409, 503})  # item answers counted by their code; the rest as "other"


def answer_label(status: int) -> str:
    return str(status) if status in ANSWERS else "other"


@dataclass(slots=True)
class EurekaPeer:
    """One Java peer's queue, counters and health (shown in /v1/status and the metrics)."""

    url: str  # its service URL, ending in "/" (e.g. http://host:8761/eureka/)
    queue: OrderedDict[tuple[Action, InstanceKey], None] = field(default_factory=OrderedDict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    reachable: bool = False
    answers: dict[tuple[Action, str], int] = field(default_factory=dict)  # items by action and answer label
    batches: dict[str, int] = field(default_factory=dict)  # batches by outcome (BATCH_OUTCOMES)
    dropped: int = 0  # items pushed out of a full queue
    last_error: str = ""
    last_error_at: float = 0.0  # wall-clock seconds (for operators: when), 0 when none yet
    backoff_s: float = 0.0  # the wait before the next try after a failed batch, 0 while batches get through

    @property
    def sent(self) -> int:
        """Items the peer answered 200."""
        return sum(n for (_, label), n in self.answers.items() if label == "200")

    @property
    def refused(self) -> int:
        """Items the peer answered with another status."""
        return sum(n for (_, label), n in self.answers.items() if label != "200")

    def failed(self, error: str) -> None:
        self.last_error, self.last_error_at = error, time.time()

    def status(self) -> dict[str, Any]:
        items: dict[str, dict[str, int]] = {}
        for (action, label), count in sorted(self.answers.items()):
            items.setdefault(action.value, {})[label] = count
        return {"url": self.url, "reachable": self.reachable, "queued": len(self.queue), "sent": self.sent,
                "refused": self.refused, "dropped": self.dropped, "batches": self.batches.get("delivered", 0),
                "batches_failed": sum(n for outcome, n in self.batches.items() if outcome != "delivered"),
                "items": items, "backoff_s": self.backoff_s, "last_error": self.last_error,
                "last_error_at": self.last_error_at or None}


# A batch's outcome: answered item by item, or kept for a retry because the peer did not answer (connection,
# timeout), answered 503 (Eureka's "back off"), answered another status, or answered something unusable.
BATCH_OUTCOMES = ("delivered", "unreachable", "busy", "http_error", "bad_answer")


class EurekaReplicator:
    """Sends this node's client operations to its Java peers (see the module docstring); the peers may change
    while it runs (SIGHUP)."""

    def __init__(self, urls: tuple[str, ...], replica: Replica, now_ms: Callable[[], int],
                 write: Callable[[Callable[[Replica, int], object]], object], timeout_s: float,
                 metrics: Instruments) -> None:
        self.peers: list[EurekaPeer] = []
        self.replica = replica
        self.now_ms = now_ms
        self.write = write  # the node's one way to change the replica (it publishes what changed)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None
        self._senders: dict[str, asyncio.Task[None]] = {}
        self.set_urls(urls)

    def set_urls(self, urls: tuple[str, ...]) -> None:
        """Java peers added or removed: a removed one's queue and sender go, a new one starts with an empty queue
        (what it missed reaches it as Eureka repairs: a heartbeat it answers 404 brings a Register)."""
        wanted = [url if url.endswith("/") else url + "/" for url in urls]
        kept = {peer.url: peer for peer in self.peers if peer.url in wanted}
        for peer in self.peers:
            if peer.url not in kept and (task := self._senders.pop(peer.url, None)) is not None:
                task.cancel()
        self.peers = [kept.get(url) or EurekaPeer(url) for url in wanted]
        self._start_senders()

    def _start_senders(self) -> None:
        """A sender for every peer that has none, once running."""
        if self._session is not None:
            for peer in self.peers:
                if peer.url not in self._senders:
                    self._senders[peer.url] = asyncio.create_task(self._sender(peer, self._session))

    def forward(self, action: Action, key: InstanceKey) -> None:
        """Queue a client's operation for every Java peer: O(1), whatever the peers' state."""
        for peer in self.peers:
            self._queue(peer, action, key)

    def _queue(self, peer: EurekaPeer, action: Action, key: InstanceKey) -> None:
        entry = (action, key)
        peer.queue.pop(entry, None)  # a newer one of the same kind replaces it, at the back
        peer.queue[entry] = None
        if len(peer.queue) > MAX_QUEUED:
            peer.queue.popitem(last=False)
            peer.dropped += 1
        peer.wake.set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        """The senders, until cancelled (the node stops)."""
        self._session = session
        self._start_senders()
        try:
            await asyncio.Event().wait()
        finally:
            for task in self._senders.values():
                task.cancel()
            await asyncio.gather(*self._senders.values(), return_exceptions=True)
            self._senders.clear()

    async def pull(self, session: aiohttp.ClientSession) -> None:
        """A first sync, as a Java node's syncUp does: the registry of the first Java peer that answers, each
        instance registered here as a Java peer's Register is (its `lastDirtyTimestamp` kept). Not forwarded to
        the Java peers: they hold it. None answering leaves the node empty: their heartbeats, answered 404, bring
        Registers within a renewal interval."""
        for peer in self.peers:
            try:
                async with session.get(peer.url + "apps", headers={"Accept": "application/json"},
                                       timeout=self.timeout) as response:
                    payload = await response.read()
                    if response.status != 200:
                        raise ConnectionError(f"HTTP {response.status}")
                found = parse_applications(payload, self.now_ms())
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, OSError, codec.CodecError) as exc:
                log.warning("Eureka peer %s: no registry to start from (%s)", peer.url, exc)
                peer.failed(f"first sync: {type(exc).__name__}: {exc}")
                continue
            self.write(partial(start_from, peer.url, found))
            log.info("Eureka peer %s: started from its registry of %d instances", peer.url, len(found))
            return

    async def _sender(self, peer: EurekaPeer, session: aiohttp.ClientSession) -> None:
        while True:
            if not peer.queue:
                peer.wake.clear()
                await peer.wake.wait()
            await asyncio.sleep(BATCH_DELAY_S if len(peer.queue) < BATCH_ITEMS else 0)
            if await self._next_batch(peer, session):
                peer.backoff_s = 0.0
            else:
                peer.backoff_s = min(BACKOFF_S[1], max(BACKOFF_S[0], peer.backoff_s * 2))
                await asyncio.sleep(peer.backoff_s)

    async def _next_batch(self, peer: EurekaPeer, session: aiohttp.ClientSession) -> bool:
        """Send the oldest items queued; False when the peer did not take them (they stay queued, in front)."""
        taken = [peer.queue.popitem(last=False)[0] for _ in range(min(BATCH_ITEMS, len(peer.queue)))]
        items = [(entry, body) for entry in taken if (body := self._item(*entry)) is not None]
        delivered = False
        try:
            delivered = not items or await self._send(peer, session, items)
        finally:  # also when cancelled (the node stops) while the batch was on its way: flush() sends it again
            if not delivered:
                for entry, _ in reversed(items):  # kept, ahead of anything queued since
                    if entry not in peer.queue:
                        peer.queue[entry] = None
                        peer.queue.move_to_end(entry, last=False)
        return delivered

    async def flush(self, session: aiohttp.ClientSession, timeout_s: float) -> None:
        """On a graceful stop, once the senders are stopped: what is queued goes out now, to every peer at once,
        for at most `timeout_s`, so a write acknowledged just before the stop still reaches the Java peers (a
        stopping Java node drops its queue: PeerEurekaNode.shutDown)."""
        async def drain(peer: EurekaPeer) -> None:
            while peer.queue and await self._next_batch(peer, session):
                pass

        try:
            await asyncio.wait_for(asyncio.gather(*(drain(peer) for peer in self.peers)), timeout_s)
        except asyncio.TimeoutError:
            log.warning("stopping: %d operations not delivered to Java peers within %g s",
                        sum(len(peer.queue) for peer in self.peers), timeout_s)

    def _item(self, action: Action, key: InstanceKey) -> dict[str, Any] | None:
        """The item as of now (the latest status and dirty time); None when there is nothing left to say."""
        record = self.replica.visible(key)
        if record is None or record.info is None:
            if action is Action.CANCEL:
                return {"appName": key.app, "id": key.instance_id, "action": Action.CANCEL.value}
            return None
        instance = render.instance_dict(instance_view(self.replica, record.info)) if action is Action.REGISTER else None
        return item_dict(action, record.info, instance)

    async def _send(self, peer: EurekaPeer, session: aiohttp.ClientSession,
                    items: list[tuple[tuple[Action, InstanceKey], dict[str, Any]]]) -> bool:
        """POST one batch and act on each answer; False when the whole batch must wait and go again."""
        started = time.monotonic()
        outcome = "unreachable"
        try:
            async with session.post(peer.url + BATCH_PATH, data=render_batch([body for _, body in items]),
                                    headers={"Content-Type": "application/json", "Accept": "application/json",
                                             REPLICATION_HEADER: "true"}, timeout=self.timeout) as response:
                payload = await response.read()
                if response.status != 200:
                    outcome = "busy" if response.status == 503 else "http_error"
                    raise ConnectionError(f"HTTP {response.status}")
            outcome = "bad_answer"
            answers = parse_answers(payload, len(items))
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, OSError, codec.CodecError) as exc:
            if peer.backoff_s == 0:  # the first failure since batches got through (or since the start)
                log.warning("Eureka peer %s: batch of %d not delivered (%s); retrying with backoff", peer.url,
                            len(items), exc)
            peer.reachable = outcome in ("busy", "http_error", "bad_answer")  # it answered, if not as it should
            peer.failed(f"{type(exc).__name__}: {exc}")
            peer.batches[outcome] = peer.batches.get(outcome, 0) + 1
            return False
        elapsed = time.monotonic() - started
        self.metrics.observe_eureka_batch(peer.url, elapsed)
        peer.reachable = True
        peer.batches["delivered"] = peer.batches.get("delivered", 0) + 1
        for ((action, key), _), answer in zip(items, answers):
            self._answered(peer, action, key, answer)
        log.debug("Eureka peer %s: batch of %d in %.0f ms", peer.url, len(items), elapsed * 1e3)
        return True

    def _answered(self, peer: EurekaPeer, action: Action, key: InstanceKey, answer: Answer) -> None:
        counted = (action, answer_label(answer.status))
        peer.answers[counted] = peer.answers.get(counted, 0) + 1
        if answer.status == 200:
            return
        if action is Action.HEARTBEAT and answer.status == 404:
            self._queue(peer, Action.REGISTER, key)  # it lacks the instance, or holds an older copy
        elif action is Action.HEARTBEAT and answer.status == 409 and answer.entity is not None:
            self._adopt(peer, key, answer.entity)
        elif answer.status != 404 or action is not Action.CANCEL:
            peer.failed(f"{action.value} {key.app}/{key.instance_id}: HTTP {answer.status}")

    def _adopt(self, peer: EurekaPeer, key: InstanceKey, entity: dict[str, Any]) -> None:
        """The peer's copy was dirtied later than ours (409): take it, as Eureka's PeerEurekaNode does."""
        try:
            info = codec.parse_instance(entity, key.app, self.now_ms())
        except codec.CodecError as exc:
            peer.failed(f"409 for {key.app}/{key.instance_id} with an unusable instance: {exc.detail}")
            return
        if info.key == key:
            self.write(lambda replica, now: replica.register(info, now))
