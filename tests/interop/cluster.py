"""A 3-node apreg cluster on loopback, as real `apreg serve` processes, and reads of its own state."""
from __future__ import annotations

import sys
from typing import Any

from http_json import get_json, request
from procs import Proc, Procs, free_port
from waits import until

NODES = ("a", "b", "c")
EVICTION_INTERVAL_S = 1.0
START_TIMEOUT_S = 30.0


class Cluster:
    """Nodes a, b and c, each peered with the other two.

    Eviction passes run every second (the default is 60 s) so a crashed instance goes within lease + 1 s, and
    self-preservation is off: with the handful of instances of this run, losing one on purpose is a large share
    of the expected renewals, and self-preservation would (rightly) stop the eviction the kill scenario checks.
    """

    eviction_interval = EVICTION_INTERVAL_S

    def __init__(self, procs: Procs) -> None:
        self.procs = procs
        self.ports = {name: free_port() for name in NODES}
        self.nodes: dict[str, Proc] = {}

    def url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.ports[node]}"

    def eureka(self, node: str) -> str:
        """The node's Eureka service URL, as Spring's eureka.client.service-url wants it."""
        return f"{self.url(node)}/eureka/"

    def start(self) -> None:
        for node in NODES:
            peers = ",".join(self.url(other) for other in NODES if other != node)
            self.nodes[node] = self.procs.start(f"apreg-{node}", [
                sys.executable, "-m", "apreg", "serve", "--host", "127.0.0.1", "--port", str(self.ports[node]),
                "--node-id", node, "--peers", peers, "--eviction-interval", str(EVICTION_INTERVAL_S),
                "--no-self-preservation"])
        for node in NODES:
            until(f"apreg node {node} in sync", lambda node=node: self.status(node)["in_sync"], START_TIMEOUT_S)

    def stop_node(self, node: str) -> None:
        self.nodes[node].stop()

    def up(self) -> list[str]:
        """The nodes still running."""
        return [node for node, proc in self.nodes.items() if proc.alive()]

    def status(self, node: str) -> dict[str, Any]:
        return get_json(f"{self.url(node)}/v1/status")

    def instances(self, node: str, app: str) -> list[dict[str, Any]]:
        """The instances of `app` in the node's `GET apps/{APP}`, [] when the app is unknown there."""
        doc = get_json(f"{self.eureka(node)}apps/{app.upper()}")
        if doc is None:
            return []
        found = doc["application"].get("instance", [])
        return found if isinstance(found, list) else [found]

    def instance(self, node: str, app: str, instance_id: str) -> dict[str, Any] | None:
        doc = get_json(f"{self.eureka(node)}apps/{app.upper()}/{instance_id}")
        return None if doc is None else doc["instance"]

    def apps_hashcode(self, node: str) -> str:
        return get_json(f"{self.eureka(node)}apps")["applications"]["apps__hashcode"]

    def write(self, method: str, node: str, path: str, body: Any = None) -> int:
        """A write through the node's Eureka API (register, status override, metadata...); returns the HTTP status."""
        return request(method, f"{self.eureka(node)}{path}", body=body)[0]
