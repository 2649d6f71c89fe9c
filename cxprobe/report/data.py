"""The figures of the audit report, computed from runs (pure functions, no I/O).

Definitions (also printed in the report's methodology section):

- *Judged* runs are those the service is accountable for: ``met``, ``breached``, ``failed``.
  ``error`` and ``interrupted`` runs are the monitor's own failures and are counted apart as
  "not run"; they neither help nor hurt compliance (as in the SLO rules, docs/metrics.md).
- *Compliance* = met / judged.
- *Answered* = the contact was sent and some reply came before the run's deadline (late replies
  are evidence, not answers); the *answer rate* of an hour-of-week cell = answered / sent.
- *Time to first answer* = first reply of any kind after t0; medians are over answered runs.
- *Routing correctness* = correct / (correct + wrong); ``unknown`` routes are listed apart.
- *Coverage*: an hour of the week (target-local) is *sampled* when a contact was sent in it on
  an ordinary day; one reached only on public holidays is marked apart.
- *Quantiles* (p50, p95) interpolate linearly between the closest ranks of the values.
- *Locations*: the same target and channel, a line per location (``monitor.location``) that
  probed it, with the figures above computed over that location's runs alone.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from probes.base import Responder
from scenarios.coverage import HOURS_PER_WEEK, cell_of
from scenarios.model import Outcome, Period, RoutingResult, RunResult
from scenarios.verdicts import slo_events

JUDGED = (Outcome.MET, Outcome.BREACHED, Outcome.FAILED)
NOT_RUN = (Outcome.ERROR, Outcome.INTERRUPTED)
MACHINE = (Responder.BOT, Responder.AUTO, Responder.IVR)
PERIOD_ORDER = {Period.BUSINESS: 0, Period.AFTER_HOURS: 1, Period.HOLIDAY: 2}
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def median(values: Iterable[float]) -> float | None:
    found = list(values)
    return statistics.median(found) if found else None


def quantile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile (0 to 1), linear between the closest ranks (numpy's default, and
    ``statistics.quantiles(method="inclusive")``); None without values."""
    found = sorted(values)
    if not found:
        return None
    position = (len(found) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(found) - 1)
    return found[lower] + (found[upper] - found[lower]) * (position - lower)


def answered_seconds(run: RunResult) -> float | None:
    """Seconds to the first reply before the deadline, or None (unanswered, or not sent)."""
    if run.sent_at is None:
        return None
    on_time = [reply.seconds for reply in run.replies if not reply.late]
    return min(on_time) if on_time else None


def local(instant: datetime, zone: str | None) -> datetime:
    return instant.astimezone(ZoneInfo(zone)) if zone else instant


@dataclass(frozen=True)
class Heatmap:
    """Hour-of-week cells (7 days x 24 hours, target-local) of one target and channel."""

    target: str
    channel: str
    zone: str
    sent: tuple[tuple[int, ...], ...]
    answer_rate: tuple[tuple[float | None, ...], ...]
    median_first_answer: tuple[tuple[float | None, ...], ...]


def heatmaps(runs: Sequence[RunResult], zones: Mapping[str, str]) -> list[Heatmap]:
    cells: dict[tuple[str, str], list[list[list[RunResult]]]] = {}
    for run in runs:
        if run.sent_at is None:
            continue
        grid = cells.setdefault(
            (run.target, run.channel), [[[] for _ in range(24)] for _ in range(7)]
        )
        when = local(run.sent_at, zones.get(run.target))
        grid[when.weekday()][when.hour].append(run)
    maps = []
    for (target, channel), grid in sorted(cells.items()):
        maps.append(
            Heatmap(
                target=target,
                channel=channel,
                zone=zones.get(target, "UTC"),
                sent=tuple(tuple(len(cell) for cell in day) for day in grid),
                answer_rate=tuple(
                    tuple(
                        ratio(sum(answered_seconds(r) is not None for r in cell), len(cell))
                        for cell in day
                    )
                    for day in grid
                ),
                median_first_answer=tuple(
                    tuple(
                        median(s for r in cell if (s := answered_seconds(r)) is not None)
                        for cell in day
                    )
                    for day in grid
                ),
            )
        )
    return maps


class CellSample(StrEnum):
    """Whether an hour of the week had a contact sent in it."""

    SAMPLED = "sampled"
    HOLIDAY_ONLY = "holiday only"
    NONE = "none"


@dataclass(frozen=True)
class CoverageGrid:
    """The 168 hours of the week (7 days x 24 hours, target-local) of one target and channel."""

    target: str
    channel: str
    zone: str
    cells: tuple[tuple[CellSample, ...], ...]  # [weekday][hour]

    @property
    def sampled(self) -> int:
        return sum(cell is CellSample.SAMPLED for day in self.cells for cell in day)

    @property
    def complete(self) -> bool:
        return self.sampled == HOURS_PER_WEEK


def coverage_grids(runs: Sequence[RunResult], zones: Mapping[str, str]) -> list[CoverageGrid]:
    """Which hours of the week each target and channel had a contact sent in."""
    found: dict[tuple[str, str], list[list[CellSample]]] = {}
    for run in runs:
        if run.sent_at is None:
            continue
        grid = found.setdefault(
            (run.target, run.channel), [[CellSample.NONE] * 24 for _ in range(7)]
        )
        cell = cell_of(run.sent_at, ZoneInfo(zones.get(run.target, "UTC")))
        if run.period is not Period.HOLIDAY:
            grid[cell.weekday][cell.hour] = CellSample.SAMPLED
        elif grid[cell.weekday][cell.hour] is CellSample.NONE:
            grid[cell.weekday][cell.hour] = CellSample.HOLIDAY_ONLY
    return [
        CoverageGrid(
            target=target,
            channel=channel,
            zone=zones.get(target, "UTC"),
            cells=tuple(tuple(day) for day in grid),
        )
        for (target, channel), grid in sorted(found.items())
    ]


@dataclass
class Compliance:
    """SLA compliance of one target, channel and period, with the thresholds that applied."""

    target: str
    channel: str
    period: Period
    runs: int = 0
    met: int = 0
    breached: int = 0
    failed: int = 0
    not_run: int = 0
    thresholds: dict[str, float | None] = field(default_factory=dict)
    slo_good: dict[str, int] = field(default_factory=dict)
    slo_total: dict[str, int] = field(default_factory=dict)

    @property
    def judged(self) -> int:
        return self.met + self.breached + self.failed

    @property
    def compliance(self) -> float | None:
        return ratio(self.met, self.judged)


def compliance(runs: Sequence[RunResult]) -> list[Compliance]:
    rows: dict[tuple[str, str, Period], Compliance] = {}
    for run in runs:
        if run.outcome is None:
            continue  # still open: not judged yet
        if run.outcome is Outcome.SKIPPED or run.slo_excluded is not None:
            continue  # declared courtesy: listed in the report's courtesy section
        row = rows.setdefault(
            (run.target, run.channel, run.period), Compliance(run.target, run.channel, run.period)
        )
        row.runs += 1
        if run.outcome is Outcome.MET:
            row.met += 1
        elif run.outcome is Outcome.BREACHED:
            row.breached += 1
        elif run.outcome is Outcome.FAILED:
            row.failed += 1
        else:
            row.not_run += 1
        row.thresholds = run.thresholds.as_dict()  # runs are oldest first: the latest applies
        for slo, good in slo_events(run):
            row.slo_total[slo] = row.slo_total.get(slo, 0) + 1
            row.slo_good[slo] = row.slo_good.get(slo, 0) + int(good)
    return sorted(rows.values(), key=lambda r: (r.target, r.channel, PERIOD_ORDER[r.period]))


@dataclass
class AfterHours:
    """Who answers outside business hours (after hours and holidays), per target and channel."""

    target: str
    channel: str
    sent: int = 0
    met: int = 0
    judged: int = 0
    machine: int = 0  # first answer (before the deadline) from a bot, auto-reply or IVR
    human: int = 0
    unanswered: int = 0
    threshold: float | None = None
    first_answers: list[float] = field(default_factory=list)

    @property
    def availability(self) -> float | None:
        return ratio(self.met, self.judged)

    @property
    def median_first_answer(self) -> float | None:
        return median(self.first_answers)


def after_hours(runs: Sequence[RunResult]) -> list[AfterHours]:
    rows: dict[tuple[str, str], AfterHours] = {}
    for run in runs:
        if run.period is Period.BUSINESS or run.outcome is None or run.sent_at is None:
            continue
        row = rows.setdefault((run.target, run.channel), AfterHours(run.target, run.channel))
        row.sent += 1
        row.threshold = run.thresholds.after_hours_response
        if run.outcome in JUDGED:
            row.judged += 1
            row.met += run.outcome is Outcome.MET
        first = next((reply for reply in run.replies if not reply.late), None)
        if first is None:
            row.unanswered += 1
            continue
        row.first_answers.append(first.seconds)
        if first.responder in MACHINE:
            row.machine += 1
        else:
            row.human += 1
    return sorted(rows.values(), key=lambda r: (r.target, r.channel))


@dataclass
class Routing:
    target: str
    channel: str
    scenario: str
    expected: str = ""
    correct: int = 0
    wrong: int = 0
    unknown: int = 0
    wrong_queues: dict[str, int] = field(default_factory=dict)

    @property
    def correctness(self) -> float | None:
        return ratio(self.correct, self.correct + self.wrong)


def routing(runs: Sequence[RunResult]) -> list[Routing]:
    rows: dict[tuple[str, str, str], Routing] = {}
    for run in runs:
        if run.sent_at is None or run.outcome is None or run.expected_queue is None:
            continue
        key = (run.target, run.channel, run.scenario)
        row = rows.setdefault(key, Routing(*key))
        row.expected = run.expected_queue
        if run.routing is RoutingResult.CORRECT:
            row.correct += 1
        elif run.routing is RoutingResult.WRONG:
            row.wrong += 1
            queue = run.routed_queue or "?"
            row.wrong_queues[queue] = row.wrong_queues.get(queue, 0) + 1
        else:
            row.unknown += 1
    return sorted(rows.values(), key=lambda r: (r.target, r.channel, r.scenario))


_SEVERITY = {Outcome.FAILED: 0, Outcome.BREACHED: 1}


def incident_score(run: RunResult) -> tuple[int, float] | None:
    """How bad a run was, for ranking (lower first); None when it is no incident.

    Refusals first, then breaches by how far past their limit the answer came (no answer at
    all counts as infinitely late), then wrong routes; the monitor's own errors are not
    incidents of the service.
    """
    if run.outcome in _SEVERITY:
        limit = (
            run.thresholds.human_response
            if run.period is Period.BUSINESS
            else run.thresholds.after_hours_response
        ) or run.thresholds.deadline
        taken = run.first_human_seconds if run.period is Period.BUSINESS else answered_seconds(run)
        overrun = float("inf") if taken is None else taken / limit
        return _SEVERITY[run.outcome], -overrun
    if run.routing is RoutingResult.WRONG:
        return 2, 0.0
    return None


def worst_incidents(runs: Sequence[RunResult], limit: int = 8) -> list[RunResult]:
    """The worst of each kind in turn (refused, breached, misrouted), so one kind cannot crowd
    the others out of the report; most severe first within a kind."""
    kinds: dict[int, list[tuple[tuple[int, float], RunResult]]] = defaultdict(list)
    for run in runs:
        if (score := incident_score(run)) is not None:
            kinds[score[0]].append((score, run))
    queues = [
        sorted(found, key=lambda pair: (pair[0], pair[1].slot))
        for _, found in sorted(kinds.items())
    ]
    chosen: list[RunResult] = []
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0)[1])
    return chosen


@dataclass
class ChannelFigures:
    channel: str
    runs: int = 0
    met: int = 0
    judged: int = 0
    first_answers: list[float] = field(default_factory=list)
    human_answers: list[float] = field(default_factory=list)
    correct: int = 0
    routed: int = 0

    @property
    def compliance(self) -> float | None:
        return ratio(self.met, self.judged)

    @property
    def routing(self) -> float | None:
        return ratio(self.correct, self.routed)

    def count(self, run: RunResult) -> None:
        """Add a finished run."""
        self.runs += 1
        if run.outcome in JUDGED:
            self.judged += 1
            self.met += run.outcome is Outcome.MET
        if (seconds := answered_seconds(run)) is not None:
            self.first_answers.append(seconds)
        if run.first_human_seconds is not None:
            self.human_answers.append(run.first_human_seconds)
        if run.routing is not RoutingResult.UNKNOWN:
            self.routed += 1
            self.correct += run.routing is RoutingResult.CORRECT


@dataclass
class CrossChannel:
    """The same scenario of one target on several channels."""

    target: str
    scenario: str
    channels: list[ChannelFigures]


def cross_channel(runs: Sequence[RunResult]) -> list[CrossChannel]:
    groups: dict[tuple[str, str], dict[str, ChannelFigures]] = defaultdict(dict)
    for run in runs:
        if run.outcome is None:
            continue
        groups[(run.target, run.scenario)].setdefault(
            run.channel, ChannelFigures(run.channel)
        ).count(run)
    return [
        CrossChannel(target, scenario, sorted(channels.values(), key=lambda c: c.channel))
        for (target, scenario), channels in sorted(groups.items())
        if len(channels) > 1
    ]


@dataclass
class LocationFigures(ChannelFigures):
    """One target and channel as probed from one location."""

    target: str = ""
    location: str = ""
    after_hours_met: int = 0
    after_hours_judged: int = 0

    @property
    def after_hours(self) -> float | None:
        """After-hours availability, as :class:`AfterHours` has it."""
        return ratio(self.after_hours_met, self.after_hours_judged)

    def count(self, run: RunResult) -> None:
        super().count(run)
        # Contacts sent outside business hours, as the after-hours section counts them.
        sent_out_of_hours = run.period is not Period.BUSINESS and run.sent_at is not None
        if sent_out_of_hours and run.outcome in JUDGED:
            self.after_hours_judged += 1
            self.after_hours_met += run.outcome is Outcome.MET


def locations(runs: Sequence[RunResult]) -> list[LocationFigures]:
    """The finished runs' figures per target, channel and location (in that order)."""
    rows: dict[tuple[str, str, str], LocationFigures] = {}
    for run in runs:
        if run.outcome is None:
            continue
        key = (run.target, run.channel, run.location)
        figures = rows.setdefault(
            key, LocationFigures(run.channel, target=run.target, location=run.location)
        )
        figures.count(run)
    return [rows[key] for key in sorted(rows)]
