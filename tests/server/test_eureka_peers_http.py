"""Eureka's peer protocol: batches taken per item as Eureka answers them, and client writes sent on in batches.

The sending side is checked against a second apreg node acting as the Java peer (it speaks the same batch
protocol); answers are those of Netflix/eureka's PeerReplicationResource and InstanceResource.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any, AsyncIterator

import aiohttp
from aiohttp import web

from apreg.eureka.replication import MAX_BATCH_ITEMS, REPLICATION_HEADER
from apreg.server.app import _reload_peers, start_node
from apreg.server.settings import NodeSettings

from .harness import LocalCluster, eventually, free_port, instance_body, scrape

BATCH = "/eureka/peerreplication/batch/"


def register_item(iid: str, last_dirty: int, app: str = "svc", **fields: Any) -> dict[str, Any]:
    instance = instance_body(app, iid)["instance"] | {"lastDirtyTimestamp": str(last_dirty)} | fields
    return {"appName": app.upper(), "id": iid, "action": "Register", "lastDirtyTimestamp": last_dirty,
            "status": "UP", "overriddenStatus": "UNKNOWN", "instanceInfo": instance}


def item(action: str, iid: str, last_dirty: int | None = None, status: str = "UP") -> dict[str, Any]:
    return {"appName": "SVC", "id": iid, "action": action, "lastDirtyTimestamp": last_dirty, "status": status,
            "overriddenStatus": "UNKNOWN"}


async def batch(c: LocalCluster, items: list[Any], path: str = BATCH) -> list[dict[str, Any]]:
    status, body, _ = await c.request(0, "POST", path, data=json.dumps({"replicationList": items}).encode(),
                                      headers={"Content-Type": "application/json"})
    assert status == 200, body
    return json.loads(body)["responseList"]


async def instance(c: LocalCluster, iid: str, node: int = 0) -> dict[str, Any] | None:
    status, body, _ = await c.request(node, "GET", f"/eureka/apps/SVC/{iid}")
    return json.loads(body)["instance"] if status == 200 else None


async def test_each_item_is_applied_and_answered_as_eureka_answers_it() -> None:
    async with LocalCluster(1) as c:
        answers = await batch(c, [register_item("i-1", 1_000), register_item("i-2", 1_000),
                                  item("Heartbeat", "i-1", 1_000), item("Heartbeat", "nope", 1_000),
                                  item("Heartbeat", "i-1", 2_000), item("Heartbeat", "i-1", 500),
                                  item("StatusUpdate", "i-2", 1_000, "OUT_OF_SERVICE"), item("Cancel", "nope")])
        assert [a["statusCode"] for a in answers] == [200, 200, 200, 404, 404, 409, 200, 404]
        assert answers[5]["responseEntity"]["instanceId"] == "i-1"  # ours, dirtied later: the sender adopts it
        assert answers[5]["responseEntity"]["lastDirtyTimestamp"] == "1000"
        assert (await instance(c, "i-2"))["status"] == "OUT_OF_SERVICE"
        answers = await batch(c, [item("DeleteStatusOverride", "i-2", 1_000), item("Cancel", "i-1")],
                              path="/eureka/v2/peerreplication/batch")
        assert [a["statusCode"] for a in answers] == [200, 200]
        assert (await instance(c, "i-2"))["status"] == "UP" and await instance(c, "i-1") is None


async def test_a_register_older_than_ours_keeps_our_copy() -> None:
    async with LocalCluster(1) as c:
        await batch(c, [register_item("i-1", 2_000, metadata={"zone": "new"})])
        assert [a["statusCode"] for a in await batch(c, [register_item("i-1", 1_000, metadata={"zone": "old"})])] \
            == [200]
        assert (await instance(c, "i-1"))["metadata"] == {"zone": "new"}


async def test_bad_items_are_refused_one_by_one_and_change_nothing() -> None:
    async with LocalCluster(1) as c:
        answers = await batch(c, [
            register_item("i-1", 1_000),
            {"appName": "SVC", "id": "i-2", "action": "Explode"},  # unknown action
            "not an object",
            {"action": "Cancel", "id": "i-1"},  # no appName
            register_item("i-3", 1_000) | {"appName": "OTHER"},  # the instance's app is not the item's
            register_item("i-4", 1_000) | {"id": "i-5"},  # nor its id
            register_item("i-6", 1_000, hostName=""),  # an instance a client could not register either
            item("StatusUpdate", "i-1", 1_000, "SLEEPY"),
        ])
        assert [a["statusCode"] for a in answers] == [200, 400, 400, 400, 400, 400, 400, 400]
        assert await c.ids(0) == {"i-1"} and (await instance(c, "i-1"))["status"] == "UP"
        too_many = json.dumps({"replicationList": [register_item(f"x-{n}", 1) for n in range(MAX_BATCH_ITEMS + 1)]})
        status, body, _ = await c.request(0, "POST", BATCH, data=too_many.encode(),
                                          headers={"Content-Type": "application/json"})
        assert status == 400 and json.loads(body)["error"] == "batch_too_large"
        status, body, _ = await c.request(0, "POST", BATCH, data=b"{nope", headers={"Content-Type": "application/json"})
        assert status == 400 and json.loads(body)["error"] == "malformed_json"
        assert await c.ids(0) == {"i-1"}


async def test_client_writes_and_heartbeats_reach_a_eureka_peer_and_come_back_from_none() -> None:
    async with LocalCluster(1) as java:
        async with LocalCluster(1, eureka_peers=(f"{java.url(0)}/eureka/",)) as c:
            assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-1")))[0] == 204
            assert await eventually(lambda: _present(java, "i-1"), 3)
            renewals = java.nodes[0].replica.counters.renewals_local
            assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-1"))[0] == 200
            assert await eventually(lambda: _true(java.nodes[0].replica.counters.renewals_local > renewals), 3)
            assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-1/status?value=OUT_OF_SERVICE"))[0] == 200
            assert await eventually(lambda: _field(java, "i-1", "status", "OUT_OF_SERVICE"), 3)
            assert (await c.request(0, "DELETE", "/eureka/apps/SVC/i-1/status?value=UP"))[0] == 200
            assert await eventually(lambda: _field(java, "i-1", "status", "UP"), 3)
            assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-1/metadata?zone=z9"))[0] == 200
            assert await eventually(lambda: _field(java, "i-1", "metadata", {"zone": "z9"}), 3)
            assert (await c.request(0, "DELETE", "/eureka/apps/SVC/i-1"))[0] == 200
            assert await eventually(lambda: _absent(java, "i-1"), 3)
            # What a Java peer forwards is applied and never forwarded again.
            sent = c.nodes[0].eureka_peers.peers[0].sent  # type: ignore[union-attr]
            await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-2"),
                            headers={REPLICATION_HEADER: "true"})
            await batch(c, [register_item("i-3", 1_000)])
            assert await eventually(lambda: _present(c, "i-3"), 1)
            await _quiet()
            assert c.nodes[0].eureka_peers.peers[0].sent == sent  # type: ignore[union-attr]
            assert await _absent(java, "i-2") and await _absent(java, "i-3")


async def test_a_peer_that_was_down_gets_the_queued_batch_and_a_404_brings_a_register() -> None:
    java = LocalCluster(1)
    async with LocalCluster(1, eureka_peers=(f"{java.url(0)}/eureka/",)) as c:
        await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-1"))
        assert await eventually(lambda: _true(not c.nodes[0].eureka_peers.peers[0].reachable  # type: ignore
                                              and c.nodes[0].eureka_peers.peers[0].last_error != ""), 3)
        async with java:  # the peer comes up (empty): the kept batch reaches it
            assert await eventually(lambda: _present(java, "i-1"), 5)
            await batch(java, [item("Cancel", "i-1")])  # it loses the instance; our next heartbeat hears 404
            assert await _absent(java, "i-1")
            assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-1"))[0] == 200
            assert await eventually(lambda: _present(java, "i-1"), 3)


async def test_a_409_hands_over_the_peers_newer_copy() -> None:
    async with LocalCluster(1) as java:
        async with LocalCluster(1, eureka_peers=(f"{java.url(0)}/eureka/",)) as c:
            body = instance_body("svc", "i-1")
            body["instance"]["lastDirtyTimestamp"] = "1000"
            await c.request(0, "POST", "/eureka/apps/SVC", json_body=body, headers={REPLICATION_HEADER: "true"})
            await batch(java, [register_item("i-1", 5_000, metadata={"zone": "theirs"})])
            assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-1"))[0] == 200
            assert await eventually(lambda: _field(c, "i-1", "metadata", {"zone": "theirs"}), 3)
            _, body_bytes, _ = await c.request(0, "GET", "/v1/status")
            peer = json.loads(body_bytes)["eureka_peers"][0]
            assert peer["reachable"] and peer["refused"] >= 1 and peer["url"] == f"{java.url(0)}/eureka/"


async def _true(value: bool) -> bool:
    return value


async def _quiet() -> None:
    await asyncio.sleep(1.0)  # longer than a batch's wait: anything forwarded would have gone


async def _present(c: LocalCluster, iid: str) -> bool:
    return await instance(c, iid) is not None


async def _absent(c: LocalCluster, iid: str) -> bool:
    return await instance(c, iid) is None


async def _field(c: LocalCluster, iid: str, name: str, value: Any) -> bool:
    found = await instance(c, iid)
    return found is not None and found[name] == value


async def test_the_node_registers_itself_as_one_of_the_java_peers_own_app() -> None:
    """A Java node lists a peer as an available replica only if an instance of its own app has the peer's host
    name (Netflix/eureka StatusUtil.isReplicaAvailable): --eureka-app registers this node so, and renews it."""
    async with LocalCluster(1) as java:
        async with LocalCluster(1, eureka_peers=(f"{java.url(0)}/eureka/",), eureka_app="eureka-server",
                                renewal_interval=0.2) as c:
            port = c.ports[0]
            path = f"/eureka/apps/EUREKA-SERVER/127.0.0.1:eureka-server:{port}"

            async def listed() -> bool:
                status, body, _ = await java.request(0, "GET", path)
                return status == 200 and json.loads(body)["instance"]["hostName"] == "127.0.0.1"

            assert await eventually(listed, 3)
            renewals = java.nodes[0].replica.counters.renewals_local
            assert await eventually(lambda: _true(java.nodes[0].replica.counters.renewals_local > renewals + 1), 3)


async def _busy_peer() -> AsyncIterator[str]:
    """A Java peer that answers every batch 503, as Eureka does when it wants its peers to back off."""
    app = web.Application()

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app.router.add_post("/eureka/peerreplication/batch/", busy)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/eureka/"
    finally:
        await runner.cleanup()


def _samples(metrics: dict[str, list], sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` (a counter's `_total`, a histogram's `_count`) with these labels."""
    family = sample.removesuffix("_total").removesuffix("_count")
    return sum(s.value for s in metrics[family] if s.name == sample and s.labels.items() >= labels.items())


async def test_metrics_and_status_show_each_java_peers_items_batches_queue_and_backoff() -> None:
    busy_peers = _busy_peer()
    busy = await anext(busy_peers)
    try:
        async with LocalCluster(1) as java:
            good = f"{java.url(0)}/eureka/"
            async with LocalCluster(1, eureka_peers=(good, busy)) as c:
                assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-1")))[0] == 204
                assert await eventually(lambda: _present(java, "i-1"), 3)
                await batch(java, [item("Cancel", "i-1")])  # the Java peer loses it: our heartbeat hears 404
                assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-1"))[0] == 200
                assert await eventually(lambda: _present(java, "i-1"), 3)  # the 404 brought a Register
                metrics = await scrape(c, 0)
                assert _samples(metrics, "apreg_eureka_peer_items_total", peer=good, action="Heartbeat",
                                status="404") == 1
                assert _samples(metrics, "apreg_eureka_peer_items_total", peer=good, action="Register",
                                status="200") == 2
                assert _samples(metrics, "apreg_eureka_peer_batches_total", peer=good, outcome="delivered") == 3
                assert _samples(metrics, "apreg_eureka_peer_reachable", peer=good) == 1
                assert _samples(metrics, "apreg_eureka_peer_backoff_seconds", peer=good) == 0
                assert _samples(metrics, "apreg_eureka_peer_batch_seconds_count", peer=good) == 3
                # The busy peer took nothing: its items wait, backing off; it answered, so it is reachable.
                assert _samples(metrics, "apreg_eureka_peer_batches_total", peer=busy, outcome="busy") >= 1
                assert _samples(metrics, "apreg_eureka_peer_items_total", peer=busy) == 0
                assert _samples(metrics, "apreg_eureka_peer_queue_depth", peer=busy) == 2  # i-1's Register and Heartbeat
                assert _samples(metrics, "apreg_eureka_peer_backoff_seconds", peer=busy) > 0
                assert _samples(metrics, "apreg_eureka_peer_last_error_timestamp_seconds", peer=busy) > 0
                statuses = {s.labels["status"] for s in metrics["apreg_eureka_peer_items"]}
                assert statuses <= {"200", "400", "404", "409", "503", "other"}
                _, body, _ = await c.request(0, "GET", "/v1/status")
                shown = {peer["url"]: peer for peer in json.loads(body)["eureka_peers"]}
                assert shown[good]["items"] == {"Heartbeat": {"404": 1}, "Register": {"200": 2}}
                assert shown[good]["sent"] == 2 and shown[good]["refused"] == 1 and shown[good]["batches"] == 3
                assert shown[busy]["backoff_s"] > 0 and shown[busy]["batches_failed"] >= 1
                assert "HTTP 503" in shown[busy]["last_error"] and shown[busy]["last_error_at"] > 0
            received = await scrape(java, 0)  # the Java side's count of what it took, by action and answer
            assert _samples(received, "apreg_eureka_items_received_total", action="Register", status="200") == 2
            assert _samples(received, "apreg_eureka_items_received_total", action="Heartbeat", status="404") == 1
    finally:
        await busy_peers.aclose()


async def test_a_node_starts_from_its_peers_registry_before_it_opens_its_port() -> None:
    """Java peers only: their registry, as Eureka's syncUp takes it; apreg peers: the first pull. Either way a
    client's first read of a node restarted empty lists everything (meanwhile its connections are refused)."""
    async with LocalCluster(1) as java:
        for k in range(3):
            body = instance_body("svc", f"i-{k}")
            body["instance"]["lastDirtyTimestamp"] = "1234"
            await java.request(0, "POST", "/eureka/apps/SVC", json_body=body)
        for peers in ({"eureka_peers": (f"{java.url(0)}/eureka/",)}, {"peers": (java.url(0),)}):
            runner, node = await start_node(dataclasses.replace(NodeSettings(port=free_port()), **peers))
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.get(f"{node.settings.url}/eureka/apps/SVC",
                                           headers={"Accept": "application/json"}) as response:
                        listed = (await response.json())["application"]["instance"]
                assert sorted(i["instanceId"] for i in listed) == ["i-0", "i-1", "i-2"], peers
                assert {i["lastDirtyTimestamp"] for i in listed} == {"1234"}
                if node.eureka_peers is not None:
                    await _quiet()
                    assert node.eureka_peers.peers[0].sent == 0  # what came from a Java peer is not sent back
            finally:
                await runner.cleanup()


async def test_java_peers_follow_a_reload() -> None:
    """SIGHUP re-reads --eureka-peers: a Java peer added gets the writes that follow, a removed one no more."""
    async with LocalCluster(1) as one, LocalCluster(1) as two, LocalCluster(1) as c:
        first, second = f"{one.url(0)}/eureka/", f"{two.url(0)}/eureka/"
        node = c.nodes[0]
        _reload_peers(node, lambda: dataclasses.replace(node.settings, eureka_peers=(first,)))
        assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-1")))[0] == 204
        assert await eventually(lambda: _present(one, "i-1"), 3)
        _reload_peers(node, lambda: dataclasses.replace(node.settings, eureka_peers=(second,)))
        assert [peer.url for peer in node.eureka_peers.peers] == [second]  # type: ignore[union-attr]
        assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-2")))[0] == 204
        assert await eventually(lambda: _present(two, "i-2"), 3)
        await _quiet()
        assert await _absent(one, "i-2")
        assert await _absent(two, "i-1")  # a new peer starts with an empty queue


async def test_a_stopping_node_sends_what_its_java_peers_have_not_got_yet() -> None:
    """Batches wait up to 0.5 s for company: a write acknowledged just before a graceful stop goes out anyway."""
    async with LocalCluster(1) as java:
        c = LocalCluster(1, eureka_peers=(f"{java.url(0)}/eureka/",))
        async with c:
            assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-1")))[0] == 204
            await c.kill(0)
            assert await _present(java, "i-1")
