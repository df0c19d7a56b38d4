"""Child processes of the interop run: each in its own process group, logged to a file, and never left behind.

Every child gets PR_SET_PDEATHSIG(SIGKILL), so even a runner killed with SIGKILL takes its children with it;
`Procs.stop_all` ends the rest on a normal exit, an exception or Ctrl-C.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterable, Sequence

_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 20.0


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A loopback port nobody listens on now (the machine is shared, so fixed ports could clash)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """One started process and its log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it has not exited within `timeout`."""
        self.send(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the process group and reap it: a crash, with no chance to deregister."""
        self.send(signal.SIGKILL)
        self.popen.wait(STOP_TIMEOUT_S)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: int) -> None:
        """Signal the whole process group (a JVM or mvn may have children of its own)."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass


class Procs:
    """Everything the run started, so that one call stops it all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []
        self._logs: dict[str, int] = {}

    def start(self, name: str, argv: Sequence[str], cwd: Path | None = None) -> Proc:
        """Start `argv`; its output goes to LOG_DIR/NAME.log (NAME-2.log and so on for a restart)."""
        count = self._logs[name] = self._logs.get(name, 0) + 1
        log_path = self.log_dir / (f"{name}.log" if count == 1 else f"{name}-{count}.log")
        proc = Proc(name, argv, log_path, cwd)
        self.started.append(proc)
        return proc

    def stop_all(self, last: Iterable[Proc] = ()) -> None:
        """Stop every process still running, the ones in `last` after the others (apps deregister while the
        registry is up); each group gets SIGTERM at once, then SIGKILL for whatever outlives the wait."""
        later = set(map(id, last))
        _stop_together([proc for proc in self.started if id(proc) not in later])
        _stop_together([proc for proc in self.started if id(proc) in later])


def _stop_together(procs: list[Proc]) -> None:
    running = [proc for proc in procs if proc.alive()]
    for proc in running:
        proc.send(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in running:
        try:
            proc.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
