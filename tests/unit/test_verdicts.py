import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from probes.base import Reply, Responder
from scenarios.model import Matcher, Outcome, Period, RoutingResult, RunResult, Scenario, Thresholds
from scenarios.verdicts import Judge, slo_events

SENT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
THRESHOLDS = Thresholds(
    first_response=60, human_response=3600, after_hours_response=900, deadline=4 * 3600
)


@dataclass
class QueueStub:
    match: list[Matcher] = field(default_factory=list)


@dataclass
class RuleStub:
    responder: Responder
    match: Matcher


QUEUES = {
    "billing": QueueStub([Matcher(sender=r"^billing@"), Matcher(text="Billing Team")]),
    "tech": QueueStub([Matcher(sender=r"^tech@")]),
}


def scenario(**overrides: object) -> Scenario:
    values: dict[str, object] = {
        "intent": "billing-question",
        "subject": "Invoice",
        "opening": "Why {token}?",
        "expected_queue": "billing",
    }
    values.update(overrides)
    return Scenario.model_validate(values)


def new_result(period: Period = Period.BUSINESS) -> RunResult:
    return RunResult(
        run_id="r1",
        check_id="c",
        target="acme",
        channel="email",
        scenario="billing-question",
        location="here",
        slot=SENT,
        token="CXP-0000000000",
        period=period,
        thresholds=THRESHOLDS,
        sent_at=SENT,
        expected_queue="billing",
    )


def reply(after: float, sender: str, responder: Responder, text: str = "") -> Reply:
    at = SENT + timedelta(seconds=after)
    return Reply(
        observed_at=at,
        arrived_at=at,
        timing_method="test",
        sender=sender,
        text=text,
        responder=responder,
        external_id=f"{sender}-{after}",
    )


def judge(period: Period = Period.BUSINESS, **scenario_overrides: object) -> Judge:
    return Judge(scenario(**scenario_overrides), QUEUES, [], new_result(period))


def test_business_hours_waits_for_the_human_and_reads_routing() -> None:
    j = judge()
    j.observe(reply(2, "noreply@acme.test", Responder.AUTO))
    assert not j.decided  # an auto-ack does not answer a business-hours contact
    j.observe(reply(600, "billing@acme.test", Responder.HUMAN, "Regards, Billing Team"))
    assert j.decided
    result = j.conclude()
    assert result.outcome is Outcome.MET
    assert result.first_response_seconds == 2
    assert result.first_response_responder is Responder.AUTO
    assert result.first_human_seconds == 600
    assert (result.routed_queue, result.routing) == ("billing", RoutingResult.CORRECT)
    assert slo_events(result) == [("first_response", True), ("human_response", True)]


def test_misroute_is_wrong() -> None:
    j = judge()
    j.observe(reply(30, "tech@acme.test", Responder.HUMAN))
    assert j.conclude().routing is RoutingResult.WRONG


def test_no_queue_named_is_unknown() -> None:
    j = judge()
    j.observe(reply(30, "someone@acme.test", Responder.HUMAN))
    assert j.conclude().routing is RoutingResult.UNKNOWN


def test_human_after_sla_is_breached_with_reason() -> None:
    j = judge()
    j.observe(reply(4000, "billing@acme.test", Responder.HUMAN))
    result = j.conclude()
    assert result.outcome is Outcome.BREACHED
    assert "4000.0s" in result.reason and "3600" in result.reason
    assert slo_events(result) == [("first_response", False), ("human_response", False)]


def test_silence_is_breached() -> None:
    result = judge().conclude()
    assert result.outcome is Outcome.BREACHED
    assert result.reason == "no human answer within 3600s"


def test_after_hours_auto_reply_meets_and_only_after_hours_slo_burns() -> None:
    j = judge(Period.AFTER_HOURS)
    j.observe(reply(5, "noreply@acme.test", Responder.AUTO, "We are closed until 9am"))
    assert j.decided
    result = j.conclude()
    assert result.outcome is Outcome.MET
    assert slo_events(result) == [("after_hours_response", True)]


def test_after_hours_closed_notice_must_match() -> None:
    j = judge(Period.HOLIDAY, closed_notice=Matcher(text=r"opening hours"))
    j.observe(reply(5, "noreply@acme.test", Responder.AUTO, "Thanks for your mail"))
    assert not j.decided
    j.observe(reply(9, "noreply@acme.test", Responder.AUTO, "Our opening hours are 9-5"))
    assert j.conclude().outcome is Outcome.MET


def test_after_hours_accepts_only_listed_responders() -> None:
    j = judge(Period.AFTER_HOURS, after_hours_accepts=["bot"])
    j.observe(reply(5, "noreply@acme.test", Responder.AUTO))
    assert j.conclude().outcome is Outcome.BREACHED


def test_late_reply_is_flagged_and_keeps_figures() -> None:
    j = judge()
    observed = j.observe(reply(5 * 3600, "billing@acme.test", Responder.HUMAN))
    assert observed.late
    result = j.conclude()
    assert result.outcome is Outcome.BREACHED
    assert result.first_human_seconds == 5 * 3600


def test_responder_rules_override_the_channel() -> None:
    rules = [RuleStub(Responder.BOT, Matcher(text=r"virtual assistant"))]
    j = Judge(scenario(), QUEUES, rules, new_result())
    observed = j.observe(
        reply(3, "help@acme.test", Responder.HUMAN, "I am Ava, a virtual assistant")
    )
    assert observed.responder is Responder.BOT
    assert not j.decided


def test_restore_keeps_decision_after_restart() -> None:
    first = judge()
    first.observe(reply(2, "noreply@acme.test", Responder.AUTO))
    first.observe(reply(50, "billing@acme.test", Responder.HUMAN))
    again = judge()
    again.restore(first.result.replies)
    assert again.decided
    assert again.conclude().first_human_seconds == 50


def test_restore_does_not_count_an_unverifiable_closed_notice() -> None:
    # After hours, a closed notice is required; the stored record of an auto-ack does not say
    # whether its text was one, so it counts only once the back-fill delivers it again.
    notice = Matcher(text=r"opening hours")
    ack = reply(30, "noreply@acme.test", Responder.AUTO, "We received your message")
    before = judge(Period.AFTER_HOURS, closed_notice=notice)
    before.observe(ack)
    assert not before.decided
    stored = [dataclasses.replace(r, qualifies=None) for r in before.result.replies]

    again = judge(Period.AFTER_HOURS, closed_notice=notice)
    again.restore(stored)
    assert not again.decided
    again.observe(ack)  # the back-fill delivers the same mail again
    assert len(again.result.replies) == 1  # judged afresh, kept once
    assert again.conclude().outcome is Outcome.BREACHED

    recorded = judge(Period.AFTER_HOURS, closed_notice=notice)
    recorded.restore(before.result.replies)  # the verdict was recorded with the reply
    assert not recorded.decided


def test_a_redelivered_reply_is_kept_once() -> None:
    j = judge()
    human = reply(50, "billing@acme.test", Responder.HUMAN)
    j.observe(human)
    j.observe(human)
    assert len(j.result.replies) == 1 and j.decided


@pytest.mark.parametrize("outcome", [Outcome.ERROR, Outcome.INTERRUPTED])
def test_probe_problems_burn_no_budget(outcome: Outcome) -> None:
    result = new_result()
    result.outcome = outcome
    assert slo_events(result) == []


def test_refused_contact_burns_budget() -> None:
    result = new_result()
    result.outcome = Outcome.FAILED
    assert slo_events(result) == [("first_response", False), ("human_response", False)]


def test_matcher_needs_a_field_and_valid_regex() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Matcher()
    with pytest.raises(ValueError, match="invalid regular expression"):
        Matcher(text="([")
