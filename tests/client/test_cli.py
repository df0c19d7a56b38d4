"""The client CLI commands, run as the `apreg` entry point would run them (asyncio.run in a worker thread)."""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import pytest

from apreg.client.cli import _preservation_cell, add_commands

from .conftest import refused_port
from .fake_registry import FakeRegistry, instance
from .helpers import eventually

RUN_CLI = ("import argparse, sys; from apreg.client.cli import add_commands; p = argparse.ArgumentParser(); "
           "add_commands(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")


async def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="apreg")
    add_commands(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return await asyncio.to_thread(args.func, args)


async def test_ls_prints_a_table_of_instances(fake: FakeRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    fake.put(instance("orders", "o-1", zone="a", port=8080))
    fake.put(instance("cart", "c-1", status="DOWN"))
    assert await run("ls", "--registry", f"http://127.0.0.1:{refused_port()},{fake.url}") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["APP", "INSTANCE", "STATUS", "ADDRESS", "ZONE"]
    assert lines[1].split() == ["CART", "c-1", "DOWN", "127.0.0.1:8080", "-"]
    assert lines[2].split() == ["ORDERS", "o-1", "UP", "127.0.0.1:8080", "a"]
    assert await run("ls", "orders", "--registry", fake.url) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


async def test_status_prints_one_row_per_node(fake: FakeRegistry, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{refused_port()}"
    monkeypatch.setenv("APREG_REGISTRY", f"{fake.url},{dead}")
    assert await run("status") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "ID", "IN_SYNC"]
    assert lines[1].split()[:5] == [fake.url, f"fake-{fake.port}", "yes", "0/1", "0"]
    assert lines[2].split()[:3] == [dead, "-", "unreachable"]


@pytest.mark.parametrize("command", [["ls"], ["status"],
                                     ["register", "x", "--host", "h", "--port", "1", "--wait", "0.5"]])
async def test_no_registry_answering_is_one_line_and_exit_1(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    if command[0] == "register":  # signal handlers need the main thread: run it as a process
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RUN_CLI, *command, "--registry", f"http://127.0.0.1:{refused_port()}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        code, stderr = proc.returncode, err.decode()
    else:
        code = await run(*command, "--registry", f"http://127.0.0.1:{refused_port()}")
        stderr = capsys.readouterr().err
    assert code == 1
    assert stderr.startswith("apreg: no registry") and stderr.count("\n") == 1


async def test_register_renews_until_sigterm_then_cancels(fake: FakeRegistry) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_CLI, "register", "orders", "--host", "127.0.0.1", "--port", "9000",
        "--instance-id", "o-cli", "--metadata", "zone=a", "--renewal-interval", "0.1", "--lease-duration", "1",
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "APREG_REGISTRY": fake.url})
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.startswith(b"registered ORDERS/o-cli")
    assert fake.instances[("ORDERS", "o-cli")]["metadata"] == {"zone": "a"}
    await eventually(lambda: len(fake.calls("PUT", "/o-cli")) >= 2)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert ("ORDERS", "o-cli") not in fake.instances


def test_status_shows_self_preservation_in_words_and_no_empty_figures() -> None:
    assert _preservation_cell({"active": False, "enabled": True, "expected": 0.0, "renewals_in_window": 0.0,
                               "threshold": 0.0}) == "off"  # nothing to expect yet: no 0.0/0.0
    assert _preservation_cell({"active": False, "enabled": True, "expected": 40.0, "renewals_in_window": 40.0,
                               "threshold": 34.0}) == "off (40.0 renewals seen, 34.0 needed)"
    assert _preservation_cell({"active": False, "enabled": False}) == "disabled"
    assert _preservation_cell({"active": True, "since": "2026-01-01T10:00:00Z", "holds_until": "2026-01-01T10:05:00Z",
                               "expected": 0.0}) == "ACTIVE since 2026-01-01T10:00:00Z, holds until 2026-01-01T10:05:00Z"
