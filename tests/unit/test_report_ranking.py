"""The report's competitor ranking: each measure's ranks (ties share a rank, a brand without
the figure ranks last) and the overall order by mean rank."""

from __future__ import annotations

from datetime import UTC, datetime

from cxprobe.report.model import TableBlock
from cxprobe.report.ranking import ranking, ranking_section
from scenarios.model import (
    AnswerVerdict,
    ContactMode,
    Outcome,
    Period,
    RunResult,
    Thresholds,
)

SLOT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def run(
    target: str,
    *,
    human: float | None = None,
    answer: AnswerVerdict | None = None,
    rubric: float | None = None,
    period: Period = Period.BUSINESS,
    outcome: Outcome = Outcome.MET,
    mode: ContactMode = ContactMode.DECLARED,
) -> RunResult:
    return RunResult(
        run_id=f"{target}-{human}-{rubric}-{period}",
        check_id="c",
        target=target,
        channel="email",
        scenario="s",
        location="l",
        slot=SLOT,
        token="CXP-0000000000",
        period=period,
        thresholds=Thresholds(None, 60, 60, deadline=120),
        outcome=outcome,
        sent_at=SLOT,
        first_human_seconds=human,
        answer=answer,
        rubric_score=rubric,
        contact_mode=mode,
    )


def test_brands_are_ranked_per_measure_and_overall() -> None:
    runs = [
        # own: fast, always correct, no rubric, after hours met
        run("own", human=10, answer=AnswerVerdict.CORRECT),
        run("own", period=Period.AFTER_HOURS),
        # rival: slower, half correct, scored, after hours breached
        run("rival", human=30, answer=AnswerVerdict.CORRECT, rubric=80, mode=ContactMode.MYSTERY),
        run("rival", human=50, answer=AnswerVerdict.WRONG, rubric=60, mode=ContactMode.MYSTERY),
        run("rival", period=Period.AFTER_HOURS, outcome=Outcome.BREACHED, mode=ContactMode.MYSTERY),
        # other: as fast as own (a tie), nothing judged
        run("other", human=10),
        run("other", outcome=Outcome.SKIPPED),  # a skipped slot is not a run of the brand
    ]
    ranked = {row.brand.target: row for row in ranking(runs)}
    assert ranked["own"].ranks == {"speed": 1, "correct": 1, "rubric": 2, "after hours": 1}
    assert ranked["other"].ranks == {"speed": 1, "correct": 3, "rubric": 2, "after hours": 3}
    assert ranked["rival"].ranks == {"speed": 3, "correct": 2, "rubric": 1, "after hours": 2}
    # Mean ranks: own 1.25, rival 2.0, other 2.25.
    assert [row.brand.target for row in ranking(runs)] == ["own", "rival", "other"]
    assert [row.overall for row in ranking(runs)] == [1, 2, 3]
    assert ranked["rival"].brand.speed == 40 and ranked["other"].brand.runs == 1
    assert ranked["rival"].brand.modes == {"mystery"}

    section = ranking_section(runs, {"rival": "Rival Ltd"}, competitors={"rival"})
    table = section.blocks[0]
    assert isinstance(table, TableBlock)
    assert table.rows[1][:5] == ("2", "Rival Ltd", "yes", "mystery", "3")
    assert table.rows[1][5:] == ("40.0 s (#3)", "50.0 % (#2)", "70.0 (#1)", "0.0 % (#2)")
    assert table.rows[0][7] == "—"  # own has no rubric score: no rank shown either
