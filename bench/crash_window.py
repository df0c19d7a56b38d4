#!/usr/bin/env python3
"""How many acknowledged writes a node killed right after acknowledging them takes with it.

3 apreg nodes. A burst of W registrations goes to node 0, C at a time; the moment the last one is acknowledged
node 0 is killed (SIGKILL, no clean stop), and nodes 1 and 2 are read until what they list stops changing (1 s,
bounded by 10 s). An acknowledged write neither lists is lost everywhere, until its client's next heartbeat (a
404) makes it register again. Rounds interleave the variants: memory only, then each `--variant` (flags).

    bench/crash_window.py --writes 200 --concurrency 50 --rounds 3 --variant=--ack-replicas=1
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import install_exit_handlers  # noqa: E402
from _systems import WriteError, open_cluster, write_names  # noqa: E402

WRITER = 0


async def one_round(writes: int, concurrency: int, extra_args: list[str]) -> dict[str, Any]:
    async with open_cluster("apreg", 3, extra_args) as cluster:
        for node in range(3):  # every link up before the burst
            await cluster.put(node, f"warm-{node}", 10)
        gate = asyncio.Semaphore(concurrency)
        acked: list[str] = []

        async def write(name: str) -> None:
            async with gate:
                try:
                    await cluster.put(WRITER, name, 10)
                except WriteError:
                    return
                acked.append(name)

        await asyncio.gather(*(write(name) for name in write_names(writes, prefix="c")))
        cluster.members[WRITER].kill()
        seen: set[str] = set()
        settled, deadline = time.monotonic() + 1.0, time.monotonic() + 10.0
        while time.monotonic() < min(settled, deadline):
            now_seen = set()
            for node in (1, 2):
                now_seen |= await cluster.read_names(node, 2)
            if now_seen != seen:
                seen, settled = now_seen, time.monotonic() + 1.0
            await asyncio.sleep(0.05)
    lost = [name for name in acked if name not in seen]
    return {"extra_args": extra_args, "acked": len(acked), "lost": len(lost)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variant", action="append", default=[],
                    help="serve flags of one more variant, comma-separated (--variant=--ack-replicas=1)")
    ap.add_argument("--json", type=Path, help="write every round's result here")
    a = ap.parse_args(argv)
    install_exit_handlers()
    variants = [[], *([flag for flag in v.split(",") if flag] for v in a.variant)]
    results = [asyncio.run(one_round(a.writes, a.concurrency, extra)) for _ in range(a.rounds) for extra in variants]
    for extra in variants:
        mine = [r for r in results if r["extra_args"] == extra]
        print(f"{' '.join(extra) or 'memory only':<24} lost {[r['lost'] for r in mine]} of "
              f"{[r['acked'] for r in mine]} acknowledged; median {statistics.median(r['lost'] for r in mine)}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
