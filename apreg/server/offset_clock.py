"""A node clock moved by a number of milliseconds read from a file: for tests of clock skew only.

`APREG_CLOCK_OFFSET_FILE=PATH` makes `apreg serve` feed its core the wall clock plus the integer read from PATH
(milliseconds; a missing or empty file means 0), re-read at most once a second, so the fault suite can step a
running node's clock ahead and back again as a bad NTP server would. Everything the core does runs on it
(stamps, leases, eviction); peer signatures keep the true clock. An environment variable rather than a flag,
so that nothing in `--help` invites anyone to skew a production node.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from apreg.peer.auth import wall_ms

OFFSET_FILE_ENV = "APREG_CLOCK_OFFSET_FILE"
REREAD_S = 1.0

log = logging.getLogger("apreg.node")


@dataclass(slots=True)
class OffsetClock:
    path: str
    offset_ms: int = 0
    _read_at: float = float("-inf")  # monotonic time of the last read

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self._read_at >= REREAD_S:
            self._read_at = now
            self._reread()
        return wall_ms() + self.offset_ms

    def _reread(self) -> None:
        try:
            with open(self.path, encoding="ascii") as file:
                text = file.read().strip()
            offset = int(text) if text else 0
        except FileNotFoundError:
            offset = 0
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot read a clock offset from %s (kept at %d ms): %s", OFFSET_FILE_ENV, self.path,
                        self.offset_ms, exc)
            return
        if offset != self.offset_ms:
            log.warning("%s: this node's clock now runs %+d ms off the wall clock (a test)", OFFSET_FILE_ENV, offset)
            self.offset_ms = offset


def node_clock(environ: Mapping[str, str] = os.environ) -> Callable[[], int]:
    """The wall clock, or an OffsetClock when the environment asks for one."""
    path = environ.get(OFFSET_FILE_ENV)
    return OffsetClock(path) if path else wall_ms
