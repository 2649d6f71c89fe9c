"""The channels' own measures (``ChannelType.measures``, e.g. a call's time to a human from its
audio) on the target drill-down: a row per channel type that has any, headed as the channel
names them ("Phone audio"), with each measure's p50 and p95 per channel and location.

Each measure is its own histogram, ``cxprobe_<kind>_<name>_seconds``; a table shows them side
by side by giving each series a ``measure`` label (``label_replace``) with the measure's label
for people, so the names come from the channel types alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.models import dashboard as model

from probes import CHANNEL_TYPES
from probes.base import ChannelType

from .common import (
    SPARSE_INTERVAL,
    Panel,
    data_table,
    histogram_quantile,
    percentile_name,
    query,
    table_query,
    time_series,
)

#: The measures are shown per channel and location (the drill-down's target is one).
BY = "channel, location"
QUANTILES = (0.5, 0.95)


def metric_of(kind: str, name: str) -> str:
    """The histogram of one measure (``exporters.metrics``)."""
    return f"cxprobe_{kind}_{name}_seconds"


def measured_channel_types() -> dict[str, ChannelType[Any, Any]]:
    return {kind: t for kind, t in CHANNEL_TYPES.items() if t.measures}


def _labelled(expr: str, label: str) -> str:
    """``expr`` with a ``measure`` label holding ``label``, a PromQL string as written (so no
    quote, backslash or ``$``, which label_replace would expand)."""
    if any(character in label for character in '"\\$'):
        raise ValueError(f"measure label {label!r} cannot be written in a PromQL string")
    return f'label_replace({expr}, "measure", "{label}", "", "")'


def _measure_quantile(q: float, metric: str, match: str, window: str) -> str:
    return f"{histogram_quantile(q, metric, match, window, BY)} >= 0"


def _every_measure(
    kind: str, channel_type: ChannelType[Any, Any], expr_of: Callable[[str], str]
) -> str:
    """One expression over all the channel's measures, each series labelled with its measure."""
    return " or ".join(
        _labelled(expr_of(metric_of(kind, name)), measure.label)
        for name, measure in channel_type.measures.items()
    )


def measure_rows(match: str) -> list[tuple[str, list[Panel]]]:
    """A dashboard row per channel type with measures: a table over the range and the p50 and
    p95 of each measure over time, for the series ``match`` selects."""
    return [
        (channel_type.measures_heading, _panels(kind, channel_type, match))
        for kind, channel_type in measured_channel_types().items()
    ]


def _panels(kind: str, channel_type: ChannelType[Any, Any], match: str) -> list[Panel]:
    heading = channel_type.measures_heading
    names = ", ".join(measure.label for measure in channel_type.measures.values())
    low, high = QUANTILES

    def runs(metric: str) -> str:
        return f"sum by ({BY}) (increase({metric}_count{{{match}}}[$__range]))"

    table = data_table(
        f"{heading} over the range",
        f"Runs that took each measure ({names}) and its {percentile_name(low)} and "
        f"{percentile_name(high)} over the dashboard range, per channel and location "
        f"(cxprobe_{kind}_*_seconds, docs/metrics.md).",
        [
            table_query(_every_measure(kind, channel_type, runs)),
            *(
                table_query(
                    _every_measure(
                        kind,
                        channel_type,
                        lambda metric, q=q: _measure_quantile(q, metric, match, "$__range"),
                    )
                )
                for q in QUANTILES
            ),
        ],
        unit="s",
        width=24,
        height=8,
        labels=["channel", "location", "measure"],
        values={
            "Value #A": "Runs",
            "Value #B": percentile_name(low),
            "Value #C": percentile_name(high),
        },
    ).override_by_name("Runs", [model.DynamicConfigValue("unit", "short")])
    over_time = [
        time_series(
            f"{heading} ({percentile_name(q)})",
            f"The {percentile_name(q)} of each measure per location, in windows of at least "
            f"{SPARSE_INTERVAL}.",
            [
                query(
                    _measure_quantile(q, metric_of(kind, name), match, "$__rate_interval"),
                    f"{measure.label} · {{{{location}}}}",
                )
                for name, measure in channel_type.measures.items()
            ],
            unit="s",
            width=12,
            height=9,
            min_interval=SPARSE_INTERVAL,
        )
        for q in QUANTILES
    ]
    return [table, *over_time]
