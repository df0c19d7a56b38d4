"""What a replica counts and shows: read-only snapshots for the shell (status document, metrics)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .preservation import PreservationView


@dataclass(slots=True)
class Counters:
    conflicts: int = 0  # concurrent writes to one key, settled by timestamp
    rejected_items: int = 0  # replicated records or renewals refused (clock skew, malformed)
    evictions: int = 0
    renewals_local: int = 0
    renewals_replicated: int = 0
    purged: int = 0  # tombstones and long-evicted records garbage-collected


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What the shell shows of a replica (status document, metrics), read-only: a snapshot, not live state."""

    replica_id: str
    synced: bool  # the initial pull from a peer is done (or there are no peers)
    instances: int  # visible ones
    log_head: int  # sequence of the latest change in this replica's log
    counters: Counters  # a copy
    clock_skew_rejections: int
    peer_replicas: Mapping[str, str]  # peer name -> its replica id ("" until it answers)
    preservation: PreservationView
