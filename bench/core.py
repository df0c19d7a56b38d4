#!/usr/bin/env python3
"""Cost of the pure replication core on one large registry: merges, anti-entropy exchanges, memory.

Everything printed is measured on this run (no assertions, no hard-coded figures). Targets from the issue:
>= 100,000 merges/s; an in-sync anti-entropy exchange under 1 KB and 1 ms; under 1 KB of memory per instance.

    python bench/core.py                 # 100,000 instances
    python bench/core.py --instances 20000 --profile   # cProfile the receive path too
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apreg.core.config import CoreConfig  # noqa: E402
from apreg.core.instance import DEFAULT_DATA_CENTER_CLASS, InstanceInfo, InstanceKey  # noqa: E402
from apreg.core.messages import Delta, Digest, DigestReply, Push  # noqa: E402
from apreg.core.record import merge  # noqa: E402
from apreg.server.collector import tune_garbage_collector  # noqa: E402
from apreg.core.replica import Replica  # noqa: E402
from apreg.eureka.codec import parse_register  # noqa: E402
from apreg.peer import wire  # noqa: E402

T0 = 1_700_000_000_000


def instance(i: int, host: str = "host") -> InstanceInfo:
    """A registration as a node gets it: a Eureka client's JSON body, decoded by the node's own codec (which
    shares values that repeat across instances, as a real node does). 500 apps of 200 instances, 3 zones."""
    app = f"APP-{i % 500}"
    body = {"instance": {"instanceId": f"i-{i:06d}", "app": app, "hostName": f"{host}-{i}.example",
                         "ipAddr": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "vipAddress": f"app-{i % 500}",
                         "status": "UP", "port": {"$": 7001, "@enabled": "true"},
                         "dataCenterInfo": {"@class": DEFAULT_DATA_CENTER_CLASS, "name": "MyOwn"},
                         "metadata": {"zone": f"z{i % 3}"}, "lastDirtyTimestamp": str(T0 + i)}}
    return parse_register(json.dumps(body).encode(), "application/json", app, T0)


def populated(name: str, n: int, config: CoreConfig, peers: tuple[str, ...], host: str = "host") -> Replica:
    replica = Replica(name, "1", config, peers)
    for i in range(n):
        replica.register(instance(i, host), T0 + i // 1000)
        if i % 1000 == 0:
            replica.take_effects()  # the shell drains the effects as it goes
    replica.take_effects()
    return replica


def pull_over_wire(requester: Replica, responder: Replica, now: int) -> None:
    """Anti-entropy pulls until in sync, every message through the wire codec, as between two nodes."""
    more = True
    while more:
        reply = wire.decode(wire.encode(responder.receive(wire.decode(wire.encode(requester.digest_for("a"))),
                                                          now)))  # type: ignore[arg-type]
        assert isinstance(reply, DigestReply)
        requester.receive(reply, now, peer="a")
        requester.take_effects()
        more = reply.more


def receive_all(replica: Replica, pushes: list[Push], now: int) -> None:
    for push in pushes:
        replica.receive(push, now)
        replica.take_effects()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pages(sender: Replica, config: CoreConfig) -> list[Push]:
    """The sender's whole state as Push messages of at most max_batch_items records each."""
    records = list(sender.records.values())
    return [Push(Delta(sender.replica_id, 0, 0, tuple(records[i:i + config.max_batch_items]), ()))
            for i in range(0, len(records), config.max_batch_items)]


def exchange(requester: Replica, responder: Replica, now: int) -> tuple[Digest, DigestReply]:
    """One anti-entropy round: Digest -> DigestReply -> apply (and the requester's follow-up push, if any)."""
    digest = requester.digest_for("a")
    reply = responder.receive(digest, now)
    assert isinstance(reply, DigestReply)
    requester.receive(reply, now, peer="a")
    for out in requester.take_effects().messages:
        if isinstance(out.message, Push):
            responder.receive(out.message, now)
    return digest, reply


DEFAULT_GC_THRESHOLDS = gc.get_threshold()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the receive path and print the top")
    args = parser.parse_args()
    n = args.instances
    config = CoreConfig()
    print(f"core benchmark: {n:,} instances, max_batch_items={config.max_batch_items}, python {sys.version.split()[0]}")

    # ----- memory per instance -----
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    a = populated("a", n, config, ("b",))
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    content = [instance(i) for i in range(n)]
    content_used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del content
    print(f"memory: {used / n:,.0f} bytes per instance (whole replica state, tracemalloc, {used / 2**20:,.1f} MiB); "
          f"of which the InstanceInfo content itself {content_used / n:,.0f} B, replication/lease/log state "
          f"{(used - content_used) / n:,.0f} B")
    peer = Replica("p", "1", config, ("a",))
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    pull_over_wire(peer, a, T0 + 10_000)
    gc.collect()
    peer_used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(peer.records) == n
    print(f"memory at a peer that pulled them all over the wire codec: {peer_used / n:,.0f} bytes per instance")
    del peer

    # ----- merges per second, under CPython's default collector and under the one `apreg serve` sets -----
    now = T0 + 10_000
    pushes = pages(a, config)
    rival = populated("r", n, config, (), host="rival")  # concurrent writes to every key, later stamps
    rival_pushes = pages(rival, config)
    for label in ("CPython's default collector", "collector tuned as `apreg serve` does"):
        if "tuned" in label:
            tune_garbage_collector()
        b = Replica("b", "1", config, ("a",))
        new_keys = timed(lambda: receive_all(b, pushes, now))
        conflicting = timed(lambda: receive_all(b, rival_pushes, now + 1))
        print(f"merge via Replica.receive ({len(pushes)} pushes), {label}: new keys {n / new_keys:,.0f} records/s; "
              f"existing keys, concurrent, incoming wins {n / conflicting:,.0f} records/s")
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_GC_THRESHOLDS)
    if args.profile:
        c = Replica("c", "1", config, ("a",))
        profile = cProfile.Profile()
        profile.runcall(lambda: receive_all(c, pushes, now))
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)

    pairs = [(a.records[k], rival.records[k]) for k in a.records]
    elapsed = timed(lambda: [merge(local, incoming) for local, incoming in pairs])
    print(f"raw record.merge (concurrent pairs): {n / elapsed:,.0f} merges/s")
    same = [(r, r) for r in a.records.values()]
    elapsed = timed(lambda: [merge(local, incoming) for local, incoming in same])
    print(f"raw record.merge (identical, the anti-entropy common case): {n / elapsed:,.0f} merges/s")
    rival = rival_pushes = pairs = same = None  # free the memory before the anti-entropy figures

    # ----- anti-entropy: in sync and 1 % out of sync -----
    b = Replica("b", "1", config, ("a",))
    rounds = 0
    while True:  # b pulls a's whole state, page by page
        _, reply = exchange(b, a, now)
        rounds += 1
        if not reply.more:
            break
    assert len(b.records) == n
    exchange(b, a, now)  # settle the requester's follow-up push
    times, sizes = [], []
    for _ in range(200):
        start = time.perf_counter()
        digest, reply = exchange(b, a, now)
        times.append(time.perf_counter() - start)
        sizes.append((len(wire.encode(digest)), len(wire.encode(reply))))
    assert not reply.delta.records and not reply.delta.renewals
    d_size, r_size = sizes[-1]
    print(f"anti-entropy in sync: Digest {d_size} B + DigestReply {r_size} B = {d_size + r_size} B; "
          f"exchange median {statistics.median(times) * 1e3:.3f} ms, p99 {sorted(times)[197] * 1e3:.3f} ms "
          f"(initial full pull: {rounds} pages)")

    changed = n // 100
    for i in range(changed):
        k = InstanceKey(f"APP-{i * 100 % 500}", f"i-{i * 100:06d}")
        a.update_metadata(k, {"v": "2"}, now + 5)
    digest = b.digest_for("a")
    start = time.perf_counter()
    digest, reply = exchange(b, a, now + 10)
    elapsed = time.perf_counter() - start
    print(f"anti-entropy with 1 % differing ({changed:,} records): Digest {len(wire.encode(digest))} B + DigestReply "
          f"{len(wire.encode(reply)):,} B ({len(reply.delta.records)} records, more={reply.more}); "
          f"exchange {elapsed * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
