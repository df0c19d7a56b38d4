"""A simulated cluster: replicas on an in-memory network with virtual time, for deterministic tests.

The network can drop, delay, duplicate and reorder messages and partition nodes; each node has its own clock
offset (skew). Everything random comes from one seeded `random.Random`, so a seed reproduces a run exactly.
Each node is driven as the server's Node drives its replica: tick, take the effects, send the messages, and
report how each push ended (`push_done` when it arrived or was lost on the way, as a stream cannot tell;
`push_failed` when the link is cut or the peer down, as a refused connection tells).
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from .config import CoreConfig
from .effects import Change, Outgoing
from .messages import Digest, Message, Push
from .replica import Replica

RETRY_AFTER_MS = 100  # how long a node holds eager pushes to a peer its last push could not reach


@dataclass(frozen=True, slots=True)
class Faults:
    loss: float = 0.0  # probability a message is dropped
    duplicate: float = 0.0  # probability a message is delivered twice
    min_delay_ms: int = 1
    max_delay_ms: int = 5  # delays vary, so messages reorder


@dataclass(order=True, slots=True)
class _InFlight:
    deliver_at: int
    order: int
    sender: str = field(compare=False)
    receiver: str = field(compare=False)
    message: Message = field(compare=False)
    lost: bool = field(compare=False, default=False)  # dropped on the way: arrives nowhere, the sender never knows


@dataclass(slots=True)
class SimCluster:
    names: tuple[str, ...]
    seed: int = 0
    config: CoreConfig = field(default_factory=CoreConfig)
    faults: Faults = field(default_factory=Faults)
    anti_entropy_ms: int = 1000  # the nodes' intervals, in place of the config's
    eviction_ms: int = 1000
    observe: Callable[[str, str, Message], None] | None = None  # sees every message delivered (sender, receiver)
    now_ms: int = 1_700_000_000_000
    skew_ms: dict[str, int] = field(default_factory=dict)
    replicas: dict[str, Replica] = field(init=False)
    published: dict[str, list[Change]] = field(default_factory=dict)  # each node's changes, as its feed would get
    down: set[str] = field(default_factory=set)
    _blocked: set[frozenset[str]] = field(default_factory=set)
    _queue: list[_InFlight] = field(default_factory=list)
    _order: int = 0
    _incarnations: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.config = replace(self.config, anti_entropy_interval_ms=self.anti_entropy_ms,
                              eviction_interval_ms=self.eviction_ms)
        self.replicas = {name: self._fresh(name) for name in self.names}

    def configure(self, **changes: Any) -> None:
        """Change the nodes' config mid-run; the timer settings take effect at once (each tick reads them)."""
        self.config = replace(self.config, **changes)
        for replica in self.replicas.values():
            replica.config = self.config

    def _fresh(self, name: str) -> Replica:
        self._incarnations += 1
        peers = tuple(n for n in self.names if n != name)
        return Replica(name, str(self._incarnations), self.config, peers, rng=random.Random(self.rng.random()))

    def local_ms(self, name: str) -> int:
        return self.now_ms + self.skew_ms.get(name, 0)

    def node(self, name: str) -> Replica:
        return self.replicas[name]

    # ----- faults ------------------------------------------------------------------------------------------

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between different groups (nodes in no group keep their links)."""
        sets = [set(g) for g in groups]
        for i, left in enumerate(sets):
            for right in sets[i + 1:]:
                self._blocked |= {frozenset((a, b)) for a in left for b in right}

    def heal(self) -> None:
        self._blocked.clear()

    def connected(self, a: str, b: str) -> bool:
        return frozenset((a, b)) not in self._blocked and a not in self.down and b not in self.down

    def restart_empty(self, name: str) -> None:
        """The node loses all its state and comes back as a new incarnation."""
        self.replicas[name] = self._fresh(name)
        self.published.pop(name, None)

    def take_changes(self, name: str) -> list[Change]:
        """What the node published since the last call (its pending effects are acted on first)."""
        self._dispatch(name)
        return self.published.pop(name, [])

    # ----- driving -----------------------------------------------------------------------------------------

    def after_write(self, name: str) -> None:
        """A node's tick right after a write: its eager push goes out now (the server's Node wakes its loop)."""
        self._tick(name)

    def run(self, duration_ms: int, step_ms: int = 10) -> None:
        """Advance virtual time, delivering messages and ticking each node."""
        end = self.now_ms + duration_ms
        while self.now_ms < end:
            self.now_ms = min(end, self.now_ms + step_ms)
            self._deliver_due()
            for name in self.names:
                if name not in self.down:
                    self._tick(name)

    def _tick(self, name: str) -> None:
        replica = self.replicas[name]
        while replica.tick(self.local_ms(name)) <= self.local_ms(name):  # unfinished passes run to the end
            self._dispatch(name)
        self._dispatch(name)

    def _dispatch(self, name: str) -> None:
        effects = self.replicas[name].take_effects()
        for out in effects.messages:
            self._send(name, out)
        if effects.changes:
            self.published.setdefault(name, []).extend(effects.changes)

    def _send(self, sender: str, out: Outgoing) -> None:
        lost = self.rng.random() < self.faults.loss
        copies = 1 + (not lost and self.rng.random() < self.faults.duplicate)
        for _ in range(copies):  # a lost message takes no delay from the rng: it only tells the sender when
            delay = self.faults.min_delay_ms if lost else self.rng.randint(self.faults.min_delay_ms,
                                                                            self.faults.max_delay_ms)
            self._order += 1
            heapq.heappush(self._queue, _InFlight(self.now_ms + delay, self._order, sender, out.peer, out.message,
                                                  lost))

    def _deliver_due(self) -> None:
        while self._queue and self._queue[0].deliver_at <= self.now_ms:
            item = heapq.heappop(self._queue)
            sender, message = self.replicas[item.sender], item.message
            if not self.connected(item.sender, item.receiver):  # a partition or a dead node loses what was in flight
                if isinstance(message, Push) and item.sender not in self.down:
                    sender.push_failed(item.receiver, message, self.local_ms(item.sender), RETRY_AFTER_MS)
                continue
            if isinstance(message, Push):
                sender.push_done(item.receiver, message)
            if item.lost:
                continue
            if self.observe is not None:
                self.observe(item.sender, item.receiver, message)
            replica = self.replicas[item.receiver]
            reply = replica.receive(message, self.local_ms(item.receiver), peer=item.sender)
            if isinstance(message, Digest) and reply is not None:
                self._send(item.receiver, Outgoing(item.sender, reply))
            self._dispatch(item.receiver)
