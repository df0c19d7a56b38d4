"""--ack-replicas K: a client's write is acknowledged once K peers hold it; cut off from them, the write gets
503 with a JSON reason, stays applied here, and reaches them after the heal."""
from __future__ import annotations

import json
import time

import pytest

from apreg.core.instance import InstanceKey
from apreg.server.settings import NodeSettings

from .harness import LocalCluster, eventually, instance_body


async def test_an_acknowledged_write_is_already_held_by_k_peers() -> None:
    async with LocalCluster(3, ack_replicas=2, anti_entropy_interval=30) as c:  # no anti-entropy to help
        for i in range(5):
            assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", f"i-{i}")))[0] == 204
            key = InstanceKey.of("SVC", f"i-{i}")
            assert all(c.nodes[j].replica.visible(key) is not None for j in (1, 2))  # at the moment of the ack
        assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-0/status?value=OUT_OF_SERVICE"))[0] == 200
        assert all(c.nodes[j].replica.visible(InstanceKey.of("SVC", "i-0")).info.status.value  # type: ignore
                   == "OUT_OF_SERVICE" for j in (1, 2))
        assert (await c.request(0, "PUT", "/eureka/apps/SVC/i-0"))[0] == 200  # renewals do not wait


async def test_cut_off_from_its_peers_a_write_gets_503_yet_stays_and_replicates_after_the_heal() -> None:
    async with LocalCluster(3, ack_replicas=1, peer_timeout=0.5) as c:
        c.isolate({0, 1})  # node 0 still reaches node 1: one peer is enough
        assert (await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-1")))[0] == 204
        c.isolate({0})
        start = time.monotonic()
        status, body, _ = await c.request(0, "POST", "/eureka/apps/SVC", json_body=instance_body("svc", "i-2"))
        assert status == 503 and json.loads(body)["error"] == "not_replicated"
        assert "0 of the 1 peers" in json.loads(body)["detail"] and 0.5 <= time.monotonic() - start < 3
        assert c.nodes[0].replica.visible(InstanceKey.of("SVC", "i-2")) is not None
        assert c.nodes[0].rejected.client == 0  # the node's own 503, not a client's mistake
        c.heal()
        assert await eventually(lambda: _has(c, 2, "i-2"), 5)


def test_more_replicas_than_peers_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="ack-replicas 2 needs at least that many --peers"):
        NodeSettings(peers=("http://b:8761",), ack_replicas=2).validate()
    assert NodeSettings(peers_dns="apreg-peers", ack_replicas=2).validate().ack_replicas == 2  # known at runtime


async def _has(c: LocalCluster, node: int, iid: str) -> bool:
    return iid in await c.ids(node)
