#!/usr/bin/env python3
"""The two processes `throughput.py` starts besides apreg itself (`fleet.py` uses the bare
server and the load phases too):

    _load.py bare --port P
        a bare aiohttp server answering the Eureka write paths with the status codes
        apreg gives (PUT renew -> 200, POST register -> 204, GET /eureka/apps -> 200)
        and an empty `GET /eureka/apps/delta` (gzip when asked, as apreg renders it),
        doing nothing else: the floor any aiohttp-based node sits on;
    _load.py client --base URL --out FILE ...
        the load client: preload N registrations, then a renew phase and a register
        phase, each with a fixed number of requests in flight over keep-alive
        connections, bounded by a request count and a time cap; writes JSON to FILE.

Both run the default asyncio loop (no uvloop), as `apreg serve` does.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stats import summarize  # noqa: E402

APP = "APREGTHRU"
EXPECT = {"renew": 200, "register": 204, "preload": 204, "read": 200}
# What a steady-state delta poll gets: an empty delta, as apreg renders one.
EMPTY_DELTA = json.dumps({"applications": {"versions__delta": "1", "apps__hashcode": "UP_1_",
                                           "application": []}}, separators=(",", ":")).encode()
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ----- bare server -----------------------------------------------------------------------------------------

def bare_app() -> web.Application:
    async def register(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def renew(_: web.Request) -> web.Response:
        return web.Response(status=200)

    async def apps(_: web.Request) -> web.Response:
        return web.json_response({"applications": {"application": []}})

    async def delta(_: web.Request) -> web.Response:
        response = web.Response(body=EMPTY_DELTA, content_type="application/json")
        response.enable_compression()
        return response

    app = web.Application()
    app.router.add_get("/eureka/apps", apps)
    app.router.add_get("/eureka/apps/delta", delta)
    app.router.add_post("/eureka/apps/{app}", register)
    app.router.add_put("/eureka/apps/{app}/{id}", renew)
    return app


async def serve_bare(host: str, port: int) -> None:
    runner = web.AppRunner(bare_app(), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    print(f"bare aiohttp server on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# ----- load client -----------------------------------------------------------------------------------------

def instance_body(instance_id: str, dirty_ms: int) -> bytes:
    """A registration as a Eureka (or Spring Cloud) client sends it."""
    return json.dumps({"instance": {
        "instanceId": instance_id, "hostName": f"host-{instance_id}.bench.local", "app": APP,
        "ipAddr": "10.0.0.7", "status": "UP", "overriddenstatus": "UNKNOWN",
        "port": {"$": 8080, "@enabled": "true"}, "securePort": {"$": 443, "@enabled": "false"},
        "countryId": 1,
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                           "name": "MyOwn"},
        "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        "vipAddress": APP.lower(), "secureVipAddress": APP.lower(),
        "homePageUrl": "http://10.0.0.7:8080/", "statusPageUrl": "http://10.0.0.7:8080/actuator/info",
        "healthCheckUrl": "http://10.0.0.7:8080/actuator/health",
        "isCoordinatingDiscoveryServer": "false", "lastDirtyTimestamp": str(dirty_ms),
        "metadata": {"management.port": "8080", "zone": "zone-a", "version": "1.4.2",
                     "instanceId": instance_id},
    }}, separators=(",", ":")).encode()


def rss_kb(pid: int) -> int | None:
    """Resident set size of a process (VmRSS), in KiB (None if unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return None


def cpu_ticks(pid: int) -> int | None:
    """utime+stime of a process, in clock ticks (None if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


WRITE_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


async def request(session: aiohttp.ClientSession, req: tuple[str, str, bytes | None],
                  headers: dict[str, str] | None, expect: int, lat: list[float],
                  errors: dict[str, int]) -> int:
    """One request of a phase: its time goes to `lat` (ms), an unexpected status or a transport
    error to `errors`; returns the body's length as read."""
    method, url, body = req
    s = time.perf_counter()
    size = 0
    try:
        async with session.request(method, url, data=body, headers=headers or (
                WRITE_HEADERS if body is not None else None)) as r:
            size = len(await r.read())
            status: int | str = r.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        status = type(exc).__name__
    lat.append((time.perf_counter() - s) * 1000.0)
    if status != expect:
        errors[str(status)] = errors.get(str(status), 0) + 1
    return size


async def phase(session: aiohttp.ClientSession, kind: str, make, count: int, seconds: float,
                concurrency: int, server_pid: int | None, headers: dict[str, str] | None = None) -> dict:
    """`count` requests (or fewer if `seconds` runs out) with `concurrency` in flight.
    `make(i)` -> (method, url, body|None). Throughput = completed / wall time. `headers`
    go with every request; by default JSON headers go with requests that have a body."""
    expect = EXPECT[kind]
    lat: list[float] = []
    errors: dict[str, int] = {}
    sizes = 0
    nxt = 0
    perf = time.perf_counter
    t0 = perf()
    deadline = t0 + seconds

    async def worker() -> None:
        nonlocal nxt, sizes
        while nxt < count and perf() < deadline:
            i = nxt
            nxt += 1
            sizes += await request(session, make(i), headers, expect, lat, errors)

    srv0, cpu0 = (cpu_ticks(server_pid) if server_pid else None), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = perf() - t0
    srv1, cpu1 = (cpu_ticks(server_pid) if server_pid else None), time.process_time()
    done = len(lat)
    out = {
        "requests": done, "seconds": round(wall, 3), "rps": round(done / wall, 1) if wall else 0.0,
        "errors": sum(errors.values()), "error_kinds": errors, "latency_ms": summarize(lat),
        "hit_time_cap": done < count, "body_bytes": sizes // done if done else None,
        "client_cpu_pct": round(100.0 * (cpu1 - cpu0) / wall, 1) if wall else None,
    }
    if srv0 is not None and srv1 is not None and done:
        srv_s = (srv1 - srv0) / CLK_TCK
        out["server_cpu_pct"] = round(100.0 * srv_s / wall, 1)
        out["server_cpu_us_per_req"] = round(1e6 * srv_s / done, 1)
    return out


async def paced(session: aiohttp.ClientSession, kind: str, make, rate: float, seconds: float,
                max_in_flight: int, pids: dict[str, int]) -> dict:
    """Requests at a fixed `rate` per second for `seconds` (open loop: a slow server does not
    slow the sender, up to `max_in_flight`; beyond that a due request is skipped and counted),
    with each of `pids`' CPU use over the phase in % of one core. `make(i)` as for `phase`."""
    expect = EXPECT[kind]
    tick = 0.005
    lat: list[float] = []
    errors: dict[str, int] = {}
    tasks: set[asyncio.Task[int]] = set()
    perf = time.perf_counter

    ticks0 = {name: cpu_ticks(pid) for name, pid in pids.items()}
    cpu0 = time.process_time()
    sent = skipped = 0
    t0 = perf()
    while (now := perf()) < t0 + seconds:
        for _ in range(int((now - t0) * rate) - sent - skipped):
            if len(tasks) >= max_in_flight:
                skipped += 1
                continue
            task = asyncio.create_task(request(session, make(sent), None, expect, lat, errors))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(tick)
    await asyncio.gather(*tasks)
    wall = perf() - t0
    ticks1 = {name: cpu_ticks(pid) for name, pid in pids.items()}
    cpu = {name: round(100.0 * (ticks1[name] - t) / CLK_TCK / wall, 1)
           for name, t in ticks0.items() if t is not None and ticks1[name] is not None}
    return {"target_rps": round(rate, 1), "sent": sent, "skipped": skipped, "seconds": round(wall, 3),
            "rps": round(len(lat) / wall, 1), "errors": sum(errors.values()), "error_kinds": errors,
            "latency_ms": summarize(lat), "server_cpu_pct": cpu,
            "client_cpu_pct": round(100.0 * (time.process_time() - cpu0) / wall, 1)}


async def run_client(a: argparse.Namespace) -> dict:
    base = a.base.rstrip("/") + "/eureka/apps/" + APP
    dirty = int(time.time() * 1000)
    pre_ids = [f"{a.tag}-i{j:05d}" for j in range(a.instances)]
    new_ids = [f"{a.tag}-r{j:06d}" for j in range(a.requests)]
    pre_bodies = [instance_body(i, dirty) for i in pre_ids]
    new_bodies = [instance_body(i, dirty) for i in new_ids]
    renew_urls = [f"{base}/{i}?status=UP&lastDirtyTimestamp={dirty}" for i in pre_ids]
    n = len(renew_urls)

    conn = aiohttp.TCPConnector(limit=a.concurrency, keepalive_timeout=60, force_close=False)
    timeout = aiohttp.ClientTimeout(total=a.request_timeout)
    out: dict = {}
    async with aiohttp.ClientSession(connector=conn, timeout=timeout, skip_auto_headers=("User-Agent",)) as s:
        # Preload (also opens the keep-alive connections), untimed warm-up of renewals.
        out["preload"] = await phase(s, "preload", lambda i: ("POST", base, pre_bodies[i]),
                                     a.instances, 60.0, a.concurrency, None)
        warm = await phase(s, "renew", lambda i: ("PUT", renew_urls[i % n], None),
                           a.warmup, 30.0, a.concurrency, None)
        out["warmup_errors"] = warm["errors"]
        out["renew"] = await phase(s, "renew", lambda i: ("PUT", renew_urls[i % n], None),
                                   a.requests, a.seconds, a.concurrency, a.server_pid)
        out["register"] = await phase(s, "register", lambda i: ("POST", base, new_bodies[i]),
                                      a.requests, a.seconds, a.concurrency, a.server_pid)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("bare")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=int, required=True)
    c = sub.add_parser("client")
    c.add_argument("--base", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--tag", required=True, help="unique id prefix for this run")
    c.add_argument("--instances", type=int, default=1000)
    c.add_argument("--requests", type=int, default=20000)
    c.add_argument("--seconds", type=float, default=20.0)
    c.add_argument("--concurrency", type=int, default=16)
    c.add_argument("--warmup", type=int, default=500)
    c.add_argument("--request-timeout", type=float, default=10.0)
    c.add_argument("--server-pid", type=int, default=None)
    a = p.parse_args(argv)
    if a.mode == "bare":
        try:
            asyncio.run(serve_bare(a.host, a.port))
        except KeyboardInterrupt:
            pass
        return 0
    result = asyncio.run(run_client(a))
    tmp = Path(a.out + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
