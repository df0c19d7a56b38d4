"""This node's clock against its peers' (core/clock.py), in words and figures, for the log and `/v1/status`."""
from __future__ import annotations

from typing import Any

from apreg.core.clock import DEADBAND_SHARE, HybridClock
from apreg.core.held import Held


def status_section(clock: HybridClock, held: Held) -> dict[str, Any]:
    return {"corrected": clock.corrected, "offset_ms": clock.offset_ms,
            "peer_offsets_ms": {replica: offset for replica, (offset, _) in sorted(clock.peer_offsets.items())},
            "held_back": len(held), "skew_rejections": clock.skew_rejections}


def describe(clock: HybridClock) -> str:
    """One log line per transition (corrected or not)."""
    peers = ", ".join(f"{replica} {offset / 1000:+.1f} s"
                      for replica, (offset, _) in sorted(clock.peer_offsets.items()))
    deadband_s = clock.max_skew_ms / DEADBAND_SHARE / 1000
    if not clock.corrected:
        return f"clock back within {deadband_s:g} s of the peers' median (peers' clocks against ours: {peers})"
    ahead = -clock.offset_ms > 0
    return (f"CLOCK SKEW: this node's wall clock is more than {deadband_s:g} s {'ahead of' if ahead else 'behind'} "
            f"its peers' median (peers' clocks against ours: {peers}); stamping writes "
            f"{abs(clock.offset_ms) / 1000:.1f} s {'earlier' if ahead else 'later'} than it reads until it is fixed "
            "(leases keep counting on it)")
