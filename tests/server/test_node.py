"""The Node itself, driven by hand on the in-memory transport with an injected clock: no sockets, no sleeps.

Each test opens nodes on one MemoryNetwork, advances a fake clock, calls `step` (one turn of the driver) and
lets the node's background sends run (`settle`: turns of the event loop, no wall time)."""
from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import pytest

from apreg.core.instance import InstanceInfo, InstanceKey
from apreg.core.messages import Digest, Push
from apreg.core.replica import Replica
from apreg.peer.channels import MemoryNetwork
from apreg.server.node import Node
from apreg.server.settings import NodeSettings

T0 = 1_700_000_000_000
A, B = "http://a.test:8761", "http://b.test:8761"


@dataclass(slots=True)
class FakeClock:
    ms: int = T0

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += ms


@dataclass(slots=True)
class Pair:
    a: Node
    b: Node
    net: MemoryNetwork
    clock: FakeClock

    def pushes_to(self, url: str) -> list[Push]:
        return [m for to, m in self.net.delivered if to == url and isinstance(m, Push)]

    def digests_to(self, url: str) -> list[Digest]:
        return [m for to, m in self.net.delivered if to == url and isinstance(m, Digest)]


async def settle() -> None:
    """Let every background send run to its end (the memory network answers within the same turn)."""
    for _ in range(20):
        await asyncio.sleep(0)


def node(name: str, peer: str, clock: FakeClock, net: MemoryNetwork) -> Node:
    settings = NodeSettings(node_id=name, peers=(peer,), anti_entropy_interval=1.0, eviction_interval=60.0)
    n = Node(settings, clock=clock.now_ms, monotonic=clock.monotonic)
    n.open(net.transport())
    return n


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    clock, net = FakeClock(), MemoryNetwork()
    a, b = node("a", B, clock, net), node("b", A, clock, net)
    net.nodes = {A: a, B: b}
    yield Pair(a, b, net, clock)
    await a.stop()
    await b.stop()


def register(iid: str) -> Callable[[Replica, int], object]:
    info = InstanceInfo(app="SVC", instance_id=iid, host_name="h", ip_addr="10.0.0.1")
    return lambda replica, now: replica.register(info, now)


def holds(n: Node, *iids: str) -> bool:
    return all(n.replica.visible(InstanceKey("SVC", iid)) is not None for iid in iids)


async def test_the_first_step_pulls_and_anti_entropy_comes_at_its_interval(pair: Pair) -> None:
    pair.b.write(register("i-1"))
    pair.a.step()
    await settle()
    assert holds(pair.a, "i-1") and pair.a.in_sync and len(pair.digests_to(B)) == 1  # the initial pull
    pair.clock.advance(999)
    assert pair.a.step() == T0 + 1_000 and len(pair.digests_to(B)) == 1
    pair.clock.advance(1)
    pair.a.step()
    await settle()
    assert len(pair.digests_to(B)) == 2  # the interval is the core's, not a shell timer


async def test_a_write_is_published_at_once_and_pushed_at_the_next_step(pair: Pair) -> None:
    pair.a.step()  # the initial pull
    await settle()
    pair.a.write(register("i-1"))
    assert [event.key.instance_id for event in pair.a.feed.history] == ["i-1"]  # before any step
    assert not pair.pushes_to(B)
    pair.a.step()
    await settle()
    assert holds(pair.b, "i-1") and len(pair.pushes_to(B)) == 1


async def test_one_push_in_flight_per_peer_and_the_rest_coalesced(pair: Pair) -> None:
    pair.a.step()  # the initial pull is not a push: it passes the gate
    await settle()
    gate = pair.net.gates[B] = asyncio.Event()
    pair.a.write(register("i-1"))
    pair.a.step()
    await settle()
    for n in (2, 3, 4):  # while the first push waits at the slow peer
        pair.a.write(register(f"i-{n}"))
        pair.a.step()
        await settle()
    gate.set()
    await settle()
    pair.a.step()
    await settle()
    pushes = pair.pushes_to(B)
    assert [sorted(r.key.instance_id for r in p.delta.records) for p in pushes] == [["i-1"], ["i-2", "i-3", "i-4"]]
    assert holds(pair.b, "i-1", "i-2", "i-3", "i-4")


async def test_a_peer_that_refuses_is_backed_off_then_gets_everything_it_missed(pair: Pair) -> None:
    pair.a.step()
    await settle()
    pair.net.cut.add(B)
    pair.a.write(register("i-1"))
    pair.a.step()
    await settle()
    link = pair.a.links[B]
    assert not link.reachable and link.failures == 1 and len(pair.net.refused) == 1
    pair.a.write(register("i-2"))
    pair.a.step()
    await settle()
    assert len(pair.net.refused) == 1  # backing off: not even tried
    pair.net.cut.clear()
    pair.clock.advance(300)  # past the first back-off (at most 0.2 s)
    pair.a.write(register("i-3"))
    pair.a.step()
    await settle()
    assert link.reachable and holds(pair.b, "i-1", "i-2", "i-3")  # the failed push was resent, not skipped
    assert len(pair.pushes_to(B)) == 1


async def test_a_digest_reply_brings_a_repair_push_for_what_the_peer_lacks(pair: Pair) -> None:
    pair.net.cut.add(B)
    pair.a.write(register("i-1"))  # b never gets the push
    pair.a.step()
    await settle()
    pair.net.cut.clear()
    pair.clock.advance(10_000)
    pair.a.step()  # anti-entropy: a asks b, b's reply shows it lacks a's write, a repairs it
    await settle()
    assert holds(pair.b, "i-1") and pair.pushes_to(B)


async def test_a_link_that_failed_a_pull_gets_no_push_until_its_back_off_ends(pair: Pair) -> None:
    pair.net.cut.add(B)
    pair.a.step()  # the initial pull fails: the link backs off
    await settle()
    assert [type(m).__name__ for _, m in pair.net.refused] == ["Digest"]
    pair.a.write(register("i-1"))
    pair.a.step()
    await settle()
    assert len(pair.net.refused) == 1  # the push counted as failed at once, not sent
    pair.net.cut.clear()
    pair.clock.advance(300)
    pair.a.write(register("i-2"))
    pair.a.step()
    await settle()
    assert holds(pair.b, "i-1", "i-2")


@pytest.mark.parametrize("reachable", [True, False])
async def test_the_first_pull_is_done_once_it_ended_whether_it_got_the_registry_or_failed(pair: Pair,
                                                                                           reachable: bool) -> None:
    pair.b.write(register("i-1"))
    if not reachable:
        pair.net.cut.add(B)
    assert not pair.a.first_pull_done.is_set()  # app.py keeps the port closed meanwhile
    pair.a.step()  # the initial pull
    await settle()
    assert pair.a.first_pull_done.is_set() and holds(pair.a, "i-1") == reachable == pair.a.in_sync


def paged_registry(n: Node, count: int, page_items: int) -> None:
    """`count` instances at `n`, which answers a digest `page_items` changes a page."""
    n.replica.config = dataclasses.replace(n.replica.config, max_page_items=page_items)
    for k in range(count):
        n.write(register(f"i-{k}"))


async def test_an_empty_node_pulls_every_page_from_one_streamed_request(pair: Pair) -> None:
    paged_registry(pair.b, 20, page_items=10)  # 20 registrations and 20 renewals: 4 pages
    pair.a.step()  # the initial pull
    await settle()
    assert holds(pair.a, *(f"i-{k}" for k in range(20))) and pair.a.in_sync
    assert len(pair.digests_to(B)) == 1 and pair.a.links[B].pulls_streamed
    assert pair.a.anti_entropy.items_received == 40


async def test_a_peer_that_refuses_streamed_pulls_is_pulled_page_by_page(pair: Pair) -> None:
    pair.net.streamless.add(B)  # a node from before streamed pulls: 404
    paged_registry(pair.b, 20, page_items=10)
    pair.a.step()
    await settle()
    assert holds(pair.a, *(f"i-{k}" for k in range(20))) and pair.a.in_sync
    assert len(pair.digests_to(B)) == 4 and not pair.a.links[B].pulls_streamed  # one digest a page
    assert pair.a.links[B].reachable and pair.a.anti_entropy.items_received == 40
    pair.clock.advance(1_000)
    pair.a.step()  # the next round asks page by page at once
    await settle()
    assert len(pair.digests_to(B)) == 5 and not pair.a.links[B].pulls_streamed


async def test_a_stream_cut_mid_pull_keeps_its_pages_and_a_later_round_resumes(pair: Pair) -> None:
    paged_registry(pair.b, 20, page_items=10)
    pair.a.step()
    for _ in range(20):  # turn by turn until the first page is applied, then the peer goes away
        await asyncio.sleep(0)
        if pair.a.anti_entropy.items_received:
            break
    pair.net.cut.add(B)
    await settle()
    link = pair.a.links[B]
    assert pair.a.anti_entropy.items_received == 10 and not link.reachable and not pair.a.in_sync
    pair.net.cut.clear()
    pair.clock.advance(1_000)  # past the back-off and at the next anti-entropy round
    pair.a.step()
    await settle()
    assert holds(pair.a, *(f"i-{k}" for k in range(20))) and pair.a.in_sync and link.pulls_streamed
    assert pair.digests_to(B)[-1].since > 0  # from the watermark the first page left, not from scratch
    assert pair.a.anti_entropy.items_received == 40
