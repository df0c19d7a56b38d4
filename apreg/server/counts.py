"""What a node counts of its traffic and refusals, for /v1/status and /metrics; the node and its handlers add."""
from __future__ import annotations

from dataclasses import dataclass


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
