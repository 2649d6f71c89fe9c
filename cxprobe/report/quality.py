"""The report's answer-quality section: per target and channel, what the human answers said
against the scenarios' expectations, how many resolved the contact at first contact, and whether
they came in the customer's language."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from cxprobe.report.data import ratio
from cxprobe.report.model import Section, TableBlock, Text, pct
from scenarios.model import AnswerVerdict, LanguageVerdict, RunResult

TITLE = "Answer quality and language"


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


def quality_section(runs: Sequence[RunResult]) -> Section:
    rows = quality_rows(runs)
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
    return Section(TITLE, (table, note))
