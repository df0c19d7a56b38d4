"""Replication between real nodes: restarts, partitions (links cut by TCP proxies), multi-hop forwarding."""
from __future__ import annotations

import asyncio
import json

from .harness import LocalCluster, eventually, instance_body


async def test_node_killed_and_restarted_empty_resyncs_including_writes_made_while_down() -> None:
    async with LocalCluster(3) as c:
        for k in range(30):
            await c.request(k % 3, "POST", "/eureka/apps/svc", json_body=instance_body("svc", f"i{k}"))
        await c.request(0, "DELETE", "/eureka/apps/SVC/i0")
        want = {f"i{k}" for k in range(1, 30)}
        assert await eventually(lambda: _same(c, [0, 1, 2], want))
        await c.kill(2)
        for k in range(30, 40):
            await c.request(k % 2, "POST", "/eureka/apps/svc", json_body=instance_body("svc", f"i{k}"))
        want |= {f"i{k}" for k in range(30, 40)}
        await c.start(2)
        assert not c.nodes[2].replica.synced or await c.ids(2) == want  # never claims sync before it holds it
        assert await eventually(lambda: _same(c, [2], want))
        status = json.loads((await c.request(2, "GET", "/v1/status"))[1])
        assert status["in_sync"] is True and status["instances"] == len(want)


async def test_writes_on_both_sides_of_a_partition_all_survive_the_heal() -> None:
    async with LocalCluster(3) as c:
        await c.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", "shared"))
        assert await eventually(lambda: _same(c, [0, 1, 2], {"shared"}))
        c.isolate({0})
        # both sides keep accepting writes (I7); node 0 is cut off from everyone
        assert (await c.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", "left")))[0] == 204
        assert (await c.request(1, "POST", "/eureka/apps/svc", json_body=instance_body("svc", "right")))[0] == 204
        assert (await c.request(0, "PUT", "/eureka/apps/SVC/shared/metadata?side=left"))[0] == 200
        assert await eventually(lambda: _same(c, [2], {"shared", "right"}))  # 1 and 2 still talk
        assert (await c.request(2, "DELETE", "/eureka/apps/SVC/right"))[0] == 200
        await asyncio.sleep(0.5)
        assert "right" not in await c.ids(0) and "left" not in await c.ids(1)
        c.heal()
        assert await eventually(lambda: _same(c, [0, 1, 2], {"shared", "left"}))
        for node in range(3):
            body = json.loads((await c.request(node, "GET", "/eureka/apps/SVC/shared"))[1])
            assert body["instance"]["metadata"]["side"] == "left"


async def test_writes_reach_nodes_that_are_not_directly_connected() -> None:
    async with LocalCluster(3) as c:
        for i, j in ((0, 2), (2, 0)):  # 0 and 2 only hear of each other through 1
            c.proxies[(i, j)].cut()
        await c.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", "hop"))
        assert await eventually(lambda: _same(c, [2], {"hop"}))


async def _same(c: LocalCluster, nodes: list[int], want: set[str]) -> bool:
    return all([await c.ids(n) == want for n in nodes])


async def test_a_burst_of_renewals_travels_in_a_few_frames_and_arrives_whole() -> None:
    """Heartbeats are not versioned writes: they wait briefly for each other instead of a frame each."""
    async with LocalCluster(2) as c:
        link = c.nodes[0].links[c.nodes[0].settings.peers[0]]
        for k in range(20):
            await c.request(0, "POST", "/eureka/apps/svc", json_body=instance_body("svc", f"i{k}"))
        assert await eventually(lambda: _same(c, [1], {f"i{k}" for k in range(20)}))
        frames_before = link.frames  # pushes (anti-entropy digests go by POST)
        for _ in range(5):
            for k in range(20):
                assert (await c.request(0, "PUT", f"/eureka/apps/SVC/i{k}"))[0] == 200
        a, b = c.nodes[0].replica, c.nodes[1].replica

        async def renewals_arrived() -> bool:
            return all(b.entries[key].renewed == entry.renewed for key, entry in a.entries.items())

        assert await eventually(renewals_arrived)
        assert link.frames - frames_before <= 10, "100 renewals should not take a frame each"
