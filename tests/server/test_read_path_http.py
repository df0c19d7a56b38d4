"""Reads at scale over loopback: a full fetch being rendered never holds up renewals or peer pushes, and the
documents served are what the registry holds."""
from __future__ import annotations

import asyncio
import json

from apreg.core.instance import InstanceInfo
from apreg.core.replica import Replica

from .harness import LocalCluster, eventually, instance_body

PRELOADED = 40_000  # enough that a cold render of the registry takes many slices


def _preload(c: LocalCluster, i: int, count: int) -> None:
    """Registrations straight into node i's core (HTTP would take minutes), published as a handler would."""
    def register_all(replica: Replica, now: int) -> None:
        for n in range(count):
            replica.register(InstanceInfo(app=f"APP{n % 50}", instance_id=f"i-{n}", host_name=f"h{n}",
                                          ip_addr="10.0.0.1", vip_address=f"app{n % 50}"), now)

    c.nodes[i].write(register_all)


async def test_a_full_fetch_being_rendered_holds_up_neither_a_renewal_nor_a_push() -> None:
    async with LocalCluster(2) as c:
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        _preload(c, 0, PRELOADED)
        fetch = asyncio.ensure_future(c.request(0, "GET", "/eureka/apps", headers={"Accept-Encoding": "gzip"}))
        await asyncio.sleep(0.02)  # the cold render has started
        assert not fetch.done()
        status, _, _ = await c.request(0, "PUT", "/eureka/apps/ORDERS/o-1")
        assert status == 200 and not fetch.done(), "the renewal waited for the render"
        await c.request(1, "POST", "/eureka/apps/carts", json_body=instance_body("carts", "c-1"))

        async def pushed() -> bool:
            return (await c.request(0, "GET", "/eureka/apps/CARTS/c-1"))[0] == 200

        assert await eventually(pushed, timeout=10) and not fetch.done(), "the push waited for the render"
        status, body, headers = await fetch
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        apps = json.loads(body)["applications"]  # the test client inflates it
        assert sum(len(app["instance"]) for app in apps["application"]) >= PRELOADED + 1
        assert apps["apps__hashcode"].startswith("UP_")


async def test_documents_follow_changes_in_every_format() -> None:
    async with LocalCluster(1, read_cache_max_age=0) as c:
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-1"))
        for accept in ("application/json", "application/xml"):
            for encoding in ("gzip", "identity"):
                await c.request(0, "GET", "/eureka/apps", headers={"Accept": accept, "Accept-Encoding": encoding})
        await c.request(0, "POST", "/eureka/apps/orders", json_body=instance_body("orders", "o-2"))
        await c.request(0, "PUT", "/eureka/apps/ORDERS/o-1/status?value=OUT_OF_SERVICE")
        _, body, _ = await c.request(0, "GET", "/eureka/apps")
        apps = json.loads(body)["applications"]
        assert apps["apps__hashcode"] == "OUT_OF_SERVICE_1_UP_1_"
        assert {i["instanceId"]: i["status"] for i in apps["application"][0]["instance"]} == {
            "o-1": "OUT_OF_SERVICE", "o-2": "UP"}
        _, body, _ = await c.request(0, "GET", "/eureka/apps/ORDERS", headers={"Accept": "application/xml",
                                                                              "Accept-Encoding": "gzip"})
        assert body.count(b"<instance>") == 2 and b"OUT_OF_SERVICE" in body
        await c.request(0, "DELETE", "/eureka/apps/ORDERS/o-2")
        _, body, _ = await c.request(0, "GET", "/eureka/vips/orders")
        assert [i["instanceId"] for i in json.loads(body)["applications"]["application"][0]["instance"]] == ["o-1"]
        assert json.loads(body)["applications"]["apps__hashcode"] == "OUT_OF_SERVICE_1_"
        _, body, _ = await c.request(0, "GET", "/eureka/apps/delta")
        actions = {i["instanceId"]: i["actionType"]
                   for app in json.loads(body)["applications"]["application"] for i in app["instance"]}
        assert actions == {"o-1": "MODIFIED", "o-2": "DELETED"}
