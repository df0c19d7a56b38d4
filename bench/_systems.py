"""The driver interface every system under test implements, and the one place
that knows which systems exist. Experiments (staleness, partition) talk only to
`Cluster`; each driver module knows one system's processes and wire protocol."""
from __future__ import annotations

import contextlib
import importlib
import json
import secrets
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import ClassVar

from _procs import ProcessSet, wait_until

# system name -> driver module (imported lazily: a missing client library only
# disables its own system).
DRIVERS: dict[str, str] = {"apreg": "_apreg", "etcd": "_etcd", "zookeeper": "_zk", "eureka": "_eureka",
                          "eureka-tuned": "_eureka_tuned"}
APP = "APREGBENCH"

Emit = Callable[[str, float], None]          # (name, time.monotonic() when seen)
WatchFn = Callable[[str, str, list[str], Emit, Callable[[], None]], Awaitable[None]]


class Unavailable(Exception):
    """The system is not installed (or not runnable) on this machine."""


class WriteError(Exception):
    """A write that was not acknowledged; str() is a short outcome label."""


def instance_body(instance_id: str) -> dict:
    """A Eureka registration; also the value stored in etcd/ZooKeeper so every
    system moves the same payload."""
    return {"instance": {
        "instanceId": instance_id, "hostName": "127.0.0.1", "app": APP,
        "ipAddr": "127.0.0.1", "status": "UP", "port": {"$": 8080, "@enabled": "true"},
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                           "name": "MyOwn"},
        "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
    }}


def instance_bytes(instance_id: str) -> bytes:
    return json.dumps(instance_body(instance_id), separators=(",", ":")).encode()


def probe_names(n: int) -> list[str]:
    return [f"p{j:04d}" for j in range(n)]


def write_names(n: int, prefix: str = "w") -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(n)]


class Cluster(ABC):
    """N members of one system on 127.0.0.1. Names are short strings; each driver
    maps them into its own keyspace under `namespace`, unique per run."""

    system: ClassVar[str]
    # How long after the last write a write may still become visible before staleness.py counts it lost.
    drain_s: ClassVar[float] = 5.0

    def __init__(self, n: int, procs: ProcessSet, extra_args: list[str]) -> None:
        self.n = n
        self.procs = procs
        self.workdir = procs.workdir
        self.extra_args = extra_args
        self.namespace = f"b{secrets.token_hex(3)}-"
        self.members = []  # list[_procs.Managed], index = node

    @classmethod
    @abstractmethod
    def unavailable(cls) -> str | None:
        """Why this system cannot run here, or None if it can."""

    @abstractmethod
    async def start(self) -> None:
        """Start all members and return once each serves clients."""

    @abstractmethod
    async def close(self) -> None:
        """Release client connections (processes are stopped by ProcessSet)."""

    @abstractmethod
    async def put(self, node: int, name: str, timeout: float) -> float:
        """Write `name` at `node`; return time.monotonic() at the ack, or raise WriteError."""

    @abstractmethod
    async def read_names(self, node: int, timeout: float) -> set[str]:
        """Names of this run currently visible in `node`'s local state."""

    @abstractmethod
    def watch_endpoint(self, node: int) -> str:
        """What a watcher process needs to reach `node`'s push channel."""

    async def wait_serving(self, member_ready: Callable[[int], Awaitable[bool]],
                           timeout: float, interval: float, what: str) -> None:
        """Poll until `member_ready(node)` holds for every member. Each round first
        checks that every process is still running, so a server that exited shows
        up (with its log tail) in the timeout error instead of a bare timeout."""
        async def all_ready() -> bool:
            self.procs.check_alive()
            for node in range(self.n):
                if not await member_ready(node):
                    return False
            return True

        await wait_until(all_ready, timeout, interval, what)

    async def role(self, node: int) -> str | None:
        """leader/follower where the system has one (context for partition runs)."""
        return None

    def pause(self, node: int) -> None:
        self.members[node].pause()

    def resume(self, node: int) -> None:
        self.members[node].resume()


def driver_module(system: str):
    if system not in DRIVERS:
        raise SystemExit(f"unknown system {system!r}; choose from {', '.join(DRIVERS)}")
    return importlib.import_module(DRIVERS[system])


def cluster_class(system: str) -> type[Cluster]:
    """The driver class, or raise Unavailable with the reason."""
    try:
        mod = driver_module(system)
    except ImportError as exc:
        raise Unavailable(f"{system}: client library missing ({exc}); "
                          "install with: pip install -e '.[bench]'") from exc
    cls: type[Cluster] = mod.CLUSTER
    reason = cls.unavailable()
    if reason:
        raise Unavailable(reason)
    return cls


def skip_if_unavailable(system: str, json_path: Path | None = None) -> dict | None:
    """If `system` cannot run here, print why and return (and write to `json_path`)
    a {"system", "skipped"} record, so that a run over every system notes the gap
    rather than failing; None if it can run."""
    try:
        cluster_class(system)
    except Unavailable as exc:
        print(f"skipped: {exc}", flush=True)
        skipped = {"system": system, "skipped": str(exc)}
        if json_path:
            json_path.write_text(json.dumps(skipped, indent=2))
        return skipped
    return None


def watch_function(system: str) -> WatchFn:
    return driver_module(system).watch


@contextlib.asynccontextmanager
async def open_cluster(system: str, n: int, extra_args: list[str] | None = None,
                       keep: bool = False) -> AsyncIterator[Cluster]:
    """A started cluster; on exit every process is stopped and the temp dir removed
    (kept, with logs, when `keep`)."""
    cls = cluster_class(system)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{system}-"))
    procs = ProcessSet(tmp, remove_dir=not keep)
    cluster = cls(n, procs, list(extra_args or []))
    try:
        try:
            await cluster.start()
        except BaseException:
            procs.print_log_tails()
            raise
        yield cluster
    finally:
        try:
            await cluster.close()
        finally:
            procs.stop_all()
            if keep:
                print(f"kept logs in {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
