"""Peers found in DNS: every address a name resolves to (A and AAAA records), or every target of an SRV name
(`_service._proto.name`, SRV records give each peer's host and port), this node's own left out.

This is what a Kubernetes StatefulSet behind a headless Service gives: one name that resolves to every pod, and
`_port-name._tcp.service` SRV records naming each pod by its stable host name. The name is resolved again every
`--peers-dns-interval` seconds and the node's peers follow (Node.set_peers). Every SRV target is a peer: priority
and weight are load-balancing hints for clients, and a replica must talk to all of them.

SRV lookups go through dnspython (the standard library cannot ask for SRV records): it reads resolv.conf
(nameservers, search list, ndots) and retries over TCP when a UDP answer comes back truncated.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

if TYPE_CHECKING:
    from .settings import NodeSettings

log = logging.getLogger("apreg.node")
Resolver = Callable[[str, int], Awaitable[list[str]]]  # (host, port) -> IP addresses
SrvLookup = Callable[[str], Awaitable[list[tuple[str, int]]]]  # SRV name -> (target host, port)
SRV_TIMEOUT_S = 2.0  # per nameserver try
SRV_LIFETIME_S = 5.0  # the whole lookup, every nameserver and retry included


class DnsLookupError(OSError):
    """An SRV lookup that found nothing (NXDOMAIN, no SRV records) or no answer in time: the peers stay as
    they are, as they do when getaddrinfo fails for an A/AAAA name."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for `host` (getaddrinfo: /etc/hosts, then DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def srv_lookup(nameservers: Sequence[tuple[str, int]] = (), timeout: float = SRV_TIMEOUT_S,
               lifetime: float = SRV_LIFETIME_S) -> SrvLookup:
    """An SRV lookup through `nameservers` (address, port), or through resolv.conf's when none are given."""
    resolver: dns.asyncresolver.Resolver | None = None

    async def lookup(name: str) -> list[tuple[str, int]]:
        nonlocal resolver
        try:
            if resolver is None:  # made on first use: a node without --peers-dns never reads resolv.conf
                resolver = dns.asyncresolver.Resolver(configure=not nameservers)
                if nameservers:
                    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers]
                resolver.timeout, resolver.lifetime = timeout, lifetime
            answer = await resolver.resolve(name, "SRV", search=True)
        except dns.resolver.NXDOMAIN:
            raise DnsLookupError(f"{name}: no such name (NXDOMAIN)") from None
        except dns.resolver.NoAnswer:
            raise DnsLookupError(f"{name}: no SRV records") from None
        except dns.exception.Timeout:
            raise DnsLookupError(f"{name}: no answer from the nameservers within {lifetime:g} s") from None
        except dns.exception.DNSException as exc:  # no nameservers configured, all of them failing, ...
            raise DnsLookupError(f"{name}: {exc}") from None
        # A target of "." says the service is decidedly not available here (RFC 2782).
        return sorted({(str(r.target).rstrip(".").lower(), int(r.port)) for r in answer if str(r.target) != "."})

    return lookup


system_srv = srv_lookup()


def is_srv(name: str) -> bool:
    return name.startswith("_")


def parse_target(value: str, default_port: int) -> tuple[str, int]:
    """`NAME[:PORT]`, or an SRV name `_service._proto.name` (its records give the ports); ValueError otherwise."""
    name, _, port = value.strip().rpartition(":") if value.count(":") == 1 else (value.strip(), "", "")
    if not name:
        raise ValueError(f"peers-dns {value!r} must be NAME, NAME:PORT or an SRV name _service._proto.NAME")
    if is_srv(name) and port:
        raise ValueError(f"peers-dns {value!r}: an SRV name takes no port (its records give the ports)")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"peers-dns {value!r}: port must be 1-65535")
    return name, int(port) if port else default_port


async def peers_from_dns(target: str, default_port: int, scheme: str, own_urls: tuple[str, ...],
                         resolver: Resolver, srv: SrvLookup = system_srv) -> tuple[str, ...]:
    """Peer base URLs for every address (or SRV target) of `target`, leaving out this node: the names and
    addresses `own_urls` give, and SRV targets that resolve to one of those addresses at that port."""
    name, port = parse_target(target, default_port)
    own: set[tuple[str, int]] = set()
    for url in own_urls:
        parts = urlsplit(url)
        if parts.hostname:
            own_port = parts.port or default_port
            own.add((parts.hostname.lower(), own_port))
            own.update((address, own_port) for address in await _addresses(parts.hostname, own_port, resolver))
    if not is_srv(name):
        found = [(address, port) for address in await resolver(name, port)]
    else:  # peers by name, so TLS verifies the host names their certificates carry
        found = []
        for host, srv_port in await srv(name):
            addresses = await _addresses(host, srv_port, resolver)
            if not any((address, srv_port) in own for address in addresses):
                found.append((host, srv_port))
    return tuple(sorted(f"{scheme}://{_host(host)}:{at}" for host, at in found if (host, at) not in own))


async def follow(settings: NodeSettings, resolver: Resolver, srv: SrvLookup,
                 set_peers: Callable[[tuple[str, ...]], None]) -> None:
    """The static peers plus whatever --peers-dns resolves to, now and every interval."""
    name, target = settings.name, settings.peers_dns
    while True:
        try:
            found = await peers_from_dns(target, settings.port, settings.scheme, (settings.url,), resolver, srv)
        except OSError as exc:  # the name is gone or DNS is down: keep the peers we have
            log.warning("node %s: cannot resolve --peers-dns %s: %s", name, target, exc)
        else:
            set_peers(tuple(dict.fromkeys((*settings.peers, *found))))
        await asyncio.sleep(settings.peers_dns_interval)


async def _addresses(host: str, port: int, resolver: Resolver) -> list[str]:
    try:
        return await resolver(host, port)
    except OSError:
        return []  # a name that does not resolve hides no peer


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
