"""The report's answer-quality section: per target and channel, what the human answers said
against the scenarios' expectations, how many resolved the contact at first contact, whether
they came in the customer's language, and the mystery-shopping rubric's scores (where a team
scores low, which item it misses most, and the same scenario's score on each channel side by
side: cross-channel consistency of content, not only of speed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean

from cxprobe.report.data import ratio
from cxprobe.report.model import Block, Section, TableBlock, Text, pct
from scenarios.model import AnswerVerdict, LanguageVerdict, RunResult

TITLE = "Answer quality and language"
#: A mean rubric score below this marks the team as scoring low.
LOW_RUBRIC_SCORE = 60.0


def score(value: float | None) -> str:
    """A rubric score for people: ``72.5``; ``—`` when there is none."""
    return "—" if value is None else f"{value:.1f}"


@dataclass
class QualityRow:
    target: str
    channel: str
    verdicts: Counter[AnswerVerdict] = field(default_factory=Counter)
    resolved: int = 0
    resolution_judged: int = 0
    languages: Counter[LanguageVerdict] = field(default_factory=Counter)

    @property
    def answered(self) -> int:
        return sum(self.verdicts.values()) - self.verdicts[AnswerVerdict.NONE]

    @property
    def correctness(self) -> float | None:
        return ratio(self.verdicts[AnswerVerdict.CORRECT], self.answered)

    @property
    def first_contact_resolution(self) -> float | None:
        return ratio(self.resolved, self.resolution_judged)


def quality_rows(runs: Sequence[RunResult]) -> list[QualityRow]:
    rows: dict[tuple[str, str], QualityRow] = {}
    for run in runs:
        if run.answer is None and run.language is None:
            continue
        row = rows.setdefault((run.target, run.channel), QualityRow(run.target, run.channel))
        if run.answer is not None:
            row.verdicts[run.answer] += 1
        if run.resolved is not None:
            row.resolution_judged += 1
            row.resolved += run.resolved
        if run.language is not None:
            row.languages[run.language] += 1
    return sorted(rows.values(), key=lambda r: (r.target, r.channel))


@dataclass
class RubricRow:
    """The rubric scores of one target and channel, and how often each item was met."""

    target: str
    channel: str
    scores: list[float] = field(default_factory=list)
    met: Counter[str] = field(default_factory=Counter)
    judged: Counter[str] = field(default_factory=Counter)

    @property
    def mean(self) -> float | None:
        return fmean(self.scores) if self.scores else None

    @property
    def low(self) -> bool:
        return self.mean is not None and self.mean < LOW_RUBRIC_SCORE

    def weakest(self) -> tuple[str, float] | None:
        """The item met least often (its share), ties by name; None when none was judged."""
        shares = [(self.met[item] / n, item) for item, n in self.judged.items() if n]
        if not shares:
            return None
        share, item = min(shares)
        return item, share


def rubric_rows(runs: Sequence[RunResult]) -> list[RubricRow]:
    rows: dict[tuple[str, str], RubricRow] = {}
    for run in runs:
        if run.rubric_score is None:
            continue
        row = rows.setdefault((run.target, run.channel), RubricRow(run.target, run.channel))
        row.scores.append(run.rubric_score)
        for item in run.rubric_items:
            if item.met is not None:
                row.judged[item.item] += 1
                row.met[item.item] += item.met
    return sorted(rows.values(), key=lambda r: (r.target, r.channel))


def rubric_by_channel(
    runs: Sequence[RunResult],
) -> tuple[list[str], dict[tuple[str, str], dict[str, float]]]:
    """The scored channels, and each target and scenario's mean score per channel."""
    scores: dict[tuple[str, str], dict[str, list[float]]] = {}
    for run in runs:
        if run.rubric_score is not None:
            by_channel = scores.setdefault((run.target, run.scenario), {})
            by_channel.setdefault(run.channel, []).append(run.rubric_score)
    channels = sorted({channel for by_channel in scores.values() for channel in by_channel})
    means = {
        key: {channel: fmean(values) for channel, values in by_channel.items()}
        for key, by_channel in sorted(scores.items())
    }
    return channels, means


def rubric_blocks(runs: Sequence[RunResult]) -> tuple[Block, ...]:
    """The rubric's tables: per target and channel, and per scenario across channels."""
    rows = rubric_rows(runs)
    if not rows:
        return ()
    per_team = TableBlock(
        title="Mystery-shopping rubric per target and channel",
        columns=("target", "channel", "scored runs", "mean", "lowest", "missed most", "low"),
        rows=tuple(
            (
                row.target,
                row.channel,
                str(len(row.scores)),
                score(row.mean),
                score(min(row.scores)),
                "—" if (weakest := row.weakest()) is None else f"{weakest[0]} ({pct(weakest[1])})",
                "low" if row.low else "",
            )
            for row in rows
        ),
        numbers_from=2,
        text_columns=(5, 6),
        note=f"Scores 0-100; low: a mean below {LOW_RUBRIC_SCORE:g}. Missed most: the item met "
        "in the smallest share of the runs it applied to.",
    )
    channels, means = rubric_by_channel(runs)
    consistency = TableBlock(
        title="Rubric score of the same scenario on each channel",
        columns=("target", "scenario", *channels, "spread"),
        rows=tuple(
            (
                target,
                scenario,
                *(score(by_channel.get(channel)) for channel in channels),
                score(max(by_channel.values()) - min(by_channel.values())),
            )
            for (target, scenario), by_channel in means.items()
        ),
        numbers_from=2,
        note="Mean score per channel; spread: the best channel's mean minus the worst's (0 on "
        "a scenario scored on one channel only).",
    )
    return per_team, consistency


def quality_section(runs: Sequence[RunResult]) -> Section:
    rows = quality_rows(runs)
    rubric = rubric_blocks(runs)
    if not rows and rubric:
        return Section(TITLE, (*rubric, _rubric_note()))
    if not rows:
        return Section(
            TITLE,
            (
                Text(
                    (
                        "No run in this period had a scenario with answer expectations or a "
                        "language.",
                    )
                ),
            ),
        )
    table = TableBlock(
        columns=(
            "target",
            "channel",
            *(str(verdict) for verdict in AnswerVerdict),
            "correct of answered",
            "resolved at first contact",
            *(f"language {verdict}" for verdict in LanguageVerdict),
        ),
        rows=tuple(
            (
                row.target,
                row.channel,
                *(str(row.verdicts[verdict]) for verdict in AnswerVerdict),
                pct(row.correctness),
                pct(row.first_contact_resolution),
                *(str(row.languages[verdict]) for verdict in LanguageVerdict),
            )
            for row in rows
        ),
        numbers_from=2,
    )
    note = Text(
        (
            "Verdicts come from matching each scenario's expected facts (keywords and patterns) "
            "in the human answers: correct has every fact and no wrong one, incomplete misses "
            "a fact, wrong states a wrong fact, none had no human answer. This is pattern "
            "matching, not understanding: a fact stated in a negation still counts. Resolved "
            "at first contact: an answer before any follow-up of the probe met the scenario's "
            "resolution. Language: detected in the human answers (lingua), against the "
            "scenario's language.",
        )
    )
    return Section(TITLE, (table, note, *rubric, *([_rubric_note()] if rubric else [])))


def _rubric_note() -> Text:
    return Text(
        (
            "Rubric: each scenario's mystery-shopping items (greeting, the customer's name, an "
            "apology where the scenario is a complaint, a sign-off, a reference number, the "
            "expected facts, the SLA), each a pattern or a verdict with a weight; items that do "
            "not apply to a run are left out and the rest rescaled to 100. Runs without a human "
            "answer are not scored. Pattern matching, not understanding: a greeting followed by "
            "an unhelpful answer still scores its points.",
        )
    )
