"""Messages between replicas. The wire codec (apreg.peer.wire) maps them to msgpack; the core sees only these.

Message type numbers are part of the protocol: only ever append to `MessageType`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from .clock import Timestamp
from .instance import InstanceKey
from .record import Record


class MessageType(IntEnum):
    PUSH = 1  # eager delta: changes (base, upto] of the sender's change log
    DIGEST = 2  # anti-entropy request: "I hold your changes up to `since`; send what follows"
    DIGEST_REPLY = 3  # anti-entropy answer: a page of changes, plus how far the sender holds the requester's


@dataclass(frozen=True, slots=True)
class RenewalUpdate:
    """The renewal max-register of one key; `age_ms` is how long ago the sender learned of it (its own clock)."""

    key: InstanceKey
    renewed: Timestamp
    age_ms: int
    seq: int = 0  # its position in the sender's change log (0: unknown, use the delta's upto)


@dataclass(frozen=True, slots=True)
class Delta:
    """All of the sender's changes with log sequence in (base, upto], except those the receiver itself sent and
    those `covered` names: changes that came from a replica the receiver hears from directly, up to that
    replica's log sequence. The receiver credits the range only once it holds those from their source."""

    sender: str  # replica id (node id + incarnation)
    base: int
    upto: int
    records: tuple[Record, ...]
    renewals: tuple[RenewalUpdate, ...]
    record_seqs: tuple[int, ...] = ()  # each record's position in the sender's log (empty: unknown)
    covered: tuple[tuple[str, int], ...] = ()  # (source replica, its log sequence) left out of this delta
    direct: tuple[str, ...] = ()  # replicas the sender hears from directly: peers need not forward theirs


@dataclass(frozen=True, slots=True)
class Push:
    delta: Delta
    type: MessageType = MessageType.PUSH


@dataclass(frozen=True, slots=True)
class Digest:
    sender: str
    head: int  # the requester's own log head, so the answer can say how far behind the responder is
    expect: str  # the responder replica id that `since` refers to ("" if unknown: start from 0)
    since: int
    holds: tuple[tuple[str, int], ...] = ()  # the requester's watermarks: what it holds from each replica
    type: MessageType = MessageType.DIGEST

    def after(self, page: DigestReply) -> Digest:
        """The same request for the page after `page`, one of its answers (streamed and asked-ahead pulls)."""
        return replace(self, expect=page.delta.sender, since=page.delta.upto)


@dataclass(frozen=True, slots=True)
class DigestReply:
    delta: Delta
    more: bool  # another page follows: ask again at once
    your_watermark: int  # how far the responder holds the requester's log: the requester pushes the rest
    type: MessageType = MessageType.DIGEST_REPLY


Message = Push | Digest | DigestReply
