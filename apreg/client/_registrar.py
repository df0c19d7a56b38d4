"""Keeps this client's instances registered: register, renew in the background, re-register when forgotten.

A renew answered 404 means the registry does not know the instance (it restarted empty, evicted it, or holds
an older copy) and is followed by an immediate register, as Eureka clients do. Failed rounds are retried with
jittered backoff, never later than the renewal interval, so an instance comes back soon after the nodes do.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Mapping
from urllib.parse import quote

from ._backoff import Backoff
from ._codec import registration_body
from ._config import ClientConfig
from ._errors import InstanceNotFound, RegistryUnavailable, RequestRejected
from ._http import NodePool, Reply
from ._model import Registration

log = logging.getLogger(__name__)


class Registrar:
    def __init__(self, pool: NodePool, config: ClientConfig, backoff: Backoff) -> None:
        self._pool = pool
        self._prefix = config.eureka_prefix
        self._backoff = backoff
        self._owned: dict[tuple[str, str], Registration] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    @property
    def registrations(self) -> list[Registration]:
        return list(self._owned.values())

    async def add(self, reg: Registration) -> None:
        """Register now (one attempt over all nodes) and keep it registered in the background."""
        key = (reg.app, reg.instance_id)
        self._stop(key)
        self._owned[key] = reg
        try:
            await self._register(reg, told=True)
        except RegistryUnavailable as exc:  # the caller sees reg.registered; the loop warns if it keeps failing
            reg.last_error = str(exc)
            log.info("registering %s/%s failed, will retry: %s", reg.app, reg.instance_id, exc)
        self._tasks[key] = asyncio.create_task(self._keep_alive(reg), name=f"apreg-renew-{reg.app}/{reg.instance_id}")

    async def remove(self, app: str, instance_id: str) -> None:
        """Stop renewing and cancel at the registry (a cancel nobody hears ends with the lease anyway)."""
        key = (app, instance_id)
        self._stop(key)
        reg = self._owned.pop(key, None)
        if reg is not None and not reg.registered:
            return  # no node ever acknowledged it (or the last one to answer had forgotten it)
        try:
            reply = await self._pool.request("DELETE", self._path(app, instance_id))
        except RegistryUnavailable as exc:
            log.warning("cancelling %s/%s failed; its lease will expire: %s", app, instance_id, exc)
            return
        if reply.status not in (200, 404):
            log.warning("cancelling %s/%s: registry answered %s", app, instance_id, reply.status)

    async def close(self) -> None:
        await asyncio.gather(*(self.remove(app, iid) for app, iid in list(self._owned)))

    async def set_status(self, app: str, instance_id: str, status: str) -> None:
        reg = self._owned.get((app, instance_id))
        params = {"value": status}
        if reg is not None:
            params["lastDirtyTimestamp"] = str(reg.last_dirty_timestamp)
        reply = await self._pool.request("PUT", self._path(app, instance_id) + "/status", params=params)
        self._expect_ok(reply)
        if reg is not None:
            reg.overridden_status = status

    async def clear_status(self, app: str, instance_id: str, fallback: str | None) -> None:
        reg = self._owned.get((app, instance_id))
        if fallback is None and reg is not None:
            fallback = reg.status
        params = {"value": fallback} if fallback else None
        reply = await self._pool.request("DELETE", self._path(app, instance_id) + "/status", params=params)
        self._expect_ok(reply)
        if reg is not None:
            reg.overridden_status = None

    async def update_metadata(self, app: str, instance_id: str, metadata: Mapping[str, str]) -> None:
        reply = await self._pool.request("PUT", self._path(app, instance_id) + "/metadata", params=dict(metadata))
        self._expect_ok(reply)
        reg = self._owned.get((app, instance_id))
        if reg is not None:
            reg.metadata.update(metadata)

    def _stop(self, key: tuple[str, str]) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    def _path(self, app: str, instance_id: str) -> str:
        return f"{self._prefix}/apps/{quote(app, safe='')}/{quote(instance_id, safe='')}"

    @staticmethod
    def _expect_ok(reply: Reply) -> None:
        if reply.status == 404:
            raise InstanceNotFound(f"{reply.node} does not know the instance")
        if not 200 <= reply.status < 300:
            raise RequestRejected(reply.status, reply.body.decode("utf-8", "replace")[:200])

    async def _keep_alive(self, reg: Registration) -> None:
        """Renew, or register until it takes. Failures are warned about once per outage of an instance that
        was registered; until the first success the caller watches `reg` (INFO lines only)."""
        failures = 0 if reg.registered else 1
        warned, outage_level = False, logging.WARNING if reg.registered else logging.INFO
        while True:
            if failures == 0:
                delay = reg.renewal_interval
            else:
                delay = min(reg.renewal_interval, self._backoff.delay(failures - 1))
            await asyncio.sleep(delay)
            try:
                ok = await (self._renew(reg) if reg.registered else self._register(reg))
                reason = "the registry refused it"
            except RegistryUnavailable as exc:
                ok, reason = False, str(exc)
                if not reg.registered:
                    reg.last_error = reason
            if ok:
                failures, warned, outage_level = 0, False, logging.WARNING
                continue
            failures += 1
            if not warned:  # once per outage, not once per retry
                log.log(outage_level, "keeping %s/%s registered failed, retrying: %s", reg.app, reg.instance_id,
                        reason)
                warned = True

    async def _renew(self, reg: Registration) -> bool:
        params = {"status": reg.status, "lastDirtyTimestamp": str(reg.last_dirty_timestamp)}
        reply = await self._pool.request("PUT", self._path(reg.app, reg.instance_id), params=params)
        if reply.status == 200:
            return True
        if reply.status == 404:
            log.info("%s forgot %s/%s: registering again", reply.node, reg.app, reg.instance_id)
            reg.registered = False
            return await self._register(reg)
        log.warning("renewing %s/%s: %s answered %s", reg.app, reg.instance_id, reply.node, reply.status)
        return False

    async def _register(self, reg: Registration, told: bool = False) -> bool:
        """One attempt; `told`: the caller reads the outcome from `reg`, so a refusal is not logged as well."""
        reply = await self._pool.request("POST", f"{self._prefix}/apps/{quote(reg.app, safe='')}",
                                         json=registration_body(reg))
        reg.registered = reply.status == 204
        reg.refused = 400 <= reply.status < 500
        reg.last_error = "" if reg.registered else (
            f"{reply.node} answered {reply.status}: {reply.body[:300].decode('utf-8', 'replace')}")
        if not reg.registered:
            log.log(logging.INFO if told else logging.WARNING, "registering %s/%s: %s", reg.app, reg.instance_id,
                    reg.last_error)
        return reg.registered
