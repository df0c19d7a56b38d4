#!/usr/bin/env python3
"""The stall prober `fleet.py` runs beside its load: its own process, so that the
bench's load does not delay the prober's own loop and every slow answer is the node's.

    _probe.py --url URL --out FILE [--interval 0.02]

GETs URL every `interval` seconds, one request at a time, and appends one line per
request to FILE: `<time.monotonic() at send> <response time, ms> <status>`. While a
node's event loop is blocked, the request in flight waits for it, so the longest
response time in a phase is the longest stall of that loop during the phase.
CLOCK_MONOTONIC is system-wide, so the bench splits the lines into its phases by
the send times. Runs until SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

TIMEOUT_S = 900.0  # longer than any phase: a stall is measured, not cut short


@dataclass(frozen=True, slots=True)
class Sample:
    sent: float  # time.monotonic()
    ms: float
    status: str


@dataclass(frozen=True, slots=True)
class Span:
    """One phase of the bench, in time.monotonic()."""

    name: str
    start: float
    end: float


async def probe(url: str, out: Path, interval: float) -> None:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    headers = {"Accept": "application/json"}
    with out.open("a", buffering=1) as fh:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            nxt = time.monotonic()
            while True:
                sent = time.monotonic()
                try:
                    async with session.get(url, headers=headers) as r:
                        await r.read()
                        status = str(r.status)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    status = type(exc).__name__
                fh.write(f"{sent:.6f} {(time.monotonic() - sent) * 1000:.3f} {status}\n")
                nxt = max(nxt + interval, time.monotonic())
                await asyncio.sleep(nxt - time.monotonic())


def read_samples(path: Path) -> list[Sample]:
    """The prober's lines (a last line cut short by SIGTERM is ignored)."""
    samples = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            samples.append(Sample(float(parts[0]), float(parts[1]), parts[2]))
    return samples


def stalls(samples: Sequence[Sample], spans: Sequence[Span]) -> dict[str, dict]:
    """Per phase name (spans of one name pooled): the longest response time, the
    number of probes in it and how many did not get a 200. A probe belongs to every
    phase its wait overlapped: one sent just before a phase and held up by it counts."""
    out: dict[str, dict] = {}
    for span in spans:
        inside = [s for s in samples if s.sent < span.end and s.sent + s.ms / 1000 >= span.start]
        agg = out.setdefault(span.name, {"max_ms": None, "probes": 0, "failed": 0})
        agg["probes"] += len(inside)
        agg["failed"] += sum(s.status != "200" for s in inside)
        if inside:
            longest = max(s.ms for s in inside)
            agg["max_ms"] = round(max(agg["max_ms"] or 0.0, longest), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--interval", type=float, default=0.02)
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        asyncio.run(probe(a.url, a.out, a.interval))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
