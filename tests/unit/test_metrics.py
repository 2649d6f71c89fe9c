"""Metrics: what a run, a reload and the self-metrics leave in a private registry."""

from __future__ import annotations

import dataclasses
import platform
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from exporters.metrics import CheckSeries, MonitorMetrics
from probes.base import Responder
from scenarios.model import (
    AnswerVerdict,
    LanguageVerdict,
    ObservedReply,
    Outcome,
    Period,
    RoutingResult,
    RunResult,
    SkipReason,
    Thresholds,
)

THRESHOLDS = Thresholds(
    first_response=900, human_response=3600, after_hours_response=900, deadline=14400
)
BILLING = CheckSeries(
    check_id="acme-email-billing",
    target="acme",
    channel="email",
    scenario="billing-question",
    location="london",
    thresholds=THRESHOLDS,
    objective=0.95,
)
TECH = dataclasses.replace(BILLING, check_id="acme-email-tech", scenario="tech-fault")
CHECK = {"target": "acme", "channel": "email", "scenario": "billing-question", "location": "london"}
SENT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> MonitorMetrics:
    metrics = MonitorMetrics(registry, "1.2.3")
    metrics.declare_checks([BILLING, TECH])
    return metrics


def reply(seconds: float, responder: Responder) -> ObservedReply:
    at = SENT + timedelta(seconds=seconds)
    return ObservedReply(
        arrived_at=at,
        observed_at=at,
        seconds=seconds,
        responder=responder,
        sender="desk@acme.test",
        queue=None,
        late=False,
    )


def run(
    period: Period, outcome: Outcome | None, *replies: ObservedReply, **changes: object
) -> RunResult:
    result = RunResult(
        run_id="r1",
        check_id=BILLING.check_id,
        target="acme",
        channel="email",
        scenario="billing-question",
        location="london",
        slot=SENT,
        token="CXP-0123456789",
        period=period,
        thresholds=THRESHOLDS,
        outcome=outcome,
        sent_at=SENT,
        replies=list(replies),
        finished_at=SENT + timedelta(hours=1),
    )
    return dataclasses.replace(result, **changes)  # type: ignore[arg-type]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_series_exist_at_zero_before_any_run(registry: CollectorRegistry, metrics: object) -> None:
    for period in Period:
        for outcome in Outcome:
            labels = {**CHECK, "period": period.value, "outcome": outcome.value}
            assert value(registry, "cxprobe_runs_total", **labels) == 0
    for routing in RoutingResult:
        assert value(registry, "cxprobe_routing_total", **CHECK, result=routing.value) == 0
    for slo in ("first_response", "human_response", "after_hours_response"):
        for result in ("good", "bad"):
            labels = {"target": "acme", "channel": "email", "slo": slo, "result": result}
            assert value(registry, "cxprobe_slo_events_total", **labels) == 0
        pair = {"target": "acme", "channel": "email", "slo": slo}
        assert value(registry, "cxprobe_slo_objective_ratio", **pair) == 0.95
    assert value(registry, "cxprobe_open_runs", channel="email") == 0
    assert value(registry, "cxprobe_probes_in_flight", channel="email") == 0
    assert value(registry, "cxprobe_unmatched_replies_total", channel="email") == 0
    assert value(registry, "cxprobe_late_replies_total", target="acme", channel="email") == 0
    assert value(registry, "cxprobe_check_info", **CHECK, check="acme-email-billing") == 1
    for slo, seconds in [("first_response", 900), ("human_response", 3600), ("deadline", 14400)]:
        assert value(registry, "cxprobe_slo_threshold_seconds", **CHECK, slo=slo) == seconds
    python = platform.python_version()
    assert value(registry, "cxprobe_build_info", version="1.2.3", python=python) == 1
    # Nothing has run: no last-run series (a 0 timestamp would read as "ran in 1970").
    assert value(registry, "cxprobe_last_run_timestamp_seconds", **CHECK) is None


def test_met_business_run(registry: CollectorRegistry, metrics: MonitorMetrics) -> None:
    result = run(
        Period.BUSINESS,
        Outcome.MET,
        reply(2, Responder.AUTO),
        reply(600, Responder.HUMAN),
        reply(900, Responder.HUMAN),
        routing=RoutingResult.CORRECT,
    )
    metrics.record_run(result, [("first_response", True), ("human_response", True)])

    runs = {**CHECK, "period": "business"}
    assert value(registry, "cxprobe_runs_total", **runs, outcome="met") == 1
    assert value(registry, "cxprobe_runs_total", **runs, outcome="breached") == 0
    human = {**CHECK, "period": "business", "responder": "human"}
    assert value(registry, "cxprobe_first_response_seconds_count", **human) == 1
    assert value(registry, "cxprobe_first_response_seconds_sum", **human) == 600  # first only
    assert value(registry, "cxprobe_first_response_seconds_bucket", **human, le="300.0") == 0
    assert value(registry, "cxprobe_first_response_seconds_bucket", **human, le="600.0") == 1
    auto = {**CHECK, "period": "business", "responder": "auto"}
    assert value(registry, "cxprobe_first_response_seconds_sum", **auto) == 2
    assert value(registry, "cxprobe_routing_total", **CHECK, result="correct") == 1
    good = {"target": "acme", "channel": "email", "result": "good"}
    assert value(registry, "cxprobe_slo_events_total", **good, slo="human_response") == 1
    assert value(registry, "cxprobe_slo_events_total", **good, slo="first_response") == 1
    finished = (SENT + timedelta(hours=1)).timestamp()
    assert value(registry, "cxprobe_last_run_timestamp_seconds", **CHECK) == finished
    assert value(registry, "cxprobe_last_run_success", **CHECK) == 1


def test_breached_after_hours_run(registry: CollectorRegistry, metrics: MonitorMetrics) -> None:
    result = run(Period.AFTER_HOURS, Outcome.BREACHED, reply(1800, Responder.BOT))
    metrics.record_run(result, [("after_hours_response", False)])

    runs = {**CHECK, "period": "after_hours"}
    assert value(registry, "cxprobe_runs_total", **runs, outcome="breached") == 1
    assert value(registry, "cxprobe_runs_total", **CHECK, period="business", outcome="met") == 0
    bot = {**CHECK, "period": "after_hours", "responder": "bot"}
    assert value(registry, "cxprobe_first_response_seconds_count", **bot) == 1
    bad = {"target": "acme", "channel": "email", "slo": "after_hours_response", "result": "bad"}
    assert value(registry, "cxprobe_slo_events_total", **bad) == 1
    assert value(registry, "cxprobe_last_run_success", **CHECK) == 0


def test_routing_wrong_and_unsent_runs(
    registry: CollectorRegistry, metrics: MonitorMetrics
) -> None:
    metrics.record_run(run(Period.BUSINESS, Outcome.MET, routing=RoutingResult.WRONG), [])
    assert value(registry, "cxprobe_routing_total", **CHECK, result="wrong") == 1
    # A run whose contact was never sent says nothing about routing.
    metrics.record_run(run(Period.BUSINESS, Outcome.ERROR, sent_at=None), [])
    assert value(registry, "cxprobe_routing_total", **CHECK, result="unknown") == 0
    assert value(registry, "cxprobe_runs_total", **CHECK, period="business", outcome="error") == 1


def test_open_runs_are_refused(metrics: MonitorMetrics) -> None:
    with pytest.raises(ValueError, match="still open"):
        metrics.record_run(run(Period.BUSINESS, None), [])


def test_reload_removes_series_of_checks_no_longer_configured(
    registry: CollectorRegistry, metrics: MonitorMetrics
) -> None:
    metrics.record_run(run(Period.BUSINESS, Outcome.MET, reply(5, Responder.HUMAN)), [])
    tech = {**CHECK, "scenario": "tech-fault"}
    human = {**CHECK, "period": "business", "responder": "human"}

    no_human_slo = dataclasses.replace(
        TECH, thresholds=dataclasses.replace(THRESHOLDS, human_response=None)
    )
    metrics.declare_checks([no_human_slo])

    assert value(registry, "cxprobe_runs_total", **CHECK, period="business", outcome="met") is None
    assert value(registry, "cxprobe_first_response_seconds_count", **human) is None
    assert value(registry, "cxprobe_last_run_success", **CHECK) is None
    assert value(registry, "cxprobe_check_info", **CHECK, check="acme-email-billing") is None
    assert value(registry, "cxprobe_runs_total", **tech, period="business", outcome="met") == 0
    assert value(registry, "cxprobe_slo_threshold_seconds", **tech, slo="human_response") is None
    assert value(registry, "cxprobe_slo_threshold_seconds", **tech, slo="first_response") == 900
    pair = {"target": "acme", "channel": "email"}
    assert value(registry, "cxprobe_slo_objective_ratio", **pair, slo="human_response") is None
    events = {**pair, "slo": "human_response", "result": "good"}
    assert value(registry, "cxprobe_slo_events_total", **events) is None

    metrics.declare_checks([])
    assert value(registry, "cxprobe_open_runs", channel="email") is None
    assert value(registry, "cxprobe_late_replies_total", **pair) is None
    assert value(registry, "cxprobe_build_info", version="1.2.3", python=platform.python_version())


def test_reload_keeps_counts_of_checks_still_configured(
    registry: CollectorRegistry, metrics: MonitorMetrics
) -> None:
    metrics.record_run(run(Period.BUSINESS, Outcome.MET, reply(5, Responder.HUMAN)), [])
    metrics.declare_checks([dataclasses.replace(BILLING, objective=0.99)])
    assert value(registry, "cxprobe_runs_total", **CHECK, period="business", outcome="met") == 1
    human = {**CHECK, "period": "business", "responder": "human"}
    assert value(registry, "cxprobe_first_response_seconds_count", **human) == 1
    pair = {"target": "acme", "channel": "email", "slo": "first_response"}
    assert value(registry, "cxprobe_slo_objective_ratio", **pair) == 0.99


def test_in_flight_goes_up_and_down_even_on_error(
    registry: CollectorRegistry, metrics: MonitorMetrics
) -> None:
    with metrics.in_flight("email"):
        assert value(registry, "cxprobe_probes_in_flight", channel="email") == 1
        with metrics.in_flight("email"):
            assert value(registry, "cxprobe_probes_in_flight", channel="email") == 2
    assert value(registry, "cxprobe_probes_in_flight", channel="email") == 0
    with pytest.raises(RuntimeError), metrics.in_flight("email"):
        raise RuntimeError("probe crashed")
    assert value(registry, "cxprobe_probes_in_flight", channel="email") == 0


def test_self_metrics(registry: CollectorRegistry, metrics: MonitorMetrics) -> None:
    metrics.set_open_runs("email", 3)
    metrics.record_unmatched("email")
    metrics.record_late_reply("acme", "email")
    metrics.observe_scheduler_lag(0.2)
    metrics.observe_scheduler_lag(-0.01)  # started early counts as on time
    assert value(registry, "cxprobe_open_runs", channel="email") == 3
    assert value(registry, "cxprobe_unmatched_replies_total", channel="email") == 1
    assert value(registry, "cxprobe_late_replies_total", target="acme", channel="email") == 1
    assert value(registry, "cxprobe_scheduler_lag_seconds_count") == 2
    assert value(registry, "cxprobe_scheduler_lag_seconds_sum") == pytest.approx(0.2)
    assert value(registry, "cxprobe_config_last_reload_successful") == 0  # not loaded yet
    metrics.config_reloaded(True)
    assert value(registry, "cxprobe_config_last_reload_successful") == 1
    loaded = value(registry, "cxprobe_config_last_reload_success_timestamp_seconds")
    assert loaded is not None and loaded > 0
    metrics.config_reloaded(False)
    assert value(registry, "cxprobe_config_last_reload_successful") == 0
    assert value(registry, "cxprobe_config_last_reload_success_timestamp_seconds") == loaded


def test_registries_are_independent() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    MonitorMetrics(first, "1").record_unmatched("email")
    MonitorMetrics(second, "1")
    assert first.get_sample_value("cxprobe_unmatched_replies_total", {"channel": "email"}) == 1
    assert second.get_sample_value("cxprobe_unmatched_replies_total", {"channel": "email"}) is None


def test_budget_windows_are_shown_and_removed_with_their_budget(
    registry: CollectorRegistry, metrics: MonitorMetrics
) -> None:
    metrics.show_budgets(
        [("twilio", "daily", "USD", 4.25, 5.0), ("acme", "monthly", "USD", 30, 25)]
    )
    daily = {"budget": "twilio", "window": "daily", "currency": "USD"}
    assert value(registry, "cxprobe_budget_spent", **daily) == 4.25
    assert value(registry, "cxprobe_budget_limit", **daily) == 5.0
    assert value(registry, "cxprobe_budget_left", **daily) == 0.75
    monthly = {"budget": "acme", "window": "monthly", "currency": "USD"}
    assert value(registry, "cxprobe_budget_left", **monthly) == 0  # over: nothing left, not < 0
    metrics.show_budgets([("twilio", "daily", "USD", 1.0, 5.0)])  # acme's budget was removed
    assert value(registry, "cxprobe_budget_spent", **monthly) is None
    assert value(registry, "cxprobe_budget_spent", **daily) == 1.0


def test_skipped_contacts_are_counted_by_reason_from_zero(
    registry: CollectorRegistry, metrics: MonitorMetrics
) -> None:
    pair = {"target": "acme", "channel": "email"}
    metrics.declare_checks([BILLING])
    reasons = {str(reason) for reason in SkipReason}
    assert {
        reason: value(registry, "cxprobe_runs_skipped_total", **pair, reason=reason)
        for reason in reasons
    } == dict.fromkeys(reasons, 0.0)
    metrics.record_skipped("acme", "email", SkipReason.BUDGET)
    assert value(registry, "cxprobe_runs_skipped_total", **pair, reason="budget") == 1
    metrics.set_contact_quota("acme", "email", 3, 6)
    assert value(registry, "cxprobe_contact_quota_used", **pair) == 3
    assert value(registry, "cxprobe_contact_quota_limit", **pair) == 6


def test_answer_quality_series_and_counts() -> None:
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry, "1.2.3")
    judged = dataclasses.replace(BILLING, judges_answers=True, judges_language=True)
    metrics.declare_checks([judged, TECH])
    for verdict in AnswerVerdict:
        assert value(registry, "cxprobe_answer_verdicts_total", **CHECK, verdict=verdict) == 0
    for resolved in ("true", "false"):
        assert value(registry, "cxprobe_resolved_total", **CHECK, resolved=resolved) == 0
    assert value(registry, "cxprobe_language_mismatch_total", **CHECK) == 0
    # A check whose scenario asks nothing of its answers has no quality series.
    tech = {**CHECK, "scenario": TECH.scenario}
    assert value(registry, "cxprobe_answer_verdicts_total", **tech, verdict="none") is None

    answered = run(
        Period.BUSINESS,
        Outcome.MET,
        reply(30, Responder.HUMAN),
        answer=AnswerVerdict.WRONG,
        resolved=False,
        language=LanguageVerdict.MISMATCH,
        reply_language="de",
    )
    metrics.record_run(answered, [])
    metrics.record_run(
        dataclasses.replace(
            answered, answer=AnswerVerdict.CORRECT, resolved=True, language=LanguageVerdict.MATCH
        ),
        [],
    )
    assert value(registry, "cxprobe_answer_verdicts_total", **CHECK, verdict="wrong") == 1
    assert value(registry, "cxprobe_answer_verdicts_total", **CHECK, verdict="correct") == 1
    assert value(registry, "cxprobe_resolved_total", **CHECK, resolved="false") == 1
    assert value(registry, "cxprobe_resolved_total", **CHECK, resolved="true") == 1
    assert value(registry, "cxprobe_language_mismatch_total", **CHECK) == 1
    # An unjudged run (the probe could not run) counts in none of them.
    metrics.record_run(run(Period.BUSINESS, Outcome.ERROR), [])
    assert value(registry, "cxprobe_answer_verdicts_total", **CHECK, verdict="none") == 0
