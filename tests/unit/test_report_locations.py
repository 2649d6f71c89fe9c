"""The report's figures per location and its quantiles, on runs made here (no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cxprobe.report.build import _locations_section
from cxprobe.report.data import locations, quantile
from cxprobe.report.model import TableBlock
from probes.base import Responder
from scenarios.model import ObservedReply, Outcome, Period, RoutingResult, RunResult, Thresholds

SLOT = datetime(2025, 3, 3, 9, tzinfo=UTC)
LIMITS = Thresholds(first_response=60, human_response=600, after_hours_response=120, deadline=3600)


def run(
    location: str,
    outcome: Outcome | None,
    *,
    channel: str = "email",
    period: Period = Period.BUSINESS,
    human: float | None = None,
    routing: RoutingResult = RoutingResult.UNKNOWN,
) -> RunResult:
    result = RunResult(
        run_id=f"{location}-{outcome}-{human}",
        check_id="acme-email",
        target="acme",
        channel=channel,
        scenario="billing-question",
        location=location,
        slot=SLOT,
        token="CXP-1",
        period=period,
        thresholds=LIMITS,
        outcome=outcome,
        sent_at=SLOT,
        routing=routing,
        first_human_seconds=human,
    )
    if human is not None:
        result.replies.append(
            ObservedReply(
                arrived_at=SLOT + timedelta(seconds=human),
                observed_at=SLOT + timedelta(seconds=human),
                seconds=human,
                responder=Responder.HUMAN,
                sender="billing@acme.test",
                queue="billing",
                late=False,
            )
        )
    return result


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        (list(range(1, 21)), 0.5, 10.5),
        (list(range(1, 21)), 0.95, 19.05),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.5),  # unsorted input
        ([7.0], 0.95, 7.0),
        ([], 0.5, None),
    ],
)
def test_quantile_interpolates_between_the_closest_ranks(
    values: list[float], q: float, expected: float | None
) -> None:
    found = quantile(values, q)
    assert found == pytest.approx(expected) if expected is not None else found is None


def test_figures_per_target_channel_and_location() -> None:
    runs = [
        run("eu-west", Outcome.MET, human=30, routing=RoutingResult.CORRECT),
        run("eu-west", Outcome.BREACHED, human=900, routing=RoutingResult.WRONG),
        run("eu-west", Outcome.ERROR),
        run("eu-west", None),  # still open: not counted
        run("us-east", Outcome.MET, human=60, routing=RoutingResult.CORRECT),
        run("us-east", Outcome.MET, period=Period.AFTER_HOURS),
        run("us-east", Outcome.BREACHED, period=Period.HOLIDAY),
        run("us-east", Outcome.MET, channel="sms", human=5),
    ]
    rows = {(f.target, f.channel, f.location): f for f in locations(runs)}
    assert list(rows) == [
        ("acme", "email", "eu-west"),
        ("acme", "email", "us-east"),
        ("acme", "sms", "us-east"),
    ]
    eu, us = rows["acme", "email", "eu-west"], rows["acme", "email", "us-east"]
    assert (eu.runs, eu.met, eu.judged, eu.compliance) == (3, 1, 2, 0.5)
    assert (eu.correct, eu.routed, eu.routing) == (1, 2, 0.5)
    assert sorted(eu.human_answers) == [30, 900] and eu.after_hours is None
    assert (us.runs, us.met, us.judged) == (3, 2, 3)
    assert (us.after_hours_met, us.after_hours_judged, us.after_hours) == (1, 2, 0.5)
    assert us.human_answers == [60] and us.routing == 1.0


def test_the_section_appears_only_with_more_than_one_location() -> None:
    assert _locations_section([run("eu-west", Outcome.MET), run("eu-west", None)]) is None
    section = _locations_section(
        [run("eu-west", Outcome.MET, human=30), run("us-east", Outcome.BREACHED, human=900)]
    )
    assert section is not None and section.title == "Locations"
    (table,) = section.blocks
    assert isinstance(table, TableBlock)
    assert [row[:6] for row in table.rows] == [
        ("acme", "email", "eu-west", "1", "1", "100.0 %"),
        ("acme", "email", "us-east", "1", "0", "0.0 %"),
    ]
    assert [row[8] for row in table.rows] == ["30.0 s", "15m"]  # first human p95
