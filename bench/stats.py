"""Small helpers the benchmarks share: percentiles and the process's CPU and memory."""

from __future__ import annotations

import math
from collections.abc import Sequence

import psutil


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``share`` of the values
    at or below it (``share`` in (0, 1]); raises ValueError when there are no values."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Count, p50, p95, p99 and max of ``seconds``, the figures in milliseconds."""
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 3),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 3),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 3),
        "max_ms": round(max(seconds) * 1000, 3),
    }


def cpu_seconds() -> float:
    """User plus system CPU seconds this process has used."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def rss_bytes() -> int:
    """This process's resident set size now."""
    return int(psutil.Process().memory_info().rss)
