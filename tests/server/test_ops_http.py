"""Operators' endpoints on live nodes: /healthz, /readyz, /metrics, and how a secret mismatch shows."""
from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging

import aiohttp
import pytest
from aiohttp import web

from apreg import logs
from apreg.server.metrics_api import MAX_APP_LABELS, OTHER_APPS
from apreg.server.app import build_app
from apreg.server.node import Node
from apreg.server.settings import NodeSettings

from .harness import LinkProxy, LocalCluster, eventually, free_port, instance_body, scrape


async def test_probes_metrics_and_bounded_labels() -> None:
    async with LocalCluster(2) as c:
        assert await eventually(lambda: _ready(c, 1))
        assert json.loads((await c.request(0, "GET", "/healthz"))[1]) == {"status": "serving", "node_id": "n0"}
        sizes = {f"app{k:03d}": 1 if k >= MAX_APP_LABELS else 2 + (MAX_APP_LABELS - k) // 10
                 for k in range(MAX_APP_LABELS + 10)}  # the last 10 apps are the smallest
        for app, size in sizes.items():
            for i in range(size):
                await c.request(0, "POST", f"/eureka/apps/{app}", json_body=instance_body(app, f"{app}-{i}"))
        await c.request(0, "PUT", "/eureka/apps/APP000/app000-0/status?value=OUT_OF_SERVICE")
        for path in ("/eureka/apps/APP001/app001-0", "/eureka/apps/APP002/app002-0", "/no/such/path/123"):
            await c.request(1, "GET", path)

        async def replicated() -> bool:
            return len(await c.ids(1)) == sum(sizes.values())
        assert await eventually(replicated)
        metrics = await scrape(c, 1)
        assert (await scrape(c, 1, "/v1/metrics")).keys() == metrics.keys()
        for family in metrics.pop("__families__"):
            assert family.type != "counter" or all(s.name.endswith("_total") for s in family.samples)

        by_app = {(s.labels["app"], s.labels["status"]): s.value for s in metrics["apreg_app_instances"]}
        apps = {app for app, _ in by_app}
        assert len(apps) == MAX_APP_LABELS + 1 and OTHER_APPS in apps
        assert by_app[("APP000", "OUT_OF_SERVICE")] == 1 and by_app[("APP000", "UP")] == sizes["app000"] - 1
        assert by_app[(OTHER_APPS, "UP")] == 10  # the ten smallest apps, one instance each
        assert sum(by_app.values()) == metrics["apreg_instances"][0].value

        routes = {s.labels["route"] for s in metrics["apreg_http_request_duration_seconds"]}
        assert "/eureka/apps/{app}/{id}" in routes
        assert "unmatched" in routes and not any("APP001" in r or "123" in r for r in routes)
        lag = [s for s in metrics["apreg_replication_apply_lag_seconds"]
               if s.name.endswith("_count") and s.labels["channel"] == "push"]
        assert lag and lag[0].value > 0  # the registrations arrived at node 1 as eager pushes
        assert metrics["apreg_in_sync"][0].value == 1 and metrics["apreg_self_preservation_active"][0].value == 0


async def _ready(c: LocalCluster, node: int) -> bool:
    return (await c.request(node, "GET", "/readyz"))[0] == 200


async def test_readyz_is_503_with_a_reason_until_the_first_pull() -> None:
    async with LocalCluster(2) as c:
        c.isolate({0})
        await c.kill(1)
        await c.start(1)  # comes back empty and cannot reach node 0
        status, body, _ = await c.request(1, "GET", "/readyz")
        reply = json.loads(body)
        assert status == 503 and reply["ready"] is False and "initial pull" in reply["reason"]
        assert (await c.request(1, "GET", "/healthz"))[0] == 200  # it serves meanwhile
        c.heal()
        assert await eventually(lambda: _ready(c, 1))


class TwoSecrets(LocalCluster):
    """Node i was given secrets[i] (None: no secret)."""

    secrets: tuple[str | None, ...] = ("right", "wrong")

    def settings(self, i: int) -> NodeSettings:
        return dataclasses.replace(super().settings(i), secret=self.secrets[i])


class OneSecret(TwoSecrets):
    secrets = ("right", None)


async def test_a_secret_mismatch_is_reported_as_such_logged_at_a_bounded_rate_and_not_in_sync(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with TwoSecrets(2, anti_entropy_interval=0.05) as c:
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        await asyncio.sleep(2.0)
        for node in (0, 1):
            status = json.loads((await c.request(node, "GET", "/v1/status"))[1])
            peer = status["peers"][0]
            assert status["in_sync"] is False and peer["auth_refused"] is True
            assert peer["last_error"].startswith("secret mismatch")
            assert status["rejected"]["auth"] > 10  # the other keeps trying
            code, body, _ = await c.request(node, "GET", "/readyz")
            assert code == 503 and "secrets differ" in json.loads(body)["reason"]
        assert await c.ids(1) == set()
    lines = [r.getMessage() for r in caplog.records]
    refusals = [m for m in lines if m.startswith("refused peer")]
    assert 2 <= len(refusals) <= 6, refusals  # a line per peer address per 10 s, not one per request
    assert all("secret different" in m for m in refusals)
    assert sum("refuses our signature" in m for m in lines) == 2 and not any("unreachable: HTTP 401" in m
                                                                            for m in lines)


async def test_a_node_refusing_a_peers_unsigned_pushes_does_not_claim_to_be_in_sync() -> None:
    """Node 1 has no secret: it takes node 0's signed messages, but node 0 refuses all of node 1's."""
    async with OneSecret(2) as c:
        await c.request(1, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        await asyncio.sleep(1.0)
        refusing = json.loads((await c.request(0, "GET", "/v1/status"))[1])
        assert refusing["in_sync"] is False and refusing["rejected"]["auth"] > 0
        code, body, _ = await c.request(0, "GET", "/readyz")
        assert code == 503 and "refuses peer messages from" in json.loads(body)["reason"]
        refused = json.loads((await c.request(1, "GET", "/v1/status"))[1])
        assert refused["in_sync"] is False and refused["peers"][0]["auth_refused"] is True


async def test_log_lines_name_their_node_one_debug_line_per_change_and_a_summary() -> None:
    """Two nodes in one process (as `apreg cluster` runs them): each line names the node that logged it."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.addFilter(logs.NodeFilter())
    handler.setFormatter(logging.Formatter(logs.TEXT_FORMAT))
    node_log = logging.getLogger("apreg.node")
    node_log.addHandler(handler)
    node_log.setLevel(logging.DEBUG)
    try:
        async with LocalCluster(2) as c:
            await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
            await c.request(0, "DELETE", "/eureka/apps/ORDERS/o-1")
            assert await eventually(lambda: _logged(lines, "[n1] apreg.node: cancel ORDERS/o-1"))
            text = lines.getvalue()
            assert "[n0] apreg.node: register ORDERS/o-1" in text and "[n1] apreg.node: register ORDERS/o-1" in text
            c.nodes[0].activity.summarize()  # the node's minute timer
            assert "1 registered, 1 cancelled; 0 instances" in lines.getvalue()
            c.nodes[0].activity.summarize()  # nothing happened since: no line
            assert lines.getvalue().count("registered, ") == 1
    finally:
        node_log.removeHandler(handler)
        node_log.setLevel(logging.NOTSET)


async def _logged(lines: io.StringIO, text: str) -> bool:
    return text in lines.getvalue()


async def test_a_peer_url_that_reaches_this_node_itself_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    """Another name for this node (here a relay to its own port) passes the start-up check; its first answer
    carries our own replica id, and from then on it is left out: logged once, shown, and the node is ready."""
    port = free_port()
    relay = LinkProxy(port)
    await relay.start()
    settings = NodeSettings(port=port, node_id="me", peers=(f"http://127.0.0.1:{relay.port}",),
                            anti_entropy_interval=0.05)
    runner = web.AppRunner(build_app(Node(settings)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            async def ignored() -> bool:
                async with session.get(f"http://127.0.0.1:{port}/v1/status") as response:
                    return (await response.json())["peers"][0]["last_error"] == "this node itself: ignored"
            assert await eventually(ignored)
            await asyncio.sleep(0.5)  # several anti-entropy rounds later
            async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()
        await relay.stop()
    assert sum("is this node itself" in r.getMessage() for r in caplog.records) == 1
