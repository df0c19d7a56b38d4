#!/usr/bin/env python3
"""Write throughput of ONE apreg node over HTTP keep-alive, next to a bare aiohttp
handler measured the same way.

Two servers run side by side for the whole run, each its own process: `apreg serve`
(no peers) and a bare aiohttp app (bench/_load.py bare) answering the same paths with
the same status codes and doing nothing else. For every round, each system in turn
(bare, apreg, bare, apreg, ...) gets a fresh load-client process (bench/_load.py
client) that
  1. registers --instances instances (POST /eureka/apps/{APP}, expects 204; untimed),
  2. warms up with --warmup renewals (untimed),
  3. renew phase: PUT /eureka/apps/{APP}/{ID}?status=UP&lastDirtyTimestamp=<ts>
     cycling over those ids (expects 200),
  4. register phase: POST /eureka/apps/{APP} with a full Eureka JSON body and a
     fresh id each time (expects 204),
each phase with --concurrency requests in flight over keep-alive connections, up to
--requests requests or --seconds, whichever ends first. Any other status (or a
transport error) counts as an error. Reported per system: the median over rounds of
requests/s and of p50/p99 latency, the server's CPU per request (from /proc), and
the ratios apreg/bare.

    bench/throughput.py                                   # defaults: 2 rounds x 20000 requests
    bench/throughput.py --requests 5000 --rounds 3 --json out.json
    bench/throughput.py --requests 200 --rounds 1 --seconds 5 --instances 100   # smoke

On a 2-core machine the client, the server under test and everything else share two
cores: read the ratios, and the load average printed with them, rather than the
absolute figures.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _apreg import command as apreg_command  # noqa: E402
from _procs import Managed, ProcessSet, free_ports, install_exit_handlers, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
SYSTEMS = ("bare", "apreg")
PHASES = ("renew", "register")
TARGET_RENEW_RATIO = 0.6


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


async def wait_ready(url: str, procs: ProcessSet, timeout: float) -> None:
    async with aiohttp.ClientSession() as s:
        async def up() -> bool:
            procs.check_alive()
            async with s.get(url + "/eureka/apps", headers={"Accept": "application/json"},
                             timeout=aiohttp.ClientTimeout(total=2)) as r:
                await r.read()
                return r.status == 200
        await wait_until(up, timeout, 0.1, f"GET {url}/eureka/apps -> 200")


def start_servers(procs: ProcessSet, a: argparse.Namespace) -> dict[str, tuple[str, Managed]]:
    bare_port, apreg_port = free_ports(2)
    bare = procs.spawn("bare", [sys.executable, str(HERE / "_load.py"), "bare",
                                "--host", "127.0.0.1", "--port", str(bare_port)])
    node = procs.spawn("apreg", [*apreg_command(), "serve", "--host", "127.0.0.1",
                                 "--port", str(apreg_port), "--node-id", "bench",
                                 "--log-level", a.log_level, *a.apreg_arg])
    servers = {"bare": (f"http://127.0.0.1:{bare_port}", bare),
               "apreg": (f"http://127.0.0.1:{apreg_port}", node)}
    for url, _ in servers.values():
        asyncio.run(wait_ready(url, procs, a.start_timeout))
    return servers


def run_client(procs: ProcessSet, system: str, url: str, server: Managed, rnd: int,
               a: argparse.Namespace) -> dict:
    out = procs.workdir / f"client-{system}-{rnd}.json"
    tag = f"t{secrets.token_hex(3)}{system[0]}{rnd}"
    argv = [sys.executable, str(HERE / "_load.py"), "client", "--base", url, "--out", str(out),
            "--tag", tag, "--instances", str(a.instances), "--requests", str(a.requests),
            "--seconds", str(a.seconds), "--concurrency", str(a.concurrency),
            "--warmup", str(a.warmup), "--server-pid", str(server.pid)]
    client = procs.spawn(f"client-{system}-{rnd}", argv)
    budget = 60 + a.instances / 100 + 2 * a.seconds + a.warmup / 100
    try:
        rc = client.proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        client.stop()
        raise RuntimeError(f"load client for {system} round {rnd} ran over {budget:.0f}s") from None
    if not server.alive():
        raise RuntimeError(f"{system} server exited rc={server.proc.returncode}:\n{server.tail()}")
    if rc != 0 or not out.exists():
        raise RuntimeError(f"load client for {system} round {rnd} failed rc={rc}:\n{client.tail()}")
    return json.loads(out.read_text())


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def aggregate(rounds: list[dict]) -> dict:
    systems: dict = {}
    for system in SYSTEMS:
        runs = [r for r in rounds if r["system"] == system]
        systems[system] = {}
        for ph in PHASES:
            xs = [r[ph] for r in runs]
            systems[system][ph] = {
                "rps": _median([x["rps"] for x in xs]),
                "rps_rounds": [x["rps"] for x in xs],
                "p50_ms": _median([x["latency_ms"]["p50"] for x in xs]),
                "p99_ms": _median([x["latency_ms"]["p99"] for x in xs]),
                "requests": sum(x["requests"] for x in xs),
                "errors": sum(x["errors"] for x in xs),
                "server_cpu_us_per_req": _median([x.get("server_cpu_us_per_req") for x in xs]),
                "server_cpu_pct": _median([x.get("server_cpu_pct") for x in xs]),
                "client_cpu_pct": _median([x.get("client_cpu_pct") for x in xs]),
                "hit_time_cap": any(x["hit_time_cap"] for x in xs),
            }
    return systems


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def measure(a: argparse.Namespace) -> dict:
    procs = ProcessSet(Path(tempfile.mkdtemp(prefix="apreg-bench-thru-")), remove_dir=not a.keep)
    result: dict = {
        "config": {k: getattr(a, k) for k in ("instances", "requests", "seconds", "concurrency",
                                              "rounds", "warmup")} | {"apreg_args": a.apreg_arg},
        "machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0],
                    "aiohttp": aiohttp.__version__},
        "loadavg_start": loadavg(),
    }
    rounds: list[dict] = []
    try:
        servers = start_servers(procs, a)
        for rnd in range(1, a.rounds + 1):
            for system in SYSTEMS:
                url, server = servers[system]
                la = loadavg()
                r = run_client(procs, system, url, server, rnd, a)
                r |= {"system": system, "round": rnd, "loadavg": la}
                rounds.append(r)
                print(f"  round {rnd} {system:<5}  renew {r['renew']['rps']:>8.1f}/s "
                      f"(p50 {r['renew']['latency_ms']['p50']} ms, err {r['renew']['errors']})  "
                      f"register {r['register']['rps']:>8.1f}/s "
                      f"(p50 {r['register']['latency_ms']['p50']} ms, err {r['register']['errors']})  "
                      f"load {la}", flush=True)
    except BaseException:
        procs.print_log_tails()
        raise
    finally:
        result["stopped"] = procs.stop_all()
        if a.keep:
            print(f"logs kept in {procs.workdir}", flush=True)
        else:
            shutil.rmtree(procs.workdir, ignore_errors=True)
    result["loadavg_end"] = loadavg()
    result["rounds"] = rounds
    result["systems"] = systems = aggregate(rounds)
    result["ratio"] = {ph: ratio(systems["apreg"][ph]["rps"], systems["bare"][ph]["rps"]) for ph in PHASES}
    result["cpu_per_req_ratio"] = {ph: ratio(systems["apreg"][ph]["server_cpu_us_per_req"],
                                             systems["bare"][ph]["server_cpu_us_per_req"])
                                   for ph in PHASES}
    result["errors"] = sum(r[ph]["errors"] for r in rounds for ph in PHASES) \
        + sum(r["preload"]["errors"] + r["warmup_errors"] for r in rounds)
    result["target_renew_ratio"] = TARGET_RENEW_RATIO
    result["meets_target"] = (result["ratio"]["renew"] or 0) >= TARGET_RENEW_RATIO
    return result


def print_result(r: dict) -> None:
    f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    head = (f"{'system':<7} {'phase':<9} {'req/s (median)':>14} {'rounds':>19} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'srv CPU us/req':>14} {'srv CPU%':>8} {'cli CPU%':>8} {'errors':>6}")
    print(head)
    print("-" * len(head))
    for ph in PHASES:
        for system in SYSTEMS:
            s = r["systems"][system][ph]
            rr = ",".join(f"{x:.0f}" for x in s["rps_rounds"])
            print(f"{system:<7} {ph:<9} {f(s['rps']):>14} {rr:>19} {f(s['p50_ms'], 2):>7} "
                  f"{f(s['p99_ms'], 2):>7} {f(s['server_cpu_us_per_req']):>14} "
                  f"{f(s['server_cpu_pct']):>8} {f(s['client_cpu_pct']):>8} {s['errors']:>6}"
                  + ("  (time cap hit)" if s["hit_time_cap"] else ""))
    c = r["config"]
    print(f"\nconcurrency {c['concurrency']}, {c['requests']} requests/phase (cap {c['seconds']} s), "
          f"{c['instances']} instances preloaded, {c['rounds']} round(s); "
          f"load average start {r['loadavg_start']} end {r['loadavg_end']}")
    print(f"apreg/bare renewals/s:      {f(r['ratio']['renew'], 3)}  "
          f"(target >= {TARGET_RENEW_RATIO}: {'met' if r['meets_target'] else 'NOT met'})")
    print(f"apreg/bare registrations/s: {f(r['ratio']['register'], 3)}")
    print(f"server CPU per request, apreg/bare: renew {f(r['cpu_per_req_ratio']['renew'], 2)}, "
          f"register {f(r['cpu_per_req_ratio']['register'], 2)}")
    print(f"errors (non-2xx or transport, all phases incl. preload): {r['errors']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20000, help="requests per timed phase (20000)")
    p.add_argument("--seconds", type=float, default=20.0, help="time cap per timed phase, s (20)")
    p.add_argument("--concurrency", type=int, default=16,
                   help="requests in flight, over as many keep-alive connections (16)")
    p.add_argument("--rounds", type=int, default=2, help="bare, apreg, bare, apreg, ... (2)")
    p.add_argument("--instances", type=int, default=1000, help="instances registered before renewing (1000)")
    p.add_argument("--warmup", type=int, default=500, help="untimed renewals before the timed phases (500)")
    p.add_argument("--start-timeout", type=float, default=60.0)
    p.add_argument("--log-level", default="WARNING", help="apreg serve --log-level (WARNING)")
    p.add_argument("--apreg-arg", action="append", default=[],
                   help="extra argument for apreg serve (repeat), e.g. --apreg-arg=--push-window=0.01")
    p.add_argument("--keep", action="store_true", help="keep the server/client logs")
    p.add_argument("--json", type=Path, help="write the figures here")
    a = p.parse_args(argv)
    if min(a.requests, a.instances, a.concurrency, a.rounds) < 1 or a.seconds <= 0 or a.warmup < 0:
        p.error("--requests, --instances, --concurrency, --rounds must be >= 1, --seconds > 0")
    install_exit_handlers()
    print(f"throughput: apreg vs bare aiohttp, {a.rounds} round(s), concurrency {a.concurrency}, "
          f"load average {loadavg()}", flush=True)
    t0 = time.monotonic()
    r = measure(a)
    r["wall_s"] = round(time.monotonic() - t0, 1)
    print()
    print_result(r)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(r, indent=2))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
