"""Clock skew past the guard, loudly: the status section, the metrics and the log line (README "Clock skew").

Node 0's clock runs 90 s ahead and node 1's 30 s ahead of node 2's, then the skew goes away. Leases are short
(renewal 0.5 s, lease 1.5 s) and an instance renews only at node 0: nothing may be evicted anywhere.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import pytest

from apreg.peer.auth import wall_ms
from apreg.server.offset_clock import OFFSET_FILE_ENV, OffsetClock, node_clock

from .harness import LocalCluster, eventually, instance_body


@dataclass
class Skewed:
    offset_ms: int

    def __call__(self) -> int:
        return wall_ms() + self.offset_ms


async def _status(c: LocalCluster, i: int) -> dict[str, object]:
    return json.loads((await c.request(i, "GET", "/v1/status"))[1])  # type: ignore[no-any-return]


async def _renew_at_0(c: LocalCluster) -> None:
    while True:
        await c.request(0, "PUT", "/eureka/apps/SKEW/s1?status=UP")
        await asyncio.sleep(0.3)


async def test_a_node_90_s_ahead_says_so_corrects_and_evicts_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="apreg.node")
    clocks = {0: Skewed(90_000), 1: Skewed(30_000)}
    async with LocalCluster(3, clocks=dict(clocks), eviction_interval=0.2, renewal_window=1.5) as c:
        assert (await c.request(0, "POST", "/eureka/apps/skew",
                                json_body=instance_body("skew", "s1", renewal=0.5, duration=1.5)))[0] == 204
        renewer = asyncio.create_task(_renew_at_0(c))
        try:
            async def corrected() -> bool:  # having heard both peers (one alone moves the median half as far)
                section = (await _status(c, 0))["clock"]
                return bool(section["corrected"]) and len(section["peer_offsets_ms"]) == 2  # type: ignore[index]
            assert await eventually(corrected, timeout=5)
            section = (await _status(c, 0))["clock"]
            assert abs(section["offset_ms"] + 45_000) < 2_000, section  # type: ignore[index]
            peers = section["peer_offsets_ms"].values()  # type: ignore[index]
            assert sorted(round(offset / 1000) for offset in peers) == [-90, -60]
            metrics = (await c.request(0, "GET", "/metrics"))[1].decode()
            offset_line = next(line for line in metrics.splitlines() if line.startswith("apreg_clock_offset_seconds"))
            assert abs(float(offset_line.split()[1]) + 45) < 2, offset_line
            assert "apreg_clock_held_back" in metrics and "apreg_peer_clock_offset_seconds{" in metrics
            assert await eventually(lambda: _logged(caplog, "CLOCK SKEW: this node's wall clock is more than 15 s "
                                                            "ahead of"), timeout=5)
            assert await eventually(lambda: _everywhere(c, {"s1"}), timeout=5)
            await asyncio.sleep(3)  # two leases' worth of renewals at node 0 only
            clocks[0].offset_ms = clocks[1].offset_ms = 0  # the skew goes away
            assert await eventually(lambda: _logged(caplog, "clock back within 15 s"), timeout=8)

            async def none_corrected() -> bool:
                return not any([(await _status(c, i))["clock"]["corrected"] for i in range(3)])  # type: ignore[index]
            assert await eventually(none_corrected, timeout=5)
            await asyncio.sleep(2)
            assert await _everywhere(c, {"s1"})
            assert [(await _status(c, i))["evictions"] for i in range(3)] == [0, 0, 0]
        finally:
            renewer.cancel()


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def _everywhere(c: LocalCluster, ids: set[str]) -> bool:
    return all([await c.ids(i) == ids for i in range(3)])


def test_the_offset_file_steps_the_clock_and_is_reread(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    path = f"{tmp_path}/offset"
    assert node_clock({}) is wall_ms
    clock = node_clock({OFFSET_FILE_ENV: path})
    assert isinstance(clock, OffsetClock) and abs(clock() - wall_ms()) < 1_000  # no file yet: no offset
    with open(path, "w") as file:
        file.write("90000\n")
    monkeypatch.setattr(clock, "_read_at", float("-inf"))  # instead of waiting for the re-read
    assert abs(clock() - wall_ms() - 90_000) < 1_000
    with open(path, "w") as file:
        file.write("soon")
    clock._read_at = float("-inf")
    assert clock.offset_ms == 90_000 or abs(clock() - wall_ms() - 90_000) < 1_000  # a bad value keeps the offset
