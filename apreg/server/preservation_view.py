"""Self-preservation in words and figures, for the log, `/v1/status` and `apreg status`.

Why it engaged is the evaluation that engaged it (kept by the core), not the latest one: once the silent
instances' leases run out the latest figures fall towards nothing expected and nothing seen, which explains
nothing.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from apreg.core.preservation import PreservationStatus, PreservationView, Transition


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def figures(status: PreservationStatus, sp: PreservationView) -> str:
    return (f"{status.renewals_in_window:.1f} renewals seen in the last {sp.window_ms / 1000:g} s window of "
            f"{status.expected:.1f} expected from {status.instances} live lease(s), {status.threshold:.1f} "
            f"needed ({sp.renewal_threshold:.0%}); {status.instances_missing:.1f} instances' worth missing")


def describe_transition(transition: Transition, sp: PreservationView) -> str:
    """One log line per transition."""
    if transition.engaged:
        return (f"self-preservation ENGAGED, eviction stops: {figures(transition.status, sp)} (over "
                f"{sp.min_missing_instances:g}); holds until at least {iso_ms(sp.holds_until_ms)}, releases by "
                f"{iso_ms(sp.releases_by_ms)} if the silent instances stay silent")
    if transition.status.expected <= 0:
        return "self-preservation released, eviction resumes: no live lease is left to expect renewals from"
    return f"self-preservation released, eviction resumes: {figures(transition.status, sp)}"


def status_section(sp: PreservationView) -> dict[str, Any]:
    """The `self_preservation` object of `/v1/status`; while engaged, also why, since when and until when."""
    last = sp.last
    doc: dict[str, Any] = {
        "active": sp.active, "enabled": sp.enabled, "renewals_in_window": round(last.renewals_in_window, 2),
        "expected": round(last.expected, 2), "threshold": round(last.threshold, 2), "instances": last.instances,
        "evaluated_at": iso_ms(last.at_ms) if last.at_ms else None, "transitions": sp.transitions}
    if sp.active and sp.engaged_by is not None:
        doc |= {"reason": figures(sp.engaged_by, sp), "since": iso_ms(sp.engaged_at_ms),
                "holds_until": iso_ms(sp.holds_until_ms), "releases_by": iso_ms(sp.releases_by_ms)}
    return doc
