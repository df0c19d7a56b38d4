"""This node's clock against its peers' (core/clock.py), in words and figures, for the log and `/v1/status`."""
from __future__ import annotations

from typing import Any

from apreg.core.clock import ClockView
from apreg.core.status import ReplicaStatus


def status_section(status: ReplicaStatus) -> dict[str, Any]:
    clock = status.clock
    return {"corrected": clock.corrected, "offset_ms": clock.offset_ms, "peer_offsets_ms": dict(clock.peer_offsets_ms),
            "held_back": status.held_back, "skew_rejections": status.clock_skew_rejections}


def describe(clock: ClockView) -> str:
    """One log line per transition (corrected or not)."""
    peers = ", ".join(f"{replica} {offset / 1000:+.1f} s" for replica, offset in clock.peer_offsets_ms.items())
    deadband_s = clock.deadband_ms / 1000
    if not clock.corrected:
        return f"clock back within {deadband_s:g} s of the peers' median (peers' clocks against ours: {peers})"
    ahead = -clock.offset_ms > 0
    return (f"CLOCK SKEW: this node's wall clock is more than {deadband_s:g} s {'ahead of' if ahead else 'behind'} "
            f"its peers' median (peers' clocks against ours: {peers}); stamping writes "
            f"{abs(clock.offset_ms) / 1000:.1f} s {'earlier' if ahead else 'later'} than it reads until it is fixed "
            "(leases keep counting on it)")
