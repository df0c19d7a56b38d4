"""SRV peer discovery against a DNS server on 127.0.0.1 (real UDP and TCP sockets): answers, NXDOMAIN, no
records, truncation, silence, and a node's peers following a changing answer set."""
from __future__ import annotations

import time
from typing import AsyncIterator

import pytest

from apreg.server.discovery import DnsLookupError, parse_target, peers_from_dns, srv_lookup
from apreg.server.node import Node
from apreg.server.settings import NodeSettings

from .dns_responder import DnsResponder
from .harness import PortHold, eventually, serve_node

NAME = "_apreg._tcp.registry.test"


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsResponder]:
    server = await DnsResponder().start()
    yield server
    await server.stop()


async def test_srv_targets_and_ports_come_back_as_peers(dns_server: DnsResponder) -> None:
    dns_server.srv[NAME] = [("Node-B.registry.test", 8762), ("node-c.registry.test", 9000)]
    assert await srv_lookup([dns_server.address])(NAME) == [("node-b.registry.test", 8762),
                                                            ("node-c.registry.test", 9000)]


async def test_nxdomain_no_records_and_silence_are_lookup_errors(dns_server: DnsResponder) -> None:
    lookup = srv_lookup([dns_server.address], timeout=0.2, lifetime=0.6)
    with pytest.raises(DnsLookupError, match="NXDOMAIN"):
        await lookup(NAME)
    dns_server.srv[NAME] = []
    with pytest.raises(DnsLookupError, match="no SRV records"):
        await lookup(NAME)
    dns_server.silent = True
    start = time.monotonic()
    with pytest.raises(DnsLookupError, match="no answer"):
        await lookup(NAME)
    assert time.monotonic() - start < 2  # bounded by the lifetime, not hanging
    assert dns_server.udp_queries >= 3


async def test_a_truncated_udp_answer_is_asked_again_over_tcp(dns_server: DnsResponder) -> None:
    dns_server.srv[NAME] = [(f"n{i}.registry.test", 8761) for i in range(40)]  # too many for 512 bytes anyway
    dns_server.truncate = True
    found = await srv_lookup([dns_server.address])(NAME)
    assert len(found) == 40 and dns_server.tcp_queries == 1


async def test_srv_targets_naming_or_resolving_to_this_node_are_left_out(dns_server: DnsResponder) -> None:
    dns_server.srv[NAME] = [("me.registry.test", 8761), ("alias.registry.test", 8761),
                            ("alias.registry.test", 8762), ("other.registry.test", 8761)]
    addresses = {"me.registry.test": ["10.0.0.1"], "alias.registry.test": ["10.0.0.1"],
                 "other.registry.test": ["10.0.0.2"]}

    async def resolver(host: str, _: int) -> list[str]:
        return addresses[host]

    found = await peers_from_dns(NAME, 8761, "https", ("https://ME.registry.test:8761",), resolver,
                                 srv_lookup([dns_server.address]))
    # alias resolves to our address but at another port: another node on this host
    assert found == ("https://alias.registry.test:8762", "https://other.registry.test:8761")


def test_an_srv_name_takes_no_port() -> None:
    assert parse_target(NAME, 8761) == (NAME, 8761)
    with pytest.raises(ValueError, match="takes no port"):
        parse_target(NAME + ":8761", 8761)
    assert NodeSettings(peers_dns=NAME).validate().peers_dns == NAME


async def test_a_node_follows_a_changing_srv_answer_and_keeps_its_peers_through_nxdomain(
        dns_server: DnsResponder) -> None:
    """Three nodes on 127.0.0.1-3 at one port; the SRV targets are the nodes' addresses written as names."""
    hold = PortHold()
    port = hold.port
    dns_server.srv[NAME] = [("127.0.0.1", port), ("127.0.0.2", port)]
    lookup = srv_lookup([dns_server.address], timeout=0.2, lifetime=0.5)
    runners, nodes = [], []
    try:
        for last in (1, 2, 3):
            settings = NodeSettings(host=f"127.0.0.{last}", port=port, node_id=f"n{last}", anti_entropy_interval=0.2,
                                    peers_dns=NAME, peers_dns_interval=0.2)
            nodes.append(Node(settings, srv=lookup))
            runners.append(await serve_node(nodes[-1]))

        async def peers_are(*lasts: int) -> bool:
            return set(nodes[0].links) == {f"http://127.0.0.{last}:{port}" for last in lasts}

        assert await eventually(lambda: peers_are(2), 10)
        dns_server.srv[NAME].append(("127.0.0.3", port))  # scaled up
        assert await eventually(lambda: peers_are(2, 3), 10)
        del dns_server.srv[NAME]  # the name is gone: a DNS blip must not drop every peer
        queries = dns_server.udp_queries
        assert await eventually(lambda: _true(dns_server.udp_queries >= queries + 2), 10)
        assert await peers_are(2, 3)
        dns_server.srv[NAME] = [("127.0.0.1", port), ("127.0.0.3", port)]  # scaled down
        assert await eventually(lambda: peers_are(3), 10)
    finally:
        for runner in runners:
            await runner.cleanup()
        hold.close()


async def _true(value: bool) -> bool:
    return value
