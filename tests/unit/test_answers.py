"""Answer expectations and language: the verdicts of scenarios.answers on known texts, the
spans they rest on, the Judge's collection of human answers, and bounded time on hostile
replies."""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from rich.console import Console

from cxprobe.cli import _print_result
from cxprobe.settings import load_scenario_library
from probes.base import Reply, Responder
from sandbox.profile import Answers
from scenarios.answers import (
    MAX_EVALUATED_CHARS,
    HumanAnswer,
    assess_answers,
    find_fact,
    plain_text,
)
from scenarios.language import ReplyLanguages, check_language_tag
from scenarios.model import (
    AnswerVerdict,
    Fact,
    LanguageVerdict,
    RunResult,
    Scenario,
    Thresholds,
)
from scenarios.model import Period as RunPeriod
from scenarios.verdicts import Judge

SENT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
LIBRARY, _ = load_scenario_library()

CORRECT = (
    "The extra charge is the price increase of our new tariff from 1 March. You can ask for a "
    "refund within 14 days, and the refund has been issued to your card today."
)
INCOMPLETE = "The extra charge is the price increase of our new tariff from 1 March."
WRONG = "The extra charge is the price increase of our new tariff. Refunds: within 30 days."
GERMAN = (
    "Der zusätzliche Betrag ist die Preiserhöhung unseres neuen Tarifs ab dem 1. März. Eine "
    "Erstattung ist innerhalb von 14 Tagen möglich; die Gutschrift wurde bereits veranlasst."
)


@pytest.fixture(scope="module")
def languages() -> ReplyLanguages:
    return ReplyLanguages(["en", "de", "fr", "es"])


def answer(text: str, *, after_follow_up: bool = False) -> HumanAnswer:
    return HumanAnswer(SENT + timedelta(minutes=5), text, after_follow_up)


@pytest.mark.parametrize(
    ("text", "verdict", "resolved"),
    [
        (CORRECT, AnswerVerdict.CORRECT, True),
        (INCOMPLETE, AnswerVerdict.INCOMPLETE, False),
        (WRONG, AnswerVerdict.WRONG, False),
    ],
)
def test_verdicts_on_the_english_billing_question(
    languages: ReplyLanguages, text: str, verdict: AnswerVerdict, resolved: bool
) -> None:
    quality = assess_answers(LIBRARY["billing-question"], [answer(text)], languages)
    assert quality is not None
    assert (quality.answer, quality.resolved) == (verdict, resolved)
    assert (quality.language, quality.reply_language) == (LanguageVerdict.MATCH, "en")


def test_the_evidence_names_the_spans_found_and_the_facts_missing(
    languages: ReplyLanguages,
) -> None:
    quality = assess_answers(LIBRARY["billing-question"], [answer(WRONG)], languages)
    assert quality is not None
    evidence = quality.evidence()
    assert evidence["missing"] == ["refund-period"]
    (wrong,) = evidence["wrong"]
    assert wrong["fact"] == "wrong-refund-period"
    assert WRONG[wrong["start"] : wrong["end"]] == wrong["text"] == "30 days"
    (mentioned,) = evidence["mentioned"]
    assert (mentioned["fact"], mentioned["text"]) == ("extra-charge-explained", "price increase")


def test_no_human_answer_is_none_and_not_resolved(languages: ReplyLanguages) -> None:
    quality = assess_answers(LIBRARY["billing-question"], [], languages)
    assert quality is not None
    assert (quality.answer, quality.resolved, quality.language) == (
        AnswerVerdict.NONE,
        False,
        LanguageVerdict.UNKNOWN,
    )


def test_an_answer_after_a_follow_up_does_not_resolve_at_first_contact(
    languages: ReplyLanguages,
) -> None:
    quality = assess_answers(
        LIBRARY["billing-question"], [answer(CORRECT, after_follow_up=True)], languages
    )
    assert quality is not None
    assert (quality.answer, quality.resolved) == (AnswerVerdict.CORRECT, False)


def test_an_answer_in_another_language_is_a_mismatch(languages: ReplyLanguages) -> None:
    quality = assess_answers(LIBRARY["billing-question"], [answer(GERMAN)], languages)
    assert quality is not None
    assert (quality.language, quality.reply_language) == (LanguageVerdict.MISMATCH, "de")
    assert quality.answer is AnswerVerdict.INCOMPLETE  # the English facts are not there


def test_the_german_scenario_accepts_the_german_answer(languages: ReplyLanguages) -> None:
    quality = assess_answers(LIBRARY["billing-question-de"], [answer(GERMAN)], languages)
    assert quality is not None
    assert (quality.answer, quality.resolved, quality.language) == (
        AnswerVerdict.CORRECT,
        True,
        LanguageVerdict.MATCH,
    )


@pytest.mark.parametrize(
    ("scenario", "text", "language"),
    [
        (
            "billing-question-fr",
            "Le supplément correspond à l'augmentation de prix de notre nouveau tarif. Vous "
            "pouvez demander un remboursement sous 14 jours ; un avoir vous a été envoyé.",
            "fr",
        ),
        (
            "billing-question-es",
            "El cargo adicional se debe a la subida de precio de nuestra nueva tarifa. Puede "
            "pedir el reembolso en un plazo de 14 días; ya le hemos enviado un abono.",
            "es",
        ),
    ],
)
def test_french_and_spanish_library_scenarios(
    languages: ReplyLanguages, scenario: str, text: str, language: str
) -> None:
    quality = assess_answers(LIBRARY[scenario], [answer(text)], languages)
    assert quality is not None
    assert (quality.answer, quality.resolved) == (AnswerVerdict.CORRECT, True)
    assert (quality.language, quality.reply_language) == (LanguageVerdict.MATCH, language)


def test_quoted_customer_text_does_not_count_as_the_answer() -> None:
    reply = (
        "Hello,\n\nWe are looking into it.\n\n"
        "On Mon, 23 Nov 2026 10:00:00 +0000, Probe wrote:\n"
        "> Could you explain the price increase and refund within 14 days?\n"
    )
    assert plain_text(reply) == "Hello,\n\nWe are looking into it."
    quality = assess_answers(LIBRARY["billing-question"], [answer(reply)], None)
    assert quality is not None
    assert quality.answer is AnswerVerdict.INCOMPLETE
    assert quality.language is LanguageVerdict.UNKNOWN  # no detector given


def test_html_is_stripped_before_matching(languages: ReplyLanguages) -> None:
    html_reply = (
        "<html><head><style>p {color: red}</style><script>var refund = '30 days';</script>"
        "</head><body><p>The extra charge is a <b>price increase</b>.</p>"
        "<p>Refunds are possible within 14&nbsp;days.</p></body></html>"
    )
    quality = assess_answers(LIBRARY["billing-question"], [answer(html_reply)], languages)
    assert quality is not None
    assert quality.answer is AnswerVerdict.CORRECT  # the script's "30 days" is not text


def test_a_scenario_that_asks_nothing_is_not_judged() -> None:
    scenario = Scenario(intent="x", subject="s", opening="o")
    assert assess_answers(scenario, [answer(CORRECT)], None) is None


def test_per_language_facts_add_to_the_common_ones(languages: ReplyLanguages) -> None:
    scenario = Scenario.model_validate(
        {
            "intent": "x",
            "subject": "s",
            "opening": "o",
            "language": "de-CH",
            "expect": {
                "must_mention": [{"name": "period", "regex": r"\b14\b"}],
                "languages": {
                    "de": {"must_mention": [{"name": "greeting", "any": ["Grüezi", "Hallo"]}]},
                    "fr": {"must_mention": [{"name": "greeting-fr", "any": ["Bonjour"]}]},
                },
            },
        }
    )
    quality = assess_answers(scenario, [answer("Hallo, 14 Tage.")], languages)
    assert quality is not None
    assert quality.answer is AnswerVerdict.CORRECT
    assert {span.fact for span in quality.mentioned} == {"period", "greeting"}


@pytest.mark.parametrize("tag", ["en", "en-GB", "de-CH", "es-419", "zh-Hant-TW", "sr-Latn"])
def test_valid_bcp47_tags(tag: str) -> None:
    assert check_language_tag(tag) == tag


@pytest.mark.parametrize("tag", ["english", "en_GB", "e", "en-GB-", "123", ""])
def test_invalid_bcp47_tags_are_refused(tag: str) -> None:
    with pytest.raises(ValueError, match="is not a BCP 47 language tag"):
        check_language_tag(tag)


def test_a_fact_needs_a_condition_and_an_re2_pattern() -> None:
    base = {"intent": "x", "subject": "s", "opening": "o"}
    with pytest.raises(ValidationError, match="needs at least one of: all, any, regex"):
        Scenario.model_validate({**base, "expect": {"must_mention": [{"name": "empty"}]}})
    with pytest.raises(ValidationError, match="for RE2"):
        Scenario.model_validate(
            {**base, "expect": {"must_mention": [{"name": "look", "regex": "(?=a)b"}]}}
        )


# -- bounded time on hostile replies ---------------------------------------------------------

#: Generous for 2 shared cores; the unbounded cases take minutes to hours.
BOUND_SECONDS = 5.0


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param("a" * 10_000_000, id="10MB-one-word"),
        pytest.param("<" * 2_000_000 + "div " * 2_000_000, id="10MB-unclosed-tags"),
        pytest.param("<p>" + "price increase 30 days " * 450_000 + "</p>", id="10MB-html"),
        pytest.param(
            ("Привет мир 你好世界 مرحبا hello Grüße " * 400_000)[:10_000_000], id="mixed-scripts"
        ),
        pytest.param("1 " * 5_000_000, id="digits-for-the-card-pattern"),
    ],
)
def test_a_huge_or_hostile_reply_is_judged_within_a_bound(
    languages: ReplyLanguages, hostile: str
) -> None:
    languages.detect("warm up the models so the bound measures the evaluation alone")
    backtracking = Scenario.model_validate(
        {
            "intent": "x",
            "subject": "s",
            "opening": "o",
            "language": "en",
            # Catastrophic for a backtracking engine on a long run of "a"s without a "b".
            "expect": {"must_mention": [{"name": "evil", "regex": "(a+)+b"}]},
        }
    )
    for scenario in (LIBRARY["billing-question"], backtracking):
        started = time.perf_counter()
        quality = assess_answers(scenario, [answer(hostile)], languages)
        elapsed = time.perf_counter() - started
        assert quality is not None
        assert elapsed < BOUND_SECONDS, f"{elapsed:.1f}s"
        assert quality.truncated
        assert quality.evaluated_chars <= MAX_EVALUATED_CHARS


# -- the judge collects the human answers ------------------------------------------------------


def reply(minutes: float, responder: Responder, text: str, external_id: str) -> Reply:
    at = SENT + timedelta(minutes=minutes)
    return Reply(
        arrived_at=at,
        observed_at=at,
        timing_method="test",
        text=text,
        sender="billing@acme.test",
        responder=responder,
        external_id=external_id,
    )


def test_the_judge_hands_over_human_answers_and_whether_a_follow_up_came_first() -> None:
    result = RunResult(
        run_id="r1",
        check_id="c",
        target="acme",
        channel="email",
        scenario="billing-question",
        location="here",
        slot=SENT,
        token="CXP-0000000000",
        period=RunPeriod.BUSINESS,
        thresholds=Thresholds(None, None, None, deadline=4 * 3600),
        sent_at=SENT,
    )
    judge = Judge(LIBRARY["billing-question"], {}, [], result)
    judge.observe(reply(1, Responder.AUTO, "We received your message.", "<a@x>"))
    judge.observe(reply(10, Responder.HUMAN, INCOMPLETE, "<b@x>"))
    judge.followed_up(SENT + timedelta(minutes=20))
    judge.observe(reply(30, Responder.HUMAN, CORRECT, "<c@x>"))
    judge.observe(reply(30, Responder.HUMAN, CORRECT, "<c@x>"))  # delivered again: kept once
    answers = judge.answers()
    assert [(a.text, a.after_follow_up) for a in answers] == [
        (INCOMPLETE, False),
        (CORRECT, True),
    ]
    quality = assess_answers(judge.scenario, answers, None)
    assert quality is not None
    # Correct in the end, but not resolved at first contact: it took a chaser.
    assert (quality.answer, quality.resolved) == (AnswerVerdict.CORRECT, False)


def test_the_sandbox_desks_scripted_answer_rates_must_sum_to_one() -> None:
    with pytest.raises(ValidationError, match=r"answer rates must sum to 1, not 0\.9"):
        Answers.model_validate(
            {"kinds": {"correct": {"rate": 0.5, "text": "a"}, "wrong": {"rate": 0.4, "text": "b"}}}
        )
    picked = Answers.model_validate({"kinds": {"wrong": {"rate": 1.0, "text": "b"}}})
    assert picked.pick(random.Random(1)) == ("wrong", "b")


def test_cxprobe_once_prints_the_answer_and_language_verdicts() -> None:
    result = RunResult(
        run_id="r1",
        check_id="c",
        target="acme",
        channel="email",
        scenario="billing-question",
        location="here",
        slot=SENT,
        token="CXP-0000000000",
        period=RunPeriod.BUSINESS,
        thresholds=Thresholds(None, None, None, deadline=60),
        answer=AnswerVerdict.WRONG,
        resolved=False,
        language=LanguageVerdict.MISMATCH,
        reply_language="de",
    )
    console = Console(record=True, width=200)
    _print_result(console, result, [])
    printed = console.export_text()
    assert re.search(r"^\s*answer\s+wrong, resolved: false\s*$", printed, re.MULTILINE)
    assert re.search(r"^\s*language\s+mismatch \(de\)\s*$", printed, re.MULTILINE)


def test_answers_stored_before_a_restart_are_judged_once_with_a_redelivery() -> None:
    result = RunResult(
        run_id="r1",
        check_id="c",
        target="acme",
        channel="email",
        scenario="billing-question",
        location="here",
        slot=SENT,
        token="CXP-0000000000",
        period=RunPeriod.BUSINESS,
        thresholds=Thresholds(None, None, None, deadline=4 * 3600),
        sent_at=SENT,
    )
    judge = Judge(LIBRARY["billing-question"], {}, [], result)
    judge.remember_answer("<b@x>", SENT + timedelta(minutes=10), CORRECT)  # from the store
    judge.observe(reply(10, Responder.HUMAN, CORRECT, "<b@x>"))  # the back-fill's copy
    assert [a.text for a in judge.answers()] == [CORRECT]


def test_keywords_match_at_the_start_of_a_word_in_any_script() -> None:
    fact = Fact(name="credit", any=["avoir", "Gutschrift"])
    assert find_fact(fact, "Je voudrais savoir pourquoi.", 0) is None
    (span,) = find_fact(fact, "Un avoir de 12 €.", 0) or []
    assert (span.start, span.end, span.text) == (3, 8, "avoir")
    (plural,) = find_fact(Fact(name="r", all=["refund"]), "Two Refunds.", 0) or []
    assert plural.text == "Refund"
    assert find_fact(Fact(name="g", any=["gutschrift"]), "Ihre GUTSCHRIFT folgt", 0) is not None
