"""Smoke test of bench/throughput.py against a real `apreg serve` and the bare aiohttp
server: a tiny run, checked for well-formed JSON and zero errors (not for speed)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


def test_throughput_smoke(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--requests", "200", "--rounds", "1",
         "--seconds", "5", "--instances", "50", "--warmup", "50", "--concurrency", "8",
         "--json", str(out)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"throughput.py failed:\n{proc.stdout}\n{proc.stderr}"
    r = json.loads(out.read_text())
    for key in ("config", "systems", "ratio", "errors", "rounds", "loadavg_start", "loadavg_end",
                "cpu_per_req_ratio", "meets_target"):
        assert key in r, key
    assert r["errors"] == 0, [(x["system"], x["round"], {ph: x[ph]["error_kinds"] for ph in
                                                        ("preload", "renew", "register")})
                              for x in r["rounds"]]
    assert set(r["systems"]) == {"bare", "apreg"}
    assert set(r["ratio"]) == {"renew", "register"}
    for system in ("bare", "apreg"):
        for phase in ("renew", "register"):
            s = r["systems"][system][phase]
            assert set(s) >= {"rps", "p50_ms", "p99_ms", "errors", "requests"}, (system, phase)
            assert s["errors"] == 0
            assert s["requests"] > 0
            assert s["rps"] > 0
            assert s["p50_ms"] <= s["p99_ms"]
    assert [(x["round"], x["system"]) for x in r["rounds"]] == [(1, "bare"), (1, "apreg")]
    for x in r["rounds"]:
        assert x["preload"]["requests"] == 50 and x["preload"]["errors"] == 0
    assert all(v > 0 for v in r["ratio"].values())
    # every process it started was stopped
    assert r["stopped"] and all(v for v in r["stopped"].values())
