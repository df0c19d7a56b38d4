"""RegistryClient: the public face of the client, wiring the transport, cache, sync loop and registrar."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from types import TracebackType
from typing import Callable, Mapping, Sequence

from ._backoff import Backoff
from ._balancer import Strategy, make_strategy
from ._cache import Listener, RegistryCache
from ._config import ClientConfig
from ._http import NodePool
from ._model import Instance, Registration
from ._registrar import Registrar
from ._sync import Syncer

log = logging.getLogger(__name__)

STATUSES = frozenset({"UP", "DOWN", "STARTING", "OUT_OF_SERVICE", "UNKNOWN"})


def _status(value: str) -> str:
    status = str(value).upper()
    if status not in STATUSES:
        raise ValueError(f"unknown status {value!r}; expected one of {sorted(STATUSES)}")
    return status


class RegistryClient:
    """An async discovery client for apreg or any Eureka server.

    Reads (`instances`, `choose`) come from a local cache kept current in the background and never wait on
    the network; when every node is down they keep answering from the last known state, and `staleness()`
    says how old it is. Registrations are renewed in the background and cancelled on `close()`.

    `registries` are the nodes' base URLs (a comma-separated string works too), tried in order with failover.
    Use as `async with RegistryClient(urls) as client:`, or call `start()` and `close()` yourself.
    `clock` (monotonic seconds) and `rng` (floats in [0, 1)) are injectable for tests.
    """

    def __init__(self, registries: Sequence[str], config: ClientConfig | None = None, *,
                 strategy: Strategy | None = None, clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        if isinstance(registries, str):
            registries = [u for u in registries.split(",") if u]
        if not registries:
            raise ValueError("at least one registry URL is needed")
        self.config = config or ClientConfig()
        self._urls = list(registries)
        self._clock = clock
        self._rng = rng
        self._strategy = strategy or make_strategy(self.config.strategy, self.config.zone, rng)
        self._cache = RegistryCache()
        self._pool: NodePool | None = None
        self._syncer: Syncer | None = None
        self._registrar: Registrar | None = None
        self._sync_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "RegistryClient":
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Start syncing; wait up to `config.start_timeout` for the first full fetch (a cold start is not an error)."""
        if self._pool is not None:
            return
        backoff = Backoff(self.config.backoff_base, self.config.backoff_cap, self._rng)
        self._pool = NodePool(self._urls, self.config, self._clock)
        self._syncer = Syncer(self._pool, self._cache, self.config, self._clock, backoff)
        self._registrar = Registrar(self._pool, self.config, backoff)
        if not self.config.discover:
            return
        self._sync_task = asyncio.create_task(self._syncer.run(), name="apreg-sync")
        try:
            await asyncio.wait_for(self._syncer.warm.wait(), self.config.start_timeout)
        except asyncio.TimeoutError:
            log.warning("no registry node answered within %.1f s; starting with an empty cache",
                        self.config.start_timeout)

    async def close(self) -> None:
        """Cancel this client's registrations, stop syncing and release connections."""
        if self._pool is None:
            return
        assert self._registrar is not None
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        await self._registrar.close()
        await self._pool.close()
        self._pool = self._syncer = self._registrar = self._sync_task = None

    # registration

    async def register(self, app: str, *, host: str, port: int, instance_id: str | None = None,
                       ip: str | None = None, metadata: Mapping[str, str] | None = None,
                       renewal_interval: float = 30, lease_duration: float = 90, status: str = "UP",
                       secure_port: int | None = None, vip_address: str | None = None) -> Registration:
        """Register an instance and keep it registered until `cancel()` or `close()`.

        If no node answers now the client keeps trying in the background (`Registration.registered` tells).
        `instance_id` defaults to Eureka's "host:app:port"; `ip` defaults to `host`.
        """
        if renewal_interval <= 0 or lease_duration < renewal_interval:
            raise ValueError("need 0 < renewal_interval <= lease_duration")
        reg = Registration(
            app=app.upper(), instance_id=instance_id or f"{host}:{app.lower()}:{port}", host_name=host,
            ip_addr=ip or host, port=port, renewal_interval=renewal_interval, lease_duration=lease_duration,
            last_dirty_timestamp=time.time_ns() // 1_000_000, metadata=dict(metadata or {}), status=_status(status),
            secure_port=secure_port, vip_address=vip_address)
        await self._started_registrar().add(reg)
        return reg

    async def cancel(self, app: str, instance_id: str) -> None:
        """Stop renewing one of our registrations and remove it from the registry."""
        await self._started_registrar().remove(app.upper(), instance_id)

    @property
    def registrations(self) -> list[Registration]:
        return self._registrar.registrations if self._registrar is not None else []

    async def set_status(self, app: str, instance_id: str, status: str) -> None:
        """Set a status override (e.g. OUT_OF_SERVICE) on any instance; raises InstanceNotFound if unknown."""
        await self._started_registrar().set_status(app.upper(), instance_id, _status(status))

    async def clear_status(self, app: str, instance_id: str, fallback: str | None = None) -> None:
        """Remove a status override; the status becomes `fallback` (for our own instances, their own status)."""
        await self._started_registrar().clear_status(app.upper(), instance_id,
                                                     _status(fallback) if fallback else None)

    async def update_metadata(self, app: str, instance_id: str, metadata: Mapping[str, str]) -> None:
        """Merge keys into an instance's metadata at the registry (and into our registration, if ours)."""
        if not metadata:
            return
        await self._started_registrar().update_metadata(app.upper(), instance_id, metadata)

    # discovery

    async def instances(self, app: str) -> tuple[Instance, ...]:
        """The UP instances of `app` from the local cache (sorted by instance id)."""
        return self._cache.view(app.upper()).up

    async def all_instances(self, app: str) -> tuple[Instance, ...]:
        """Instances of `app` in every status, from the local cache."""
        return self._cache.all_instances(app.upper())

    async def choose(self, app: str) -> Instance | None:
        """One UP instance of `app` picked by the configured strategy, or None when there is none."""
        return self._strategy.choose(self._cache.view(app.upper()))

    def apps(self) -> list[str]:
        return self._cache.apps()

    async def refresh(self) -> None:
        """Fetch the whole registry now (raises RegistryUnavailable if no node answers)."""
        if self._syncer is None:
            raise RuntimeError("the client is not started")
        await self._syncer.full_fetch()

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(APP, up_instances)` on the event loop whenever an app's UP list changes."""
        self._cache.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._cache.remove_listener(listener)

    # freshness

    def staleness(self) -> float:
        """Seconds since a registry node last confirmed the cache (inf before the first sync)."""
        return self._syncer.staleness() if self._syncer is not None else float("inf")

    @property
    def stale(self) -> bool:
        """True when the cache has gone unconfirmed for longer than `config.stale_after`."""
        return self.staleness() > self.config.stale_after

    @property
    def warm(self) -> bool:
        """True once a full fetch has succeeded."""
        return self._syncer is not None and self._syncer.warm.is_set()

    @property
    def streaming(self) -> bool:
        """True while the cache follows a node's change stream (False: polling or disconnected)."""
        return self._syncer is not None and self._syncer.streaming

    def _started_registrar(self) -> Registrar:
        if self._registrar is None:
            raise RuntimeError("the client is not started: use `async with RegistryClient(...)` or `start()`")
        return self._registrar
