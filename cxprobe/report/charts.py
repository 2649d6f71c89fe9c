"""Charts of the audit report, drawn with matplotlib's Agg backend into PNG bytes.

Only the object-oriented API is used (a ``Figure`` per chart, never ``pyplot``'s global state),
so charts can be drawn from any thread and nothing leaks between reports.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: no display here

from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from cxprobe.report.data import DAYS, Heatmap
from scenarios.durations import format_duration

DPI = 150
NO_DATA = "#e6e6e6"


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _grid(axes: Axes, title: str) -> None:
    axes.set_title(title, fontsize=9, loc="left")
    axes.set_yticks(range(7), DAYS, fontsize=7)
    axes.set_xticks(range(0, 24, 2), [f"{hour:02d}" for hour in range(0, 24, 2)], fontsize=7)
    axes.set_xlabel("local hour", fontsize=7)
    axes.set_xticks([x - 0.5 for x in range(1, 24)], minor=True)
    axes.set_yticks([y - 0.5 for y in range(1, 7)], minor=True)
    axes.grid(which="minor", color="white", linewidth=0.6)
    axes.tick_params(which="minor", length=0)
    axes.set_facecolor(NO_DATA)


#: Round durations for a logarithmic colour bar (seconds).
_NICE = (
    0.1,
    0.25,
    0.5,
    1,
    2,
    5,
    10,
    20,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
    86400,
)


def _duration_ticks(low: float, high: float) -> list[float]:
    inside = [float(t) for t in _NICE if low <= t <= high]
    if len(inside) > 5:
        step = math.ceil(len(inside) / 5)
        inside = inside[::step]
    return inside or [low, high]


def _short(value: float) -> str:
    return f"{value:g}s" if value < 60 else format_duration(value)


def heatmap_png(heatmap: Heatmap) -> bytes:
    """Answer rate and median time to first answer by hour of week, side by side."""
    figure = Figure(figsize=(10.5, 2.6), dpi=DPI, layout="constrained")
    rate_axes, time_axes = figure.subplots(1, 2)
    rates = [[_nan(v) * 100 for v in day] for day in heatmap.answer_rate]
    image = rate_axes.imshow(
        rates, cmap="RdYlGn", norm=Normalize(0, 100), aspect="auto", interpolation="nearest"
    )
    _grid(rate_axes, "Answer rate (% of contacts answered before the deadline)")
    bar = figure.colorbar(image, ax=rate_axes, fraction=0.04, pad=0.02)
    bar.ax.tick_params(labelsize=7)

    times = [[_nan(v) for v in day] for day in heatmap.median_first_answer]
    known = [v for day in times for v in day if not math.isnan(v) and v > 0]
    low, high = (min(known), max(known)) if known else (1.0, 10.0)
    norm: Normalize = (
        LogNorm(low, high) if high / max(low, 1e-3) > 20 else Normalize(0, max(high, 1e-3))
    )
    image = time_axes.imshow(
        times, cmap="viridis_r", norm=norm, aspect="auto", interpolation="nearest"
    )
    _grid(time_axes, "Median time to first answer")
    bar = figure.colorbar(image, ax=time_axes, fraction=0.04, pad=0.02)
    bar.ax.tick_params(labelsize=7)
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    ticks = _duration_ticks(low, high) if isinstance(norm, LogNorm) else None
    if ticks is None:
        ticks = [float(t) for t in bar.get_ticks() if 0 <= t <= max(high, 1e-3)] or [low, high]
    bar.set_ticks(ticks, labels=[_short(tick) for tick in ticks])
    figure.suptitle(
        f"{heatmap.target} · {heatmap.channel} — hour of week in {heatmap.zone} "
        "(grey: no contact in that hour)",
        fontsize=9,
        x=0.01,
        ha="left",
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
