#!/usr/bin/env python3
"""Availability under partition: 3 nodes, SIGSTOP two, try W writes (1 s timeout
each) at the third, SIGCONT, then poll every node's local state until every
acknowledged write is visible everywhere (bounded).

SIGSTOP is not a network cut: the kernel keeps accepting TCP data for a stopped
process and delivers it on SIGCONT, so requests sent during the pause arrive late
rather than never (see anchors-measured.md). `unacked_applied_after_heal` counts
writes the client saw fail that the system applied anyway.

    bench/partition.py --system apreg --writes 50 --json part.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import install_exit_handlers, wait_until  # noqa: E402
from _systems import DRIVERS, Cluster, WriteError, open_cluster, probe_names, \
    skip_if_unavailable, write_names  # noqa: E402

NODES = 3
KEEP = 0            # the node left running


async def _converged_probes(cluster: Cluster, timeout: float) -> None:
    """A probe written at each node is readable at every node: the cluster is
    formed and replicating before we cut it."""
    probes = probe_names(cluster.n)
    for j, name in enumerate(probes):
        await cluster.put(j, name, 5)

    async def all_have() -> bool:
        for node in range(cluster.n):
            if not set(probes) <= await cluster.read_names(node, 2):
                return False
        return True

    await wait_until(all_have, timeout, 0.05, "probes visible on every node before the cut")


async def measure(system: str, writes: int, write_timeout: float = 1.0,
                  heal_timeout: float = 90.0, extra_args: list[str] | None = None,
                  keep: bool = False) -> dict:
    names = write_names(writes, prefix="x")
    outcomes: dict[str, int] = {}
    acked: set[str] = set()
    async with open_cluster(system, NODES, extra_args, keep=keep) as cluster:
        await _converged_probes(cluster, 30)
        role = await cluster.role(KEEP)
        isolated_from = [n for n in range(NODES) if n != KEEP]
        for n in isolated_from:
            cluster.pause(n)
        t_cut = time.monotonic()
        try:
            for name in names:
                t = time.monotonic()
                try:
                    await cluster.put(KEEP, name, write_timeout)
                    acked.add(name)
                    outcomes["ok"] = outcomes.get("ok", 0) + 1
                    continue
                except WriteError as exc:
                    outcomes[str(exc)] = outcomes.get(str(exc), 0) + 1
                # A fast failure still takes its full 1 s slot, so every system
                # is offered the same window to recover within the partition.
                rest = write_timeout - (time.monotonic() - t)
                if rest > 0:
                    await asyncio.sleep(rest)
        finally:
            partition_s = time.monotonic() - t_cut
            for n in isolated_from:
                cluster.resume(n)
        t_heal = time.monotonic()

        # Heal: poll each node until it serves a read containing every acked write.
        done_ms: dict[int, float] = {}
        last: dict[int, set[str]] = {}
        read_errors = 0
        deadline = t_heal + heal_timeout
        while len(done_ms) < NODES and time.monotonic() < deadline:
            for node in range(NODES):
                if node in done_ms:
                    continue
                try:
                    got = await cluster.read_names(node, 1.0)
                except Exception:  # noqa: BLE001 - not serving yet (ZooKeeper rejoin)
                    read_errors += 1
                    continue
                last[node] = got
                if acked <= got:
                    done_ms[node] = (time.monotonic() - t_heal) * 1000
            await asyncio.sleep(0.02)
        # One more read after a settle, to see late-applied writes nobody acked.
        await asyncio.sleep(1.0)
        for node in range(NODES):
            try:
                last[node] = await cluster.read_names(node, 2.0)
            except Exception:  # noqa: BLE001
                pass

    everywhere = set.intersection(*(last.get(n, set()) for n in range(NODES)))
    anywhere = set.union(*(last.get(n, set()) for n in range(NODES)))
    healed = len(done_ms) == NODES
    return {
        "system": system, "nodes": NODES, "attempted": writes, "succeeded": len(acked),
        "isolated_node": KEEP, "isolated_node_role": role,
        "outcomes": outcomes, "write_timeout_s": write_timeout,
        "partition_s": round(partition_s, 3),
        "lost_after_heal": len(acked - everywhere),
        "heal_visible_ms": round(max(done_ms.values()), 1) if healed else None,
        "heal_per_node_ms": {str(n): round(done_ms[n], 1) if n in done_ms else None
                             for n in range(NODES)},
        "heal_timeout_s": heal_timeout, "heal_read_errors": read_errors,
        "unacked_applied_after_heal": len((anywhere & set(names)) - acked),
        "extra_args": list(extra_args or []),
    }


def print_result(r: dict) -> None:
    print(f"{r['system']} partition: {r['succeeded']}/{r['attempted']} writes accepted at the "
          f"isolated node ({r['isolated_node_role'] or 'no roles'}) {r['outcomes']}; lost after heal {r['lost_after_heal']}; "
          f"all acked visible on all nodes after {r['heal_visible_ms']} ms "
          f"(per node {r['heal_per_node_ms']}); unacked applied {r['unacked_applied_after_heal']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", required=True, choices=sorted(DRIVERS))
    ap.add_argument("--writes", type=int, default=20)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--write-timeout", type=float, default=1.0)
    ap.add_argument("--heal-timeout", type=float, default=90.0)
    ap.add_argument("--keep", action="store_true", help="keep server logs (temp dir)")
    a = ap.parse_args(argv)
    install_exit_handlers()
    if a.writes < 1:
        ap.error("--writes must be >= 1")
    if skip_if_unavailable(a.system, a.json):
        return 0
    r = asyncio.run(measure(a.system, a.writes, a.write_timeout, a.heal_timeout, keep=a.keep))
    print_result(r)
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
