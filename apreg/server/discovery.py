"""Peers found in DNS: every address a name resolves to (A and AAAA records), this node's own left out.

This is what a Kubernetes StatefulSet behind a headless Service gives: one name that resolves to every pod.
The name is resolved again every `--peers-dns-interval` seconds and the node's peers follow (Node.set_peers).
"""
from __future__ import annotations

import asyncio
import socket
from typing import Awaitable, Callable
from urllib.parse import urlsplit

Resolver = Callable[[str, int], Awaitable[list[str]]]  # (host, port) -> IP addresses


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for `host` (getaddrinfo: /etc/hosts, then DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def parse_target(value: str, default_port: int) -> tuple[str, int]:
    """`NAME[:PORT]`; ValueError for what is not one (SRV names, `_service._proto.name`, are not read yet)."""
    name, _, port = value.strip().rpartition(":") if value.count(":") == 1 else (value.strip(), "", "")
    if not name:
        raise ValueError(f"peers-dns {value!r} must be NAME or NAME:PORT")
    if name.startswith("_"):
        raise ValueError(f"peers-dns {value!r}: SRV lookups are not supported yet; give NAME:PORT (A/AAAA)")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"peers-dns {value!r}: port must be 1-65535")
    return name, int(port) if port else default_port


async def peers_from_dns(target: str, default_port: int, scheme: str, own_urls: tuple[str, ...],
                         resolver: Resolver) -> tuple[str, ...]:
    """Peer base URLs for every address of `target`, leaving out the addresses `own_urls` name or resolve to."""
    name, port = parse_target(target, default_port)
    own: set[tuple[str, int]] = set()
    for url in own_urls:
        parts = urlsplit(url)
        if parts.hostname:
            own_port = parts.port or default_port
            own.add((parts.hostname, own_port))
            own.update((address, own_port) for address in await _addresses(parts.hostname, own_port, resolver))
    return tuple(sorted(f"{scheme}://{_host(address)}:{port}" for address in await resolver(name, port)
                        if (address, port) not in own))


async def _addresses(host: str, port: int, resolver: Resolver) -> list[str]:
    try:
        return await resolver(host, port)
    except OSError:
        return []  # an advertised name that does not resolve hides no peer


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
