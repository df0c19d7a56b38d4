#!/usr/bin/env python3
"""Every installed system through the same staleness and partition runs, one
table, and (with matplotlib) one PNG: staleness CDFs and availability under
partition. Systems that are not installed are listed as skipped.

    bench/compare.py --writes 500 --rate 100 --out bench/out
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import partition  # noqa: E402
import staleness  # noqa: E402
from _procs import install_exit_handlers  # noqa: E402
from _stats import cdf_points  # noqa: E402
from _systems import DRIVERS, skip_if_unavailable  # noqa: E402


def run_system(system: str, a: argparse.Namespace) -> dict:
    skipped = skip_if_unavailable(system)
    if skipped:
        return skipped
    out: dict = {"system": system}
    print(f"== {system}: staleness ({a.writes} writes at {a.rate}/s, {a.nodes} nodes)", flush=True)
    try:
        out["staleness"] = asyncio.run(staleness.measure(
            system, a.nodes, a.writes, a.rate, samples=True, warmup=a.warmup))
        staleness.print_result(out["staleness"])
    except Exception as exc:  # noqa: BLE001 - report and go on with the next run
        out["staleness_error"] = f"{type(exc).__name__}: {exc}"
        print(f"  staleness failed: {out['staleness_error']}", flush=True)
    print(f"== {system}: partition ({a.partition_writes} writes, 2 of 3 stopped)", flush=True)
    try:
        out["partition"] = asyncio.run(partition.measure(system, a.partition_writes))
        partition.print_result(out["partition"])
    except Exception as exc:  # noqa: BLE001
        out["partition_error"] = f"{type(exc).__name__}: {exc}"
        print(f"  partition failed: {out['partition_error']}", flush=True)
    return out


def table(results: list[dict]) -> str:
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    head = (f"{'system':<10} {'ack p50':>8} {'ack p99':>8} {'vis_all p50':>11} {'vis_all p99':>11} "
            f"{'stale p50':>9} {'stale p99':>9} {'lost':>5} {'partition ok':>13} {'heal ms':>9}")
    rows = [head, "-" * len(head)]
    for r in results:
        if "skipped" in r:
            rows.append(f"{r['system']:<10} skipped: {r['skipped']}")
            continue
        s, p = r.get("staleness"), r.get("partition")
        cells = ["-"] * 7 if not s else [
            f(s["ack_ms"]["p50"]), f(s["ack_ms"]["p99"]), f(s["visible_all_ms"]["p50"]),
            f(s["visible_all_ms"]["p99"]), f(s["staleness_ms"]["p50"]),
            f(s["staleness_ms"]["p99"]), str(s["lost"])]
        part = f"{p['succeeded']}/{p['attempted']}" if p else "error"
        heal = f(p["heal_visible_ms"]) if p and p["succeeded"] else "-"  # nothing acknowledged: nothing to heal
        rows.append(f"{r['system']:<10} {cells[0]:>8} {cells[1]:>8} {cells[2]:>11} {cells[3]:>11} "
                    f"{cells[4]:>9} {cells[5]:>9} {cells[6]:>5} {part:>13} {heal:>9}")
    return "\n".join(rows)


def plot(results: list[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed, no PNG; install with: pip install -e '.[bench]'")
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        s = r.get("staleness")
        if s and s.get("samples", {}).get("staleness_ms"):
            x, y = cdf_points(s["samples"]["staleness_ms"])
            ax1.plot(x, y, label=f"{r['system']} (n={len(x)})", drawstyle="steps-post")
    ax1.set_xscale("symlog", linthresh=1.0)
    ax1.set_xlabel("staleness: ack at writer -> visible at other node (ms, symlog)")
    ax1.set_ylabel("fraction of (write, node) samples")
    ax1.set_title("Staleness CDF")
    ax1.grid(True, alpha=0.3)
    ax1.legend()
    ran = [r for r in results if r.get("partition")]
    names = [r["system"] for r in ran]
    ok = [r["partition"]["succeeded"] / r["partition"]["attempted"] * 100 for r in ran]
    bars = ax2.bar(names, ok, color="tab:green")
    for b, r in zip(bars, ran):
        ax2.annotate(f"{r['partition']['succeeded']}/{r['partition']['attempted']}",
                     (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom")
    ax2.set_ylim(0, 110)
    ax2.set_ylabel("writes accepted (%)")
    ax2.set_title("Writes accepted at 1 of 3 nodes, other 2 SIGSTOPped")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writes", type=int, default=500)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--partition-writes", type=int, default=20)
    ap.add_argument("--systems", default=",".join(DRIVERS),
                    help="comma-separated subset of " + ",".join(DRIVERS))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                    help="where compare.json / compare.png go (default bench/out, git-ignored)")
    a = ap.parse_args(argv)
    install_exit_handlers()
    systems = [s for s in a.systems.split(",") if s]
    for s in systems:
        if s not in DRIVERS:
            ap.error(f"unknown system {s!r}")
    a.out.mkdir(parents=True, exist_ok=True)
    results = [run_system(s, a) for s in systems]
    (a.out / "compare.json").write_text(json.dumps(
        {"params": {"writes": a.writes, "rate": a.rate, "nodes": a.nodes,
                    "partition_writes": a.partition_writes}, "results": results}, indent=2))
    print()
    print(table(results))
    print(f"\nJSON: {a.out / 'compare.json'}")
    png = a.out / "compare.png"
    if plot(results, png):
        print(f"PNG:  {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
