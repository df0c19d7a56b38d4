"""A simulated cluster: replicas on an in-memory network with virtual time, for deterministic tests.

The network can drop, delay, duplicate and reorder messages and partition nodes; each node has its own clock
offset (skew). Everything random comes from one seeded `random.Random`, so a seed reproduces a run exactly.
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Iterable

from .config import CoreConfig
from .messages import Digest, Message
from .replica import Outgoing, Replica


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


@dataclass(slots=True)
class SimCluster:
    names: tuple[str, ...]
    seed: int = 0
    config: CoreConfig = field(default_factory=CoreConfig)
    faults: Faults = field(default_factory=Faults)
    anti_entropy_ms: int = 1000
    eviction_ms: int = 1000
    now_ms: int = 1_700_000_000_000
    skew_ms: dict[str, int] = field(default_factory=dict)
    replicas: dict[str, Replica] = field(init=False)
    down: set[str] = field(default_factory=set)
    _blocked: set[frozenset[str]] = field(default_factory=set)
    _queue: list[_InFlight] = field(default_factory=list)
    _order: int = 0
    sent: int = 0  # messages handed to the network, so tests can bound a protocol's chatter
    _incarnations: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.replicas = {name: self._fresh(name) for name in self.names}

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

    # ----- driving -----------------------------------------------------------------------------------------

    def after_write(self, name: str) -> None:
        """Eager push of a node's pending changes (the shell does this after a few ms of coalescing)."""
        self._send(name, self.replicas[name].flush(self.local_ms(name)))

    def run(self, duration_ms: int, step_ms: int = 10) -> None:
        """Advance virtual time, delivering messages and firing each node's timers."""
        end = self.now_ms + duration_ms
        while self.now_ms < end:
            self.now_ms = min(end, self.now_ms + step_ms)
            self._deliver_due()
            for name in self.names:
                if name in self.down:
                    continue
                replica, now = self.replicas[name], self.local_ms(name)
                if self.now_ms % self.anti_entropy_ms < step_ms:
                    digest = replica.anti_entropy()
                    self._send(name, [digest] if digest else [])
                if self.now_ms % self.eviction_ms < step_ms:
                    replica.evict(now)
                    replica.collect_garbage(now)
                replica.update_preservation(now)
                self._send(name, replica.flush(now))

    def _send(self, sender: str, outgoing: list[Outgoing]) -> None:
        for out in outgoing:
            self.sent += 1
            copies = 0 if self.rng.random() < self.faults.loss else 1
            copies += copies and self.rng.random() < self.faults.duplicate
            for _ in range(copies):
                delay = self.rng.randint(self.faults.min_delay_ms, self.faults.max_delay_ms)
                self._order += 1
                heapq.heappush(self._queue, _InFlight(self.now_ms + delay, self._order, sender, out.peer,
                                                      out.message))

    def _deliver_due(self) -> None:
        while self._queue and self._queue[0].deliver_at <= self.now_ms:
            item = heapq.heappop(self._queue)
            if not self.connected(item.sender, item.receiver):
                continue  # a partition or a dead node loses what was in flight
            replica = self.replicas[item.receiver]
            reply = replica.receive(item.message, self.local_ms(item.receiver), peer=item.sender)
            if isinstance(item.message, Digest) and reply is not None:
                self._send(item.receiver, [Outgoing(item.sender, reply)])
            self._send(item.receiver, replica.take_outbox())
