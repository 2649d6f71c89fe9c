"""The 24/7 coverage planner (scenarios/coverage.py) and the coverage variant of the schedule:
every hour of the week sampled within the stated weeks, the rate limit kept, the same plan in
every process. The clock is simulated: slots are computed for many weeks, not waited for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from scenarios.coverage import HOURS_PER_WEEK, SEND_SLACK, WEEK, CoveragePlan, cell_of
from scenarios.hours import BusinessHours
from scenarios.schedule import Schedule

ROOT = Path(__file__).resolve().parents[2]
UTC_DESK = BusinessHours(timezone="UTC", always_open=True)
LONDON = BusinessHours.model_validate(
    {
        "timezone": "Europe/London",
        "weekly": {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": {"country": "GB", "subdivision": "ENG"},
    }
)


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def planned(
    samples: int,
    hours: BusinessHours = UTC_DESK,
    *,
    seed: str = "acme-email",
    per_hour: int = 6,
    locations: int = 1,
    jitter: float = 0.0,
) -> Schedule:
    schedule = Schedule(coverage={"samples_per_week": samples}, jitter=jitter)
    return schedule.planned(
        seed=seed, hours=hours, contacts_per_hour=per_hour, contacts_per_slot=locations
    )


def plan_of(schedule: Schedule) -> CoveragePlan:
    plan = schedule.plan
    assert plan is not None
    return plan


def cells_between(schedule: Schedule, start: datetime, end: datetime, zone: str) -> set[int]:
    """The cells the slots in [start, end) fall in, recomputed from the slot times alone."""
    return {cell_of(slot, ZoneInfo(zone)).number for slot in schedule.slots(start, end)}


# -- every hour of the week, within the stated weeks --------------------------------------


@pytest.mark.parametrize("samples", [1, 5, 24, 100, 168, 500])
def test_every_cell_is_sampled_within_the_stated_weeks_from_any_week(samples: int) -> None:
    schedule = planned(samples)
    plan = plan_of(schedule)
    stated = plan.cycle_weeks
    assert stated == -(-HOURS_PER_WEEK // samples)
    # A rolling window: whichever week it starts in (over a long simulated stretch).
    first = plan.week_of(utc(2026, 1, 5))
    starts = max(2, min(plan.period_weeks + 1, 400 // stated))
    for week in range(first, first + starts):
        start = plan.week_start(week)
        cells = cells_between(schedule, start, start + stated * WEEK, "UTC")
        assert len(cells) == HOURS_PER_WEEK, (week, HOURS_PER_WEEK - len(cells))
        assert plan.weeks_to_cover(week) == stated
        if stated > 1:  # and not a week earlier: the samples are spread, not bunched
            early = cells_between(schedule, start, start + (stated - 1) * WEEK, "UTC")
            assert len(early) < HOURS_PER_WEEK


@pytest.mark.parametrize("samples", [24, 168, 400])
def test_each_week_has_its_samples_spread_evenly_over_the_cells(samples: int) -> None:
    schedule = planned(samples)
    plan = plan_of(schedule)
    for week in range(1400, 1410):
        slots = plan.week(week)
        assert len(slots) == samples
        per_cell = Counter(slot.cell for slot in slots)
        assert max(per_cell.values()) - (min(per_cell.values()) if samples >= 168 else 0) <= 1
        # Each slot lies in the cell it samples, on a whole minute.
        for slot in slots:
            assert cell_of(slot.at, ZoneInfo("UTC")) == slot.cell
            assert slot.at.second == 0


def test_the_minute_inside_a_cell_is_random_not_fixed() -> None:
    plan = plan_of(planned(168))
    minutes = {slot.at.minute for slot in plan.week(1400)}
    assert len(minutes) > 30
    # Another week samples the same cells at other minutes.
    assert [slot.at.minute for slot in plan.week(1401)] != [s.at.minute for s in plan.week(1400)]


def test_coverage_across_the_clock_changes_and_holidays_in_london() -> None:
    """2026: clocks go forward on 29 March, back on 25 October; Christmas is a holiday."""
    schedule = planned(168, LONDON)
    plan = plan_of(schedule)
    zone = ZoneInfo("Europe/London")
    for start in (utc(2026, 3, 23), utc(2026, 10, 19), utc(2026, 12, 21)):
        week = plan.week_of(start + timedelta(days=1))
        for slot in plan.week(week):
            assert cell_of(slot.at, zone) == slot.cell
    spring = plan.week(plan.week_of(utc(2026, 3, 25)))
    # Sunday 01:00 does not exist on 29 March: that cell has no slot that week.
    assert len(spring) == 167
    assert all(str(slot.cell) != "sun 01:00" for slot in spring)
    christmas = [s for s in plan.week(plan.week_of(utc(2026, 12, 23))) if s.holiday]
    assert {s.holiday for s in christmas} == {"Christmas Day", "Boxing Day"}
    assert len(christmas) == 48
    # Holiday samples count apart: that week leaves two days of cells for the next one
    # (and New Year's Day the week after, so three weeks)
    assert plan.weeks_to_cover(plan.week_of(utc(2026, 12, 23))) == 3


# -- the rate limit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "per_hour", "locations", "jitter"),
    [(168, 6, 1, 0), (840, 6, 1, 0), (300, 6, 2, 0), (100, 1, 1, 0), (336, 4, 1, 300)],
)
def test_slots_leave_the_rate_limit_room_for_every_contact(
    samples: int, per_hour: int, locations: int, jitter: float
) -> None:
    schedule = planned(samples, per_hour=per_hour, locations=locations, jitter=jitter)
    plan = plan_of(schedule)
    assert plan.fit_problem() is None
    start = plan.week_start(1400)
    slots = list(schedule.slots(start, start + 6 * WEEK))  # across five week boundaries
    assert len(slots) == 6 * samples
    slots_per_hour = per_hour // locations
    least = 3600 / slots_per_hour + SEND_SLACK + jitter
    assert min((b - a).total_seconds() for a, b in pairwise(slots)) >= least
    # What the claim sees: each slot's contacts (one per location), sent up to the jitter and
    # the send slack late, against the limit over the hour before.
    for index, slot in enumerate(slots):
        window = [
            s for s in slots[max(0, index - per_hour) : index] if slot - s <= timedelta(hours=1)
        ]
        assert (len(window) + 1) * locations <= per_hour


@pytest.mark.parametrize(
    ("samples", "per_hour", "locations", "fits"),
    [
        (840, 6, 1, True),
        (1008, 6, 1, False),  # six an hour, every hour: no room for the send itself
        (168, 1, 1, False),  # one an hour, back to back: each must be more than an hour on
        (60, 1, 1, True),
        (504, 6, 2, False),  # two locations: three slots an hour at most
        (1, 1, 2, False),  # the rate limit is below one slot at every location
    ],
)
def test_a_plan_that_cannot_keep_the_rate_limit_is_refused(
    samples: int, per_hour: int, locations: int, fits: bool
) -> None:
    problem = plan_of(planned(samples, per_hour=per_hour, locations=locations)).fit_problem()
    if fits:
        assert problem is None
    else:
        assert problem is not None
        assert f"{samples} samples a week do not fit the rate limit" in problem
        assert "lower samples_per_week or raise" in problem


def test_a_weekly_quota_is_part_of_the_fit() -> None:
    plan = CoveragePlan(
        seed="s", samples_per_week=100, hours=UTC_DESK, contacts_per_hour=6, weekly_quota=99
    )
    assert plan.fit_problem() == (
        "100 samples a week make 100 contacts, more than the weekly quota of 99; lower "
        "samples_per_week"
    )


# -- the same plan everywhere --------------------------------------------------------------

_PRINT_WEEK = """
import json, sys
from scenarios.hours import BusinessHours
from scenarios.schedule import Schedule
hours = BusinessHours.model_validate(json.loads(sys.argv[1]))
schedule = Schedule(coverage={"samples_per_week": 200}).planned(
    seed="acme-email", hours=hours, contacts_per_hour=6
)
plan = schedule.plan
print(json.dumps([[s.at.isoformat(), str(s.cell), s.holiday] for s in plan.week(1400)]))
"""


def test_every_process_computes_the_same_plan() -> None:
    """Monitors sharing a store must agree on the slots, or the claim could not dedupe them;
    another interpreter with another hash seed computes the very same week."""
    here = [
        [s.at.isoformat(), str(s.cell), s.holiday] for s in plan_of(planned(200, LONDON)).week(1400)
    ]
    outputs = []
    for hash_seed in ("4242",):
        found = subprocess.run(
            [sys.executable, "-c", _PRINT_WEEK, LONDON.model_dump_json()],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed},
        )
        outputs.append(json.loads(found.stdout))
    assert outputs == [here]


def test_each_check_has_its_own_plan_and_a_change_of_seed_moves_it() -> None:
    week = 1400
    one, other = (
        plan_of(planned(24, seed="a")).week(week),
        plan_of(planned(24, seed="b")).week(week),
    )
    assert {s.cell for s in one} != {s.cell for s in other}
    assert plan_of(planned(24, seed="a")).week(week) == one  # recomputed alike


# -- the schedule variant ------------------------------------------------------------------


def test_the_schedule_answers_slots_grace_interval_and_gaps_from_its_plan() -> None:
    schedule = planned(168)
    plan = plan_of(schedule)
    slot = plan.week(1400)[10].at
    assert schedule.latest_slot(slot) == slot
    assert schedule.latest_slot(slot + timedelta(minutes=3)) == slot
    assert schedule.latest_slot(slot - timedelta(seconds=1)) == plan.week(1400)[9].at
    assert schedule.interval == WEEK.total_seconds() / 168
    assert schedule.grace == schedule.interval
    assert schedule.slot_in_grace(slot + timedelta(minutes=1)) == slot
    strict = Schedule(coverage={"samples_per_week": 168}, misfire_grace=60).planned(
        seed="acme-email", hours=UTC_DESK, contacts_per_hour=6
    )
    assert strict.latest_slot(slot + timedelta(seconds=61)) == slot
    assert strict.slot_in_grace(slot + timedelta(seconds=61)) is None
    gaps = schedule.gaps()
    assert gaps.mean == 3600
    assert 3 * 660 <= gaps.three_slots < 6 * 3600


def test_the_trigger_fires_on_the_plan_over_many_weeks() -> None:
    """What APScheduler fires is what the export, the gaps and the catch-up compute."""
    schedule = planned(24, LONDON)
    trigger = schedule.trigger()
    start, end = utc(2026, 3, 1, 12, 7), utc(2026, 6, 1)
    fires = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire < end:
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    assert fires == list(schedule.slots(start, end))
    assert len(fires) > 12 * 24 - 24


def test_invalid_coverage_schedules_say_what_to_write() -> None:
    with pytest.raises(ValidationError, match=r"give exactly one of 'every'.*or 'coverage'"):
        Schedule(every=3600, coverage={"samples_per_week": 168})
    with pytest.raises(ValidationError, match="samples_per_week is 0; give at least 1"):
        Schedule(coverage={"samples_per_week": 0})
    with pytest.raises(ValidationError, match=r"follows the target's business_hours\.timezone"):
        Schedule(coverage={"samples_per_week": 168}, timezone="Europe/London")
    with pytest.raises(ValueError, match=r"no plan until Schedule\.planned"):
        list(Schedule(coverage={"samples_per_week": 1}).slots(utc(2026, 1, 1), utc(2026, 2, 1)))
