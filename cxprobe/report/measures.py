"""The report's channel-measures section: the figures a channel takes of its own conversations
(``ChannelType.measures``, e.g. a call's time on hold and time to a human from its audio),
per target and location: how many runs took each, and its p50 and p95.

Which measures exist, what they are called and how they are taken come from the channel
types, so this module names none of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cxprobe.report.data import quantile
from cxprobe.report.model import Block, Section, TableBlock, Text
from probes import CHANNEL_TYPES
from probes.base import ChannelType
from scenarios.durations import format_duration
from scenarios.model import RunResult

TITLE = "Channel measures"


#: Measures shorter than this are shown in seconds to the hundredth (their resolution is finer
#: than a second); longer ones as a duration (``12m30s``).
SECONDS_SHOWN_BELOW = 600.0


def precise_seconds(value: float | None) -> str:
    """A measure for people: ``69.42 s`` below ten minutes, else ``12m30s``; ``—`` when none."""
    if value is None:
        return "—"
    return f"{value:.2f} s" if value < SECONDS_SHOWN_BELOW else format_duration(value)


@dataclass
class MeasureRow:
    """One measure of one target, channel and location, over the runs that took it."""

    target: str
    channel: str
    location: str
    measure: str
    values: list[float] = field(default_factory=list)


def measure_rows(runs: Sequence[RunResult], kind: str, declared: Sequence[str]) -> list[MeasureRow]:
    """The measures of the runs on ``kind``, a row per target, location and measure (rows of
    one target and location in the ``declared`` order of the channel's measures)."""
    rows: dict[tuple[str, str, str], MeasureRow] = {}
    for run in runs:
        if run.channel != kind:
            continue
        for name, seconds in run.measures.items():
            key = (run.target, run.location, name)
            row = rows.setdefault(key, MeasureRow(run.target, run.channel, run.location, name))
            row.values.append(seconds)

    def order(row: MeasureRow) -> tuple[str, str, int, str]:
        known = declared.index(row.measure) if row.measure in declared else len(declared)
        return (row.target, row.location, known, row.measure)

    return sorted(rows.values(), key=order)


def _table(channel_type: ChannelType[Any, Any], rows: Sequence[MeasureRow]) -> TableBlock:
    def label(name: str) -> str:
        measure = channel_type.measures.get(name)
        return name if measure is None else measure.label  # one a later version dropped

    return TableBlock(
        title=channel_type.measures_heading,
        columns=("target", "channel", "location", "measure", "runs", "p50", "p95"),
        rows=tuple(
            (
                row.target,
                row.channel,
                row.location,
                label(row.measure),
                str(len(row.values)),
                precise_seconds(quantile(row.values, 0.5)),
                precise_seconds(quantile(row.values, 0.95)),
            )
            for row in rows
        ),
        numbers_from=4,
    )


def measures_section(
    runs: Sequence[RunResult],
    channel_types: Mapping[str, ChannelType[Any, Any]] = CHANNEL_TYPES,
) -> Section:
    measured = {kind: t for kind, t in channel_types.items() if t.measures}
    blocks: list[Block] = []
    for kind, channel_type in measured.items():
        rows = measure_rows(runs, kind, list(channel_type.measures))
        if rows:
            blocks.append(_table(channel_type, rows))
    headings = ", ".join(t.measures_heading for t in measured.values()) or "none"
    if not blocks:
        return Section(
            TITLE,
            (Text((f"No run in this period took a channel's own measures ({headings}).",)),),
        )
    note = Text(
        (
            "Figures a channel takes of its own conversations besides the answer times, each "
            "over the runs that took it (a call whose audio was not heard takes none). Runs: "
            "how many took the measure; p50 and p95 as in the other sections. How each is "
            "measured, and how precisely: Methodology.",
        )
    )
    return Section(TITLE, (note, *blocks))
