"""`GET /v1/status`: what an operator (and `apreg status`) needs to judge a node at a glance."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from .node import Node
from .preservation_view import status_section


class StatusApi:
    def __init__(self, node: Node) -> None:
        self.node = node

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/metrics", self.metrics)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(status_document(self.node))

    async def metrics(self, request: web.Request) -> web.Response:
        """The status figures in Prometheus' text exposition format."""
        return web.Response(text=prometheus_text(status_document(self.node)), content_type="text/plain")


def status_document(node: Node) -> dict[str, Any]:
    replica = node.replica
    counters = replica.counters
    return {
        "node_id": node.settings.name,
        "replica_id": replica.replica_id,
        "url": node.settings.url,
        "in_sync": replica.synced,
        "peers": [{"url": link.url, "reachable": link.reachable, "replica_id": replica.peers[link.url].replica,
                   "failures": link.failures, "last_error": link.last_error, "sent": link.sent,
                   "stream": link.streaming, "frames_sent": link.frames}
                  for link in node.links.values()],
        "instances": replica.index.count,
        "self_preservation": status_section(replica.preservation),
        "conflicts": counters.conflicts,
        "evictions": counters.evictions,
        "renewals": {"local": counters.renewals_local, "replicated": counters.renewals_replicated},
        "clock_skew_rejections": replica.clock.skew_rejections,
        "rejected": {"client": node.rejected.client, "peer": node.rejected.peer, "auth": node.rejected.auth,
                     "replicated_items": counters.rejected_items},
        "received": {"frames": node.received.frames, "posts": node.received.posts},
        "purged": counters.purged,
        "log_head": replica.log.head,
        "feed_seq": node.feed.seq,
    }


def prometheus_text(doc: dict[str, Any]) -> str:
    """Flatten the numeric and boolean leaves of the status document into `apreg_<path> <value>` lines."""
    lines: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}_{key}", item)
        elif isinstance(value, bool):
            lines.append(f"{prefix} {int(value)}")
        elif isinstance(value, (int, float)):
            lines.append(f"{prefix} {value}")

    walk("apreg", {k: v for k, v in doc.items() if k != "peers"})
    for peer in doc["peers"]:
        lines.append(f'apreg_peer_reachable{{url="{peer["url"]}"}} {int(peer["reachable"])}')
        lines.append(f'apreg_peer_stream{{url="{peer["url"]}"}} {int(peer["stream"])}')
        lines.append(f'apreg_peer_frames_sent{{url="{peer["url"]}"}} {peer["frames_sent"]}')
    return "\n".join(lines) + "\n"
