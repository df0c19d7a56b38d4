#!/usr/bin/env python3
"""Every installed system through the same staleness and partition runs, one
table, and (with matplotlib) one PNG: staleness CDFs and availability under
partition. Systems that are not installed are listed as skipped.

Rounds are interleaved (round 1 of every system, then round 2 of every system...),
so a machine that gets busier or quieter part-way weighs on all systems alike.
Each figure is the median over rounds with its range; each ratio to apreg is
taken within a round and reported as the median of those ratios with its range.

    bench/compare.py --writes 500 --rate 100 --rounds 3 --out bench/out
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
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


Metric = tuple[str, str, str]  # (column, result section, key path "a.b")
METRICS: tuple[Metric, ...] = (
    ("ack p50", "staleness", "ack_ms.p50"), ("ack p99", "staleness", "ack_ms.p99"),
    ("vis_all p50", "staleness", "visible_all_ms.p50"), ("vis_all p99", "staleness", "visible_all_ms.p99"),
    ("stale p50", "staleness", "staleness_ms.p50"), ("stale p99", "staleness", "staleness_ms.p99"),
    ("lost", "staleness", "lost"), ("heal ms", "partition", "heal_visible_ms"),
)
RATIOS: tuple[Metric, ...] = (METRICS[2], METRICS[3])  # visibility at every node, relative to apreg's


def value(run: dict, section: str, path: str) -> float | None:
    """One figure of one round's result, None where that run failed or has no such figure."""
    node = run.get(section)
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, (int, float)) else None


def counts(run: dict, section: str) -> bool:
    """Whether a round's figure of `section` means anything: heal time only once something was accepted."""
    return section != "partition" or bool(run.get("partition", {}).get("succeeded"))


def spread(values: list[float]) -> str:
    """`median [min-max]` of the rounds' values, or the value alone for one round."""
    if not values:
        return "-"
    mid = f"{statistics.median(values):.2f}"
    return mid if len(values) == 1 else f"{mid} [{min(values):.2f}-{max(values):.2f}]"


def table(results: dict[str, list[dict]]) -> str:
    heads = [m[0] for m in METRICS] + ["partition ok"] + [f"{m[0]} / apreg" for m in RATIOS]
    rows = []
    base = results.get("apreg", [])
    for system, rounds in results.items():
        if any("skipped" in r for r in rounds):
            rows.append([system, f"skipped: {rounds[0]['skipped']}"])
            continue
        cells = [spread([v for r in rounds if (v := value(r, sec, path)) is not None and counts(r, sec)])
                 for _, sec, path in METRICS]
        accepted = [r["partition"]["succeeded"] for r in rounds if r.get("partition")]
        attempted = rounds[0].get("partition", {}).get("attempted", "?")
        cells.append(f"{spread(accepted)}/{attempted}" if accepted else "error")
        for _, sec, path in RATIOS:  # ratios within a round: the machine's load at that moment cancels out
            ratios = [v / b for r, a in zip(rounds, base)
                      if (v := value(r, sec, path)) is not None and (b := value(a, sec, path))]
            cells.append(spread(ratios))
        rows.append([system, *cells])
    full = [["system", *heads]] + [row for row in rows if len(row) > 2]
    widths = [max(len(row[i]) for row in full) for i in range(len(full[0]))]
    lines = []
    for row in [full[0], *rows]:
        if len(row) == 2:  # skipped: one note instead of cells
            lines.append(f"{row[0]:<{widths[0]}}  {row[1]}")
        else:
            lines.append("  ".join(f"{cell:<{w}}" if i == 0 else f"{cell:>{w}}" for i, (cell, w) in
                                   enumerate(zip(row, widths))))
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot(results: dict[str, list[dict]], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed, no PNG; install with: pip install -e '.[bench]'")
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for system, rounds in results.items():
        runs = [r["staleness"]["samples"]["staleness_ms"] for r in rounds
                if (r.get("staleness") or {}).get("samples", {}).get("staleness_ms")]
        if runs:
            x, y = cdf_points([v for run in runs for v in run])
            ax1.plot(x, y, label=f"{system} (n={len(x)}, {len(runs)} rounds)", drawstyle="steps-post")
    ax1.set_xscale("symlog", linthresh=1.0)
    ax1.set_xlabel("staleness: ack at writer -> visible at other node (ms, symlog)")
    ax1.set_ylabel("fraction of (write, node) samples")
    ax1.set_title("Staleness CDF")
    ax1.grid(True, alpha=0.3)
    ax1.legend()
    ran = {system: [r["partition"] for r in rounds if r.get("partition")] for system, rounds in results.items()}
    ran = {system: parts for system, parts in ran.items() if parts}
    ok = [100 * sum(p["succeeded"] for p in parts) / sum(p["attempted"] for p in parts) for parts in ran.values()]
    bars = ax2.bar(list(ran), ok, color="tab:green")
    for b, parts in zip(bars, ran.values()):
        ax2.annotate(f"{sum(p['succeeded'] for p in parts)}/{sum(p['attempted'] for p in parts)}",
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
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per system (3)")
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
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    results: dict[str, list[dict]] = {s: [] for s in systems}
    for rnd in range(a.rounds):
        for s in systems:
            if results[s] and "skipped" in results[s][0]:
                continue
            print(f"== round {rnd + 1}/{a.rounds}", flush=True)
            results[s].append(run_system(s, a))
    (a.out / "compare.json").write_text(json.dumps(
        {"params": {"writes": a.writes, "rate": a.rate, "nodes": a.nodes, "rounds": a.rounds,
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
