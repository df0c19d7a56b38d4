"""RegistryClient against fake registry nodes over loopback HTTP."""
from __future__ import annotations

import dataclasses
import math

import pytest

from apreg.client import ClientConfig, Instance, InstanceNotFound, RegistryClient, RegistryUnavailable

from .conftest import refused_port
from .fake_registry import FakeRegistry, instance
from .helpers import FAST, eventually


async def ids(client: RegistryClient, app: str) -> list[str]:
    return [i.instance_id for i in await client.instances(app)]


async def test_register_sends_eurekas_body_renews_and_cancels_on_close(fake: FakeRegistry) -> None:
    async with RegistryClient([fake.url], FAST) as client:
        reg = await client.register("orders", instance_id="orders-1", host="127.0.0.1", port=8080,
                                    metadata={"zone": "a"}, renewal_interval=0.05, lease_duration=1)
        assert reg.registered
        body = fake.instances[("ORDERS", "orders-1")]
        assert body["app"] == "ORDERS" and body["port"] == {"$": 8080, "@enabled": "true"}
        assert body["leaseInfo"] == {"renewalIntervalInSecs": 0.05, "durationInSecs": 1}
        await eventually(lambda: len(fake.calls("PUT", "/orders-1")) >= 2)
        _, _, query = fake.calls("PUT", "/orders-1")[0]
        assert query == {"status": "UP", "lastDirtyTimestamp": str(reg.last_dirty_timestamp)}
        await eventually(lambda: _has(client, "orders", "orders-1"))
        assert (await client.choose("ORDERS")).instance_id == "orders-1"  # type: ignore[union-attr]
    assert fake.calls("DELETE", "/ORDERS/orders-1") and not fake.instances


async def _has(client: RegistryClient, app: str, iid: str) -> bool:
    return iid in await ids(client, app)


async def test_renew_answered_404_registers_again_at_once(fake: FakeRegistry) -> None:
    async with RegistryClient([fake.url], FAST) as client:
        await client.register("orders", instance_id="o-1", host="h", port=1, renewal_interval=0.05, lease_duration=1)
        fake.instances.clear()  # the node forgot it (restart, eviction)
        await eventually(lambda: ("ORDERS", "o-1") in fake.instances)
        assert len(fake.calls("POST")) == 2


async def test_fails_over_when_the_first_node_refuses_connections(fake: FakeRegistry) -> None:
    fake.put(instance("cart", "c-1"))
    dead = f"http://127.0.0.1:{refused_port()}"
    async with RegistryClient([dead, fake.url], FAST) as client:
        assert client.warm and await ids(client, "cart") == ["c-1"]
        await client.register("orders", instance_id="o-1", host="h", port=1, renewal_interval=0.05, lease_duration=1)
        assert ("ORDERS", "o-1") in fake.instances


async def test_discovery_follows_the_watch_stream(fake: FakeRegistry) -> None:
    heard: list[tuple[str, tuple[Instance, ...]]] = []
    async with RegistryClient([fake.url], FAST) as client:
        client.add_listener(lambda app, up: heard.append((app, up)))
        await eventually(lambda: client.streaming)
        fake.put(instance("cart", "c-1", zone="a"))
        fake.put(instance("cart", "c-2"))
        await eventually(lambda: _has(client, "cart", "c-2"))
        fake.put(instance("cart", "c-1", status="DOWN"), "status")
        fake.drop("cart", "c-2", "evict")
        await eventually(lambda: _count(client, "cart", 0))
        assert [i.instance_id for i in await client.all_instances("cart")] == ["c-1"]
        assert [app for app, _ in heard] == ["CART"] * 4
        assert fake.calls("GET", "/v1/watch")


async def _count(client: RegistryClient, app: str, n: int) -> bool:
    return len(await client.instances(app)) == n


async def test_falls_back_to_delta_polling_without_a_stream(fake: FakeRegistry) -> None:
    fake.watch = False
    async with RegistryClient([fake.url], FAST) as client:
        assert client.warm
        fake.put(instance("cart", "c-1"))
        await eventually(lambda: _has(client, "cart", "c-1"))
        assert fake.calls("GET", "/apps/delta") and not client.streaming
        fulls = len(fake.calls("GET", "/eureka/apps"))
        # A change the delta does not carry: the reconcile hash no longer matches, so the client fetches everything.
        fake.instances[("CART", "c-2")] = instance("cart", "c-2")
        await eventually(lambda: _has(client, "cart", "c-2"))
        assert len(fake.calls("GET", "/eureka/apps")) > fulls


async def test_hash_mismatch_triggers_a_full_fetch(fake: FakeRegistry) -> None:
    fake.watch = False
    fake.put(instance("cart", "c-1"))
    async with RegistryClient([fake.url], FAST) as client:
        fake.hashcode_override = "UP_99_"
        fulls = len(fake.calls("GET", "/eureka/apps"))
        await eventually(lambda: len(fake.calls("GET", "/eureka/apps")) > fulls + 1)
        assert await ids(client, "cart") == ["c-1"]


async def test_serves_stale_cache_when_every_node_is_down_and_recovers(fake: FakeRegistry) -> None:
    fake.put(instance("cart", "c-1"))
    async with RegistryClient([fake.url], FAST) as client:
        await client.register("orders", instance_id="o-1", host="h", port=1, renewal_interval=0.1, lease_duration=1)
        assert client.staleness() < 0.3 and not client.stale
        await fake.stop()  # down, and it will come back empty
        await eventually(lambda: client.stale, timeout=3)
        assert await ids(client, "cart") == ["c-1"]
        assert (await client.choose("cart")).instance_id == "c-1"  # type: ignore[union-attr]
        assert 0.3 < client.staleness() < math.inf
        with pytest.raises(RegistryUnavailable):
            await client.refresh()
        await fake.start()
        fake.put(instance("cart", "c-9"))
        await eventually(lambda: ("ORDERS", "o-1") in fake.instances, timeout=5)
        await eventually(lambda: _has(client, "cart", "c-9"), timeout=5)
        assert await ids(client, "cart") == ["c-9"] and not client.stale


async def test_stream_resumes_at_the_same_node_with_last_event_id(fake: FakeRegistry) -> None:
    async with RegistryClient([fake.url], FAST) as client:
        await eventually(lambda: client.streaming)
        fake.put(instance("cart", "c-1"))
        await eventually(lambda: _has(client, "cart", "c-1"))
        fake.watch = False  # the reconnection is refused for a moment...
        fake.end_streams()
        fake.put(instance("cart", "c-2"))  # ...while this happens
        await eventually(lambda: len(fake.calls("GET", "/v1/watch")) >= 2)
        fake.watch = True
        await eventually(lambda: _has(client, "cart", "c-2"), timeout=5)
        resumed = [q for _, _, q in fake.calls("GET", "/v1/watch") if "since" in q]
        assert resumed and resumed[-1]["since"] == "1"
        await eventually(lambda: client.streaming)  # back on the stream after polling meanwhile


async def test_cold_start_when_no_node_answers() -> None:
    config = dataclasses.replace(FAST, start_timeout=0.2)
    async with RegistryClient([f"http://127.0.0.1:{refused_port()}"], config) as client:
        assert not client.warm and client.staleness() == math.inf
        assert await client.instances("cart") == () and await client.choose("cart") is None
        reg = await client.register("orders", host="h", port=1, renewal_interval=0.1, lease_duration=1)
        assert not reg.registered and reg.instance_id == "h:orders:1"


async def test_status_and_metadata_operations(fake: FakeRegistry) -> None:
    async with RegistryClient([fake.url], FAST) as client:
        reg = await client.register("orders", instance_id="o-1", host="h", port=1, renewal_interval=5,
                                    lease_duration=15)
        await client.set_status("orders", "o-1", "out_of_service")
        assert fake.instances[("ORDERS", "o-1")]["status"] == "OUT_OF_SERVICE"
        assert reg.overridden_status == "OUT_OF_SERVICE"
        await eventually(lambda: _count(client, "orders", 0))
        await client.clear_status("orders", "o-1")
        assert fake.calls("DELETE", "/o-1/status")[-1][2] == {"value": "UP"}
        await eventually(lambda: _count(client, "orders", 1))
        await client.update_metadata("orders", "o-1", {"zone": "b", "weight": "2"})
        assert fake.instances[("ORDERS", "o-1")]["metadata"]["zone"] == "b" and reg.metadata["weight"] == "2"
        await eventually(lambda: _zone(client, "b"))
        with pytest.raises(InstanceNotFound):
            await client.set_status("orders", "nobody", "DOWN")
        with pytest.raises(ValueError):
            await client.set_status("orders", "o-1", "SLEEPY")


async def _zone(client: RegistryClient, zone: str) -> bool:
    up = await client.instances("orders")
    return bool(up) and up[0].zone == zone


async def test_zone_strategy_from_config(fake: FakeRegistry) -> None:
    fake.put(instance("cart", "c-a", zone="a"))
    fake.put(instance("cart", "c-b", zone="b"))
    config = dataclasses.replace(FAST, strategy="zone", zone="b")
    async with RegistryClient([fake.url], config) as client:
        assert {(await client.choose("cart")).instance_id for _ in range(5)} == {"c-b"}  # type: ignore[union-attr]


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        ClientConfig(request_timeout=0)
    with pytest.raises(ValueError):
        ClientConfig(strategy="zone")
    with pytest.raises(ValueError):
        ClientConfig(strategy="fastest")
