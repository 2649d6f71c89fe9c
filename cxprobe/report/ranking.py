"""The report's competitor ranking: the probed brands (your own and competitors') ranked on
speed, answer quality and after-hours availability, each with the contact mode its contacts
went out in (declared or mystery).

Measures per target, over all its channels and scenarios in the period:

* **speed**: the median time to the first human answer of business-hours runs that had one;
* **correct**: the share of judged answers that were correct (runs with expectations);
* **rubric**: the mean mystery-shopping rubric score;
* **after hours**: the share of after-hours and holiday runs that were met.

Each measure ranks the targets (1 = best; a target without the figure ranks after those with
it); the overall rank orders them by the mean of their ranks, then by name. A figure a brand
has no runs for says nothing about it: read the runs column next to the ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean

from cxprobe.report.data import JUDGED, median, ratio
from cxprobe.report.model import Section, TableBlock, Text, pct, seconds
from cxprobe.report.quality import score
from scenarios.model import AnswerVerdict, Outcome, Period, RunResult

TITLE = "Competitor ranking"


@dataclass
class Brand:
    """One target's figures for the ranking."""

    target: str
    runs: int = 0
    modes: set[str] = field(default_factory=set)
    human_seconds: list[float] = field(default_factory=list)
    answered: int = 0
    correct: int = 0
    rubric_scores: list[float] = field(default_factory=list)
    after_hours_judged: int = 0
    after_hours_met: int = 0

    @property
    def speed(self) -> float | None:
        return median(self.human_seconds)

    @property
    def correctness(self) -> float | None:
        return ratio(self.correct, self.answered)

    @property
    def rubric(self) -> float | None:
        return fmean(self.rubric_scores) if self.rubric_scores else None

    @property
    def after_hours(self) -> float | None:
        return ratio(self.after_hours_met, self.after_hours_judged)

    def count(self, run: RunResult) -> None:
        self.runs += 1
        self.modes.add(str(run.contact_mode))
        if run.period is Period.BUSINESS and run.first_human_seconds is not None:
            self.human_seconds.append(run.first_human_seconds)
        if run.answer is not None and run.answer is not AnswerVerdict.NONE:
            self.answered += 1
            self.correct += run.answer is AnswerVerdict.CORRECT
        if run.rubric_score is not None:
            self.rubric_scores.append(run.rubric_score)
        if run.period is not Period.BUSINESS and run.outcome in JUDGED and run.sent_at:
            self.after_hours_judged += 1
            self.after_hours_met += run.outcome is Outcome.MET


#: The measures, each with whether a lower figure is better.
MEASURES: tuple[tuple[str, Callable[[Brand], float | None], bool], ...] = (
    ("speed", lambda brand: brand.speed, True),
    ("correct", lambda brand: brand.correctness, False),
    ("rubric", lambda brand: brand.rubric, False),
    ("after hours", lambda brand: brand.after_hours, False),
)


@dataclass(frozen=True)
class Ranked:
    brand: Brand
    overall: int
    ranks: Mapping[str, int]


def brands(runs: Sequence[RunResult]) -> list[Brand]:
    found: dict[str, Brand] = {}
    for run in runs:
        if run.outcome is None or run.outcome is Outcome.SKIPPED:
            continue
        found.setdefault(run.target, Brand(run.target)).count(run)
    return sorted(found.values(), key=lambda brand: brand.target)


def _ranks(found: Sequence[Brand], figure: Callable[[Brand], float | None], low: bool) -> list[int]:
    """Standard competition ranks (1, 2, 2, 4); brands without the figure after the others."""

    def key(brand: Brand) -> tuple[int, float]:
        value = figure(brand)
        if value is None:
            return (1, 0.0)
        return (0, value if low else -value)

    keys = [key(brand) for brand in found]
    return [1 + sum(other < mine for other in keys) for mine in keys]


def ranking(runs: Sequence[RunResult]) -> list[Ranked]:
    found = brands(runs)
    per_measure = {name: _ranks(found, figure, low) for name, figure, low in MEASURES}
    rows = [
        (fmean(per_measure[name][i] for name, _, _ in MEASURES), brand.target, i)
        for i, brand in enumerate(found)
    ]
    ordered = sorted(rows)
    return [
        Ranked(
            brand=found[i],
            overall=1 + sum(other[0] < mean for other in ordered),
            ranks={name: per_measure[name][i] for name, _, _ in MEASURES},
        )
        for mean, _, i in ordered
    ]


def ranking_section(
    runs: Sequence[RunResult], names: Mapping[str, str], competitors: Collection[str]
) -> Section:
    ranked = ranking(runs)
    if not ranked:
        return Section(TITLE, (Text(("No finished run in this period.",)),))

    def cell(text: str, rank: int) -> str:
        return f"{text} (#{rank})" if text != "—" else text

    table = TableBlock(
        columns=(
            "rank",
            "target",
            "competitor",
            "contact mode",
            "runs",
            "median to human",
            "correct",
            "rubric",
            "after hours",
        ),
        rows=tuple(
            (
                str(row.overall),
                names.get(row.brand.target, row.brand.target),
                "yes" if row.brand.target in competitors else "no",
                ", ".join(sorted(row.brand.modes)),
                str(row.brand.runs),
                cell(seconds(row.brand.speed), row.ranks["speed"]),
                cell(pct(row.brand.correctness), row.ranks["correct"]),
                cell(score(row.brand.rubric), row.ranks["rubric"]),
                cell(pct(row.brand.after_hours), row.ranks["after hours"]),
            )
            for row in ranked
        ),
        numbers_from=4,
        text_columns=(),
    )
    note = Text(
        (
            "Each brand over all its channels and scenarios: speed is the median time to the "
            "first human answer in business hours, correct the share of judged answers that "
            "were correct, rubric the mean mystery-shopping score, after hours the share of "
            "after-hours and holiday runs met. #n ranks the brand on that measure (a brand "
            "without the figure ranks last); the overall rank orders brands by their mean rank. "
            "Contact mode: declared contacts said they were tests; mystery contacts did not "
            "(each target's recorded reason is in the configuration). Compare brands on the "
            "same scenarios and channels: a brand probed on fewer channels is ranked on those.",
        )
    )
    return Section(TITLE, (table, note))
