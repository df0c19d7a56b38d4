"""Watchers run in their own processes, one per observed node, so a busy writer
loop (or kazoo's threads) never delays the moment a push is noticed. Both sides
stamp with time.monotonic() (CLOCK_MONOTONIC, shared by all processes on the host).

Child protocol on stdout, one line each: `READY`, `SEEN <name> <t>`, `ERR <text>`.
The child exits when its stdin closes, so it cannot outlive the parent.

Run as: _watch.py SYSTEM ENDPOINT NAMESPACE N_PROBES N_WRITES (names as in _systems)
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class Watcher:
    """Parent-side handle: first-seen time per name at one node."""

    node: int
    proc: asyncio.subprocess.Process
    seen: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task | None = None

    @classmethod
    async def start(cls, system: str, node: int, endpoint: str, namespace: str,
                    n_probes: int, n_writes: int) -> Watcher:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), system, endpoint, namespace,
            str(n_probes), str(n_writes), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True, limit=1 << 20)
        w = cls(node, proc)
        w.reader = asyncio.create_task(w._read())
        return w

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            kind, _, rest = line.decode().rstrip("\n").partition(" ")
            if kind == "SEEN":
                name, t = rest.rsplit(" ", 1)
                self.seen.setdefault(name, float(t))
            elif kind == "READY":
                self.ready.set()
            elif kind == "ERR":
                self.errors.append(rest)
        self.errors.append(f"watcher exited rc={await self.proc.wait()}")
        self.ready.set()  # unblock waiters; they check errors

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)
        if self.errors:
            raise RuntimeError(f"watcher for node {self.node} failed: {self.errors[-3:]}")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 3)
            except asyncio.TimeoutError:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await self.proc.wait()
        if self.reader:
            await asyncio.wait_for(self.reader, 3)


def _child(argv: list[str]) -> None:
    system, endpoint, namespace, n_probes, n_writes = argv
    lock = threading.Lock()

    def out(line: str) -> None:
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def emit(name: str, t: float) -> None:
        out(f"SEEN {name} {t:.9f}")

    def orphan_guard() -> None:
        sys.stdin.buffer.read()      # returns at EOF: the parent closed or died
        os._exit(0)

    threading.Thread(target=orphan_guard, daemon=True).start()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _systems import probe_names, watch_function, write_names

    names = probe_names(int(n_probes)) + write_names(int(n_writes))

    try:
        asyncio.run(watch_function(system)(endpoint, namespace, names, emit,
                                           lambda: out("READY")))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, then exit
        out(f"ERR {type(exc).__name__}: {exc}".replace("\n", " "))
        sys.exit(1)


if __name__ == "__main__":
    _child(sys.argv[1:])
