"""The mystery-shopping rubric: config validation, scoring (applicability and rescaling, spans,
every turn's answers, bounded on hostile replies), the stored record, metrics and the CLI."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from rich.console import Console

from cxprobe.cli import _print_result
from cxprobe.settings import load_scenario_library
from cxprobe.store.database import EvidenceStore
from exporters.metrics import CheckSeries, MonitorMetrics
from scenarios.answers import MAX_EVALUATED_CHARS, HumanAnswer
from scenarios.model import (
    AnswerVerdict,
    Outcome,
    Period,
    RubricItemResult,
    RubricKind,
    RunResult,
    Scenario,
    Thresholds,
)
from scenarios.rubric import score_rubric

SENT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
NAME = {"customer_name": "Alex Morgan"}
LIBRARY, _ = load_scenario_library()

#: An answer that satisfies every text item of the library rubric.
POLITE = (
    "Dear Alex,\n\nI am so sorry the lamp arrived broken. A replacement has been sent today; "
    "your case number is 4821-77.\n\nKind regards,\nSam"
)
#: One that satisfies none of them.
CURT = "A replacement will be sent."


def scenario(**fields: Any) -> Scenario:
    return Scenario.model_validate({"intent": "x", "subject": "s", "opening": "o", **fields})


def answer(text: str, minutes: float = 1.0) -> HumanAnswer:
    return HumanAnswer(arrived_at=SENT + timedelta(minutes=minutes), text=text)


def items_of(scored: Any) -> dict[str, bool | None]:
    return {item.item: item.met for item in scored.items}


# -- configuration ----------------------------------------------------------------------------


def test_the_library_rubric_is_used_by_name() -> None:
    complaint = LIBRARY["delivery-complaint"]
    assert complaint.complaint and complaint.rubric is not None
    assert [item.kind for item in complaint.rubric.items] == [
        RubricKind.GREETING,
        RubricKind.NAME,
        RubricKind.EMPATHY,
        RubricKind.SIGN_OFF,
        RubricKind.REFERENCE,
        RubricKind.EXPECTATIONS,
        RubricKind.SLA,
    ]
    assert sum(item.weight for item in complaint.rubric.items) == 100


def test_an_unknown_library_rubric_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown library rubric 'polite'; available: "):
        scenario(rubric="polite")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [{"kind": "greeting", "weight": 50}, {"kind": "sla", "weight": 40}],
            r"the weights must sum to 100, not 90 \(50 \+ 40\)",
        ),
        (
            [{"kind": "greeting", "weight": 50}, {"kind": "greeting", "weight": 50}],
            r"item names must be unique; greeting appear",
        ),
        (
            [{"kind": "sla", "weight": 100, "any": ["fast"]}],
            r"a sla item reads the run's verdict, not the text",
        ),
        ([{"kind": "custom", "weight": 100}], r"a custom item needs a name and a matcher"),
        (
            [{"kind": "reference", "weight": 100, "regex": r"(\d+)\1"}],
            r"invalid regular expression .* for RE2",
        ),
        (
            [{"kind": "name", "weight": 100, "any": ["{nickname}"]}],
            r"unknown placeholder \{nickname\}",
        ),
    ],
)
def test_bad_rubrics_are_refused_with_what_to_do(items: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        scenario(rubric={"items": items})


def test_persona_placeholders_in_keywords_are_accepted() -> None:
    mine = scenario(
        persona={"nickname": "Lex"},
        rubric={"items": [{"kind": "name", "weight": 100, "any": ["{nickname}"]}]},
    )
    scored = score_rubric(
        mine, [answer("Hi Lex!")], verdict=None, outcome=Outcome.MET, values={"nickname": "Lex"}
    )
    assert scored is not None and scored.score == 100


# -- scoring ----------------------------------------------------------------------------------


def test_every_item_met_scores_100_with_its_spans() -> None:
    scored = score_rubric(
        LIBRARY["delivery-complaint"],
        [answer(POLITE)],
        verdict=AnswerVerdict.CORRECT,
        outcome=Outcome.MET,
        values=NAME,
    )
    assert scored is not None
    assert scored.score == 100
    spans = {item.item: item.span["text"] if item.span else None for item in scored.items}
    assert spans == {
        "greeting": "Dear",
        "name": "Alex",
        "empathy": "sorry",
        "sign_off": "Kind regards",
        "reference": "case number is 4821-77",
        "expectations": None,
        "sla": None,
    }
    assert sum(item.points for item in scored.items) == pytest.approx(100)


def test_a_curt_late_wrong_answer_scores_0() -> None:
    scored = score_rubric(
        LIBRARY["delivery-complaint"],
        [answer(CURT)],
        verdict=AnswerVerdict.WRONG,
        outcome=Outcome.BREACHED,
        values=NAME,
    )
    assert scored is not None and scored.score == 0
    assert set(items_of(scored).values()) == {False}


def test_empathy_outside_a_complaint_is_left_out_and_the_rest_rescaled() -> None:
    # Not a complaint: empathy (15) does not apply, 85 points are rescaled to 100. Met:
    # greeting 10 + name 15 + sla 15 = 40 of 85.
    plain = LIBRARY["delivery-complaint"].model_copy(update={"complaint": False})
    scored = score_rubric(
        plain,
        [answer("Hello Alex, a replacement will be sent.")],
        verdict=AnswerVerdict.INCOMPLETE,
        outcome=Outcome.MET,
        values=NAME,
    )
    assert scored is not None
    assert items_of(scored)["empathy"] is None
    assert scored.score == round(40 * 100 / 85, 2) == 47.06
    assert {item.item: item.points for item in scored.items}["name"] == round(15 * 100 / 85, 2)


def test_expectations_without_expect_do_not_apply() -> None:
    mine = scenario(
        rubric={
            "items": [
                {"kind": "expectations", "weight": 50},
                {"kind": "sign_off", "weight": 50},
            ]
        }
    )
    scored = score_rubric(
        mine, [answer("Thanks.\nBest regards")], verdict=None, outcome=Outcome.MET, values=NAME
    )
    assert scored is not None and scored.score == 100
    assert items_of(scored) == {"expectations": None, "sign_off": True}


def test_every_turns_answers_count_and_quoted_text_does_not() -> None:
    # The greeting opens the first human answer, the sign-off closes the last; the customer's
    # own name appears only in the quoted opening, which is not the agent's.
    first = "Hello,\n\nCould you give me your order number?\n\n> Thank you,\n> Alex Morgan"
    last = "Thanks, it is on its way.\n\nBest wishes,\nPriya"
    scored = score_rubric(
        LIBRARY["delivery-complaint"],
        [answer(first), answer(last, minutes=3)],
        verdict=AnswerVerdict.CORRECT,
        outcome=Outcome.MET,
        values=NAME,
    )
    assert scored is not None
    met = items_of(scored)
    assert met["greeting"] and met["sign_off"] and not met["name"]
    sign_off = next(item for item in scored.items if item.item == "sign_off")
    assert sign_off.span is not None and sign_off.span["answer"] == 1


def test_greetings_and_sign_offs_open_a_line_and_keywords_a_word() -> None:
    mine = scenario(
        rubric={"items": [{"kind": "greeting", "weight": 50}, {"kind": "sign_off", "weight": 50}]}
    )
    scored = score_rubric(
        mine,
        [answer("History shows the best way is to wait. Cheerful regards are not a sign-off.")],
        verdict=None,
        outcome=Outcome.MET,
        values=NAME,
    )
    assert scored is not None and scored.score == 0


def test_no_human_answer_is_not_scored() -> None:
    scored = score_rubric(
        LIBRARY["delivery-complaint"],
        [],
        verdict=AnswerVerdict.NONE,
        outcome=Outcome.BREACHED,
        values=NAME,
    )
    assert scored is not None and scored.score is None
    assert set(items_of(scored).values()) == {None}
    assert score_rubric(scenario(), [], verdict=None, outcome=None, values=NAME) is None


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param("<p>" + "sorry regards " * 800_000 + "</p>", id="10MB-html"),
        pytest.param(("Привет мир 你好世界 مرحبا Grüße " * 400_000)[:10_000_000], id="mixed"),
        pytest.param("case " + "1" * 10_000_000, id="one-long-number"),
    ],
)
def test_a_huge_or_hostile_reply_is_scored_on_a_bounded_text(hostile: str) -> None:
    scored = score_rubric(
        LIBRARY["delivery-complaint"],
        [answer(hostile)],
        verdict=AnswerVerdict.INCOMPLETE,
        outcome=Outcome.MET,
        values=NAME,
    )
    assert scored is not None and scored.score is not None
    assert scored.truncated and scored.evaluated_chars <= MAX_EVALUATED_CHARS


# -- the record, the metrics and the CLI --------------------------------------------------------


def scored_result() -> RunResult:
    return RunResult(
        run_id="r-rubric",
        check_id="acme-email-complaint",
        target="acme",
        channel="email",
        scenario="delivery-complaint",
        location="london",
        slot=SENT,
        token="CXP-0000000000",
        period=Period.BUSINESS,
        thresholds=Thresholds(None, 3600, None, deadline=7200),
        outcome=Outcome.MET,
        rubric_score=62.5,
        rubric_items=[
            RubricItemResult(
                "greeting",
                RubricKind.GREETING,
                10,
                True,
                12.5,
                {"answer": 0, "start": 0, "end": 5, "text": "Hello"},
            ),
            RubricItemResult("name", RubricKind.NAME, 15, False),
            RubricItemResult("empathy", RubricKind.EMPATHY, 15, None),
        ],
    )


async def test_the_score_and_items_are_stored_with_the_run(tmp_path: Path) -> None:
    result = scored_result()
    async with EvidenceStore(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as store:
        await store.claim_slot(result)
        await store.finish(result)
        (stored,) = await store.runs_between(SENT, SENT + timedelta(hours=1))
    assert stored.rubric_score == 62.5
    assert stored.rubric_items == result.rubric_items


def test_metrics_observe_the_score_and_count_the_items() -> None:
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry, "1.0")
    labels = {
        "target": "acme",
        "channel": "email",
        "scenario": "delivery-complaint",
        "location": "london",
    }
    series = CheckSeries(
        check_id="acme-email-complaint",
        **labels,
        thresholds=Thresholds(None, 3600, None, deadline=7200),
        objective=0.9,
        rubric_items=("greeting", "name", "empathy"),
    )
    metrics.declare_checks([series])
    assert registry.get_sample_value("cxprobe_rubric_score_count", labels) == 0
    for item in ("greeting", "name", "empathy"):
        for met in ("met", "missed"):
            sample = {**labels, "item": item, "result": met}
            assert registry.get_sample_value("cxprobe_rubric_items_total", sample) == 0
    metrics.record_run(scored_result(), [])
    assert registry.get_sample_value("cxprobe_rubric_score_count", labels) == 1
    assert registry.get_sample_value("cxprobe_rubric_score_sum", labels) == 62.5
    bucket = {**labels, "le": "60.0"}
    assert registry.get_sample_value("cxprobe_rubric_score_bucket", bucket) == 0
    bucket = {**labels, "le": "70.0"}
    assert registry.get_sample_value("cxprobe_rubric_score_bucket", bucket) == 1
    counted = {
        (item, met): registry.get_sample_value(
            "cxprobe_rubric_items_total", {**labels, "item": item, "result": met}
        )
        for item in ("greeting", "name", "empathy")
        for met in ("met", "missed")
    }
    assert counted == {
        ("greeting", "met"): 1,
        ("greeting", "missed"): 0,
        ("name", "met"): 0,
        ("name", "missed"): 1,
        ("empathy", "met"): 0,  # not applicable: not counted
        ("empathy", "missed"): 0,
    }


def test_cxprobe_once_prints_the_score_and_the_missed_items() -> None:
    console = Console(record=True, width=200)
    _print_result(console, scored_result(), [])
    printed = console.export_text()
    assert re.search(r"^\s*rubric\s+62\.5 / 100 \(missed: name\)\s*$", printed, re.MULTILINE)
