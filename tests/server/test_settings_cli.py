"""`apreg serve` / `apreg cluster` as a user runs them, and how settings combine (file < environment < flags)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apreg.core.config import CoreConfig
from apreg.core.instance import InstanceInfo
from apreg.core.lease import MIN_LEASE_S
from apreg.core.replica import Replica
from apreg.server import settings

APREG = [sys.executable, "-m", "apreg"]


def test_flags_override_environment_which_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[apreg]\nport = 9999\nrenewal-window = 3.5\nsecret = "from-file"\npeers = ["http://a:1/"]\n')
    loaded = settings.load({"port": 1234, "renewal_window": None}, str(config), environ={"APREG_SECRET": "env"})
    assert (loaded.port, loaded.renewal_window, loaded.secret, loaded.peers) == (1234, 3.5, "env", ("http://a:1",))
    assert loaded.core_config().renewal_window_ms == 3500


@pytest.mark.parametrize(("flags", "message"), [
    ({"renewal_threshold": 1.5}, "renewal-threshold"),
    ({"lease_duration": 0}, "lease-duration"),
    ({"renewal_interval": 0.0001}, "renewal-interval"),  # 0 ms once in the core's unit
    ({"fanout": -1}, "fanout"),
])
def test_impossible_settings_are_refused_with_the_flag_named(flags: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings.load(flags)


@given(seconds=st.floats(MIN_LEASE_S, 100.0))
def test_a_flag_and_an_instances_lease_info_become_the_same_milliseconds(seconds: float) -> None:
    """One conversion of seconds: `--renewal-interval S` and an instance's `renewalIntervalInSecs: S` agree."""
    config = settings.NodeSettings(renewal_interval=seconds, lease_duration=seconds).core_config()
    replica = Replica("n", "1", CoreConfig(renewal_interval_ms=7, lease_duration_ms=7))
    info = InstanceInfo("SVC", "i", "h", "10.0.0.1", renewal_interval_s=seconds, lease_duration_s=seconds)
    assert replica.renewal_interval_ms(info) == config.renewal_interval_ms >= 1
    assert replica.lease_duration_ms(info) == config.lease_duration_ms


def test_unknown_keys_in_the_config_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("evicton-interval = 5\n")
    with pytest.raises(ValueError, match="evicton-interval"):
        settings.load({}, str(config))


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


class PortTaken(Exception):
    """The child exited before it answered: a port chosen for it was taken before it could bind it."""


def _wait_for(url: str, proc: subprocess.Popen[Any], timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _get(url)
        except OSError:
            if proc.poll() is not None:
                raise PortTaken(url) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _free_run(count: int) -> int:
    """The first of `count` consecutive loopback ports free right now."""
    while True:
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            base = first.getsockname()[1]
            others = [socket.socket() for _ in range(count - 1)]
            try:
                for offset, sock in enumerate(others, 1):
                    sock.bind(("127.0.0.1", base + offset))
                return base
            except OSError:
                continue
            finally:
                for sock in others:
                    sock.close()


def _spawn(command: Callable[[int], list[str]], ports: int, **popen: Any) -> tuple[subprocess.Popen[Any], int]:
    """Start a server child on `ports` consecutive free ports; returns it and its first port once the last answers.

    A child binds its ports itself, so another process can take one between our choosing it and the child
    binding it: a child that exits before answering is started again on other ports instead of failing the test."""
    for _ in range(5):
        base = _free_run(ports)
        proc = subprocess.Popen(command(base), **popen)
        try:
            _wait_for(f"http://127.0.0.1:{base + ports - 1}/v1/status", proc)
            return proc, base
        except PortTaken:
            continue
    raise AssertionError("every port tried was taken before the child could bind it")


@pytest.mark.slow
def test_serve_logs_its_url_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc, port = _spawn(lambda p: [*APREG, "serve", "--port", str(p), "--node-id", "solo"], 1, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        assert _get(f"http://127.0.0.1:{port}/v1/status")["node_id"] == "solo"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert f"listening on http://127.0.0.1:{port}" in log.read_text()


@pytest.mark.slow
def test_cluster_starts_wired_peers_and_stops_on_sigint() -> None:
    proc, base = _spawn(lambda p: [*APREG, "cluster", "--nodes", "2", "--base-port", str(p)], 2,
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split()[2:] == [f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"]
        status = _get(f"http://127.0.0.1:{base + 1}/v1/status")
        assert [p["url"] for p in status["peers"]] == [f"http://127.0.0.1:{base}"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_flag_value_exits_with_a_message() -> None:
    result = subprocess.run([*APREG, "serve", "--renewal-threshold", "7"], capture_output=True, text=True,
                            timeout=30, env={**os.environ})
    assert result.returncode == 2 and "renewal-threshold" in result.stderr
