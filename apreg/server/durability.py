"""`--data-dir`: what the core applied, kept on disk, so a restarted node comes back with what it acknowledged.

The core stays pure: after each change the shell takes the records the core's change log holds since the last
capture (`capture`, from Node._act) and appends them, in the peer wire encoding, as one record of the log;
at start it replays the snapshot and the logs into the Replica as a push (`restore`), before the node serves.
Records merge as a join (commutative, idempotent), so replaying more than needed, or out of order, is harmless:
that is what makes the crash points below safe without a second bookkeeping of sequence numbers.

Files: `snapshot-G` (every record at the time it was taken) and `log-G` (records changed since), G a generation.
Compaction, once the log outgrows `max(compact_min_bytes, the last snapshot)`: a new `log-(G+1)` takes the
appends, the records are written to `snapshot-(G+1).tmp`, flushed, renamed into place, and the files of older
generations are removed. Start-up reads the newest snapshot and every log of its generation or later; a crash
anywhere in between leaves either the old snapshot with both logs or the new snapshot with its log.

What is kept: records (registrations, status and metadata changes, cancels' tombstones), local and replicated.
Not kept: renewals (a fleet's heartbeats would dominate the log) and evictions: a restored instance gets a
full lease from the restart and is evicted one lease later if it is not renewing. An instance evicted before the
snapshot is left out of it.

fsync policy (`--fsync`): a record is written to the file (the kernel holds it) before the write is
acknowledged, under every policy, so a killed process loses nothing. What differs is a machine crash:
- `always`: the acknowledgement also waits for the fsync (writes arriving meanwhile share the next one);
- `interval` (default): fsync once a second, so a power loss can take the last second of writes, which the
  peers hold anyway and the clients' heartbeats repair (a 404 makes them register again);
- `never`: the kernel writes back when it likes (about 30 s on Linux); snapshots are still flushed.
"""
from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
from typing import Iterator

from aiohttp import web

from apreg.core.messages import Delta, Push
from apreg.core.record import Record
from apreg.core.replica import Replica
from apreg.peer import wire

from . import recordlog

log = logging.getLogger("apreg.durability")
FSYNC_POLICIES = ("always", "interval", "never")
FSYNC_INTERVAL_S = 1.0
COMPACT_MIN_BYTES = 16 * 1024 * 1024
SNAPSHOT_BATCH = 1000  # records per snapshot record
CAPTURE_PAGE = 10_000  # change-log items read per page while capturing
_FILE = re.compile(r"(snapshot|log)-(\d{8})")


class DataDirError(ValueError):
    """A data dir the node cannot start from (a corrupt snapshot, a directory in use): one line for the CLI."""


class Durability:
    def __init__(self, path: str, replica: Replica, fsync: str = "interval",
                 compact_min_bytes: int = COMPACT_MIN_BYTES) -> None:
        self.path, self.replica, self.fsync = path, replica, fsync
        self.compact_min_bytes = compact_min_bytes
        self.generation = 0
        self.snapshot_bytes = 0
        self._log: recordlog.Appender | None = None
        self._lock_fd: int | None = None
        self._cursor = 0  # the replica's change-log position captured so far
        self._written = 0  # records appended since start, and how many of them an fsync covers
        self._synced = 0
        self._io = asyncio.Lock()  # one fsync at a time, and never while the log file is being replaced
        self.failure: str | None = None  # why the data dir cannot be written now (None: it can)

    # ----- start and stop ----------------------------------------------------------------------------------

    def restore(self, now_ms: int) -> int:
        """Take the directory (creating it), replay the newest snapshot and the logs after it into the replica,
        and open the log for appends. Returns the number of records replayed."""
        try:
            os.makedirs(self.path, exist_ok=True)
            self._lock()
        except OSError as exc:
            raise DataDirError(f"data dir {self.path}: {exc.strerror or exc}") from None
        try:
            return self._load(now_ms)
        except BaseException:
            self.close()  # releases the directory: a node that did not start holds nothing
            raise

    def _load(self, now_ms: int) -> int:
        try:
            files = self._files()
        except OSError as exc:
            raise DataDirError(f"data dir {self.path}: {exc.strerror or exc}") from None
        snapshots = sorted(g for kind, g in files if kind == "snapshot")
        base = snapshots[-1] if snapshots else 0
        held, replayed = self.replica.status().held_back, 0
        if base:
            name = self._name("snapshot", base)
            scan = self._scan(name)
            if scan.torn_bytes:
                raise DataDirError(f"data dir {self.path}: snapshot {name} is corrupt (the {scan.torn_bytes} bytes "
                                   f"from offset {scan.valid_bytes} are cut short or fail their checksum): move it "
                                   "away to start from the logs after it and the peers")
            replayed += self._replay(name, scan.payloads, now_ms)
            self.snapshot_bytes = scan.valid_bytes
        logs = sorted(g for kind, g in files if kind == "log" and g >= base)
        valid = 0
        for generation in logs:
            name = self._name("log", generation)
            scan = self._scan(name)
            if scan.torn_bytes:
                log.warning("data dir %s: dropped %d bytes at the end of %s (offset %d): a record cut short or "
                            "damaged, as a node stopped in the middle of a write leaves it", self.path,
                            scan.torn_bytes, name, scan.valid_bytes)
            replayed += self._replay(name, scan.payloads, now_ms)
            valid = scan.valid_bytes
        self._remove_older_than(base)
        self.generation = logs[-1] if logs else max(base, 1)
        self._log = recordlog.Appender(self._file("log", self.generation), valid if logs else 0)
        self._cursor = self.replica.log.head  # what was just replayed is on disk already
        held = self.replica.status().held_back - held
        if held:
            log.warning("data dir %s: %d restored records held back until this clock is within --max-clock-skew of "
                        "their stamps (did the clock go back?)", self.path, held)
        log.info("data dir %s: %d records replayed (generation %d, fsync %s)", self.path, replayed,
                 self.generation, self.fsync)
        return replayed

    def close(self) -> None:
        """A clean stop: everything captured, flushed to disk under every policy."""
        if self._log is not None:
            self.capture()
            self._log.sync()
            self._log.close()
            self._log = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def status(self) -> dict[str, object]:
        """For /v1/status: where, how flushed, and how far the log has grown towards its next compaction."""
        return {"path": self.path, "fsync": self.fsync, "generation": self.generation,
                "log_bytes": self._log.size if self._log else 0, "snapshot_bytes": self.snapshot_bytes,
                "failure": self.failure}

    # ----- after every change ------------------------------------------------------------------------------

    def capture(self) -> None:
        """Append the records the core applied since the last capture (their latest versions), as one log record."""
        if self._log is None or self._cursor == self.replica.log.head:  # the driver calls this every turn
            return
        records: list[Record] = []
        upto = self._cursor
        while True:
            page = self.replica.log.since(upto, CAPTURE_PAGE)
            records.extend(entry.record for _, entry in page.records if entry.record is not None)
            upto = page.upto
            if not page.more:
                break
        if records:
            try:
                self._log.append(_encode(records))
            except OSError as exc:  # a full or failing disk: the next capture tries these records again
                self._failed(f"cannot append to {os.path.basename(self._log.path)}: {exc.strerror or exc}")
                return
            self._written += 1
            self._recovered()
        self._cursor = upto

    async def synced(self) -> None:
        """Returns once what was captured so far is on disk, if the policy makes acknowledgements wait for it;
        503 while the data dir cannot be written (the write is applied, but would not survive a restart)."""
        if self.fsync == "always":
            await self._sync(self._written)
        if self.failure is not None:
            raise web.HTTPServiceUnavailable(reason="Not Durable", text=f"the write is applied here but not kept "
                                             f"in the data dir {self.path}: {self.failure}")

    async def _sync(self, target: int) -> None:
        async with self._io:
            if self._synced >= target or self._log is None:
                return  # an fsync that ran while this one waited covered it
            upto = self._written
            try:
                await asyncio.to_thread(self._log.sync)
            except OSError as exc:
                self._failed(f"cannot flush {os.path.basename(self._log.path)}: {exc.strerror or exc}")
                return
            self._synced = upto

    def _failed(self, reason: str) -> None:
        if self.failure is None:
            log.error("data dir %s: %s; client writes get 503 until it works again", self.path, reason)
        self.failure = reason

    def _recovered(self) -> None:
        if self.failure is not None:
            log.warning("data dir %s: writable again (%s before)", self.path, self.failure)
            self.failure = None

    # ----- in the background -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Flush once a second (what no acknowledgement waited for: replicated records, `interval`), and compact
        once the log has grown past its bound."""
        while True:
            await asyncio.sleep(FSYNC_INTERVAL_S)
            self.capture()  # retries what a failed append left behind
            if self.fsync != "never":
                await self._sync(self._written)
            if self._log is not None and self._log.size > max(self.compact_min_bytes, self.snapshot_bytes):
                try:
                    await self.compact()
                except OSError as exc:  # the old generation stays in use: nothing is lost, the log grows on
                    log.error("data dir %s: compaction failed: %s", self.path, exc)

    async def compact(self) -> None:
        """Start a new generation: its log takes the appends at once, its snapshot is written meanwhile."""
        async with self._io:
            assert self._log is not None, "restore() opens the log"
            self.capture()
            old = self._log
            old.sync()  # until the new snapshot is in place, the old log is what holds these records
            self._synced = self._written
            self._log = recordlog.Appender(self._file("log", self.generation + 1))
            self.generation += 1
            recordlog.sync_directory(self.path)
            old.close()
            replica = self.replica  # tombstones, and the instances not evicted here
            records = [record for key, record in replica.records.items()
                       if record.info is None or replica.visible(key) is not None]
        name = self._file("snapshot", self.generation)
        self.snapshot_bytes = await asyncio.to_thread(recordlog.write_file, name, _batches(records))
        self._remove_older_than(self.generation)
        log.info("data dir %s: compacted into %s (%d records, %d bytes)", self.path, os.path.basename(name),
                 len(records), self.snapshot_bytes)

    # ----- files -------------------------------------------------------------------------------------------

    def _lock(self) -> None:
        fd = os.open(os.path.join(self.path, "lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirError(f"data dir {self.path} is in use by another apreg process") from None
        self._lock_fd = fd

    def _files(self) -> list[tuple[str, int]]:
        found = []
        for name in os.listdir(self.path):
            if name.endswith(".tmp"):
                os.remove(os.path.join(self.path, name))  # a snapshot that was being written: never complete
            elif match := _FILE.fullmatch(name):
                found.append((match.group(1), int(match.group(2))))
        return found

    def _remove_older_than(self, generation: int) -> None:
        for kind, older in self._files():
            if older < generation:
                os.remove(self._file(kind, older))

    def _scan(self, name: str) -> recordlog.Scan:
        try:
            return recordlog.read(os.path.join(self.path, name))
        except recordlog.FormatError as exc:
            raise DataDirError(f"data dir {self.path}: {name} is corrupt: {exc}") from None

    def _replay(self, name: str, payloads: list[bytes], now_ms: int) -> int:
        count = 0
        for at, payload in enumerate(payloads):
            try:
                message = wire.decode(payload)
            except wire.WireError as exc:  # its checksum holds: not a torn write but a bug or another version
                raise DataDirError(f"data dir {self.path}: record {at} of {name} is not readable: {exc}") from None
            if not isinstance(message, Push):
                raise DataDirError(f"data dir {self.path}: record {at} of {name} is not a batch of records")
            self.replica.receive(message, now_ms)
            count += len(message.delta.records)
        return count

    def _name(self, kind: str, generation: int) -> str:
        return f"{kind}-{generation:08d}"

    def _file(self, kind: str, generation: int) -> str:
        return os.path.join(self.path, self._name(kind, generation))


def _encode(records: list[Record]) -> bytes:
    """Records as a push in the peer wire encoding, from no sender: replayed, they count as no peer's."""
    return wire.encode(Push(Delta("", 0, 0, tuple(records), ())))


def _batches(records: list[Record]) -> Iterator[bytes]:
    for start in range(0, len(records), SNAPSHOT_BATCH):
        yield _encode(records[start:start + SNAPSHOT_BATCH])

