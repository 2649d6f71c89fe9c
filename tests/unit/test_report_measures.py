"""The report's channel-measures section on runs made here (no store): a row per target,
location and measure with its runs, p50 and p95, labels and headings from the channel types."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cxprobe.report.measures import measures_section, precise_seconds
from cxprobe.report.methodology import methodology
from cxprobe.report.model import TableBlock, Text
from probes import CHANNEL_TYPES
from probes.base import ChannelType, Measure, Methodology
from scenarios.model import Outcome, RunResult
from tests.unit.test_report_locations import run


def channel_types() -> dict[str, ChannelType[Any, Any]]:
    """A channel type with two measures (a copy of email's type, with measures added)."""
    plain = CHANNEL_TYPES["email"]
    measured = replace(
        plain,
        kind="line",
        measures={
            "ring": Measure("time ringing", "Seconds ringing."),
            "wait": Measure("time waiting", "Seconds waiting."),
        },
        measures_title="Line sounds",
        methodology=Methodology("t0", "timing", "precision", measures="From the line's sound."),
    )
    return {"email": plain, "line": measured}


def measured(location: str, **measures: float) -> RunResult:
    result = run(location, Outcome.MET, channel="line")
    result.measures = dict(measures)
    return result


def test_each_measure_per_target_and_location_with_its_quantiles() -> None:
    runs = [
        measured("paris", wait=10.0, ring=1.0),
        measured("paris", wait=20.0, ring=3.0),
        measured("paris", wait=40.0),
        measured("tokyo", ring=2.5, gone=7.0),  # a measure the channel no longer declares
        run("paris", Outcome.MET),  # another channel's run: no measures
    ]
    section = measures_section(runs, channel_types())
    (note, table) = section.blocks
    assert isinstance(note, Text) and isinstance(table, TableBlock)
    assert table.title == "Line sounds"
    assert table.rows == (
        ("acme", "line", "paris", "time ringing", "2", "2.00 s", "2.90 s"),
        ("acme", "line", "paris", "time waiting", "3", "20.00 s", "38.00 s"),
        ("acme", "line", "tokyo", "time ringing", "1", "2.50 s", "2.50 s"),
        ("acme", "line", "tokyo", "gone", "1", "7.00 s", "7.00 s"),
    )


def test_a_period_without_measures_says_which_there_could_have_been() -> None:
    section = measures_section([run("paris", Outcome.MET)], channel_types())
    (text,) = section.blocks
    assert isinstance(text, Text)
    assert text.paragraphs == (
        "No run in this period took a channel's own measures (Line sounds).",
    )


def test_long_measures_read_as_durations() -> None:
    assert [precise_seconds(v) for v in (None, 0.02, 599.994, 750.0)] == [
        "—",
        "0.02 s",
        "599.99 s",
        "12m30s",
    ]


def test_the_methodology_says_how_each_channel_takes_its_measures() -> None:
    (definitions, _) = methodology(channel_types()).blocks
    assert isinstance(definitions, Text)
    assert definitions.paragraphs[-1] == ("Line sounds on the line channel: From the line's sound.")
