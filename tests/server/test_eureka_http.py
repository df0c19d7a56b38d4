"""Eureka's REST API over real nodes on loopback: shapes, status codes, propagation, delta reconciliation."""
from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ET

import aiohttp

from .harness import LocalCluster, eventually, instance_body


async def test_register_at_one_node_is_visible_at_the_others_in_json_and_xml() -> None:
    async with LocalCluster(3) as c:
        status, body, _ = await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        assert (status, body) == (204, b"")
        assert await eventually(lambda: _has(c, 1, "o-1")) and await eventually(lambda: _has(c, 2, "o-1"))
        status, body, _ = await c.request(2, "GET", "/eureka/v2/apps/ORDERS/o-1")
        instance = json.loads(body)["instance"]
        assert instance["port"] == {"$": 8080, "@enabled": "true"} and instance["app"] == "ORDERS"
        status, body, headers = await c.request(1, "GET", "/eureka/apps/", headers={"Accept": ""})
        assert status == 200 and headers["Content-Type"].startswith("application/xml")
        root = ET.fromstring(body)
        assert root.tag == "applications" and root.findtext("apps__hashcode") == "UP_1_"
        assert root.find("application/instance/port").get("enabled") == "true"  # type: ignore[union-attr]


async def test_status_metadata_and_cancel_propagate() -> None:
    async with LocalCluster(3) as c:
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        for node in (1, 2):  # node 1 must hold o-1 before it can change it
            assert await eventually(lambda: _has(c, node, "o-1"))
        assert (await c.request(1, "PUT", "/eureka/apps/ORDERS/o-1/status?value=OUT_OF_SERVICE"))[0] == 200
        assert await eventually(lambda: _field(c, 2, "o-1", "status", "OUT_OF_SERVICE"))
        # the override is sticky: a re-register saying UP keeps OUT_OF_SERVICE
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        assert await eventually(lambda: _field(c, 2, "o-1", "status", "OUT_OF_SERVICE"))
        assert (await c.request(2, "PUT", "/eureka/apps/ORDERS/o-1/metadata?color=blue"))[0] == 200
        assert await eventually(lambda: _metadata(c, 0, "o-1", "color", "blue"))
        assert (await c.request(0, "DELETE", "/eureka/apps/ORDERS/o-1/status"))[0] == 200
        assert await eventually(lambda: _field(c, 1, "o-1", "status", "UNKNOWN"))
        assert (await c.request(1, "DELETE", "/eureka/apps/ORDERS/o-1"))[0] == 200
        for node in range(3):
            assert await eventually(lambda: _gone(c, node, "o-1"))
        assert (await c.request(0, "DELETE", "/eureka/apps/ORDERS/o-1"))[0] == 404


async def test_renew_unknown_gets_empty_404_and_reregistering_fixes_it() -> None:
    async with LocalCluster(1) as c:
        status, body, _ = await c.request(0, "PUT", "/eureka/apps/ORDERS/ghost?status=UP&lastDirtyTimestamp=1")
        assert (status, body) == (404, b"")
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "ghost"))
        assert (await c.request(0, "PUT", "/eureka/apps/ORDERS/ghost?status=UP&lastDirtyTimestamp=1"))[0] == 200
        # a client whose info is newer than ours must re-register
        newer = 2 ** 62
        assert (await c.request(0, "PUT", f"/eureka/apps/ORDERS/ghost?lastDirtyTimestamp={newer}"))[0] == 404


async def test_a_heartbeat_carrying_the_registered_last_dirty_timestamp_is_renewed_at_every_node() -> None:
    async with LocalCluster(2) as c:
        body = instance_body("orders", "o-1")
        body["instance"]["lastDirtyTimestamp"] = "1700000000123"
        await c.request(0, "POST", "/eureka/apps/orders", json_body=body)
        assert await eventually(lambda: _has(c, 1, "o-1"))
        for node in (0, 1):  # what a Eureka client sends with every heartbeat: its own lastDirtyTimestamp
            path = "/eureka/apps/ORDERS/o-1?status=UP&lastDirtyTimestamp=1700000000123"
            assert (await c.request(node, "PUT", path))[0] == 200
            assert (await c.request(node, "PUT", "/eureka/apps/ORDERS/o-1?lastDirtyTimestamp=1700000000124"))[0] == 404


async def test_delta_and_hashcode_let_a_client_reconcile() -> None:
    async with LocalCluster(2) as c:
        for iid in ("a", "b", "c"):
            await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", iid))
        assert await eventually(lambda: _has(c, 1, "c"))
        local = _instances(json.loads((await c.request(1, "GET", "/eureka/apps"))[1]))
        before = json.loads((await c.request(1, "GET", "/eureka/apps/delta"))[1])["applications"]["versions__delta"]
        await c.request(0, "PUT", "/eureka/apps/ORDERS/b/status?value=DOWN")
        await c.request(0, "DELETE", "/eureka/apps/ORDERS/c")
        assert await eventually(lambda: _gone(c, 1, "c"))
        delta = json.loads((await c.request(1, "GET", "/eureka/apps/delta"))[1])["applications"]
        assert delta["versions__delta"] != before
        for app in delta["application"]:  # apply as Eureka clients do
            for inst in app["instance"]:
                if inst["actionType"] == "DELETED":
                    local.pop(inst["instanceId"], None)
                else:
                    local[inst["instanceId"]] = inst
        statuses = sorted(i["status"] for i in local.values())
        assert delta["apps__hashcode"] == "DOWN_1_UP_1_" == _hash(statuses)


async def test_gzip_vips_and_instance_lookup() -> None:
    async with LocalCluster(1) as c:
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-9"))
        async with aiohttp.ClientSession(auto_decompress=False) as raw:  # see the bytes on the wire
            async with raw.get(c.url(0) + "/eureka/apps", headers={"Accept": "application/json",
                                                                   "Accept-Encoding": "gzip"}) as response:
                assert response.headers.get("Content-Encoding") == "gzip"
                assert "ORDERS" in json.dumps(json.loads(gzip.decompress(await response.read())))
        assert len(_instances(json.loads((await c.request(0, "GET", "/eureka/vips/orders"))[1]))) == 1
        assert _instances(json.loads((await c.request(0, "GET", "/eureka/vips/nothing"))[1])) == {}
        assert (await c.request(0, "GET", "/eureka/instances/o-9"))[0] == 200
        assert (await c.request(0, "GET", "/eureka/apps/NOPE"))[0] == 404


def _instances(doc: dict) -> dict[str, dict]:
    return {i["instanceId"]: i for app in doc["applications"]["application"] for i in app["instance"]}


def _hash(statuses: list[str]) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return "".join(f"{s}_{counts[s]}_" for s in sorted(counts))


async def _has(c: LocalCluster, node: int, iid: str) -> bool:
    return iid in await c.ids(node)


async def _gone(c: LocalCluster, node: int, iid: str) -> bool:
    return iid not in await c.ids(node)


async def _instance(c: LocalCluster, node: int, iid: str) -> dict:
    status, body, _ = await c.request(node, "GET", f"/eureka/apps/ORDERS/{iid}")
    return json.loads(body)["instance"] if status == 200 else {}


async def _field(c: LocalCluster, node: int, iid: str, name: str, value: str) -> bool:
    return (await _instance(c, node, iid)).get(name) == value


async def _metadata(c: LocalCluster, node: int, iid: str, key: str, value: str) -> bool:
    return (await _instance(c, node, iid)).get("metadata", {}).get(key) == value


async def test_status_and_metrics_report_conflicts_and_self_preservation() -> None:
    async with LocalCluster(2) as c:
        status = json.loads((await c.request(0, "GET", "/v1/status"))[1])
        assert {"node_id", "in_sync", "peers", "instances", "self_preservation", "conflicts"} <= set(status)
        assert {"active", "renewals_in_window", "expected", "threshold"} <= set(status["self_preservation"])
        # a concurrent write: both nodes change the same instance while cut off from each other
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        assert await eventually(lambda: _has(c, 1, "o-1"))
        c.isolate({0})
        await c.request(0, "PUT", "/eureka/apps/ORDERS/o-1/metadata?side=a")
        await c.request(1, "PUT", "/eureka/apps/ORDERS/o-1/metadata?side=b")
        c.heal()

        async def settled() -> bool:
            docs = [json.loads((await c.request(n, "GET", "/eureka/apps/ORDERS/o-1"))[1]) for n in range(2)]
            return docs[0]["instance"]["metadata"] == docs[1]["instance"]["metadata"]
        assert await eventually(settled)
        text = (await c.request(0, "GET", "/v1/metrics"))[1].decode()
        conflicts = sum([json.loads((await c.request(n, "GET", "/v1/status"))[1])["conflicts"] for n in range(2)])
        assert conflicts >= 1 and "apreg_conflicts_total " in text and "apreg_self_preservation_active 0.0" in text


async def test_a_re_registration_is_added_in_every_nodes_delta() -> None:
    """Eureka marks every registration ADDED; a client given MODIFIED for an instance it lists may overwrite
    another instance of the app with it (issue 10)."""
    async with LocalCluster(2) as c:
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-2"))
        assert await eventually(lambda: _has(c, 1, "o-2"))  # else node 1 first hears of o-2 changed: ADDED there
        await c.request(0, "PUT", "/eureka/apps/ORDERS/o-2/status?value=OUT_OF_SERVICE")
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1", port=9090))

        async def actions(i: int) -> dict[str, str]:
            _, body, _ = await c.request(i, "GET", "/eureka/apps/delta")
            return {inst["instanceId"]: inst["actionType"]
                    for app in json.loads(body)["applications"]["application"] for inst in app["instance"]}

        async def settled() -> bool:
            return all([await actions(i) == {"o-1": "ADDED", "o-2": "MODIFIED"} for i in (0, 1)])

        assert await eventually(settled), (await actions(0), await actions(1))
