"""The schedule model: its slots, epoch, misfire grace, interval and gaps, which the scheduler,
evidence gaps and the rules all read (scenarios/schedule.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from scenarios.schedule import SLOT_EPOCH, Schedule

LONDON = "Europe/London"


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


# -- interval schedules and the epoch ------------------------------------------------------


def test_the_epoch_is_the_one_claimed_slots_were_computed_from() -> None:
    # Slots already claimed in users' stores were counted from this Monday: it must not move.
    assert utc(2000, 1, 3) == SLOT_EPOCH
    assert Schedule(every=7).latest_slot(utc(2026, 11, 22, 10, 0, 3)) == utc(2026, 11, 22, 10)
    assert Schedule(every=7).latest_slot(utc(2026, 11, 22, 10, 0, 6, 999_999)) == utc(
        2026, 11, 22, 10
    )
    assert Schedule(every=7).latest_slot(utc(2026, 11, 22, 9, 59, 59)) == utc(
        2026, 11, 22, 9, 59, 53
    )


def test_interval_slots_are_aligned_and_stable() -> None:
    schedule = Schedule(every=900)
    now = utc(2026, 11, 22, 10, 7, 31)
    assert schedule.latest_slot(now) == utc(2026, 11, 22, 10, 0)
    # A restart a few minutes later computes the same slot, so the store's claim dedupes it.
    assert schedule.latest_slot(now + timedelta(minutes=5)) == schedule.latest_slot(now)
    slot = schedule.latest_slot(now)
    assert slot is not None and (slot - SLOT_EPOCH).total_seconds() % 900 == 0


def test_slot_at_exact_boundary_is_that_slot() -> None:
    boundary = utc(2026, 11, 22, 10, 15)
    assert Schedule(every=900).latest_slot(boundary) == boundary


def test_the_trigger_fires_on_the_slots() -> None:
    """What APScheduler fires is what the export and the catch-up compute."""
    for schedule in (Schedule(every=90), Schedule(cron="*/20 * * * *", timezone=LONDON)):
        trigger = schedule.trigger()
        start = utc(2026, 10, 24, 23, 5)
        fires = []
        fire = trigger.get_next_fire_time(None, start)
        while fire is not None and len(fires) < 12:
            fires.append(fire.astimezone(UTC))
            fire = trigger.get_next_fire_time(fire, fire.astimezone(UTC) + timedelta(seconds=1))
        assert fires == list(schedule.slots(start, fires[-1] + timedelta(seconds=1)))


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule(every=900),
        Schedule(every=1.5),
        Schedule(every=7),
        Schedule(cron="*/15 8-18 * * mon-fri", timezone=LONDON),
        Schedule(cron="30 1 * * *", timezone=LONDON),
    ],
    ids=["15m", "1.5s", "7s", "business-hours-cron", "nightly-cron"],
)
def test_slots_over_a_range_are_latest_slot_stepping(schedule: Schedule) -> None:
    """Every slot listed is the slot the scheduler computes at that moment and until just
    before the next one, and nothing between two listed slots is a slot."""
    start, end = utc(2026, 10, 23, 8, 0, 0, 250_000), utc(2026, 10, 26, 12)
    if schedule.every is not None and schedule.every < 60:
        end = start + timedelta(minutes=3)
    slots = list(schedule.slots(start, end))
    assert slots and slots == sorted(set(slots))
    assert all(start <= slot < end for slot in slots)
    for slot, following in zip(slots, [*slots[1:], None], strict=True):
        assert schedule.latest_slot(slot) == slot
        if following is not None:
            just_before = following - timedelta(microseconds=1)
            # A cron looks back only as far as its grace (over a weekend, nothing is due).
            due = schedule.every is not None or following - slot <= timedelta(
                seconds=schedule.grace
            )
            assert schedule.latest_slot(just_before) == (slot if due else None)
    before_first = schedule.latest_slot(slots[0] - timedelta(microseconds=1))
    assert before_first is None or before_first < start


# -- cron schedules, time zones and DST ------------------------------------------------------


def test_cron_slot_in_its_time_zone() -> None:
    schedule = Schedule(cron="30 9 * * mon-fri", timezone=LONDON)
    now = utc(2026, 11, 23, 9, 32)  # a Monday, GMT
    assert schedule.latest_slot(now) == utc(2026, 11, 23, 9, 30)
    summer = utc(2026, 6, 22, 8, 32)  # a Monday, BST: 09:30 local is 08:30 UTC
    assert schedule.latest_slot(summer) == utc(2026, 6, 22, 8, 30)


def test_cron_slots_follow_the_clocks_going_forward() -> None:
    schedule = Schedule(cron="0 9 * * *", timezone=LONDON)
    slots = list(schedule.slots(utc(2026, 3, 28), utc(2026, 3, 31)))
    # 09:00 local every day: GMT, then BST from 29 March.
    assert slots == [utc(2026, 3, 28, 9), utc(2026, 3, 29, 8), utc(2026, 3, 30, 8)]


def test_cron_slots_in_the_hour_the_clocks_go_back_are_each_listed_once() -> None:
    # 01:00-02:00 local happens twice on 25 October 2026; the walk must not get stuck on the
    # second 01:30 (it did, when it stepped on in local time).
    schedule = Schedule(cron="*/30 * * * *", timezone=LONDON)
    slots = list(schedule.slots(utc(2026, 10, 25, 0), utc(2026, 10, 25, 2, 30)))
    assert slots == [utc(2026, 10, 25, 0) + timedelta(minutes=30 * i) for i in range(5)]
    nightly = Schedule(cron="30 1 * * *", timezone=LONDON)
    assert nightly.latest_slot(utc(2026, 10, 25, 1, 40)) == utc(2026, 10, 25, 1, 30)
    assert list(nightly.slots(utc(2026, 10, 26), utc(2026, 10, 28))) == [
        utc(2026, 10, 26, 1, 30),
        utc(2026, 10, 27, 1, 30),
    ]


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("6,0", ["Sat", "Sun"]),
        ("*/2", ["Tue", "Thu", "Sat", "Sun"]),
        ("*", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ],
)
def test_weekday_numbers_are_read_as_crontab_reads_them(days: str, expected: list[str]) -> None:
    # 0 and 7 are Sunday, as in crontab(5); APScheduler 3 alone would count from Monday.
    week = Schedule(cron=f"0 9 * * {days}").slots(utc(2026, 11, 23), utc(2026, 11, 30))
    assert [slot.strftime("%a") for slot in week] == expected


# -- misfire grace ------------------------------------------------------------------------


def test_cron_slot_older_than_the_misfire_grace_is_not_run() -> None:
    schedule = Schedule(cron="30 9 * * mon-fri", misfire_grace=300)
    assert schedule.latest_slot(utc(2026, 11, 23, 9, 36)) is None
    assert schedule.slot_in_grace(utc(2026, 11, 23, 9, 36)) is None
    assert schedule.slot_in_grace(utc(2026, 11, 23, 9, 34)) == utc(2026, 11, 23, 9, 30)


def test_cron_slot_late_fire_within_grace() -> None:
    schedule = Schedule(cron="*/5 * * * *")
    now = utc(2026, 11, 23, 12, 4, 59)
    assert schedule.latest_slot(now) == utc(2026, 11, 23, 12, 0)
    assert schedule.slot_in_grace(now) == utc(2026, 11, 23, 12, 0)


def test_interval_slot_past_its_grace_may_not_start() -> None:
    schedule = Schedule(every=600, misfire_grace=60)
    assert schedule.latest_slot(utc(2026, 11, 23, 12, 2)) == utc(2026, 11, 23, 12)
    assert schedule.slot_in_grace(utc(2026, 11, 23, 12, 2)) is None
    assert schedule.slot_in_grace(utc(2026, 11, 23, 12, 1)) == utc(2026, 11, 23, 12)


def test_the_grace_defaults_to_the_interval() -> None:
    assert Schedule(every=120).grace == 120
    assert Schedule(every=120, misfire_grace=5).grace == 5
    assert Schedule(cron="*/15 * * * *").grace == 900


def test_schedule_interval_of_cron() -> None:
    assert Schedule(cron="*/15 * * * *").interval == 900
    assert Schedule(every=120).interval == 120


# -- gaps (what the rules need) -------------------------------------------------------------


def test_gaps_of_an_interval_are_exact() -> None:
    gaps = Schedule(every=600).gaps()
    assert (gaps.mean, gaps.three_slots) == (600, 1800)


def test_gaps_of_a_business_hours_cron_span_the_weekend() -> None:
    gaps = Schedule(cron="0 9-17 * * 1-5").gaps()
    # Three gaps across the weekend: 16:00 -> 17:00 -> (64 h) -> 09:00 -> 10:00.
    assert gaps.three_slots == 66 * 3600
    # Nine slots a day on five days: the mean lies between the hour and the night.
    assert 3600 < gaps.mean < 16 * 3600
    hourly = Schedule(cron="0 * * * *").gaps()
    assert (hourly.mean, hourly.three_slots) == (3600, 3 * 3600)


def test_gaps_of_a_rare_cron() -> None:
    yearly = Schedule(cron="0 0 1 1 *").gaps()
    assert yearly.mean == 365 * 86400
    assert yearly.three_slots == 3 * 365 * 86400
    with pytest.raises(ValueError, match="fires less than twice in 800 days"):
        Schedule(cron="0 0 29 2 *").gaps()


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "give exactly one of 'every' (e.g. 15m) or 'cron' (e.g. '*/15 * * * *')"),
        ({"every": 60, "cron": "* * * * *"}, "give exactly one of 'every'"),
        ({"every": 0.5}, "'every' must be at least 1s"),
        ({"cron": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ({"cron": "0 9 * * 8"}, "invalid cron expression '0 9 * * 8'"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "invalid cron expression"),
        ({"every": "1 hour"}, "invalid duration '1 hour'"),
        ({"every": 60, "evry": 60}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_schedules_say_what_to_write(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Schedule.model_validate(fields)
