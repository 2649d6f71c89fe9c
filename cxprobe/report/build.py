"""The audit report: what a person reads about a period of probing, as PDF or HTML.

``build_report`` reads the period's runs from the store and lays out the document
(:mod:`cxprobe.report.model`); ``write_report`` renders it by the output's suffix:
``.pdf`` (ReportLab, pure Python) or ``.html`` (one self-contained file, charts inline).

Contents: key figures; SLA compliance per target, channel and period with the thresholds that
applied; hour-of-week heatmaps (answer rate, median time to first answer) per target and
channel in the target's local time; 24/7 coverage (which hours of the week were sampled);
after-hours availability; routing correctness; the channels' own measures (``ChannelType.
measures``, e.g. from a call's audio) per target and location; answer quality and language per
target and channel, with the mystery-shopping rubric's scores; the competitor ranking (speed, answer
quality, after-hours availability); the worst incidents with evidence excerpts; a
cross-channel comparison of each scenario; when the runs come from more than one location,
each target and channel compared across locations; methodology.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cxprobe.report.charts import heatmap_png
from cxprobe.report.courtesy import courtesy_section
from cxprobe.report.data import (
    DAYS,
    CellSample,
    after_hours,
    compliance,
    coverage_grids,
    cross_channel,
    heatmaps,
    local,
    locations,
    median,
    quantile,
    routing,
    worst_incidents,
)
from cxprobe.report.measures import measures_section
from cxprobe.report.methodology import methodology
from cxprobe.report.model import (
    Block,
    Chart,
    Incident,
    Report,
    Section,
    TableBlock,
    Text,
    pct,
    seconds,
)
from cxprobe.report.quality import quality_section
from cxprobe.report.ranking import ranking_section
from cxprobe.store.chain import Scope
from cxprobe.store.database import EvidenceStore
from probes.base import Responder
from scenarios.maintenance import DeclaredWindow
from scenarios.model import RunResult, SloName

#: Lines of a reply shown with an incident.
EXCERPT_LINES = 4

PERIOD_LABELS = {"business": "business", "after_hours": "after hours", "holiday": "holiday"}
SLO_LABELS: dict[str, str] = {
    SloName.FIRST_RESPONSE: "first",
    SloName.HUMAN_RESPONSE: "human",
    SloName.AFTER_HOURS_RESPONSE: "AH",
}
#: How a run's thresholds are named in the report.
THRESHOLD_LABELS: dict[str, str] = {
    SloName.FIRST_RESPONSE: "first",
    SloName.HUMAN_RESPONSE: "human",
    SloName.AFTER_HOURS_RESPONSE: "after hours",
    "deadline": "deadline",
}


@dataclass(frozen=True)
class ReportOptions:
    scope: Scope
    now: datetime
    zones: Mapping[str, str]  # target -> IANA zone
    target_names: Mapping[str, str]
    config_sha256: str
    version: str
    incidents: int = 8
    #: Maintenance windows in force (configuration and store): their hours are listed.
    maintenance: Sequence[DeclaredWindow] = ()
    #: Targets that are another company's service (``competitor: true``), for the ranking.
    competitors: frozenset[str] = frozenset()


def _when(instant: datetime | None, zone: str | None) -> str:
    if instant is None:
        return "—"
    return local(instant, zone).strftime("%a %Y-%m-%d %H:%M:%S %Z")


def _thresholds(values: Mapping[str, float | None]) -> str:
    return ", ".join(
        f"{label} {seconds(values[name])}"
        for name, label in THRESHOLD_LABELS.items()
        if values.get(name) is not None
    )


def _compliance_section(runs: Sequence[RunResult]) -> Section:
    rows = []
    for row in compliance(runs):
        slos = " · ".join(
            f"{SLO_LABELS[slo]} {pct(row.slo_good[slo] / total)}"
            for slo, total in sorted(row.slo_total.items())
        )
        rows.append(
            (
                row.target,
                row.channel,
                PERIOD_LABELS[str(row.period)],
                str(row.runs),
                str(row.met),
                str(row.breached),
                str(row.failed),
                str(row.not_run),
                pct(row.compliance),
                slos or "—",
                _thresholds(row.thresholds),
            )
        )
    table = TableBlock(
        columns=(
            "target",
            "channel",
            "period",
            "runs",
            "met",
            "breached",
            "failed",
            "not run",
            "compliance",
            "per SLO",
            "thresholds",
        ),
        rows=tuple(rows),
        note="Compliance = met ÷ (met + breached + failed). 'Not run': the monitor's own errors. "
        "Skipped slots and runs inside declared maintenance are left out (see Courtesy).",
        numbers_from=3,
        text_columns=(9, 10),
    )
    return Section("SLA compliance", (table,))


def _heatmap_section(runs: Sequence[RunResult], zones: Mapping[str, str]) -> Section:
    blocks: list[Block] = []
    for heatmap in heatmaps(runs, zones):
        sent = sum(sum(day) for day in heatmap.sent)
        blocks.append(
            Chart(
                png=heatmap_png(heatmap),
                caption=f"{heatmap.target} · {heatmap.channel}: {sent} contact(s) sent",
                width_ratio=10.5 / 2.6,
            )
        )
    if not blocks:
        blocks.append(Text(("No contact was sent in this period.",)))
    return Section("Hour of week", tuple(blocks))


COVERAGE_MARKS = {CellSample.SAMPLED: "●", CellSample.HOLIDAY_ONLY: "H", CellSample.NONE: "·"}


def _coverage_section(runs: Sequence[RunResult], zones: Mapping[str, str]) -> Section:
    blocks: list[Block] = []
    for grid in coverage_grids(runs, zones):
        blocks.append(
            TableBlock(
                title=f"{grid.target} · {grid.channel} ({grid.zone}): {grid.sampled} of "
                f"168 hours sampled",
                columns=("day", *(f"{hour:02d}" for hour in range(24))),
                rows=tuple(
                    (DAYS[weekday], *(COVERAGE_MARKS[cell] for cell in day))
                    for weekday, day in enumerate(grid.cells)
                ),
            )
        )
    if not blocks:
        return Section("24/7 coverage", (Text(("No contact was sent in this period.",)),))
    note = Text(
        (
            "Each hour of the week in the target's local time: ● a contact was sent in it on "
            "an ordinary day, H only on public holidays, · none. A complete grid evidences "
            "round-the-clock responsiveness from probes, not from extrapolation.",
        )
    )
    return Section("24/7 coverage", (note, *blocks))


def _after_hours_section(runs: Sequence[RunResult]) -> Section:
    rows = tuple(
        (
            row.target,
            row.channel,
            str(row.sent),
            str(row.met),
            str(row.machine),
            str(row.human),
            str(row.unanswered),
            seconds(row.median_first_answer),
            seconds(row.threshold),
            pct(row.availability),
        )
        for row in after_hours(runs)
    )
    table = TableBlock(
        columns=(
            "target",
            "channel",
            "contacts",
            "met",
            "bot/auto/IVR first",
            "human first",
            "no answer",
            "median first answer",
            "limit",
            "availability",
        ),
        rows=rows,
        note="Outside business hours (after hours and holidays); availability = met ÷ judged.",
        numbers_from=2,
    )
    return Section("After-hours availability", (table,))


def _routing_section(runs: Sequence[RunResult]) -> Section:
    rows = tuple(
        (
            row.target,
            row.channel,
            row.scenario,
            row.expected,
            str(row.correct),
            str(row.wrong),
            str(row.unknown),
            ", ".join(f"{queue} ({count})" for queue, count in sorted(row.wrong_queues.items()))
            or "—",
            pct(row.correctness),
        )
        for row in routing(runs)
    )
    table = TableBlock(
        columns=(
            "target",
            "channel",
            "scenario",
            "expected team",
            "correct",
            "wrong",
            "unknown",
            "reached instead",
            "correctness",
        ),
        rows=rows,
        numbers_from=4,
        text_columns=(7,),
    )
    return Section("Routing correctness", (table,))


async def _incidents_section(
    store: EvidenceStore, runs: Sequence[RunResult], options: ReportOptions
) -> Section:
    blocks: list[Block] = []
    for run in worst_incidents(runs, options.incidents):
        zone = options.zones.get(run.target)
        stored = await store.messages(run.run_id)
        replies = [message for message in stored if message.direction == "in"]
        excerpt: tuple[str, ...]
        if replies:
            # The reply that decided the verdict: the team reached, else a person, else any.
            first = (
                next((m for m in replies if run.routed_queue and m.queue == run.routed_queue), None)
                or next((m for m in replies if m.responder == Responder.HUMAN), None)
                or replies[0]
            )
            lines = [line for line in first.text.splitlines() if line.strip()][:EXCERPT_LINES]
            excerpt = (
                f"{first.responder or '?'} {first.sender} at {_when(first.arrived_at, zone)}"
                + (" (late)" if first.late else "")
                + ":",
                *(f"  {line}" for line in lines),
            )
        else:
            excerpt = ("No reply was received.",)
        digests = [
            f"{artifact.kind} sha256:{artifact.sha256[:16]}…"
            for artifact in await store.artifacts(run.run_id)
        ][:4]
        facts = (
            ("outcome", f"{run.outcome} — {run.reason or '—'}"),
            ("slot", f"{_when(run.slot, zone)} ({PERIOD_LABELS[str(run.period)]})"),
            (
                "timings",
                f"first answer {seconds(run.first_response_seconds)}"
                + (f" ({run.first_response_responder})" if run.first_response_responder else "")
                + f", first human {seconds(run.first_human_seconds)}",
            ),
            ("thresholds", _thresholds(run.thresholds.as_dict())),
            (
                "routing",
                f"{run.routing} (expected {run.expected_queue or '—'}, reached "
                f"{run.routed_queue or '—'})",
            ),
            ("evidence", f"run {run.run_id}; " + ("; ".join(digests) or "none")),
        )
        blocks.append(
            Incident(
                title=f"{run.target} · {run.channel} · {run.scenario}",
                facts=facts,
                excerpt=excerpt,
            )
        )
    if not blocks:
        blocks.append(Text(("No incident in this period.",)))
    return Section("Worst incidents", tuple(blocks))


def _cross_channel_section(runs: Sequence[RunResult]) -> Section:
    blocks: list[Block] = []
    for group in cross_channel(runs):
        blocks.append(
            TableBlock(
                title=f"{group.target} · {group.scenario}",
                columns=(
                    "channel",
                    "runs",
                    "compliance",
                    "median first answer",
                    "median first human",
                    "routing correct",
                ),
                rows=tuple(
                    (
                        figures.channel,
                        str(figures.runs),
                        pct(figures.compliance),
                        seconds(median(figures.first_answers)),
                        seconds(median(figures.human_answers)),
                        pct(figures.routing),
                    )
                    for figures in group.channels
                ),
            )
        )
    if not blocks:
        blocks.append(Text(("No scenario ran on more than one channel in this period.",)))
    return Section("Cross-channel comparison", tuple(blocks))


def _locations_section(runs: Sequence[RunResult]) -> Section | None:
    """Each target and channel, a line per location that probed it; None when every run
    comes from one location (there is nothing to compare)."""
    if len({run.location for run in runs}) < 2:
        return None
    rows = tuple(
        (
            figures.target,
            figures.channel,
            figures.location,
            str(figures.runs),
            str(figures.met),
            pct(figures.compliance),
            seconds(quantile(figures.first_answers, 0.5)),
            seconds(quantile(figures.first_answers, 0.95)),
            seconds(quantile(figures.human_answers, 0.95)),
            pct(figures.routing),
            pct(figures.after_hours),
        )
        for figures in locations(runs)
    )
    table = TableBlock(
        columns=(
            "target",
            "channel",
            "location",
            "runs",
            "met",
            "compliance",
            "first answer p50",
            "first answer p95",
            "first human p95",
            "routing correct",
            "after hours",
        ),
        rows=rows,
        note="Finished runs of each target and channel per monitor location. Compliance, "
        "routing and after-hours availability as in the sections above; quantiles over the "
        "answered runs.",
        numbers_from=3,
    )
    return Section("Locations", (table,))


async def build_report(store: EvidenceStore, options: ReportOptions) -> Report:
    scope = options.scope
    runs = await store.runs_between(
        scope.start, scope.end, targets=scope.targets, channels=scope.channels
    )
    head = await store.chain_head()
    finished = [run for run in runs if run.outcome is not None]
    judged = [
        run
        for run in finished
        if str(run.outcome) in ("met", "breached", "failed") and run.slo_excluded is None
    ]
    met = sum(str(run.outcome) == "met" for run in judged)
    targets = sorted({run.target for run in runs})
    # Charts are CPU work: off the event loop.
    heat = await asyncio.to_thread(_heatmap_section, runs, options.zones)
    by_location = _locations_section(runs)
    sections = (
        _compliance_section(runs),
        heat,
        _coverage_section(runs, options.zones),
        _after_hours_section(runs),
        _routing_section(runs),
        measures_section(runs),
        quality_section(runs),
        ranking_section(runs, options.target_names, options.competitors),
        await _incidents_section(store, runs, options),
        _cross_channel_section(runs),
        *([by_location] if by_location is not None else []),
        courtesy_section(runs, options.maintenance, scope.start, scope.end),
        methodology(),
    )
    facts = (
        ("period (slot times, UTC)", f"{scope.start:%Y-%m-%d %H:%M} to {scope.end:%Y-%m-%d %H:%M}"),
        (
            "targets",
            ", ".join(
                f"{options.target_names.get(t, t)} ({t}, {options.zones.get(t, 'UTC')})"
                for t in targets
            )
            or "—",
        ),
        ("channels", ", ".join(scope.channels) if scope.channels else "all"),
        (
            "runs",
            f"{len(runs)} ({len(finished)} finished, {len(runs) - len(finished)} still open)",
        ),
        ("overall compliance", f"{pct(met / len(judged) if judged else None)} of {len(judged)}"),
        ("evidence chain head", f"entry {head[0]} · {head[1]}"),
        ("configuration sha256", options.config_sha256 or "—"),
        ("generated", f"{options.now:%Y-%m-%d %H:%M:%S} UTC by cxprobe {options.version}"),
    )
    return Report(title="Customer service responsiveness report", facts=facts, sections=sections)


def write_report(report: Report, out: Path) -> None:
    """Render by suffix: ``.pdf`` or ``.html``/``.htm``."""
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".pdf":
        from cxprobe.report.pdf import render_pdf  # ReportLab only when a PDF is asked for

        out.write_bytes(render_pdf(report))
    elif suffix in (".html", ".htm"):
        from cxprobe.report.html import render_html

        out.write_text(render_html(report), encoding="utf-8")
    else:
        raise ValueError(f"{out}: the report is written as .pdf or .html; use one of those")
