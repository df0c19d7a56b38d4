"""Leases and self-preservation over HTTP with short intervals (renewal 0.5 s, lease 1.5 s)."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from .harness import LocalCluster, eventually, instance_body

SHORT = dict(eviction_interval=0.2, renewal_window=1.5)


async def _register_all(c: LocalCluster, ids: list[str]) -> None:
    for k, iid in enumerate(ids):
        body = instance_body("sp", iid, renewal=0.5, duration=1.5)
        assert (await c.request(k % len(c.ports), "POST", "/eureka/apps/sp", json_body=body))[0] == 204


async def _renew_forever(c: LocalCluster, ids: list[str], renewing: set[str], at: int | None = None) -> None:
    """Renew each instance at its own node in turn, or all of them at node `at`."""
    while True:
        for k, iid in enumerate(ids):
            if iid in renewing:
                await c.request(k % len(c.ports) if at is None else at, "PUT", f"/eureka/apps/SP/{iid}?status=UP")
        await asyncio.sleep(0.4)


async def test_one_silent_instance_of_twenty_is_evicted_everywhere() -> None:
    async with LocalCluster(2, **SHORT) as c:
        ids = [f"s{k}" for k in range(20)]
        renewing = set(ids)
        await _register_all(c, ids)
        renewer = asyncio.create_task(_renew_forever(c, ids, renewing))
        try:
            await asyncio.sleep(2.0)
            assert all([await c.ids(n) == set(ids) for n in range(2)])
            renewing.discard("s0")
            assert await eventually(lambda: _all_equal(c, set(ids) - {"s0"}), timeout=4.0)
            await asyncio.sleep(1.0)  # the others keep renewing: nothing else goes
            assert all([await c.ids(n) == set(ids) - {"s0"} for n in range(2)])
            status = json.loads((await c.request(0, "GET", "/v1/status"))[1])
            assert status["self_preservation"]["active"] is False
        finally:
            renewer.cancel()


async def test_all_going_silent_engages_self_preservation_and_nothing_is_evicted(
        caplog: pytest.LogCaptureFixture) -> None:
    """Engaged: status says why and until when; each transition (found by an eviction pass or a periodic check)
    is logged exactly once."""
    caplog.set_level(logging.WARNING, logger="apreg.node")
    async with LocalCluster(2, **SHORT) as c:
        ids = [f"s{k}" for k in range(20)]
        renewing = set(ids)
        await _register_all(c, ids)
        renewer = asyncio.create_task(_renew_forever(c, ids, renewing))
        await asyncio.sleep(2.0)
        renewing.clear()
        await asyncio.sleep(3.0)  # two lease durations of silence
        for n in range(2):
            status = json.loads((await c.request(n, "GET", "/v1/status"))[1])
            sp = status["self_preservation"]
            assert sp["active"] is True and await c.ids(n) == set(ids)
            assert "instances' worth missing" in sp["reason"] and "of 60.0 expected from 20 live" in sp["reason"]
            assert sp["since"] < sp["holds_until"] <= sp["releases_by"]  # ISO times, UTC
        renewing.update(ids)  # renewals recover: the mode releases after its minimum hold (5 windows)
        assert await eventually(lambda: _preservation_off(c), timeout=12.0)
        renewer.cancel()
        transitions = sum([json.loads((await c.request(n, "GET", "/v1/status"))[1])["self_preservation"]
                           ["transitions"] for n in range(2)])
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("self-preservation")]
        assert transitions == 4 and len(lines) == 4, lines
        assert sum("ENGAGED" in line for line in lines) == 2


@pytest.mark.parametrize("self_preservation", [True, False])
async def test_instance_renewing_at_its_side_of_a_partition_is_never_evicted_there_and_returns_everywhere(
        self_preservation: bool) -> None:
    """Four instances renew at node 0 (four silent at once, more than the two a crash can explain, engage
    self-preservation on the other side)."""
    async with LocalCluster(2, self_preservation=self_preservation, **SHORT) as c:
        ids = [f"live{k}" for k in range(4)]
        await _register_all(c, ids)
        renewer = asyncio.create_task(_renew_forever(c, ids, set(ids), at=0))
        try:
            assert await eventually(lambda: _all_equal(c, set(ids)))
            c.isolate({0})
            for _ in range(15):  # node 0 must keep them all along
                await asyncio.sleep(0.2)
                assert await c.ids(0) == set(ids)
            # the other side evicts them only when self-preservation is off; either way the renewals win on heal
            assert await c.ids(1) == (set(ids) if self_preservation else set())
            c.heal()
            assert await eventually(lambda: _all_equal(c, set(ids)), timeout=5.0)
        finally:
            renewer.cancel()


async def _all_equal(c: LocalCluster, want: set[str]) -> bool:
    return all([await c.ids(n) == want for n in range(len(c.ports))])


async def _preservation_off(c: LocalCluster) -> bool:
    docs = [json.loads((await c.request(n, "GET", "/v1/status"))[1]) for n in range(len(c.ports))]
    return not any(d["self_preservation"]["active"] for d in docs)
