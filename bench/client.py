"""Client benchmark: choose() calls/s from a warm cache, and register-at-A -> visible-at-B latency.

Starts two `apreg serve` nodes on free loopback ports, peered with each other, and stops them afterwards.
A client registers at node A; a second client attached to node B times each new instance's arrival in its
cache (a cache listener stamps the moment, so no polling error is added).

    python bench/client.py [--samples 200] [--choose-seconds 1.0] [--json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _apreg import command  # noqa: E402
from _procs import ProcessSet, free_ports, wait_until  # noqa: E402
from _stats import summarize  # noqa: E402

from apreg.client import ClientConfig, Instance, RegistryClient  # noqa: E402


def start_nodes(procs: ProcessSet, urls: list[str]) -> None:
    for i, url in enumerate(urls):
        port = url.rsplit(":", 1)[1]
        procs.spawn(f"node{i}", [*command(), "serve", "--host", "127.0.0.1", "--port", port, "--node-id",
                                 f"bench-{i}", "--peers", ",".join(u for u in urls if u != url)])


async def all_answer(urls: list[str]) -> bool:
    async with aiohttp.ClientSession() as session:
        for url in urls:
            async with session.get(url + "/v1/status") as resp:
                if resp.status != 200:
                    return False
    return True


async def choose_rate(client: RegistryClient, app: str, seconds: float) -> float:
    calls, batch = 0, 10_000
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(batch):
            await client.choose(app)
        calls += batch
    return calls / (time.perf_counter() - started)


async def run(samples: int, choose_seconds: float) -> dict[str, object]:
    urls = [f"http://127.0.0.1:{p}" for p in free_ports(2)]
    url_a, url_b = urls
    procs = ProcessSet(Path(tempfile.mkdtemp(prefix="apreg-bench-client-")))
    try:
        start_nodes(procs, urls)
        await wait_until(lambda: all_answer(urls), 60, 0.05, "both nodes answering /v1/status")
        async with RegistryClient([url_a]) as owner, RegistryClient([url_b]) as watcher:
            arrived: dict[str, float] = {}
            waiting: dict[str, asyncio.Event] = {}

            def on_change(app: str, up: tuple[Instance, ...]) -> None:
                now = time.perf_counter()
                for inst in up:
                    if inst.instance_id in waiting and inst.instance_id not in arrived:
                        arrived[inst.instance_id] = now
                        waiting[inst.instance_id].set()

            watcher.add_listener(on_change)
            latencies_ms = []
            for k in range(samples):
                iid = f"lat-{k}"
                waiting[iid] = asyncio.Event()
                started = time.perf_counter()
                await owner.register("latency", instance_id=iid, host="127.0.0.1", port=10_000 + k,
                                     metadata={"zone": f"z{k % 2}"})
                await asyncio.wait_for(waiting[iid].wait(), 10)
                latencies_ms.append((arrived[iid] - started) * 1000)

            rates = {}
            for strategy in ("round_robin", "random", "zone"):
                config = ClientConfig(strategy=strategy, zone="z1" if strategy == "zone" else None)
                async with RegistryClient([url_b], config) as reader:
                    rates[strategy] = round(await choose_rate(reader, "latency", choose_seconds))
        return {
            "choose_calls_per_s": rates,
            "instances_in_app": samples,
            "register_at_A_visible_at_B_ms": summarize(latencies_ms, 2),
        }
    finally:
        procs.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="registrations timed (default 200)")
    parser.add_argument("--choose-seconds", type=float, default=1.0, help="time per choose() strategy (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = asyncio.run(run(args.samples, args.choose_seconds))
    if args.json:
        print(json.dumps(result))
        return
    for strategy, rate in result["choose_calls_per_s"].items():  # type: ignore[union-attr]
        print(f"choose() {strategy:<12} {rate:>12,} calls/s (warm cache, {args.samples} instances, half in zone z1)")
    lat = result["register_at_A_visible_at_B_ms"]
    print(f"register@A -> instances()@B  p50 {lat['p50']} ms  p99 {lat['p99']} ms  max {lat['max']} ms"  # type: ignore[index]
          f"  ({lat['n']} samples)")


if __name__ == "__main__":
    main()
