"""The report's methodology section: how each figure is measured, and how precise it is.

Each channel's timing text is its ChannelType's ``methodology``, kept beside the code that
measures (DESIGN.md "Timing semantics", docs/metrics.md), so the text changes when the
measurement does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cxprobe.report.model import Section, TableBlock, Text
from probes import CHANNEL_TYPES
from probes.base import ChannelType, Methodology


def precision_rows(
    channel_types: Mapping[str, ChannelType[Any, Any]],
) -> tuple[tuple[str, str, str, str], ...]:
    """One row per channel's methodology: kinds measured alike (in registry order) share one."""
    rows: list[tuple[list[str], Methodology]] = []
    for kind, channel_type in channel_types.items():
        if rows and rows[-1][1] == channel_type.methodology:
            rows[-1][0].append(kind)
        else:
            rows.append(([kind], channel_type.methodology))
    return tuple(
        (", ".join(kinds), method.t0, method.reply_timing, method.precision)
        for kinds, method in rows
    )


DEFINITIONS = (
    "Every figure comes from runs in the evidence store: one run is one scheduled test contact "
    "of one check (target, channel, scenario). Times are wall-clock UTC, shown in the "
    "target's local time where the hour matters; t0 is when the channel accepted the contact.",
    "Period: business hours, after hours or holiday, from the target's calendar (IANA zone, "
    "weekly hours, public holidays, dated exceptions) at the slot time of the run.",
    "Compliance = met ÷ judged runs, where judged = met + breached + failed (a refused "
    "contact is the service's failure). Error and interrupted runs are the monitor's own "
    "failures: listed as 'not run', they count neither way. Per-SLO shares use the same events "
    "as the Prometheus SLO rules: first and human response in business hours, the after-hours "
    "response outside them.",
    "Answered = some reply (human, bot, auto-reply or IVR) before the run's deadline; replies "
    "after it are kept as evidence (late) but are not answers. Answer rate = answered ÷ "
    "contacts sent; time to first answer = t0 to the first such reply; medians are over "
    "answered runs.",
    "After-hours availability = runs met ÷ judged outside business hours: a bot, auto-reply or "
    "person answered as the scenario accepts, within the after-hours limit.",
    "Routing correctness = correct ÷ (correct + wrong), for runs whose scenario expects a team; "
    "the team is recognised from the reply (sender, signature, headers, IVR menu). 'Unknown' "
    "routes (no team recognised) are listed apart.",
    "Quantiles (p50, p95) interpolate linearly between the closest ranks of the answered "
    "runs' times. Locations: when the runs come from monitors at more than one location "
    "(monitor.location), each target and channel has a line per location, its figures "
    "computed over that location's runs alone.",
    "Worst incidents: the worst refused contact, the worst breach (by how far past its limit "
    "the answer came; no answer ranks worst) and the worst wrong route, then the next of each "
    "kind, and so on.",
    "Integrity: each finished run is sealed in the store's hash chain (docs/evidence.md). "
    "`cxprobe evidence export` of the same period gives every run behind these figures with "
    "its raw evidence and a manifest that `cxprobe evidence verify` checks.",
)


def measure_methods(channel_types: Mapping[str, ChannelType[Any, Any]]) -> tuple[str, ...]:
    """How each channel with measures of its own takes them (a paragraph each)."""
    return tuple(
        f"{channel_type.measures_heading} on the {kind} channel: "
        f"{channel_type.methodology.measures}"
        for kind, channel_type in channel_types.items()
        if channel_type.measures and channel_type.methodology.measures
    )


def methodology(channel_types: Mapping[str, ChannelType[Any, Any]] = CHANNEL_TYPES) -> Section:
    return Section(
        "Methodology",
        (
            Text(DEFINITIONS + measure_methods(channel_types)),
            TableBlock(
                columns=("channel", "t0", "first answer timed by", "precision"),
                rows=precision_rows(channel_types),
                title="Timing and precision per channel",
                numbers_from=99,
            ),
        ),
    )
