#!/usr/bin/env python3
"""How fast an empty node pulls a large registry from a peer, and whether either node stalls meanwhile.

Node A (`apreg serve`, no peers) takes --instances Spring-style registrations (home, status and health URLs, two
metadata keys; --apps apps) by concurrent POSTs, once; then per run a fresh, empty node B starts with `--peers A`,
and the run times how long until B's `/v1/status` says `in_sync` with all instances (B is stopped after).
Meanwhile a prober GETs one instance from A, and one from B, every 20 ms and records the longest response (the
stall: a handler or a peer exchange holding a node's event loop shows up as a slow probe). The table gives each
run and the median. Targets from the issue: sync within 5 s, no stall over 20 ms.

    python bench/sync.py                          # 100,000 instances, 3 runs
    python bench/sync.py --instances 20000 --runs 1 --profile   # cProfile both nodes, top functions on stdout
    python bench/sync.py --runs 1 --trace        # name what held each node's event loop over 20 ms

Progress goes to stderr. On a 2-core machine the bench, A and B share the cores: quote medians.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _apreg import command as apreg_command  # noqa: E402
from _procs import Managed, ProcessSet, free_ports, install_exit_handlers, wait_until  # noqa: E402

JSON = {"Accept": "application/json"}
PROBE_INTERVAL_S = 0.02
PROBE_TIMEOUT_S = 5.0


def spring_body(i: int, apps: int) -> dict:
    """A registration as a Spring Cloud Netflix client sends it (URLs, management metadata)."""
    app, host, port = f"APP-{i % apps}", f"host-{i}.example", 8080 + i % 7
    base = f"http://{host}:{port}"
    return {"instance": {
        "instanceId": f"{host}:{app.lower()}:{port}", "app": app, "hostName": host,
        "ipAddr": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "status": "UP",
        "port": {"$": port, "@enabled": "true"}, "securePort": {"$": 443, "@enabled": "false"},
        "vipAddress": app.lower(), "secureVipAddress": app.lower(),
        "homePageUrl": f"{base}/", "statusPageUrl": f"{base}/actuator/info",
        "healthCheckUrl": f"{base}/actuator/health",
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
        "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        "metadata": {"management.port": str(port), "zone": f"zone-{i % 3}"},
    }}


def instance_path(i: int, apps: int) -> str:
    body = spring_body(i, apps)["instance"]
    return f"/eureka/apps/{body['app']}/{body['instanceId']}"


def serve_argv(port: int, node_id: str, peers: str | None, profile: Path | None, trace: bool) -> list[str]:
    base = apreg_command()
    if profile is not None:  # cProfile writes its file when serve exits cleanly on SIGTERM
        base = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "apreg"]
    elif trace:
        base = [sys.executable, __file__, "--as-traced-node"]
    return [*base, "serve", "--host", "127.0.0.1", "--port", str(port), "--node-id", node_id,
            *(["--peers", peers] if peers else []), "--eviction-interval", "3600"]


async def register_all(session: aiohttp.ClientSession, url: str, n: int, apps: int, concurrency: int,
                       deadline: float) -> None:
    """POST n registrations with `concurrency` in flight; stops (raising) at the deadline or on a failure."""
    next_i = 0
    done = 0

    async def worker() -> None:
        nonlocal next_i, done
        while next_i < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"registered only {done} of {n} before the deadline")
            i, next_i = next_i, next_i + 1
            body = spring_body(i, apps)
            async with session.post(f"{url}/eureka/apps/{body['instance']['app']}", json=body) as r:
                if r.status != 204:
                    raise RuntimeError(f"register {i}: HTTP {r.status} {await r.text()}")
            done += 1
            if done % 20_000 == 0:
                print(f"  registered {done}/{n}", file=sys.stderr, flush=True)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


@dataclass(slots=True)
class Prober:
    """GETs one instance every 20 ms and keeps the longest response time (the node's worst stall)."""

    session: aiohttp.ClientSession
    url: str
    longest_ms: float = 0.0
    count: int = 0
    slow: list[float] = field(default_factory=list)  # responses over 20 ms

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        while not stop.is_set():
            start = time.perf_counter()
            try:
                async with self.session.get(self.url, headers=JSON, timeout=timeout) as r:
                    await r.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass  # counted by its duration all the same
            took = (time.perf_counter() - start) * 1000
            self.longest_ms = max(self.longest_ms, took)
            self.count += 1
            if took > 20:
                self.slow.append(took)
            await asyncio.sleep(PROBE_INTERVAL_S)


@dataclass(frozen=True, slots=True)
class Result:
    sync_s: float  # B started (spawned) to B in sync with every instance
    serving_s: float  # B spawned to B answering HTTP (process start-up, included in sync_s)
    probe_a_ms: float
    probe_b_ms: float
    slow_a: int
    slow_b: int
    cpu_a_s: float  # CPU time A spent while B pulled
    cpu_b_s: float  # CPU time B spent from its start to in sync (start-up included)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def status(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url + "/v1/status", timeout=aiohttp.ClientTimeout(total=10)) as r:
        return await r.json()


async def measure(args: argparse.Namespace, workdir: Path) -> list[Result]:
    """Fill A once, then per run start a fresh B, time its pull, and stop it."""
    procs = ProcessSet(workdir, remove_dir=False)
    port_a = free_ports(1)[0]
    url_a = f"http://127.0.0.1:{port_a}"
    deadline = time.monotonic() + args.timeout
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency + 8))
    try:
        a = procs.spawn("a", serve_argv(port_a, "a", None, workdir / "a.prof" if args.profile else None, args.trace))
        await wait_until(lambda: status(session, url_a), 60, 0.1, "node A answering")
        print(f"registering {args.instances} instances ({args.apps} apps) at A", file=sys.stderr, flush=True)
        started = time.monotonic()
        await register_all(session, url_a, args.instances, args.apps, args.concurrency, deadline)
        print(f"  done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        if (await status(session, url_a))["instances"] != args.instances:
            raise RuntimeError("A does not hold every registration")
        results = []
        for run in range(args.runs):
            a_log_from = a.log.stat().st_size
            results.append(await pull_once(args, procs, a, session, url_a, f"b{run + 1}", deadline))
            if args.trace:
                print_stalls(a.log, "A", a_log_from)
                print_stalls(workdir / f"b{run + 1}.log", f"B (run {run + 1})")
        return results
    finally:
        await session.close()
        procs.stop_all()


async def pull_once(args: argparse.Namespace, procs: ProcessSet, a: Managed, session: aiohttp.ClientSession,
                    url_a: str, name: str, deadline: float) -> Result:
    port_b = free_ports(1)[0]
    url_b = f"http://127.0.0.1:{port_b}"
    stop = asyncio.Event()
    path = instance_path(0, args.apps)
    probers = [Prober(session, url_a + path), Prober(session, url_b + path)]
    probing = [asyncio.create_task(p.run(stop)) for p in probers]
    await asyncio.sleep(0.5)  # A's baseline under the prober alone
    print(f"starting {name}", file=sys.stderr, flush=True)
    spawned, cpu_a = time.monotonic(), cpu_seconds(a.pid)
    profile = procs.workdir / f"{name}.prof" if args.profile else None
    b = procs.spawn(name, serve_argv(port_b, name, url_a, profile, args.trace))
    try:
        # Wait for the last registration (pages come in log order) with cheap GETs: /v1/status counts every
        # instance (tens of ms at 100,000), so polling it throughout would stall B itself.
        last, serving_at = url_b + instance_path(args.instances - 1, args.apps), 0.0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("B did not sync before the deadline")
            for node in (a, b):
                if not node.alive():
                    raise RuntimeError(f"{node.name} exited rc={node.proc.returncode}; log tail:\n{node.tail()}")
            try:
                async with session.get(last, headers=JSON) as r:
                    await r.read()
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
                continue
            serving_at = serving_at or time.monotonic()
            if r.status == 200:
                break
            await asyncio.sleep(PROBE_INTERVAL_S)
        stop.set()  # the probes cover the pull, not the status polls that confirm it
        await asyncio.gather(*probing)
        while True:
            doc = await status(session, url_b)
            if doc["in_sync"] and doc["instances"] == args.instances:
                synced, cpu_a, cpu_b = time.monotonic(), cpu_seconds(a.pid) - cpu_a, cpu_seconds(b.pid)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"B holds {doc['instances']} instances, in_sync={doc['in_sync']}")
            await asyncio.sleep(args.poll)
    finally:
        stop.set()
        b.stop()
    pa, pb = probers
    print(f"  synced in {synced - spawned:.2f} s; probes {pa.count}/{pb.count}; slowest A {pa.longest_ms:.1f} ms, "
          f"B {pb.longest_ms:.1f} ms; over 20 ms: A {len(pa.slow)}, B {len(pb.slow)}", file=sys.stderr, flush=True)
    return Result(synced - spawned, serving_at - spawned, pa.longest_ms, pb.longest_ms, len(pa.slow), len(pb.slow),
                  cpu_a, cpu_b)


def run_traced_node(argv: list[str]) -> None:
    """`apreg serve` that logs every event-loop callback over 20 ms and every GC pass over 5 ms (--trace)."""
    from apreg.cli import main as apreg_main

    started: list[float] = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif (took := (time.perf_counter() - started[0]) * 1000) > 5:
            print(f"GC gen{info['generation']} {took:.1f} ms", file=sys.stderr, flush=True)

    handle_run = asyncio.events.Handle._run

    def timed_run(handle: asyncio.events.Handle) -> None:
        start = time.perf_counter()
        handle_run(handle)
        if (took := (time.perf_counter() - start) * 1000) > 20:
            print(f"STALL {took:.1f} ms {describe(handle)}", file=sys.stderr, flush=True)

    def describe(handle: asyncio.events.Handle) -> str:
        """The coroutine a task step ran (and a periodic task's action), else the callback."""
        task = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if coro is None:
            return f"{handle!r:.200}"
        frame = getattr(coro, "cr_frame", None)
        action = frame.f_locals.get("action") if frame is not None else None
        return f"task {getattr(coro, '__qualname__', coro)}" + (f" {action!r:.120}" if action else "")

    gc.callbacks.append(on_gc)
    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign, assignment]
    sys.argv = ["apreg", *argv]
    apreg_main()


def print_stalls(log: Path, node: str, offset: int = 0, lines: int = 12) -> None:
    """The longest stalls and GC passes a traced node logged (from `offset` in its log on)."""
    with open(log, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    found = [(float(m.group(2)), line) for line in text.splitlines()
             if (m := re.match(r"(STALL|GC gen\d) ([\d.]+) ms", line))]
    print(f"\n=== node {node}: {len(found)} stalls over 20 ms / GC passes over 5 ms; the longest ===")
    for _, line in sorted(found, reverse=True)[:lines]:
        print(f"  {line[:220]}")


def print_profile(path: Path, title: str, lines: int) -> None:
    if not path.exists():
        print(f"(no profile for {title})")
        return
    print(f"\n=== {title}: top {lines} by own time ===")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(lines)
    print(f"=== {title}: top {lines} by cumulative time ===")
    stats.sort_stats("cumulative").print_stats(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--apps", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64, help="registrations in flight")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run, registration included")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between status polls of B")
    parser.add_argument("--profile", action="store_true", help="run both nodes under cProfile (slower)")
    parser.add_argument("--trace", action="store_true", help="log what holds each node's loop over 20 ms")
    parser.add_argument("--keep", action="store_true", help="keep node logs and profiles")
    args = parser.parse_args()
    if not 0 < args.instances <= 1_000_000 or not 0 < args.runs <= 20 or not 0 < args.concurrency <= 512:
        parser.error("instances in (0, 1e6], runs in (0, 20], concurrency in (0, 512]")
    install_exit_handlers()
    workdir = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    print(f"logs in {workdir}", file=sys.stderr, flush=True)
    try:
        results = await measure(args, workdir)
        if args.profile:
            print_profile(workdir / "a.prof", "node A (source)", 25)
            for run in range(args.runs):
                print_profile(workdir / f"b{run + 1}.prof", f"node B (receiver, run {run + 1})", 25)
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.instances} instances, {args.apps} apps; targets: sync <= 5 s, longest probe <= 20 ms"
          + (" (profiled: slower)" if args.profile else ""))
    print(f"{'run':>6} {'sync_s':>8} {'start_s':>8} {'probe_A_ms':>11} {'probe_B_ms':>11} {'>20ms A/B':>10} "
          f"{'cpu_A_s':>8} {'cpu_B_s':>8}")
    for i, r in enumerate(results, 1):
        print(f"{i:>6} {r.sync_s:>8.2f} {r.serving_s:>8.2f} {r.probe_a_ms:>11.1f} {r.probe_b_ms:>11.1f} "
              f"{f'{r.slow_a}/{r.slow_b}':>10} {r.cpu_a_s:>8.2f} {r.cpu_b_s:>8.2f}")
    if len(results) > 1:
        med = statistics.median
        print(f"{'median':>6} {med(r.sync_s for r in results):>8.2f} {med(r.serving_s for r in results):>8.2f} "
              f"{med(r.probe_a_ms for r in results):>11.1f} {med(r.probe_b_ms for r in results):>11.1f} "
              f"{'':>10} {med(r.cpu_a_s for r in results):>8.2f} {med(r.cpu_b_s for r in results):>8.2f}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--as-traced-node"]:
        run_traced_node(sys.argv[2:])
    else:
        asyncio.run(main())
