"""The node's Prometheus instruments that are fed as things happen (latencies, lags, traffic).

Everything else the metrics show is read from the node's own counters and the core's indexes when scraped
(`metrics_api.py`), so serving a request or applying a change pays for nothing it does not measure. Each node
has its own registry: `apreg cluster` runs several in one process.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

from apreg.core.record import Record

disable_created_metrics()  # `_created` series double the output and say when the process started

# Request latencies: from a cached renew (~0.1 ms) to a cold full fetch of a large registry (seconds).
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Replication: a push crosses a LAN in milliseconds; anti-entropy repairs take up to its interval and more.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Records whose lag one applied push or page contributes, evenly spaced: observing each record of a 100,000-record
# pull cost 0.4 s of the receiver's CPU (a histogram observation is a few microseconds).
LAG_SAMPLES_PER_DELTA = 16


@dataclass(slots=True)
class Instruments:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    requests: Histogram = field(init=False)
    apply_lag: Histogram = field(init=False)
    push_duration: Histogram = field(init=False)
    digest_round_trip: Histogram = field(init=False)
    eureka_batch: Histogram = field(init=False)
    eureka_items_received: Counter = field(init=False)
    _request_children: dict[tuple[str, str, int], Histogram] = field(default_factory=dict)

    def __post_init__(self) -> None:
        reg = self.registry
        self.requests = Histogram(
            "apreg_http_request_duration_seconds", "HTTP requests by route pattern (never the raw path), method "
            "and status: time from the handler's start to its response", ("route", "method", "status"),
            registry=reg, buckets=REQUEST_BUCKETS)
        self.apply_lag = Histogram(
            "apreg_replication_apply_lag_seconds", "From a replicated record's HLC stamp at its origin to its "
            "application here, by channel: eager push or anti-entropy (a repair, or a pull of old records); "
            "includes the clock offset between the two machines; at most 16 records sampled per push or page",
            ("channel",), registry=reg,
            buckets=LAG_BUCKETS)
        self.push_duration = Histogram(
            "apreg_peer_push_seconds", "Delivering one eager push: until the frame is written to the peer's "
            "stream (one-way), or until the peer answers the POST", ("channel",), registry=reg,
            buckets=LAG_BUCKETS)
        self.digest_round_trip = Histogram(
            "apreg_anti_entropy_round_trip_seconds", "An anti-entropy digest sent to a peer until its reply "
            "(one page) arrives", registry=reg, buckets=LAG_BUCKETS)
        self.eureka_batch = Histogram(
            "apreg_eureka_peer_batch_seconds", "A replication batch POSTed to a Java Eureka peer until its answer, "
            "for batches it answered (up to 250 items)", ("peer",), registry=reg, buckets=LAG_BUCKETS)
        self.eureka_items_received = Counter(
            "apreg_eureka_items_received", "Items of replication batches from Java Eureka peers, by action and by "
            "our answer (400: refused as malformed, action 'invalid' when it has none we know)",
            ("action", "status"), registry=reg)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Children are cached by their labels: `labels()` validates and locks on every call (several
        microseconds), a dict lookup does not."""
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, method, str(status))
        child.observe(seconds)

    def observe_eureka_batch(self, peer: str, seconds: float) -> None:
        self.eureka_batch.labels(peer).observe(seconds)

    def count_eureka_items(self, counts: Mapping[tuple[str, int], int]) -> None:
        """A batch's items, counted per (action, answer) once per batch rather than once per item."""
        for (action, status), count in counts.items():
            self.eureka_items_received.labels(action, str(status)).inc(count)

    def observe_apply(self, channel: str, records: Sequence[Record], now_ms: int) -> None:
        observe = self.apply_lag.labels(channel).observe
        for record in records[::max(1, -(-len(records) // LAG_SAMPLES_PER_DELTA))]:  # ceil: at most 16
            observe(max(0, now_ms - record.stamp.wall_ms) / 1000)
