"""`GET /metrics` (and `/v1/metrics`): Prometheus' text format through `prometheus_client`.

Histograms are fed as things happen (instruments.py, and the request timer here). Everything else is read when
scraped from counters the node and the core keep anyway, and from the core's indexes: a scrape costs the number
of apps (instances by app and status are kept per app by the index), never a walk of the registry, and a
request or a change pays nothing for it.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .errors import Handler
from .eureka_peers import ANSWERS, BATCH_OUTCOMES, MAX_QUEUED, EurekaPeer
from .node import Node

MAX_APP_LABELS = 50  # the apps with most instances get their own label value; the rest are summed as OTHER_APPS
OTHER_APPS = "_other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
UNMATCHED = "unmatched"  # requests to no route: their paths must not become label values


class NodeCollector(Collector):
    """The node's state as metric families, read at scrape time."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node, replica = self.node, self.node.replica.status()
        counters, sp = replica.counters, replica.preservation

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"apreg_{name}", doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"apreg_{name}", doc, value=value)

        yield gauge("in_sync", "1 once the initial pull from a peer is done and no peer refuses our signature",
                    int(node.in_sync))
        yield gauge("instances", "Visible instances", replica.instances)
        yield self._instances_by_app_and_status()
        yield counter("conflicts", "Concurrent writes to one instance settled by timestamp", counters.conflicts)
        yield counter("evictions", "Instances evicted here after their lease ran out", counters.evictions)
        renewals = CounterMetricFamily("apreg_renewals", "Renewals applied, by origin", labels=("origin",))
        renewals.add_metric(("local",), counters.renewals_local)
        renewals.add_metric(("replicated",), counters.renewals_replicated)
        yield renewals
        yield counter("purged", "Tombstones and long-evicted instances garbage-collected", counters.purged)
        yield counter("clock_skew_rejections", "Remote timestamps refused for being too far ahead",
                      replica.clock_skew_rejections)
        rejected = CounterMetricFamily("apreg_rejected", "Inputs refused, by kind", labels=("kind",))
        for kind, value in (("client", node.rejected.client), ("peer", node.rejected.peer),
                            ("auth", node.rejected.auth), ("client_auth", node.rejected.client_auth),
                            ("replicated_item", counters.rejected_items)):
            rejected.add_metric((kind,), value)
        yield rejected
        received = CounterMetricFamily("apreg_peer_messages_received", "Peer messages taken in, by channel",
                                       labels=("channel",))
        received.add_metric(("stream",), node.received.frames)
        received.add_metric(("post",), node.received.posts)
        yield received
        yield from self._anti_entropy()
        yield from self._peers()
        yield from self._eureka_peers()
        yield gauge("self_preservation_active", "1 while self-preservation stops eviction", int(sp.active))
        yield gauge("self_preservation_renewals", "Renewals seen in the last renewal window",
                    sp.last.renewals_in_window)
        yield gauge("self_preservation_expected", "Renewals the live leases should have sent in the window",
                    sp.last.expected)
        yield gauge("self_preservation_threshold", "Renewals needed in the window to allow eviction",
                    sp.last.threshold)
        yield counter("self_preservation_transitions", "Times self-preservation engaged or released",
                      sp.transitions)
        yield gauge("change_log_head", "Sequence number of the latest change in this node's log", replica.log_head)

    def _instances_by_app_and_status(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("apreg_app_instances", f"Visible instances by app and status: the "
                                   f"{MAX_APP_LABELS} apps with most instances, the others summed as "
                                   f"app={OTHER_APPS}", labels=("app", "status"))
        index = self.node.replica.index
        named = set(sorted(index.by_app, key=lambda app: (-len(index.by_app[app]), app))[:MAX_APP_LABELS])
        others: dict[str, int] = {}
        for app, counts in index.app_status_counts.items():
            for status, count in counts.items():
                if app in named:
                    family.add_metric((app, status.value), count)
                else:
                    others[status.value] = others.get(status.value, 0) + count
        for value, count in others.items():
            family.add_metric((OTHER_APPS, value), count)
        return family

    def _anti_entropy(self) -> Iterator[Metric]:
        counts, transport = self.node.anti_entropy, self.node.transport
        items = CounterMetricFamily("apreg_anti_entropy_items", "Records and renewals in anti-entropy replies, "
                                    "by direction", labels=("direction",))
        items.add_metric(("received",), counts.items_received)
        items.add_metric(("sent",), counts.items_sent)
        yield items
        size = CounterMetricFamily("apreg_anti_entropy_bytes", "Bytes of anti-entropy replies (msgpack), by "
                                   "direction", labels=("direction",))
        size.add_metric(("received",), transport.reply_bytes if transport is not None else 0)
        size.add_metric(("sent",), counts.bytes_sent)
        yield size

    def _peers(self) -> Iterator[Metric]:
        reachable = GaugeMetricFamily("apreg_peer_reachable", "1 while the peer answers", labels=("peer",))
        streaming = GaugeMetricFamily("apreg_peer_stream", "1 while the push stream to the peer is open",
                                      labels=("peer",))
        refused = GaugeMetricFamily("apreg_peer_auth_refused", "1 while the peer refuses our signature (a "
                                    "secret mismatch)", labels=("peer",))
        frames = CounterMetricFamily("apreg_peer_frames_sent", "Pushes delivered as stream frames",
                                     labels=("peer",))
        for link in self.node.links.values():
            reachable.add_metric((link.url,), int(link.reachable))
            streaming.add_metric((link.url,), int(link.streaming))
            refused.add_metric((link.url,), int(link.auth_refused))
            frames.add_metric((link.url,), link.frames)
        yield from (reachable, streaming, refused, frames)


    def _eureka_peers(self) -> Iterator[Metric]:
        """Per Java peer (the configured ones: bounded), items by action and answer (bounded sets too)."""
        peers = self.node.eureka_peers.peers if self.node.eureka_peers is not None else []

        def per_peer(kind: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, doc: str,
                     value: Callable[[EurekaPeer], float]) -> Metric:
            family = kind(f"apreg_eureka_peer_{name}", doc, labels=("peer",))
            for peer in peers:
                family.add_metric((peer.url,), value(peer))
            return family

        yield per_peer(GaugeMetricFamily, "reachable", "1 while the Java peer answers our batches",
                       lambda p: int(p.reachable))
        yield per_peer(GaugeMetricFamily, "queue_depth", f"Operations waiting to be sent (at most {MAX_QUEUED})",
                       lambda p: len(p.queue))
        yield per_peer(CounterMetricFamily, "dropped", "Operations pushed out of a full queue", lambda p: p.dropped)
        yield per_peer(GaugeMetricFamily, "backoff_seconds", "Wait before retrying a batch the peer did not take; "
                       "0 while batches get through", lambda p: p.backoff_s)
        yield per_peer(GaugeMetricFamily, "last_error_timestamp_seconds", "When the latest error with this peer "
                       "happened (Unix time; 0: none yet); its text is in /v1/status", lambda p: p.last_error_at)
        batches = CounterMetricFamily("apreg_eureka_peer_batches", "Batches sent, by outcome: delivered (answered "
                                      "item by item), or kept for a retry: unreachable, busy (503), http_error, "
                                      "bad_answer", labels=("peer", "outcome"))
        items = CounterMetricFamily("apreg_eureka_peer_items", "Items the peer answered, by action and status "
                                    f"({', '.join(map(str, sorted(ANSWERS)))}, other)",
                                    labels=("peer", "action", "status"))
        for peer in peers:
            for outcome in BATCH_OUTCOMES:
                batches.add_metric((peer.url, outcome), peer.batches.get(outcome, 0))
            for (action, label), count in peer.answers.items():
                items.add_metric((peer.url, action.value, label), count)
        yield batches
        yield items


class MetricsApi:
    def __init__(self, node: Node) -> None:
        self.node = node
        node.metrics.registry.register(NodeCollector(node))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/v1/metrics", self.metrics)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.node.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @web.middleware
    async def time_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every request's latency, labelled by its route pattern: bounded label values whatever the paths."""
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else UNMATCHED
            method = request.method if request.method in METHODS else "OTHER"
            self.node.metrics.observe_request(route, method, status, time.perf_counter() - start)
