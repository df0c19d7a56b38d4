"""Latency summaries. Nearest-rank percentiles: every reported figure is a value
that was actually measured, never an interpolation between two samples."""
from __future__ import annotations

import math
from collections.abc import Sequence

QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(values: Sequence[float], digits: int = 3) -> dict[str, float | int | None]:
    """p50/p95/p99/max (plus min and n) in the unit given; None everywhere when empty,
    so a run that saw nothing still yields well-formed JSON."""
    s = sorted(values)
    out: dict[str, float | int | None] = {"n": len(s)}
    if not s:
        out.update({name: None for name, _ in QUANTILES} | {"max": None, "min": None})
        return out
    for name, q in QUANTILES:
        out[name] = round(percentile(s, q), digits)
    out["max"] = round(s[-1], digits)
    out["min"] = round(s[0], digits)
    return out


def cdf_points(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """(x, F(x)) pairs of the empirical CDF, for plotting."""
    s = sorted(values)
    n = len(s)
    return s, [(i + 1) / n for i in range(n)]
