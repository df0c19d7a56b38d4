"""Every tunable of the discovery client in one place, with the reason for each default."""
from __future__ import annotations

from dataclasses import dataclass

STRATEGIES = ("round_robin", "random", "zone")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Client parameters; all durations are seconds (fractions allowed).

    The defaults favour fast failover on a LAN: a dead node costs one refused connection or at most
    `request_timeout`, and after `breaker_failures` such failures it is skipped for `breaker_cooldown`.
    """

    request_timeout: float = 2.0
    """Upper bound on one HTTP call to one node, connect included; then the next node is tried."""
    connect_timeout: float = 0.5
    """Connecting to a live node on a LAN takes well under a millisecond; a silent one should not hold us long."""
    breaker_failures: int = 3
    """Consecutive failures after which a node's circuit opens and the node is skipped."""
    breaker_cooldown: float = 2.0
    """How long an open circuit stays open before one probe request is let through (half-open)."""
    backoff_base: float = 0.1
    """First retry delay ceiling; doubles per consecutive failure (full jitter: the delay is uniform below it)."""
    backoff_cap: float = 10.0
    """Largest retry delay ceiling, so a client notices recovered nodes within seconds."""
    start_timeout: float = 5.0
    """How long `start()` waits for the first full fetch before giving up and serving an empty, cold cache."""
    discover: bool = True
    """Keep a local copy of the registry; a process that only registers itself can turn this off."""
    watch: bool = True
    """Follow the server's change stream (GET /v1/watch); when False, or when no node offers it, poll deltas."""
    watch_heartbeat: float = 2.0
    """Heartbeat period asked of the stream (`?heartbeat=`); it bounds `staleness()` on a quiet, healthy stream."""
    watch_idle_timeout: float = 6.0
    """A stream silent this long (no event, no heartbeat) is taken for dead and reopened, maybe elsewhere."""
    poll_interval: float = 2.0
    """Delta polling period while the stream is unavailable (Eureka uses 30 s; we can afford much less)."""
    watch_retry_interval: float = 30.0
    """While polling because no node offered a stream, how often to try the stream again."""
    stale_after: float = 30.0
    """`RegistryClient.stale` turns true when the cache has not been synced for this long."""
    strategy: str = "round_robin"
    """Load-balancing strategy for `choose()`: "round_robin", "random" or "zone" (same-zone first)."""
    zone: str | None = None
    """This client's zone, compared with instances' `zone` metadata by the "zone" strategy."""
    eureka_prefix: str = "/eureka"
    """Where the Eureka REST API is mounted on every node ("/eureka" or "/eureka/v2")."""

    def __post_init__(self) -> None:
        positive = ("request_timeout", "connect_timeout", "breaker_cooldown", "backoff_cap", "start_timeout",
                    "watch_heartbeat", "watch_idle_timeout", "poll_interval", "watch_retry_interval", "stale_after")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.backoff_base < 0:
            raise ValueError("backoff_base must not be negative")
        if self.breaker_failures < 1:
            raise ValueError("breaker_failures must be at least 1")
        if self.watch_idle_timeout <= self.watch_heartbeat:
            raise ValueError("watch_idle_timeout must exceed watch_heartbeat")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        if self.strategy == "zone" and not self.zone:
            raise ValueError('the "zone" strategy needs a zone')
