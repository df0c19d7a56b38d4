"""Start, pause and stop server processes so that nothing outlives a benchmark.

Each child runs in its own session (process group), so stopping it kills
whatever it forked too; a paused (SIGSTOP) group is continued before it is
terminated, because a stopped process never handles SIGTERM.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Ports the project's acceptance checks use; never hand them out.
_RESERVED = range(18761, 18841)


def free_port() -> int:
    """A currently free 127.0.0.1 TCP port from the kernel's ephemeral range."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _RESERVED:
            return port
    raise RuntimeError("no free port found in 100 tries")


def free_ports(n: int) -> list[int]:
    """n distinct free ports (held open together so they cannot repeat)."""
    socks: list[socket.socket] = []
    try:
        while len(socks) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] in _RESERVED:
                s.close()
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(slots=True)
class Managed:
    """One child process (and its group) with its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    paused: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL the group at once: a crash, no clean stop."""
        self._signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, grace: float = 5.0) -> str:
        """SIGCONT+SIGTERM the group, SIGKILL after `grace` s; returns how it ended."""
        if self.proc.poll() is not None:
            self._signal(signal.SIGKILL)  # stray grandchildren, if any
            return f"already exited rc={self.proc.returncode}"
        if self.paused:
            self.resume()
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
            how = "SIGTERM"
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(timeout=grace)
            how = "SIGKILL"
        self._signal(signal.SIGKILL)
        return how

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


_LIVE: list["ProcessSet"] = []


def install_exit_handlers() -> None:
    """Make SIGTERM/SIGHUP exit through Python (finally blocks, atexit) and stop at
    exit whatever a ProcessSet still runs: children live in their own sessions, so
    nothing else would stop them if the harness were killed mid-run."""
    def _exit(signum: int, _frame) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)
    def _at_exit() -> None:
        for ps in list(_LIVE):
            ps.stop_all()
            if ps.remove_dir:
                shutil.rmtree(ps.workdir, ignore_errors=True)

    atexit.register(_at_exit)


@dataclass(slots=True)
class ProcessSet:
    """Every process a run started; `stop_all` is called from a finally block
    (and at interpreter exit for sets still live)."""

    workdir: Path
    remove_dir: bool = True
    procs: list[Managed] = field(default_factory=list)

    def __post_init__(self) -> None:
        _LIVE.append(self)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Managed:
        log = self.workdir / f"{name}.log"
        fh = open(log, "ab")
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=cwd,
            )
        finally:
            fh.close()
        m = Managed(name, proc, log)
        self.procs.append(m)
        return m

    def stop_all(self) -> dict[str, str]:
        if self in _LIVE:
            _LIVE.remove(self)
        return {m.name: m.stop() for m in reversed(self.procs)}

    def print_log_tails(self, lines: int = 15) -> None:
        """Print the end of each started process's log: after a failed run it is
        usually the only clue why, and the logs may be deleted right after."""
        for m in self.procs:
            tail = m.tail(lines)
            if tail:
                print(f"--- {m.name} log tail ---\n{tail}", flush=True)

    def check_alive(self) -> None:
        for m in self.procs:
            if not m.alive():
                raise RuntimeError(
                    f"{m.name} exited rc={m.proc.returncode}; log tail:\n{m.tail()}")


async def wait_until(pred, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll an async predicate until it returns a truthy value, at most `timeout` s."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            res = await pred()
            if res:
                return res
        except Exception as exc:  # noqa: BLE001 - servers refuse connections while booting
            last_exc = exc
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                       + (f" (last error: {last_exc!r})" if last_exc else ""))
