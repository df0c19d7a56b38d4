"""What a Replica hands back to whoever drives it: one batch of effects, taken with `Replica.take_effects()`.

The only other output is the direct answer to a peer's digest (`Replica.receive` returns it): a reply that
belongs to one request, which the driver sends back on the same exchange.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from .instance import InstanceInfo, InstanceKey
from .messages import Message
from .preservation import Transition
from .record import Record


class Action(str, Enum):
    """What a change did to the visible registry, as the change feed and Eureka's delta report it."""

    REGISTER = "register"
    MODIFY = "modify"
    STATUS = "status"
    CANCEL = "cancel"
    EVICT = "evict"


class Change(NamedTuple):
    """A change applied to this replica (local or replicated), for observers such as the watch feed.

    A NamedTuple rather than a frozen dataclass: one is made for every applied change, and a tuple is built in C."""

    key: InstanceKey
    action: Action
    record: Record
    at_ms: int
    info: InstanceInfo  # the instance as last visible (for a cancel: the copy the tombstone replaced)


@dataclass(frozen=True, slots=True)
class Outgoing:
    peer: str  # the peer's name as the shell knows it (a base URL, or a simulated node name)
    message: Message


@dataclass(frozen=True, slots=True)
class Effects:
    """Work the replica asks for, already decided; the driver acts on it in this order:

    1. `messages`: hand each to the transport. A `Push` is an eager push, or a repair push answering a digest
       reply; report how each eager push ended with `Replica.push_done` / `push_failed` (the replica keeps one
       in flight per peer and coalesces what comes meanwhile). A `Digest` starts a pull: send it, and feed the
       reply back with `receive(reply, now_ms, peer=...)`. Nothing here waits for the answers.
    2. `changes`: publish them (change feed, documents). They are applied already, so readers of this node see
       them at once; sending first gets them to the other nodes (and their watchers) before this node spends
       time on its own watch streams.
    3. `evicted` and `transitions`: log them (the evictions are among `changes` too, for the feed). Each
       self-preservation transition appears exactly once, whichever pass detected it.
    """

    messages: tuple[Outgoing, ...] = ()
    changes: tuple[Change, ...] = ()
    evicted: tuple[InstanceKey, ...] = ()
    transitions: tuple[Transition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.messages or self.changes or self.evicted or self.transitions)
