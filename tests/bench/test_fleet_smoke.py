"""Smoke test of bench/fleet.py against real `apreg serve` processes: a tiny fleet with
short phases, checked for a complete table and JSON with sane values (not for speed)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from fleet import PHASES, ROWS, error_counts  # noqa: E402

pytestmark = pytest.mark.slow

N = 200
TINY = ("--instances", str(N), "--apps", "10", "--rounds", "1", "--seconds", "1", "--fetch-count", "3",
        "--fetch-seconds", "2", "--cold-clients", "20", "--read-count", "20", "--read-seconds", "1",
        "--fresh-writes", "5", "--fresh-seconds", "5", "--renew-seconds", "2", "--delta-drain", "0")


def test_fleet_smoke(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    proc = subprocess.run([sys.executable, str(BENCH / "fleet.py"), *TINY, "--json", str(out)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"fleet.py failed:\n{proc.stdout}\n{proc.stderr}"
    assert "[fleet" in proc.stderr and "[fleet" not in proc.stdout  # progress on stderr only
    for _, label, _, _ in ROWS:
        assert label in proc.stdout, label
    assert "read raw" in proc.stdout and "delta window" in proc.stdout

    r = json.loads(out.read_text())
    s = r["summary"][str(N)]
    # delta_vs_smallest needs two sizes; a phase of this tiny fleet may end before a probe (every 20 ms) overlaps it
    probed = {name for name in PHASES if r["sizes"][str(N)]["stalls"][name]["probes"]}
    expected = {key for key, *_ in ROWS} - {"delta_vs_smallest"} - {f"stall_{n}_ms" for n in set(PHASES) - probed}
    missing = {key for key in expected if s.get(key) is None}
    assert not missing, missing
    assert s["errors"] == 0, error_counts(r["sizes"][str(N)])
    assert s["registrations_per_s"] > 0 and s["replicated_s"] >= 0
    for v in ("json", "json_gzip", "xml", "xml_gzip"):
        assert 0 < s[f"fetch_{v}_p50_ms"] <= s[f"fetch_{v}_p99_ms"]
        assert s[f"fetch_{v}_per_s"] > 0
    assert s["fetch_json_gzip_kb"] < s["fetch_json_kb"]  # gzip bodies were read as sent
    assert 0 < s["cold_p50_ms"] <= s["cold_p99_ms"] <= s["cold_max_ms"]
    assert s["cold_answered"] == 20
    assert s["delta_per_s"] > 0 and s["bare_per_s"] > 0 and s["delta_vs_bare"] > 0
    assert s["delta_window"] >= N  # registered within the last 3 minutes
    for kind in ("app", "vip", "instance"):
        assert 0 < s[f"read_{kind}_p50_ms"] <= s[f"read_{kind}_p99_ms"]
    for name in probed:
        assert s[f"stall_{name}_ms"] > 0, name
    assert {"register", "fetch", "delta"} <= probed  # the longer phases always are
    assert s["sync_s"] >= s["sync_startup_s"] > 0
    assert s["fresh_delta_unseen"] == 0 and s["fresh_full_unseen"] == 0
    assert 0 < s["fresh_delta_p50_ms"] <= s["fresh_delta_p95_ms"]
    assert s["renew_target_per_s"] == pytest.approx(N / 30, abs=0.1) and s["renew_per_s"] > 0
    for node in ("A", "B", "C"):
        assert s[f"renew_cpu_{node}"] >= 0 and s[f"rss_mb_{node}"] > 0
        assert s[f"rss_b_per_instance_{node}"] is not None

    size = r["sizes"][str(N)]
    assert size["rounds"][0]["sync"]["instances"] == size["rounds"][0]["sync"]["expected"]
    assert size["final_instances"] == N + 10  # 5 freshness writes per view
    assert size["stopped"] and all(size["stopped"].values())  # every process it started was stopped
