"""Smoke test of the benchmark harness against real `apreg serve` processes:
small runs, checked for well-formed output and no lost writes (not for speed)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
LATENCY_KEYS = ("ack_ms", "visible_ms", "visible_all_ms", "staleness_ms")

pytestmark = pytest.mark.slow


def _run(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _load(path: Path) -> dict:
    data = json.loads(path.read_text())
    # The harness skips systems it cannot run; for apreg that is a failure here.
    assert "skipped" not in data, f"apreg was skipped: {data['skipped']}"
    return data


def test_staleness_apreg(tmp_path: Path) -> None:
    out = tmp_path / "staleness.json"
    _run("staleness.py", "--system", "apreg", "--nodes", "2", "--writes", "20",
         "--rate", "50", "--warmup", "10", "--json", str(out))
    r = _load(out)
    for key in ("system", "nodes", "writes", "rate", *LATENCY_KEYS, "lost", "errors"):
        assert key in r, key
    assert (r["system"], r["nodes"], r["writes"]) == ("apreg", 2, 20)
    for key in LATENCY_KEYS:
        assert set(r[key]) >= {"p50", "p95", "p99", "max"}, key
    assert r["errors"] == 0, r["error_kinds"]
    assert r["lost"] == 0
    assert r["visible_ms"]["n"] == 20          # 20 writes x 1 other node
    assert r["ack_ms"]["p50"] <= r["ack_ms"]["p99"] <= r["ack_ms"]["max"]


def test_staleness_apreg_with_data_dirs(tmp_path: Path) -> None:
    out = tmp_path / "staleness.json"
    _run("staleness.py", "--system", "apreg", "--nodes", "2", "--writes", "20", "--rate", "50", "--warmup", "10",
         "--data-dir", str(tmp_path), "--json", str(out))
    r = _load(out)
    assert r["data_dir"] == str(tmp_path) and r["lost"] == 0 and r["errors"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["staleness.json"]  # the nodes' directories are gone again


def test_crash_window_apreg(tmp_path: Path) -> None:
    out = tmp_path / "crash.json"
    _run("crash_window.py", "--writes", "20", "--concurrency", "5", "--rounds", "1", "--variant=--ack-replicas=1",
         "--json", str(out))
    rounds = json.loads(out.read_text())
    assert [r["extra_args"] for r in rounds] == [[], ["--ack-replicas=1"]]
    assert all(r["acked"] == 20 for r in rounds) and rounds[1]["lost"] == 0


def test_partition_apreg(tmp_path: Path) -> None:
    out = tmp_path / "partition.json"
    _run("partition.py", "--system", "apreg", "--writes", "5", "--json", str(out))
    r = _load(out)
    for key in ("system", "attempted", "succeeded", "lost_after_heal", "heal_visible_ms"):
        assert key in r, key
    assert r["attempted"] == 5
    assert r["succeeded"] == 5, r["outcomes"]    # AP: the isolated node keeps accepting
    assert r["lost_after_heal"] == 0
    assert r["heal_visible_ms"] is not None


def test_unknown_system_is_rejected() -> None:
    proc = subprocess.run([sys.executable, str(BENCH / "staleness.py"), "--system", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
