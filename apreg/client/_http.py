"""HTTP to a set of registry nodes: a timeout on every call, failover in order, a circuit breaker per node.

The node that answered last is tried first next time (as Eureka clients stick to a working server), so a
dead node costs one failed attempt, and nothing at all once its circuit is open.
"""
from __future__ import annotations

import asyncio
import json as jsonlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import aiohttp

from ._breaker import CircuitBreaker
from ._config import ClientConfig
from ._errors import RegistryUnavailable

# Answers that mean "this node cannot serve now, ask another": Eureka answers reads with 403 while it has not
# synced yet, and a 5xx is the node's failure, not the request's.
FAILOVER_STATUSES = frozenset({403, 500, 502, 503, 504})
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
ACCEPT_JSON = {"Accept": "application/json"}


@dataclass(slots=True)
class Node:
    url: str
    breaker: CircuitBreaker


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    node: str

    def json(self) -> Any:
        return jsonlib.loads(self.body)


class NodeFailed(Exception):
    """One node failed one attempt (internal: the pool moves on to the next node)."""


class NodePool:
    """Owns the aiohttp session; create inside a running event loop and `close()` when done."""

    def __init__(self, urls: list[str], config: ClientConfig, clock: Callable[[], float]) -> None:
        if not urls:
            raise ValueError("at least one registry URL is needed")
        self.nodes = [Node(u.rstrip("/"), CircuitBreaker(config.breaker_failures, config.breaker_cooldown, clock))
                      for u in urls]
        self._config = config
        self._preferred = 0
        self._session = aiohttp.ClientSession()
        self._timeout = aiohttp.ClientTimeout(total=config.request_timeout, sock_connect=config.connect_timeout)

    async def close(self) -> None:
        await self._session.close()

    def order(self, first: str | None = None) -> list[Node]:
        """Nodes in the order to try them: `first` if given, then the last good one, then the configured order."""
        start = self._preferred
        if first is not None:
            start = next((i for i, n in enumerate(self.nodes) if n.url == first), start)
        return self.nodes[start:] + self.nodes[:start]

    async def open(self, node: Node, method: str, path: str, *, params: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | None = None, json: Any = None,
                   timeout: aiohttp.ClientTimeout | None = None) -> aiohttp.ClientResponse:
        """One attempt at one node; the caller must release the response. Raises NodeFailed."""
        if not node.breaker.allow():
            raise NodeFailed(f"{node.url}: circuit open")
        try:
            resp = await self._session.request(method, node.url + path, params=params, headers=headers, json=json,
                                               timeout=timeout or self._timeout)
        except NETWORK_ERRORS as exc:
            node.breaker.record_failure()
            raise NodeFailed(f"{node.url}: {type(exc).__name__} {exc}".rstrip()) from exc
        if resp.status in FAILOVER_STATUSES:
            resp.release()
            node.breaker.record_failure()
            raise NodeFailed(f"{node.url}: HTTP {resp.status}")
        node.breaker.record_success()
        self._preferred = self.nodes.index(node)
        return resp

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None, json: Any = None,
                      first: str | None = None) -> Reply:
        """Send to the first node that answers; raises RegistryUnavailable when none does."""
        failures: list[str] = []
        for node in self.order(first):
            try:
                resp = await self.open(node, method, path, params=params, headers=headers, json=json)
                async with resp:
                    body = await resp.read()
            except NodeFailed as exc:
                failures.append(str(exc))
                continue
            except NETWORK_ERRORS as exc:  # the body failed to arrive: a node failure after all
                node.breaker.record_failure()
                failures.append(f"{node.url}: {type(exc).__name__} {exc}".rstrip())
                continue
            return Reply(resp.status, body, node.url)
        raise RegistryUnavailable(failures)
