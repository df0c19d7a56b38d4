"""Everything a scenario works with: the apreg cluster, the Spring apps it started, and their properties."""
from __future__ import annotations

from pathlib import Path

from cluster import Cluster
from http_json import request
from procs import Procs, free_port
from spring_apps import SpringApp
from waits import until

FETCH_INTERVAL_S = 2.0  # the consumer's eureka.client.registry-fetch-interval-seconds (application.properties)
# A change reaches the consumer's load balancer within a fetch, its 1 s cache and some scheduling on 2 busy cores.
PROPAGATION_TIMEOUT_S = 20.0


class World:
    """The run's processes. Apps start on first use, so any subset of scenarios finds what it needs."""

    def __init__(self, log_dir: Path) -> None:
        self.procs = Procs(log_dir)
        self.cluster = Cluster(self.procs)
        self.providers: dict[str, SpringApp] = {}
        self.ids: dict[str, str] = {}
        self.consumer_app: SpringApp | None = None
        self.eureka_app: SpringApp | None = None

    def close(self) -> None:
        self.procs.stop_all(last=self.cluster.nodes.values())

    def provider(self, name: str, **properties: str) -> SpringApp:
        """The provider called `name`, registered at node A; started (with extra `properties`) if not running."""
        app = self.providers.get(name)
        if app is None:
            app = self.providers[name] = SpringApp(self.procs, "provider", name, free_port(), {
                "eureka.client.service-url.defaultZone": self.cluster.eureka("a"), **properties})
        if not app.alive():
            app.start()
            app.wait_ready("/whoami")
            self.ids[name] = request("GET", app.url + "/whoami")[1].decode()
        return app

    def instance_id(self, name: str) -> str:
        return self.ids[name]

    def running_ids(self) -> set[str]:
        """Instance ids of the providers running now."""
        return {self.ids[name] for name, app in self.providers.items() if app.alive()}

    def consumer(self) -> SpringApp:
        """The consumer, with node B first and node C second (zones zone-b and zone-c, see its properties).

        It starts once provider-1 is registered everywhere, so its first fetch, the one full fetch a client
        makes, holds an application: the Eureka client fetches in full again while its registry is empty, by design.
        """
        if self.consumer_app is None:
            self.provider("provider-1")
            until("provider-1 listed at node B before the consumer starts",
                  lambda: self.cluster.instance("b", "provider", self.instance_id("provider-1")), PROPAGATION_TIMEOUT_S)
            self.consumer_app = SpringApp(self.procs, "consumer", "consumer", free_port(), {
                "eureka.client.service-url.zone-b": self.cluster.eureka("b"),
                "eureka.client.service-url.zone-c": self.cluster.eureka("c")})
            self.consumer_app.start()
            self.consumer_app.wait_ready("/seen?service=provider")
        return self.consumer_app

    def eureka_server(self) -> SpringApp:
        """A standalone Spring Cloud Eureka server (its own URL as its only service URL, so it has no peers)."""
        if self.eureka_app is None:
            port = free_port()
            self.eureka_app = SpringApp(self.procs, "eureka-server", "eureka-server", port, {
                "eureka.client.service-url.defaultZone": f"http://127.0.0.1:{port}/eureka/"})
            self.eureka_app.start()
            self.eureka_app.wait_ready("/eureka/apps")
        return self.eureka_app

    def seen(self, service: str = "provider") -> list[str]:
        """Instance ids the consumer's DiscoveryClient.getInstances returns."""
        return [row["instanceId"] for row in self.consumer().get(f"/seen?service={service}")]

    def seen_metadata(self, instance_id: str, service: str = "provider") -> dict[str, str] | None:
        for row in self.consumer().get(f"/seen?service={service}"):
            if row["instanceId"] == instance_id:
                return row["metadata"]
        return None

    def called(self, calls: int = 6, service: str = "provider") -> list[str]:
        """Who answered `calls` calls through the consumer's @LoadBalanced client (or the error, per call)."""
        return self.consumer().get(f"/call?service={service}&n={calls}")
