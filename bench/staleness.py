#!/usr/bin/env python3
"""Write-to-visible latency of a replicated registry, measured at every other node.

Open loop: write i is due at t0 + i/rate whatever happened to earlier writes (each
write is its own task, so a slow ack never delays the next send). Latencies start
at the moment the request actually left; `send_lag_ms` (sent - due) shows how far
the harness itself fell behind schedule (asyncio timers overshoot by ~1 ms; tens
of ms would mean the client machine, not the system, was the bottleneck).
Writes go round-robin over the nodes; each node is watched through its push
channel by its own watcher process, and a write counts as visible at node j when
j's watcher was told of it. Samples are taken only at nodes other than the writer.

    bench/staleness.py --system etcd --nodes 3 --writes 1000 --rate 200 --json out.json
    bench/staleness.py --system apreg --sweep push-window=0,0.002,0.01 --json sweep.json
    bench/staleness.py --system apreg --data-dir /var/tmp --sweep fsync=always,interval,never

`--data-dir DIR` (apreg) gives each node its own `--data-dir` in a fresh directory under DIR, removed afterwards:
DIR should be on the disk being measured (not a tmpfs).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import install_exit_handlers  # noqa: E402
from _stats import summarize  # noqa: E402
from _systems import DRIVERS, Cluster, WriteError, cluster_class, open_cluster, probe_names, \
    skip_if_unavailable, write_names  # noqa: E402
from _watch import Watcher  # noqa: E402


@dataclass(slots=True)
class WriteRecord:
    name: str
    node: int
    due: float                  # scheduled send time (monotonic s)
    sent: float | None = None   # when the request actually left
    ack: float | None = None
    error: str | None = None


async def _write(cluster: Cluster, rec: WriteRecord, timeout: float) -> None:
    rec.sent = time.monotonic()
    try:
        rec.ack = await cluster.put(rec.node, rec.name, timeout)
    except WriteError as exc:
        rec.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure is an unacknowledged write
        rec.error = type(exc).__name__


async def _warm_up(cluster: Cluster, watchers: list[Watcher], probes: list[str],
                   warmup: int, timeout: float) -> None:
    """Untimed writes first (JIT, connections, caches: ZooKeeper on a cold JVM is
    several times slower), then one probe per node that every other watcher must
    see: proves each watch channel is live end to end before anything is timed."""
    n = cluster.n
    for i, name in enumerate(write_names(warmup, prefix="u")):
        await cluster.put(i % n, name, timeout)
    for j, name in enumerate(probes):
        await cluster.put(j % n, name, timeout)
    deadline = time.monotonic() + timeout
    while True:
        missing = [(name, w.node) for j, name in enumerate(probes) for w in watchers
                   if w.node != j % n and name not in w.seen]
        if not missing:
            return
        for w in watchers:
            if w.errors:
                raise RuntimeError(f"watcher {w.node}: {w.errors[-3:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"warm-up probes not seen by watchers: {missing[:5]}")
        await asyncio.sleep(0.02)


def _analyse(records: list[WriteRecord], watchers: list[Watcher]) -> dict:
    ms = 1000.0
    ack, visible, visible_all, stale, lag = [], [], [], [], []
    lost, missing_obs, unacked_seen = 0, 0, 0
    error_kinds: dict[str, int] = {}
    for r in records:
        if r.sent is not None:
            lag.append((r.sent - r.due) * ms)
        others = [w for w in watchers if w.node != r.node]
        if r.ack is None:
            error_kinds[r.error or "unknown"] = error_kinds.get(r.error or "unknown", 0) + 1
            unacked_seen += any(r.name in w.seen for w in others)
            continue
        ack.append((r.ack - r.sent) * ms)
        seen = [w.seen.get(r.name) for w in others]
        for t in seen:
            if t is None:
                missing_obs += 1
                continue
            visible.append((t - r.sent) * ms)
            stale.append((t - r.ack) * ms)
        if None in seen:
            lost += 1
        else:
            visible_all.append((max(seen) - r.sent) * ms)  # type: ignore[type-var]
    return {
        "ack_ms": summarize(ack), "visible_ms": summarize(visible),
        "visible_all_ms": summarize(visible_all), "staleness_ms": summarize(stale),
        "send_lag_ms": summarize(lag),
        "acked": len(ack), "lost": lost, "missing_observations": missing_obs,
        "errors": sum(error_kinds.values()), "error_kinds": error_kinds,
        "unacked_but_seen": unacked_seen,
        "_samples": {"ack_ms": ack, "visible_ms": visible, "visible_all_ms": visible_all,
                     "staleness_ms": stale},
    }


async def measure(system: str, nodes: int, writes: int, rate: float,
                  extra_args: list[str] | None = None, drain: float | None = None,
                  write_timeout: float = 5.0, keep: bool = False,
                  samples: bool = False, warmup: int = 200, data_dir: Path | None = None) -> dict:
    """One fresh cluster, warm-up, W open-loop writes, bounded drain (the system's own `drain_s` unless
    given); the result dict. With `data_dir`, each apreg node keeps its state in a fresh directory there."""
    if drain is None:
        drain = cluster_class(system).drain_s
    if nodes < 2:
        raise ValueError("need at least 2 nodes: visibility is measured at the others")
    probes = probe_names(nodes)
    with _data_dirs(data_dir) as dirs:
        async with open_cluster(system, nodes, [*(extra_args or []), *dirs], keep=keep) as cluster:
            watchers: list[Watcher] = []
            try:
                for j in range(nodes):
                    watchers.append(await Watcher.start(system, j, cluster.watch_endpoint(j),
                                                        cluster.namespace, len(probes), writes))
                await asyncio.gather(*(w.wait_ready(30) for w in watchers))
                await _warm_up(cluster, watchers, probes, warmup, max(15.0, drain))  # Eureka's reads lag 30 s

                names = write_names(writes)
                t0 = time.monotonic() + 0.05
                records = [WriteRecord(name, i % nodes, t0 + i / rate) for i, name in enumerate(names)]
                tasks = []
                for rec in records:
                    delay = rec.due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(_write(cluster, rec, write_timeout)))
                await asyncio.gather(*tasks)
                # Bounded wait: until everything acked is seen at every other node, or
                # `drain` seconds after the last scheduled write.
                deadline = records[-1].due + drain if records else time.monotonic()
                while time.monotonic() < deadline:
                    if all(r.ack is None or all(r.name in w.seen for w in watchers if w.node != r.node)
                           for r in records):
                        break
                    await asyncio.sleep(0.01)
                duration = (max((r.ack or r.sent or r.due) for r in records) - t0) if records else 0.0
            finally:
                for w in watchers:
                    await w.stop()
    result = {"system": system, "nodes": nodes, "writes": writes, "rate": rate,
              "extra_args": list(extra_args or []), "data_dir": str(data_dir) if data_dir else None,
              "duration_s": round(duration, 3),
              "warmup_writes": warmup, "drain_s": drain, "write_timeout_s": write_timeout,
              **_analyse(records, watchers),
              "watcher_errors": {w.node: w.errors for w in watchers if w.errors
                                 and not all(e.startswith("watcher exited") for e in w.errors)}}
    raw = result.pop("_samples")
    if samples:
        result["samples"] = {k: [round(v, 3) for v in vs] for k, vs in raw.items()}
    return result


@contextlib.contextmanager
def _data_dirs(base: Path | None) -> Iterator[list[str]]:
    """`apreg serve` arguments giving each node its own --data-dir in a fresh directory under `base`."""
    if base is None:
        yield []
        return
    run_dir = tempfile.mkdtemp(prefix="staleness-", dir=base)
    try:
        yield ["--data-dir", f"{run_dir}/{{node}}"]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def parse_sweep(spec: str) -> tuple[str, list[str]]:
    """'push-window=0,0.005' or '--push-window=0,0.005' -> ('--push-window', ['0','0.005'])."""
    flag, sep, values = spec.partition("=")
    if not sep or not values:
        raise SystemExit(f"--sweep wants FLAG=V1,V2,...; got {spec!r}")
    return "--" + flag.lstrip("-"), [v for v in values.split(",") if v]


def fmt_row(label: str, s: dict) -> str:
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    return f"  {label:<15} p50 {f(s['p50']):>8}  p95 {f(s['p95']):>8}  " \
           f"p99 {f(s['p99']):>8}  max {f(s['max']):>8}  (n={s['n']})"


def print_result(r: dict) -> None:
    print(f"{r['system']} nodes={r['nodes']} writes={r['writes']} rate={r['rate']}/s "
          f"{' '.join(r['extra_args'])}".rstrip())
    for k in ("ack_ms", "visible_ms", "visible_all_ms", "staleness_ms", "send_lag_ms"):
        print(fmt_row(k, r[k]))
    print(f"  acked {r['acked']}/{r['writes']}  errors {r['errors']} {r['error_kinds'] or ''}"
          f"  lost {r['lost']}  missing observations {r['missing_observations']}")
    if r.get("watcher_errors"):
        print(f"  watcher errors: {r['watcher_errors']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", required=True, choices=sorted(DRIVERS))
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--writes", type=int, default=500)
    ap.add_argument("--rate", type=float, default=100.0, help="writes per second (open loop)")
    ap.add_argument("--json", type=Path, help="write the result here")
    ap.add_argument("--sweep", help="FLAG=V1,V2,...: one run per value, FLAG passed to each server")
    ap.add_argument("--drain", type=float, default=None,
                    help="max wait after the last write before unseen writes count as lost "
                         "(default: the system's own, 5 s; eureka 45 s, since its reads lag up to 30 s)")
    ap.add_argument("--write-timeout", type=float, default=5.0)
    ap.add_argument("--warmup", type=int, default=200, help="untimed writes before the run")
    ap.add_argument("--samples", action="store_true", help="include raw samples in the JSON")
    ap.add_argument("--keep", action="store_true", help="keep server logs (temp dir)")
    ap.add_argument("--data-dir", type=Path, help="apreg: each node keeps its state (--data-dir) in a fresh "
                    "directory under this one; put it on the disk to measure")
    a = ap.parse_args(argv)
    install_exit_handlers()
    if a.writes < 1 or a.rate <= 0 or a.nodes < 2:
        ap.error("need --writes >= 1, --rate > 0, --nodes >= 2")
    if a.data_dir is not None and a.system != "apreg":
        ap.error("--data-dir is apreg's")
    if skip_if_unavailable(a.system, a.json):
        return 0

    runs: list[tuple[list[str], dict]] = []
    variants = [[]]
    if a.sweep:
        flag, values = parse_sweep(a.sweep)
        variants = [[flag, v] for v in values]
    for extra in variants:
        r = asyncio.run(measure(a.system, a.nodes, a.writes, a.rate, extra, a.drain,
                                a.write_timeout, a.keep, a.samples, a.warmup, a.data_dir))
        print_result(r)
        runs.append((extra, r))
    if a.json:
        if a.sweep:
            out = {"system": a.system, "nodes": a.nodes, "writes": a.writes, "rate": a.rate,
                   "sweep": {"flag": variants[0][0], "values": [e[1] for e, _ in runs]},
                   "runs": [r for _, r in runs]}
        else:
            out = runs[0][1]
        a.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
