#!/usr/bin/env python3
"""Serving a fleet: 3 apreg nodes (or Eureka servers, --system) holding N Spring-style
instances of --apps apps, read the way a fleet of Eureka clients reads them. Starts
everything it measures on 127.0.0.1 (and stops it), prints one table on stdout (progress
on stderr).

Per --instances value, a fresh 3-node cluster (full mesh) and a bare aiohttp server:
  register   N registrations, --concurrency in flight, spread over the 3 nodes; then the
             time until every node holds N (measured once per N, not per round; a node that
             never does within 120 s + N/500 s is reported, not waited for)
then per round, all against node A unless said:
  fetch      GET /eureka/apps as JSON and XML, plain and gzip: p50/p99 of sequential
             fetches, and fetches/s with 8 concurrent readers. Bodies are read raw (the
             client never decompresses), so the figures are the server's cost
  cold_start --cold-clients clients, each on its own new connection, one JSON gzip full
             fetch each, all at once: p50/p99/max and the time until the last answer
  delta      GET /eureka/apps/delta (JSON gzip) by 16 pollers, then the same against a
             bare aiohttp handler returning an empty delta (round after round: apreg,
             bare, apreg, bare...), once the 3-minute window has drained (waited for
             up to --delta-drain s): the table says how many instances it held
  reads      GET apps/APP7, vips/app7, instances/{id}, JSON, sequential
  freshness  register one instance at a time at A; from A's 204 until B's delta lists it,
             and separately until B's full fetch does (polled back to back, 2 ms apart)
  sync       a 4th node peering only with A starts empty: time until its /v1/status says
             in_sync with all of A's instances (from spawn; its own start-up shown apart)
  renewals   PUT renewals at N/30 per second to A (every instance's 30 s heartbeat), open
             loop: CPU of each node, % of one core
Throughout, a prober process (bench/_probe.py) GETs one instance from A every 20 ms; the
longest answer per phase is the longest stall of A's event loop in it. Between phases the
bench waits until every node answers a one-instance read within 20 ms again, so that work
one phase left queued is not charged to the next. Figures are medians over rounds, except
stalls (the max over rounds) and freshness (samples pooled over rounds); RSS per node is
read from /proc at the end, and per instance as the growth from empty to N. apreg's nodes
run with --eviction-interval 86400: nothing heartbeats the fleet between phases.

    python bench/fleet.py                                  # 10,000 instances, 3 rounds
    python bench/fleet.py --instances 1000,100000 --json out.json
    python bench/fleet.py --node-arg=--read-cache-max-age=1   # extra `apreg serve` flags
    python bench/fleet.py --system eureka --rounds 1          # the same against Eureka

--system eureka|eureka-tuned serves the fleet from 3 peer-aware Spring Cloud Eureka servers,
started by bench/_eureka.py (_eureka_tuned.py) exactly as staleness.py starts them: java
-Xmx512m -XX:+UseSerialGC, each node with the other two as its defaultZone; `eureka` with
Spring Cloud's defaults (reads from the read-only response cache, refreshed every 30 s),
`eureka-tuned` with eureka.server.use-read-only-response-cache=false. Nothing is changed for
this bench: Eureka's self-preservation (on by default) already keeps the un-heartbeated fleet
from eviction, since the renewals stay under 85 % of those it expects. What differs:
  - a node "holds N" when its full fetch (GET /eureka/apps, JSON) lists N, polled every 0.5 s
    (Eureka has no count of its own), so with the read-only cache that includes its 30 s lag;
    the 3 servers' own registrations are listed (and counted) too;
  - sync is n/a: it waits for apreg's /v1/status `in_sync`, which Eureka has no counterpart of
    (a new Eureka server copies its peers' registry once at start-up, then serves);
  - the prober's longest answer is the JVM's (GC pauses, request queueing), not an event
    loop's, and RSS growth per instance is the JVM heap growing, not what an instance costs;
  - freshness waits --fresh-wait (default: the driver's drain, 45 s / 30 s) for each write;
    writes follow one another, so each after the first is made just after a refresh of B's
    read-only cache showed the last: with that cache they wait nearly its whole 30 s;
  - --node-arg passes Spring properties (--node-arg=--eureka.server.some-setting=value).

Targets at 100,000 instances (the last column says whether the largest N met them):
JSON gzip full fetch p50 <= 50 ms, XML <= 100 ms, >= 20 fetches/s with 8 readers; delta
polls >= 50 % of the bare handler's rate and within 10 % of the smallest N's rate; reads
p50 <= 2 ms; loop stalls <= 50 ms in every phase; empty-peer sync <= 5 s; freshness in
another node's delta p50 <= 20 ms; renewals <= 30 % of a core on the receiving node.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fleet import PLAIN_JSON, Fleet, empty_peer_sync, freshness, listed, register, status  # noqa: E402
from _load import paced, phase, rss_kb  # noqa: E402
from _probe import Span, read_samples, stalls  # noqa: E402
from _procs import ProcessSet, free_port, install_exit_handlers, wait_until  # noqa: E402
from _stats import summarize  # noqa: E402
from _systems import Unavailable, cluster_class  # noqa: E402

HERE = Path(__file__).resolve().parent
NODES = ("A", "B", "C")
VARIANTS = (("json", False), ("json", True), ("xml", False), ("xml", True))
ACCEPT = {"json": "application/json", "xml": "application/xml"}
PHASES = ("register", "fetch", "cold_start", "delta", "reads", "freshness", "sync", "renewals")
MANY = 10 ** 9  # the request count of a phase that its time cap ends
READERS, POLLERS = 8, 16
SETTLED_MS = 20.0
# The fleet is not heartbeated between phases (that load is measured on its own, in the renewals
# phase), so without this its leases lapse within minutes and eviction empties the registry under
# the later phases. Given first, so a --node-arg=--eviction-interval=... overrides it.
KEEP_FLEET = ["--eviction-interval", "86400"]
NA = "n/a"
PHYSICAL_MB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2 ** 20
T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[fleet {time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def variant(fmt: str, gzip: bool) -> str:
    return fmt + ("_gzip" if gzip else "")


def fetch_headers(fmt: str, gzip: bool) -> dict[str, str]:
    return {"Accept": ACCEPT[fmt], "Accept-Encoding": "gzip" if gzip else "identity"}


def get(url: str) -> Callable[[int], tuple[str, str, None]]:
    """A `phase` request maker: the same GET every time."""
    return lambda _: ("GET", url, None)


async def apreg_holds(session: aiohttp.ClientSession, base: str) -> int:
    return (await status(session, base))["instances"]


async def eureka_holds(session: aiohttp.ClientSession, base: str) -> int:
    return await listed(session, base + "/eureka/apps")


@dataclass(frozen=True, slots=True)
class Served:
    """What differs between the systems a fleet is served from (the driver starts the processes)."""

    node_args: tuple[str, ...]  # given before --node-arg
    held: Callable[[aiohttp.ClientSession, str], Awaitable[int]]  # instances one node holds
    held_poll_s: float  # a full fetch per node is dearer to poll than apreg's status
    kept: str  # why the fleet is not evicted between phases, though nothing heartbeats it
    not_applicable: dict[str, str]  # phase -> why it is not run


EUREKA = Served((), eureka_holds, 0.5, "Eureka's self-preservation keeps it (renewals < 85 % of those expected)",
                {"sync": "apreg's empty-peer sync waits for its /v1/status in_sync, which Eureka has no "
                         "counterpart of"})
SERVED = {"apreg": Served(tuple(KEEP_FLEET), apreg_holds, 0.1, "eviction kept off", {}),
          "eureka": EUREKA, "eureka-tuned": EUREKA}


@dataclass(slots=True)
class Timeline:
    """The phases' spans in time.monotonic(), to split the prober's samples by."""

    spans: list[Span] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        log(name)
        start = time.monotonic()
        try:
            yield
        finally:
            self.spans.append(Span(name, start, time.monotonic()))


@dataclass(slots=True)
class Run:
    """One --instances value: its cluster, bare server and what has been registered."""

    a: argparse.Namespace
    served: Served
    fleet: Fleet
    session: aiohttp.ClientSession  # auto_decompress off: bodies are timed as the server sends them
    procs: ProcessSet
    urls: list[str]
    pids: dict[str, int]
    bare_url: str
    timeline: Timeline = field(default_factory=Timeline)
    registered: int = 0  # instances 0..registered-1 of the initial fleet
    next_id: int = 0  # the next fresh instance number (freshness writes)

    async def read_phase(self, url: str, headers: dict[str, str], count: int, seconds: float,
                         concurrency: int, session: aiohttp.ClientSession | None = None) -> dict:
        return await phase(session or self.session, "read", get(url), count, seconds, concurrency,
                           self.pids["A"], headers)


# ----- phases ----------------------------------------------------------------------------------------------

async def register_fleet(run: Run, n: int) -> dict:
    """Instances 1..n-1, spread over the nodes (0, the prober's target, is already in), then
    the time until every node holds all that were acknowledged."""
    fleet, urls = run.fleet, run.urls
    with run.timeline.phase("register"):
        out = await phase(run.session, "register",
                          lambda j: ("POST", f"{urls[(j + 1) % 3]}/eureka/apps/{fleet.app(j + 1)}",
                                     fleet.body(j + 1)),
                          n - 1, run.a.register_seconds, run.a.concurrency, None)
    run.registered = run.next_id = 1 + out["requests"] - out["errors"]
    t0 = time.perf_counter()
    held = run.served.held

    async def everywhere() -> bool:
        return all([await held(run.session, u) >= run.registered for u in urls])

    try:
        await wait_until(everywhere, 120 + n / 500, run.served.held_poll_s, f"{run.registered} instances at every node")
        out["replicated_s"] = round(time.perf_counter() - t0, 3)
    except TimeoutError as exc:
        log(f"register: {exc}")
        out["replicated_s"] = None
    out["held"] = {name: await held(run.session, u) for name, u in zip(NODES, urls)}
    out["acknowledged"] = run.registered
    return out


async def fetches(run: Run) -> dict:
    url = run.urls[0] + "/eureka/apps"
    out = {}
    with run.timeline.phase("fetch"):
        for fmt, gzip in VARIANTS:
            headers = fetch_headers(fmt, gzip)
            out[variant(fmt, gzip)] = {
                "sequential": await run.read_phase(url, headers, run.a.fetch_count, run.a.fetch_seconds, 1),
                "readers": await run.read_phase(url, headers, MANY, run.a.seconds, READERS)}
    return out


async def cold_start(run: Run) -> dict:
    clients = run.a.cold_clients
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     timeout=aiohttp.ClientTimeout(total=run.a.cold_seconds)) as cold:
        with run.timeline.phase("cold_start"):
            return await run.read_phase(run.urls[0] + "/eureka/apps", fetch_headers("json", True),
                                        clients, run.a.cold_seconds, clients, cold)


async def delta_polls(run: Run) -> dict:
    """The nodes' delta, then the bare handler's, by the same pollers; also how full the window is. The steady
    state is a drained window: up to --delta-drain seconds are waited for it (Eureka keeps 3 minutes)."""
    path = "/eureka/apps/delta"

    async def window_size() -> int:
        return await listed(run.session, run.urls[0] + path)

    deadline = time.monotonic() + run.a.delta_drain
    window = await window_size()
    if window:
        log(f"delta: waiting up to {run.a.delta_drain:.0f} s for the window of {window:,} to drain")
    while window and time.monotonic() < deadline:
        await asyncio.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        window = await window_size()
    headers = fetch_headers("json", True)
    with run.timeline.phase("delta"):
        nodes = await run.read_phase(run.urls[0] + path, headers, MANY, run.a.seconds, POLLERS)
    bare = await phase(run.session, "read", get(run.bare_url + path), MANY, run.a.seconds, POLLERS, None,
                       headers)
    return {"window_instances": window, "nodes": nodes, "bare": bare}


async def reads(run: Run) -> dict:
    app = 7 % run.a.apps
    paths = {"app": f"/eureka/apps/APP{app}", "vip": f"/eureka/vips/app{app}",
             "instance": f"/eureka/instances/{run.fleet.instance_id(app)}"}
    with run.timeline.phase("reads"):
        return {kind: await run.read_phase(run.urls[0] + path, PLAIN_JSON, run.a.read_count,
                                           run.a.read_seconds, 1)
                for kind, path in paths.items()}


async def fresh(run: Run) -> dict:
    out = {}
    with run.timeline.phase("freshness"):
        for kind, path in (("delta", "/eureka/apps/delta"), ("full", "/eureka/apps")):
            out[kind] = await freshness(run.session, run.urls[0], run.urls[1] + path, run.fleet, run.next_id,
                                        run.a.fresh_writes, run.a.fresh_seconds, run.a.fresh_wait)
            run.next_id += out[kind]["attempted"]
    return out


async def sync(run: Run, rnd: int) -> dict:
    expect = await apreg_holds(run.session, run.urls[0])
    with run.timeline.phase("sync"):
        out = await empty_peer_sync(run.procs, run.session, run.urls[0], f"d{rnd}",
                                    [*run.served.node_args, *run.a.node_arg], expect, run.a.sync_timeout)
    return out | {"expected": expect}


async def renewals(run: Run) -> dict:
    n, fleet, base = run.registered, run.fleet, run.urls[0]
    with run.timeline.phase("renewals"):
        return await paced(run.session, "renew", lambda i: ("PUT", fleet.renew_url(base, i % n), None),
                           n / 30, run.a.renew_seconds, 256, run.pids)


async def settle(run: Run) -> None:
    """Wait until every node answers a one-instance read within SETTLED_MS again."""
    async def quick(url: str) -> bool:
        t = time.perf_counter()
        async with run.session.get(url + run.fleet.path(0), headers=PLAIN_JSON) as r:
            await r.read()
        return (time.perf_counter() - t) * 1000 < SETTLED_MS

    async def all_quick() -> bool:
        return all([await quick(u) for u in run.urls])

    await wait_until(all_quick, run.a.settle_seconds, 0.05, "nodes answering within 20 ms")


async def one_round(run: Run, rnd: int) -> dict:
    out: dict = {"round": rnd}
    steps = (("fetch", fetches), ("cold_start", cold_start), ("delta", delta_polls), ("reads", reads),
             ("freshness", fresh), ("sync", lambda r: sync(r, rnd)), ("renewals", renewals))
    for name, step in steps:
        if name in run.served.not_applicable:
            out[name] = {NA: run.served.not_applicable[name]}
            continue
        await settle(run)
        out[name] = await step(run)
    log(f"round {rnd}: fetch json_gzip p50 {out['fetch']['json_gzip']['sequential']['latency_ms']['p50']} ms, "
        f"delta {out['delta']['nodes']['rps']}/s vs bare {out['delta']['bare']['rps']}/s, "
        f"sync {out['sync'].get('sync_s', NA)} s, renew CPU A {out['renewals']['server_cpu_pct'].get('A')} %")
    return out


# ----- one size --------------------------------------------------------------------------------------------

def rss(pids: dict[str, int]) -> dict[str, int | None]:
    return {name: rss_kb(pid) for name, pid in pids.items()}


@dataclass(slots=True)
class RssWatch:
    """The nodes' RSS every 0.25 s: the peak each reached (a node rendering full fetches for
    many clients at once may hold one body per client), and a guard that stops the run once a
    node passes `limit_kb`, before it takes a shared machine's memory."""

    pids: dict[str, int]
    limit_kb: int
    peak_kb: dict[str, int] = field(default_factory=dict)
    tripped: str | None = None

    async def run(self, task: asyncio.Task) -> None:
        while True:
            for name, kb in rss(self.pids).items():
                self.peak_kb[name] = max(self.peak_kb.get(name, 0), kb or 0)
                if kb and kb > self.limit_kb:
                    self.tripped = f"node {name} RSS {kb // 1024:,} MiB passed --max-rss-mb {self.limit_kb // 1024:,}"
                    task.cancel()
                    return
            await asyncio.sleep(0.25)


async def start_bare(procs: ProcessSet, session: aiohttp.ClientSession) -> str:
    port = free_port()
    procs.spawn("bare", [sys.executable, str(HERE / "_load.py"), "bare", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        procs.check_alive()
        async with session.get(url + "/eureka/apps/delta") as r:
            return r.status == 200

    await wait_until(up, 60, 0.1, "bare aiohttp server")
    return url


async def measure_size(n: int, a: argparse.Namespace, procs: ProcessSet) -> dict:
    served = SERVED[a.system]
    cluster = cluster_class(a.system)(3, procs, [*served.node_args, *a.node_arg])
    log(f"N={n:,}: starting 3 {a.system} nodes and a bare aiohttp server")
    await cluster.start()
    await cluster.close()  # its pooled session decompresses; this bench reads raw bodies
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=a.request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        pids = {name: m.pid for name, m in zip(NODES, cluster.members)}
        watch = RssWatch(pids, a.max_rss_mb * 1024)
        me = asyncio.current_task()
        assert me is not None
        watcher = asyncio.create_task(watch.run(me))
        try:
            out = await serve_fleet(n, a, served, procs, session, cluster.urls, pids)
        except asyncio.CancelledError:
            if watch.tripped:
                raise RuntimeError(watch.tripped) from None
            raise
        finally:
            watcher.cancel()
    out["rss_peak_kb"] = watch.peak_kb
    out["argv_A"] = cluster.members[0].proc.args
    return out


async def serve_fleet(n: int, a: argparse.Namespace, served: Served, procs: ProcessSet,
                      session: aiohttp.ClientSession, urls: list[str], pids: dict[str, int]) -> dict:
    """Register the fleet, then the rounds, with the prober running throughout."""
    run = Run(a, served, Fleet(a.apps, int(time.time() * 1000)), session, procs, urls, pids,
              await start_bare(procs, session))
    empty = rss(pids)
    await register(session, urls[0], run.fleet, 0)
    samples = procs.workdir / "probe.txt"
    prober = procs.spawn("probe", [sys.executable, str(HERE / "_probe.py"), "--url",
                                   urls[0] + run.fleet.path(0), "--out", str(samples)])

    async def probing() -> bool:
        procs.check_alive()
        return samples.exists() and samples.stat().st_size > 0

    await wait_until(probing, 60, 0.05, "the stall prober's first answer")
    out: dict = {"instances": n, "not_applicable": served.not_applicable,
                 "register": await register_fleet(run, n)}
    log(f"registered {run.registered:,} at {out['register']['rps']}/s, "
        f"at every node {out['register']['replicated_s']} s later")
    grown = rss(pids)
    out["rounds"] = [await one_round(run, rnd) for rnd in range(1, a.rounds + 1)]
    out["final_instances"] = run.next_id
    prober.stop()
    out["rss_kb"] = {"empty": empty, "registered": grown, "end": rss(pids)}
    out["rss_per_instance_b"] = {k: round((grown[k] - empty[k]) * 1024 / run.registered)
                                 for k in NODES if grown[k] is not None and empty[k] is not None}
    out["stalls"] = stalls(read_samples(samples), run.timeline.spans)
    return out


# ----- summary and table -----------------------------------------------------------------------------------

def med(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


Figure = float | int | str | None  # str: NA


def summary(size: dict) -> dict[str, Figure]:
    """The table's figures of one size, keyed as in ROWS; those of a phase that does not apply are NA."""
    rounds = size["rounds"]
    col = lambda get: med([get(r) for r in rounds])  # noqa: E731
    s: dict[str, Figure] = {"registrations_per_s": size["register"]["rps"],
                            "replicated_s": size["register"]["replicated_s"]}
    for fmt, gzip in VARIANTS:
        v = variant(fmt, gzip)
        s[f"fetch_{v}_p50_ms"] = col(lambda r: r["fetch"][v]["sequential"]["latency_ms"]["p50"])
        s[f"fetch_{v}_p99_ms"] = col(lambda r: r["fetch"][v]["sequential"]["latency_ms"]["p99"])
        s[f"fetch_{v}_per_s"] = col(lambda r: r["fetch"][v]["readers"]["rps"])
        s[f"fetch_{v}_kb"] = col(lambda r: r["fetch"][v]["sequential"]["body_bytes"] / 1024)
    for q in ("p50", "p99", "max"):
        s[f"cold_{q}_ms"] = col(lambda r: r["cold_start"]["latency_ms"][q])
    s["cold_total_s"] = col(lambda r: r["cold_start"]["seconds"])
    s["cold_answered"] = col(lambda r: r["cold_start"]["requests"] - r["cold_start"]["errors"])
    s["delta_per_s"] = col(lambda r: r["delta"]["nodes"]["rps"])
    s["bare_per_s"] = col(lambda r: r["delta"]["bare"]["rps"])
    s["delta_vs_bare"] = col(lambda r: r["delta"]["nodes"]["rps"] / r["delta"]["bare"]["rps"])
    s["delta_window"] = col(lambda r: r["delta"]["window_instances"])
    s["delta_bytes"] = col(lambda r: r["delta"]["nodes"]["body_bytes"])
    s["bare_bytes"] = col(lambda r: r["delta"]["bare"]["body_bytes"])
    for kind in ("app", "vip", "instance"):
        for q in ("p50", "p99"):
            s[f"read_{kind}_{q}_ms"] = col(lambda r: r["reads"][kind]["latency_ms"][q])
    for kind in ("delta", "full"):
        pooled = summarize([ms for r in rounds for ms in r["freshness"][kind]["ms"]], 1)
        s[f"fresh_{kind}_p50_ms"], s[f"fresh_{kind}_p95_ms"] = pooled["p50"], pooled["p95"]
        s[f"fresh_{kind}_unseen"] = sum(r["freshness"][kind]["unseen"] for r in rounds)
    s["sync_s"] = col(lambda r: r["sync"].get("sync_s"))
    s["sync_startup_s"] = col(lambda r: r["sync"].get("startup_s"))
    s["renew_target_per_s"] = col(lambda r: r["renewals"]["target_rps"])
    s["renew_per_s"] = col(lambda r: r["renewals"]["rps"])
    for node in NODES:
        s[f"renew_cpu_{node}"] = col(lambda r: r["renewals"]["server_cpu_pct"].get(node))
    for node in NODES:
        end = size["rss_kb"]["end"][node]
        s[f"rss_mb_{node}"] = None if end is None else round(end / 1024, 1)
        s[f"rss_peak_mb_{node}"] = round(size["rss_peak_kb"].get(node, 0) / 1024, 1)
        s[f"rss_b_per_instance_{node}"] = size["rss_per_instance_b"].get(node)
    for name in PHASES:
        s[f"stall_{name}_ms"] = size["stalls"].get(name, {}).get("max_ms")
    s["errors"] = errors(size)
    for name in size["not_applicable"]:
        s.update({key: NA for key in s if key.startswith(f"{name}_") or key == f"stall_{name}_ms"})
    return s


def errors(size: dict) -> int:
    """Non-2xx answers and transport errors, in every phase that counts them."""
    return sum(error_counts(size).values())


def error_counts(size: dict) -> dict[str, int]:
    """The errors of `errors`, by phase (failed probes under `probe`), to say where a nonzero total came from."""
    counts = {"register": size["register"]["errors"], "probe": sum(x["failed"] for x in size["stalls"].values())}
    for r in size["rounds"]:
        phases = {"fetch": sum(x[k]["errors"] for x in r["fetch"].values() for k in ("sequential", "readers")),
                  "cold_start": r["cold_start"]["errors"],
                  "delta": r["delta"]["nodes"]["errors"] + r["delta"]["bare"]["errors"],
                  "reads": sum(x["errors"] for x in r["reads"].values()), "renewals": r["renewals"]["errors"]}
        for name, n in phases.items():
            counts[name] = counts.get(name, 0) + n
    return counts


Check = Callable[[float], bool] | None
LE = lambda limit: (lambda v: v <= limit)  # noqa: E731
GE = lambda limit: (lambda v: v >= limit)  # noqa: E731

ROWS: list[tuple[str, str, str, Check]] = [
    ("registrations_per_s", "registrations/s (64 in flight, 3 nodes)", "", None),
    ("replicated_s", "  last ack to N at every node, s", "", None),
    *[row for fmt, gzip in VARIANTS for v in [variant(fmt, gzip)] for row in (
        (f"fetch_{v}_p50_ms", f"full fetch {v} p50 ms", "<= 50" if v == "json_gzip" else
         "<= 100" if fmt == "xml" else "", LE(50) if v == "json_gzip" else LE(100) if fmt == "xml" else None),
        (f"fetch_{v}_p99_ms", f"full fetch {v} p99 ms", "", None),
        (f"fetch_{v}_per_s", f"full fetch {v}/s, 8 readers", ">= 20" if v == "json_gzip" else "",
         GE(20) if v == "json_gzip" else None),
        (f"fetch_{v}_kb", "  body as sent, KiB", "", None))],
    ("cold_p50_ms", "cold start p50 ms", "", None),
    ("cold_p99_ms", "cold start p99 ms", "", None),
    ("cold_max_ms", "cold start max ms", "", None),
    ("cold_total_s", "cold start until the last answer, s", "", None),
    ("cold_answered", "cold start clients answered", "", None),
    ("delta_per_s", "delta polls/s (16 pollers, JSON gzip)", "", None),
    ("bare_per_s", "bare aiohttp handler polls/s", "", None),
    ("delta_vs_bare", "delta polls / bare", ">= 0.5", GE(0.5)),
    ("delta_vs_smallest", "delta polls / smallest N's", ">= 0.9", GE(0.9)),
    ("delta_window", "  instances in the delta window", "", None),
    ("delta_bytes", "  delta body as sent, bytes", "", None),
    ("bare_bytes", "  bare body as sent, bytes", "", None),
    *[(f"read_{k}_{q}_ms", f"read {label} {q} ms", "<= 2" if q == "p50" else "", LE(2) if q == "p50" else None)
      for k, label in (("app", "apps/APP7"), ("vip", "vips/app7"), ("instance", "instances/{id}"))
      for q in ("p50", "p99")],
    *[(f"stall_{name}_ms", f"longest probe answer (stall), {name}, ms", "<= 50", LE(50)) for name in PHASES],
    ("sync_s", "empty-peer sync, s (from spawn)", "<= 5", LE(5)),
    ("sync_startup_s", "  of which start-up to first answer, s", "", None),
    ("fresh_delta_p50_ms", "freshness, B's delta p50 ms", "<= 20", LE(20)),
    ("fresh_delta_p95_ms", "freshness, B's delta p95 ms", "", None),
    ("fresh_delta_unseen", "  not seen within the wait", "", None),
    ("fresh_full_p50_ms", "freshness, B's full fetch p50 ms", "", None),
    ("fresh_full_p95_ms", "freshness, B's full fetch p95 ms", "", None),
    ("fresh_full_unseen", "  not seen within the wait", "", None),
    ("renew_target_per_s", "renewals/s asked (N/30)", "", None),
    ("renew_per_s", "renewals/s answered", "", None),
    *[(f"renew_cpu_{node}", f"  CPU node {node}, % of a core", "<= 30" if node == "A" else "",
       LE(30) if node == "A" else None) for node in NODES],
    *[(f"rss_mb_{node}", f"RSS node {node} at the end, MiB", "", None) for node in NODES],
    *[(f"rss_peak_mb_{node}", f"RSS node {node} peak, MiB", "", None) for node in NODES],
    *[(f"rss_b_per_instance_{node}", f"RSS growth per instance, node {node}, B", "", None) for node in NODES],
    ("errors", "errors (non-2xx or transport)", "0", LE(0)),
]


def add_relative(summaries: dict[int, dict]) -> None:
    """Delta polls relative to the smallest N run (the issue compares with 1,000 instances)."""
    if len(summaries) < 2:
        return
    base = summaries[min(summaries)]["delta_per_s"]
    for s in summaries.values():
        polls = s["delta_per_s"]
        measured = isinstance(base, (int, float)) and base and isinstance(polls, (int, float))
        s["delta_vs_smallest"] = round(polls / base, 3) if measured else None


def fmt(v: Figure) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, int) or abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3f}" if abs(v) < 1 else f"{v:.1f}"


def print_table(summaries: dict[int, dict], results: dict[int, dict], a: argparse.Namespace) -> None:
    sizes = sorted(summaries)
    largest = sizes[-1]
    head = [f"{'metric':<42}", *[f"{'N=' + format(n, ','):>12}" for n in sizes], f"{'target':>8}",
            f"  met at N={largest:,}"]
    print(" ".join(head))
    print("-" * len(" ".join(head)))
    for key, label, target, check in ROWS:
        value = summaries[largest].get(key)
        met = "" if check is None else "-" if not isinstance(value, (int, float)) else "yes" if check(value) \
            else "NO"
        print(" ".join([f"{label:<42}", *[f"{fmt(summaries[n].get(key)):>12}" for n in sizes],
                        f"{target:>8}", f"  {met}"]))
    windows = {n: summaries[n]["delta_window"] for n in sizes}
    print(f"\nmedians over {a.rounds} round(s); stalls: max over rounds; freshness: pooled. Bodies are read raw "
          "(never decompressed by the client): fetch times are the server's cost.")
    print("delta window: " + ", ".join(f"N={n:,}: {'empty' if not w else f'NOT empty ({w:,.0f} instances)'}"
                                       for n, w in windows.items())
          + (" (Eureka's 3-minute window was not waited out)" if any(windows.values()) else ""))
    for n, size in results.items():
        print(f"N={n:,}, node A: {' '.join(size['argv_A'])}")
        if size["register"]["replicated_s"] is None:
            held = ", ".join(f"{name} {count:,}" for name, count in size["register"]["held"].items())
            print(f"N={n:,}: not every node held the {size['register']['acknowledged']:,} acknowledged "
                  f"registrations when the wait ended; they held {held}")
    print(f"{a.system}: no heartbeats between phases: {SERVED[a.system].kept}")
    for name, why in SERVED[a.system].not_applicable.items():
        print(f"{NA}: {name}: {why}")
    print(f"load average at the end {os.getloadavg()}, {os.cpu_count()} CPUs")


# ----- main ------------------------------------------------------------------------------------------------

async def measure(a: argparse.Namespace) -> dict[int, dict]:
    results: dict[int, dict] = {}
    for n in a.instances:
        procs = ProcessSet(Path(tempfile.mkdtemp(prefix=f"apreg-fleet-{n}-")), remove_dir=not a.keep)
        try:
            results[n] = await measure_size(n, a, procs)
        except BaseException:
            procs.print_log_tails()
            raise
        finally:
            stopped = procs.stop_all()
            log(f"N={n:,}: stopped {len(stopped)} processes")
            if a.keep:
                log(f"logs kept in {procs.workdir}")
            else:
                shutil.rmtree(procs.workdir, ignore_errors=True)
        results[n]["stopped"] = stopped
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--instances", action="append", type=lambda s: [int(x) for x in s.split(",")],
        help="fleet sizes, comma-separated or repeated (10000)")
    add("--apps", type=int, default=500, help="applications the instances belong to (500)")
    add("--rounds", type=int, default=3)
    add("--system", choices=tuple(SERVED), default="apreg", help="what serves the fleet (apreg)")
    add("--node-arg", action="append", default=[], help="extra `apreg serve` argument (repeat), "
                                                        "e.g. --node-arg=--read-cache-max-age=1; for "
                                                        "Eureka a Spring property, --node-arg=--name=value")
    add("--concurrency", type=int, default=64, help="registrations in flight (64)")
    add("--register-seconds", type=float, default=1200, help="time cap of the registration (1200)")
    add("--seconds", type=float, default=5, help="length of the readers' and pollers' phases, s (5)")
    add("--fetch-count", type=int, default=20, help="sequential full fetches per variant (20) ...")
    add("--fetch-seconds", type=float, default=10, help="... or fewer when this runs out (10)")
    add("--cold-clients", type=int, default=200)
    add("--cold-seconds", type=float, default=120, help="time cap of the cold start (120)")
    add("--delta-drain", type=float, default=240, help="wait up to this long for the delta window to empty (240)")
    add("--read-count", type=int, default=200, help="sequential reads per kind (200) ...")
    add("--read-seconds", type=float, default=5, help="... or fewer when this runs out (5)")
    add("--fresh-writes", type=int, default=50, help="freshness writes per round and view (50) ...")
    add("--fresh-seconds", type=float, help="... started within this many seconds (2 x --fresh-wait)")
    add("--fresh-wait", type=float, help="how long one write is looked for, s (10, or the driver's drain if longer)")
    add("--sync-timeout", type=float, default=120)
    add("--renew-seconds", type=float, default=15)
    add("--settle-seconds", type=float, default=600, help="cap on the wait for quiet nodes between phases")
    add("--request-timeout", type=float, default=120)
    add("--max-rss-mb", type=int, default=PHYSICAL_MB // 2,
        help=f"stop the run when a node's RSS passes this (half the memory: {PHYSICAL_MB // 2:,})")
    add("--keep", action="store_true", help="keep the nodes' logs")
    add("--json", type=Path, help="write every figure here")
    a = p.parse_args(argv)
    a.instances = sorted({n for group in a.instances or [[10_000]] for n in group})
    if min(a.instances) < 2 or a.apps < 1 or a.rounds < 1:
        p.error("--instances must be >= 2, --apps and --rounds >= 1")
    try:
        drain = cluster_class(a.system).drain_s
    except Unavailable as exc:
        p.error(str(exc))
    a.fresh_wait = a.fresh_wait or max(10.0, drain)
    a.fresh_seconds = a.fresh_seconds or 2 * a.fresh_wait
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    install_exit_handlers()
    log(f"fleet: {a.system}, sizes {a.instances}, {a.apps} apps, {a.rounds} round(s), "
        f"load average {os.getloadavg()}")
    results = asyncio.run(measure(a))
    summaries = {n: summary(r) for n, r in results.items()}
    add_relative(summaries)
    print_table(summaries, results, a)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        config = {k: v for k, v in vars(a).items() if k != "json"}
        a.json.write_text(json.dumps({"config": config, "machine": {"nproc": os.cpu_count(),
                                      "python": sys.version.split()[0], "aiohttp": aiohttp.__version__},
                                      "summary": {str(n): s for n, s in summaries.items()},
                                      "sizes": {str(n): r for n, r in results.items()}}, indent=1))
        log(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
