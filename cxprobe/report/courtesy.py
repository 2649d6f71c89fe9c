"""The report's courtesy section: which contacts disclosed themselves, which slots sent nothing
on purpose and why, and which hours declared maintenance excluded, so that an auditor sees the
gaps are declared, not hidden."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cxprobe.report.model import Section, TableBlock, Text
from scenarios.maintenance import DeclaredWindow, MaintenanceMode
from scenarios.model import ContactMode, Outcome, RunResult, SkipReason

SKIPPED_PREFIX = "skipped: "


@dataclass
class CourtesyRow:
    target: str
    channel: str
    declared: int = 0
    mystery: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    excluded: int = 0


def skip_reason(run: RunResult) -> str:
    """The ``<reason>`` of a skipped run's ``skipped: <reason>: <detail>``."""
    return run.reason.removeprefix(SKIPPED_PREFIX).partition(":")[0]


def courtesy_rows(runs: Sequence[RunResult]) -> list[CourtesyRow]:
    rows: dict[tuple[str, str], CourtesyRow] = {}
    for run in runs:
        row = rows.setdefault((run.target, run.channel), CourtesyRow(run.target, run.channel))
        if run.outcome is Outcome.SKIPPED:
            row.skipped[skip_reason(run)] += 1
            continue
        if run.sent_at is not None:
            if run.contact_mode is ContactMode.MYSTERY:
                row.mystery += 1
            else:
                row.declared += 1
        row.excluded += run.slo_excluded is not None
    return sorted(rows.values(), key=lambda r: (r.target, r.channel))


def excluded_hours(declared: DeclaredWindow, start: datetime, end: datetime) -> float:
    """Hours of [start, end) the window was open."""
    return sum(
        (min(closed, end) - max(opened, start)).total_seconds() / 3600
        for opened, closed in declared.openings(start, end)
    )


def courtesy_section(
    runs: Sequence[RunResult], windows: Sequence[DeclaredWindow], start: datetime, end: datetime
) -> Section:
    reasons = [str(reason) for reason in SkipReason]
    runs_table = TableBlock(
        title="Contacts and skipped slots",
        columns=(
            "target",
            "channel",
            "declared",
            "mystery",
            *(f"skipped: {reason}" for reason in reasons),
            "excluded from SLO",
        ),
        rows=tuple(
            (
                row.target,
                row.channel,
                str(row.declared),
                str(row.mystery),
                *(str(row.skipped[reason]) for reason in reasons),
                str(row.excluded),
            )
            for row in courtesy_rows(runs)
        ),
        note="Declared contacts said they were tests (disclosure line, X-Cxprobe-Test header, "
        "spoken on calls); mystery contacts did not (contact_mode: mystery, with its reason in "
        "the configuration). Skipped slots sent nothing on purpose and are in no SLO; runs "
        "excluded from SLO ran inside a declared maintenance window.",
        numbers_from=2,
    )
    covering = [
        (declared, hours)
        for declared in windows
        if (hours := excluded_hours(declared, start, end)) > 0
    ]
    window_rows = tuple(
        (
            declared.source,
            declared.window.target or "all",
            declared.window.channel or "all",
            "no contacts" if declared.window.mode is MaintenanceMode.PAUSE else "not in SLO",
            f"{hours:.1f}",
            declared.window.reason,
        )
        for declared, hours in covering
    )
    windows_block = (
        TableBlock(
            title="Maintenance windows (hours excluded in this period)",
            columns=("declared in", "target", "channel", "effect", "hours", "why"),
            rows=window_rows,
            numbers_from=4,
            text_columns=(5,),
        )
        if window_rows
        else Text(("No maintenance window was open in this period.",))
    )
    return Section("Courtesy: disclosure, skipped slots, maintenance", (runs_table, windows_block))
