"""--data-dir: the record log's framing and torn tails, restore and compaction against a Replica, and a node
killed with SIGKILL right after acknowledging writes that comes back, alone, with them."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceKey, Status
from apreg.core.replica import Replica
from apreg.server import recordlog
from apreg.server.durability import COMPACT_MIN_BYTES, DataDirError, Durability

from ..core.strategies import info, state
from .harness import eventually, free_port, instance_body

NOW = 1_700_000_000_000


def replica(name: str = "n1") -> Replica:
    return Replica(name, f"{name}-incarnation", CoreConfig())


def test_records_read_back_and_a_torn_tail_is_told_apart(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    log = recordlog.Appender(path)
    for payload in (b"one", b"", b"three" * 100):
        log.append(payload)
    log.close()
    whole = os.path.getsize(path)
    assert recordlog.read(path) == recordlog.Scan([b"one", b"", b"three" * 100], whole, 0)
    data = Path(path).read_bytes()
    last = whole - 500 - recordlog.HEADER.size  # where the last record starts
    for torn in (data + b"\x01", data[:-1], data[:-2] + b"xx", data[:last + 3]):  # cut, damaged, cut in its header
        Path(path).write_bytes(torn)
        scan = recordlog.read(path)
        assert scan.payloads == ([b"one", b"", b"three" * 100] if torn.startswith(data) else [b"one", b""])
        assert scan.valid_bytes + scan.torn_bytes == len(torn)
    log = recordlog.Appender(path, scan.valid_bytes)  # continuing cuts the torn tail off first
    log.append(b"four")
    log.close()
    assert recordlog.read(path).payloads == [b"one", b"", b"four"] and recordlog.read(path).torn_bytes == 0
    Path(path).write_bytes(recordlog.MAGIC[:3])  # died while creating the file
    assert recordlog.read(path) == recordlog.Scan([], 0, 3)
    Path(path).write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(recordlog.FormatError):
        recordlog.read(path)


def _written(r: Replica) -> None:
    for i in range(20):
        r.register(info(f"i-{i}"), NOW + i)
    r.cancel(InstanceKey("SVC", "i-3"), NOW + 30)
    r.set_status(InstanceKey("SVC", "i-4"), Status.OUT_OF_SERVICE, NOW + 31)
    r.update_metadata(InstanceKey("SVC", "i-5"), {"color": "blue"}, NOW + 32)


def _held(r: Replica) -> dict[InstanceKey, object]:
    return {key: state(record) for key, record in r.records.items()}


def _opened(path: Path, fsync: str = "interval", compact_min_bytes: int = COMPACT_MIN_BYTES,
            at: int = NOW) -> tuple[Replica, Durability]:
    """A fresh replica restored from the data dir at `path` (creating it) at time `at`."""
    r = replica()
    durability = Durability(str(path), r, fsync, compact_min_bytes)
    durability.restore(at)
    return r, durability


def _restored(path: Path) -> tuple[Replica, Durability]:
    return _opened(path, at=NOW + 1000)


async def test_a_restored_replica_holds_every_record_written_before(tmp_path: Path) -> None:
    first, durability = _opened(tmp_path)
    assert first.index.count == 0
    _written(first)
    durability.capture()
    durability.close()
    again, restored = _restored(tmp_path)
    assert _held(again) == _held(first)  # the tombstone of i-3 included
    assert again.visible(InstanceKey("SVC", "i-3")) is None and again.index.count == 19
    assert again.visible(InstanceKey("SVC", "i-5")).info.metadata == {"color": "blue"}  # type: ignore[union-attr]
    again.register(info("i-3"), NOW + 2000)  # a new write follows what was restored
    assert again.visible(InstanceKey("SVC", "i-3")) is not None
    restored.close()


async def test_compaction_starts_a_generation_and_every_crash_point_restores_the_same(tmp_path: Path) -> None:
    first, durability = _opened(tmp_path, compact_min_bytes=0)
    _written(first)
    durability.capture()
    old_log = (tmp_path / "log-00000001").read_bytes()
    await durability.compact()
    assert sorted(os.listdir(tmp_path)) == ["lock", "log-00000002", "snapshot-00000002"]
    first.register(info("after"), NOW + 100)
    durability.capture()
    durability.close()
    again, restored = _restored(tmp_path)
    assert _held(again) == _held(first)
    restored.close()
    # Killed after the new log took the appends but before its snapshot was in place: the old log still holds
    # what the snapshot would have, and the unfinished snapshot is thrown away.
    (tmp_path / "snapshot-00000002").rename(tmp_path / "snapshot-00000002.tmp")
    (tmp_path / "log-00000001").write_bytes(old_log)
    again, restored = _restored(tmp_path)
    assert _held(again) == _held(first) and not (tmp_path / "snapshot-00000002.tmp").exists()
    restored.close()


def test_records_stamped_past_the_guard_are_held_back_with_a_warning(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The clock went back past --max-clock-skew between a stop and the restart: what was restored is held back
    (core/held.py), said so, and applied once the clock is within the guard of it."""
    first, durability = _opened(tmp_path)
    _written(first)
    durability.capture()
    durability.close()
    behind = NOW - CoreConfig().max_clock_skew_ms - 1_000
    with caplog.at_level(logging.WARNING, "apreg.durability"):
        again, restored = _opened(tmp_path, at=behind)
    assert "restored records held back until this clock is within --max-clock-skew" in caplog.text
    assert again.records == {} and again.status().held_back == 20
    again.sweep(NOW + 1_000)
    assert _held(again) == _held(first) and again.status().held_back == 0
    restored.close()


async def test_a_torn_tail_is_dropped_with_a_warning_and_the_log_continues(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    first, durability = _opened(tmp_path)
    _written(first)
    durability.capture()
    durability.close()
    with open(tmp_path / "log-00000001", "ab") as log:
        log.write(recordlog.HEADER.pack(400, 12345) + b"half a record")  # the process died mid-write
    with caplog.at_level(logging.WARNING, "apreg.durability"):
        again, restored = _restored(tmp_path)
    assert "dropped 21 bytes at the end of log-00000001" in caplog.text
    assert _held(again) == _held(first)
    again.register(info("later"), NOW + 2000)
    restored.capture()
    restored.close()
    third, last = _restored(tmp_path)
    assert InstanceKey("SVC", "later") in third.records
    assert recordlog.read(str(tmp_path / "log-00000001")).torn_bytes == 0
    last.close()


async def test_always_makes_acknowledgements_wait_for_an_fsync_that_concurrent_ones_share(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed: list[int] = []
    sync = recordlog.Appender.sync

    def timed_sync(log: recordlog.Appender) -> None:
        time.sleep(0.05)  # a disk's flush: the other writes arrive meanwhile
        sync(log)
        flushed.append(log.size)

    monkeypatch.setattr(recordlog.Appender, "sync", timed_sync)
    for policy, fsyncs in (("always", 2), ("interval", 0)):
        r, durability = _opened(tmp_path / policy, fsync=policy)
        flushed.clear()

        async def write(i: int) -> int:
            r.register(info(f"i-{i}"), NOW + i)
            durability.capture()
            await durability.synced()
            return len(flushed)

        seen = await asyncio.gather(*(write(i) for i in range(10)))
        # The first write's fsync covers it alone, the second covers the nine that came meanwhile.
        assert len(flushed) == fsyncs and (policy != "always" or seen == [1] + [2] * 9)
        durability.close()


async def test_a_full_disk_answers_503_keeps_the_records_and_recovers(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    r, durability = _opened(tmp_path)
    r.register(info("i-1"), NOW)
    durability.capture()
    write = os.write
    calls = 0

    def full_after_a_few_bytes(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return write(fd, bytes(data)[:5])  # part of the record, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_after_a_few_bytes)
    r.register(info("i-2"), NOW + 1)
    durability.capture()
    with pytest.raises(web.HTTPServiceUnavailable) as refused:
        await durability.synced()
    assert "No space left on device" in refused.value.text  # type: ignore[operator]
    assert durability.status()["failure"]
    monkeypatch.setattr(os, "write", write)
    r.register(info("i-3"), NOW + 2)
    durability.capture()  # retries i-2 along with i-3
    await durability.synced()
    durability.close()
    again, restored = _restored(tmp_path)
    assert {k.instance_id for k in again.records} == {"i-1", "i-2", "i-3"}
    assert recordlog.read(str(tmp_path / "log-00000001")).torn_bytes == 0  # the partial record was cut off
    restored.close()


def test_a_corrupt_snapshot_and_a_directory_in_use_stop_the_start_with_one_line(tmp_path: Path) -> None:
    _, held = _opened(tmp_path)
    with pytest.raises(DataDirError, match="in use by another apreg process"):
        Durability(str(tmp_path), replica()).restore(NOW)
    held.close()
    good = recordlog.frame(b"x")
    (tmp_path / "snapshot-00000001").write_bytes(recordlog.MAGIC + good[:-1] + b"y")
    with pytest.raises(DataDirError, match="snapshot-00000001 is corrupt") as refused:
        Durability(str(tmp_path), replica()).restore(NOW)
    assert "\n" not in str(refused.value)
    (tmp_path / "snapshot-00000001").write_bytes(recordlog.MAGIC + good)  # whole, but not a batch of records
    with pytest.raises(DataDirError, match="record 0 of snapshot-00000001 is not readable"):
        Durability(str(tmp_path), replica()).restore(NOW)


@pytest.mark.slow
async def test_a_node_killed_right_after_acknowledging_comes_back_alone_with_its_writes(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    serve = [sys.executable, "-m", "apreg", "serve", "--port", str(port), "--data-dir", str(data)]
    url = f"http://127.0.0.1:{port}/eureka/apps"
    async with aiohttp.ClientSession(headers={"Accept": "application/json"}) as s:
        node = subprocess.Popen(serve, stderr=subprocess.DEVNULL)
        try:
            assert await eventually(lambda: _serves(s, url), 15)
            answers = await asyncio.gather(*(_status(s, "POST", f"{url}/SVC", instance_body("svc", f"i-{i}"))
                                             for i in range(50)))
            for method, path in (("DELETE", "/SVC/i-7"), ("PUT", "/SVC/i-8/status?value=OUT_OF_SERVICE"),
                                 ("PUT", "/SVC/i-9/metadata?color=blue")):
                answers.append(await _status(s, method, url + path))
            assert answers == [204] * 50 + [200] * 3
        finally:
            node.send_signal(signal.SIGKILL)  # right after the last acknowledgement: no clean stop, no fsync
            node.wait(10)
        with open(next(data.glob("log-*")), "ab") as log:
            log.write(b"\x40\x00\x00")  # and it died in the middle of one more write
        again = subprocess.Popen(serve, stderr=subprocess.PIPE, text=True)  # the same directory, no peers
        try:
            assert await eventually(lambda: _serves(s, url), 15)
            async with s.get(url) as r:
                apps = (await r.json())["applications"]["application"]
            instances = {i["instanceId"]: i for app in apps for i in app["instance"]}
            assert set(instances) == {f"i-{i}" for i in range(50)} - {"i-7"}
            assert instances["i-8"]["status"] == "OUT_OF_SERVICE"
            assert instances["i-9"]["metadata"]["color"] == "blue"
            async with s.get(f"http://127.0.0.1:{port}/v1/status") as r:
                shown = (await r.json())["data_dir"]
            assert shown["path"] == str(data) and shown["fsync"] == "interval" and shown["generation"] == 1
        finally:
            again.terminate()
            _, stderr = again.communicate(timeout=10)
        assert "dropped 3 bytes at the end of log-00000001" in stderr


async def _status(s: aiohttp.ClientSession, method: str, url: str, body: object = None) -> int:
    async with s.request(method, url, json=body) as r:
        return r.status


async def _serves(s: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with s.get(url) as r:
            return r.status == 200
    except aiohttp.ClientError:
        await asyncio.sleep(0.1)
        return False


def test_a_corrupt_snapshot_is_one_line_from_serve(tmp_path: Path) -> None:
    (tmp_path / "snapshot-00000001").write_bytes(b"garbage, not a snapshot")
    done = subprocess.run([sys.executable, "-m", "apreg", "serve", "--port", str(free_port()), "--data-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (f"apreg: data dir {tmp_path}: snapshot-00000001 is corrupt: it "
                                                    "does not start as an apreg data file")
