"""ZooKeeper 3.8 (Debian jars, QuorumPeerMain under java) driven with kazoo.

Writes create persistent znodes (persistent so that a session expiring during a
partition cannot delete acknowledged data and blur the heal check). Watchers set
one `exists` watch per expected znode before any write, so each NodeCreated
event is a per-write timestamp from that server, with no list diffing.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from pathlib import Path

from kazoo.client import KazooClient, KazooState

from _procs import free_ports
from _systems import Cluster, Emit, WriteError, instance_bytes

# kazoo logs every reconnect attempt at WARNING; during a partition that is
# expected and would bury the results, so keep it out of the terminal.
logging.getLogger("kazoo").addHandler(logging.NullHandler())

JAR_DIRS = (Path("/usr/share/java"), Path("/usr/share/zookeeper"), Path("/usr/share/zookeeper/lib"))
LOG4J = """log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
"""


def classpath() -> str | None:
    """zookeeper.jar (its manifest names its dependencies) plus a log4j binding."""
    for d in JAR_DIRS:
        jar = d / "zookeeper.jar"
        if jar.exists():
            extras = [d / "slf4j-log4j12.jar", d / "log4j-1.2.jar"]
            return ":".join(str(p) for p in [jar, *extras] if p.exists())
    return None


def _root(namespace: str) -> str:
    return "/apreg-bench/" + namespace.rstrip("-")


class ZkCluster(Cluster):
    system = "zookeeper"

    @classmethod
    def unavailable(cls) -> str | None:
        if not shutil.which("java"):
            return "zookeeper: java not installed (apt-get install zookeeper)"
        if classpath() is None:
            return "zookeeper not installed (apt-get install zookeeper)"
        return None

    async def start(self) -> None:
        if self.extra_args:
            raise ValueError("zookeeper takes no extra server flags (its settings live in zoo.cfg)")
        ports = free_ports(3 * self.n)
        self.client_ports = ports[: self.n]
        servers = "\n".join(
            f"server.{i + 1}=127.0.0.1:{ports[self.n + i]}:{ports[2 * self.n + i]}"
            for i in range(self.n))
        (self.workdir / "log4j.properties").write_text(LOG4J)
        cp = classpath()
        for i in range(self.n):
            d = self.workdir / f"zk{i + 1}"
            (d / "data").mkdir(parents=True)
            (d / "data" / "myid").write_text(f"{i + 1}\n")
            (d / "zoo.cfg").write_text(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\n"
                f"dataDir={d / 'data'}\nclientPort={self.client_ports[i]}\n"
                "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                "4lw.commands.whitelist=srvr,ruok\nmaxClientCnxns=200\n"
                f"{servers}\n")
            argv = ["java", "-Xmx256m", "-Xms64m", "-XX:+UseSerialGC", "-cp", str(cp),
                    f"-Dzookeeper.log.dir={d}", "-Dzookeeper.jmx.log4j.disable=true",
                    f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(d / "zoo.cfg")]
            self.members.append(self.procs.spawn(f"zk{i + 1}", argv))

        async def serving(node: int) -> bool:
            return await srvr_mode(self.client_ports[node]) in ("leader", "follower")

        await self.wait_serving(serving, 90, 0.2, "zookeeper ensemble serving")
        self.root = _root(self.namespace)
        self.clients = [KazooClient(hosts=f"127.0.0.1:{p}", timeout=10) for p in self.client_ports]
        for c in self.clients:
            await asyncio.to_thread(c.start, 20)
        await asyncio.to_thread(self.clients[0].ensure_path, self.root)
        await asyncio.to_thread(self.clients[0].sync, self.root)  # every member has the parent
        for c in self.clients[1:]:
            await asyncio.to_thread(c.sync, self.root)

    async def close(self) -> None:
        for c in getattr(self, "clients", []):
            await asyncio.to_thread(_stop_client, c)

    async def _call(self, node: int, timeout: float, start) -> tuple[object, float]:
        """Bridge a kazoo async call to asyncio; the time is taken in kazoo's
        completion callback, not when the event loop gets round to it."""
        c = self.clients[node]
        if c.state != KazooState.CONNECTED:
            # kazoo queues requests while disconnected and replays them later,
            # even after we gave up: not sending avoids phantom late writes.
            raise WriteError("not sent: client disconnected")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def done(ar) -> None:
            t = time.monotonic()
            loop.call_soon_threadsafe(_resolve, fut, ar, t)

        start(c).rawlink(done)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise WriteError("timeout") from None

    async def put(self, node: int, name: str, timeout: float) -> float:
        try:
            _, t = await self._call(node, timeout, lambda c: c.create_async(
                f"{self.root}/{name}", instance_bytes(name)))
        except WriteError:
            raise
        except Exception as exc:  # noqa: BLE001 - kazoo errors (ConnectionLoss, ...)
            raise WriteError(type(exc).__name__) from None
        return t

    async def read_names(self, node: int, timeout: float) -> set[str]:
        try:
            children, _ = await self._call(node, timeout,
                                           lambda c: c.get_children_async(self.root))
        except WriteError as exc:
            raise RuntimeError(str(exc)) from None
        return set(children)  # type: ignore[arg-type]

    def watch_endpoint(self, node: int) -> str:
        return f"127.0.0.1:{self.client_ports[node]}"

    async def role(self, node: int) -> str | None:
        return await srvr_mode(self.client_ports[node])


CLUSTER = ZkCluster


def _resolve(fut: asyncio.Future, ar, t: float) -> None:
    if fut.done():
        return
    if ar.successful():
        fut.set_result((ar.value, t))
    else:
        fut.set_exception(ar.exception)


def _stop_client(c: KazooClient) -> None:
    try:
        c.stop()
        c.close()
    except Exception:  # noqa: BLE001 - best effort at teardown
        pass


async def srvr_mode(port: int) -> str | None:
    """The `Mode:` line of the srvr four-letter word, or None if not serving."""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        w.write(b"srvr")
        data = await asyncio.wait_for(r.read(), 2)
        w.close()
    except (OSError, asyncio.TimeoutError):
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


async def watch(endpoint: str, namespace: str, names: list[str], emit: Emit, ready) -> None:
    root = _root(namespace)
    client = KazooClient(hosts=endpoint, timeout=10)
    await asyncio.to_thread(client.start, 20)
    failed = threading.Event()

    def on_event(ev) -> None:
        t = time.monotonic()
        if ev.type == "CREATED":
            emit(ev.path.rsplit("/", 1)[1], t)

    def on_state(state) -> None:
        if state == KazooState.LOST:
            failed.set()

    client.add_listener(on_state)
    try:
        pending = [client.exists_async(f"{root}/{n}", watch=on_event) for n in names]
        for ar in pending:
            stat = await asyncio.to_thread(ar.get, True, 30)
            if stat is not None:
                raise RuntimeError("znode existed before its watch was set")
        ready()
        while not failed.is_set():
            await asyncio.sleep(0.2)
        raise RuntimeError("zookeeper session lost")
    finally:
        await asyncio.to_thread(_stop_client, client)
