"""Jitter and the live scheduler (the slots themselves: test_schedule.py): the scheduler tests
run real APScheduler on 2 s slots and assert on the slots started (and the scheduler's next
fire), not on wall-clock timings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from cxprobe.scheduler import CheckScheduler, ScheduleChange, jitter_for
from cxprobe.settings import Check
from scenarios.engine import Clock, utc_now
from scenarios.hours import BusinessHours
from scenarios.schedule import SLOT_EPOCH, Schedule


def test_jitter_is_stable_bounded_and_spread() -> None:
    slot = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert jitter_for("a", slot, 0) == 0
    assert jitter_for("a", slot, 60) == jitter_for("a", slot, 60)
    offsets = {jitter_for(f"check-{i}", slot, 60) for i in range(50)}
    assert all(0 <= offset < 60 for offset in offsets)
    assert max(offsets) - min(offsets) > 30  # spread, not bunched


# -- the live scheduler -------------------------------------------------------------------

EVERY = 2.0
#: Where in its slot the scheduler starts: far enough from both ends that a loaded machine
#: cannot move the start into another slot.
OFFSET = 1.0
#: How long a test waits for the next start: a slot, and a generous margin.
WITHIN = EVERY + 1.5


class Recorder:
    """Stands in for the runner (the slots it is asked to start) and the lag histogram."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.checks: list[str] = []
        self._starts: asyncio.Queue[datetime] = asyncio.Queue()

    async def start_slot(self, check: Check, slot: datetime) -> None:
        self.checks.append(check.id)
        self._starts.put_nowait(slot)

    async def next_starts(self, count: int) -> list[datetime]:
        starts = []
        for _ in range(count):
            async with asyncio.timeout(WITHIN):
                starts.append(await self._starts.get())
        return starts


@asynccontextmanager
async def scheduling(
    schedule: Schedule, recorder: Recorder, clock: Clock = utc_now
) -> AsyncIterator[CheckScheduler]:
    check = Check(id="probe", target="acme", channel="email", scenario="s", schedule=schedule)
    scheduler = CheckScheduler(
        [check],
        recorder.start_slot,
        observe_lag=recorder.lags.append,
        logger=logging.getLogger("test.scheduler"),
        clock=clock,
    )
    scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.stop()


async def into_a_slot() -> datetime:
    """Wait until ``OFFSET`` seconds into an interval slot; return that slot."""
    now = utc_now()
    slot = Schedule(every=EVERY).latest_slot(now)
    assert slot is not None
    if (now - slot).total_seconds() > OFFSET:
        slot += timedelta(seconds=EVERY)
    await asyncio.sleep((slot + timedelta(seconds=OFFSET) - utc_now()).total_seconds())
    return slot


def slots_after(slot: datetime, *steps: int) -> list[datetime]:
    return [slot + timedelta(seconds=EVERY * step) for step in steps]


def is_aligned(moment: datetime | None) -> bool:
    return moment is not None and (moment - SLOT_EPOCH).total_seconds() % EVERY == 0


async def test_after_the_catch_up_fires_stay_on_epoch_aligned_slots() -> None:
    recorder = Recorder()
    slot = await into_a_slot()
    async with scheduling(Schedule(every=EVERY), recorder) as scheduler:
        assert is_aligned(scheduler.next_runs()["probe"]), scheduler.next_runs()
        starts = await recorder.next_starts(3)
        assert is_aligned(scheduler.next_runs()["probe"]), scheduler.next_runs()
    # The slot the start interrupted is caught up once; then every slot in turn.
    assert starts == slots_after(slot, 0, 1, 2)
    # Only the regular fires are observed, and they start on their slot, not OFFSET late.
    assert len(recorder.lags) == 2
    assert all(lag < 0.5 for lag in recorder.lags), recorder.lags


async def test_a_grace_shorter_than_the_start_offset_still_runs_every_slot() -> None:
    recorder = Recorder()
    slot = await into_a_slot()
    async with scheduling(Schedule(every=EVERY, misfire_grace=OFFSET / 2), recorder):
        starts = await recorder.next_starts(2)
    # The interrupted slot is already past its grace at start-up, so only later slots run.
    assert starts == slots_after(slot, 1, 2)


async def test_a_slot_caught_up_at_start_is_not_fired_again() -> None:
    # A start exactly on a slot's boundary, where the catch-up and the first regular fire are
    # for the same slot. Made repeatable by a check clock running OFFSET ahead of the
    # scheduler's timer: at start-up it already reads the next slot, which the timer fires
    # OFFSET later.
    def ahead() -> datetime:
        return utc_now() + timedelta(seconds=OFFSET)

    recorder = Recorder()
    slot = await into_a_slot()
    async with scheduling(Schedule(every=EVERY), recorder, clock=ahead):
        starts = await recorder.next_starts(2)
    assert starts == slots_after(slot, 1, 2)


async def test_replacing_the_checks_stops_removed_and_starts_added_ones() -> None:
    recorder = Recorder()
    slot = await into_a_slot()
    async with scheduling(Schedule(every=EVERY), recorder) as scheduler:
        assert await recorder.next_starts(1) == slots_after(slot, 0)  # the catch-up
        other = Check(
            id="other", target="acme", channel="email", scenario="s", schedule=Schedule(every=EVERY)
        )
        change = scheduler.replace_checks([other])
        assert change == ScheduleChange(added=("other",), removed=("probe",))
        # The added check catches up the current slot, as at start, then fires on every slot.
        starts = await recorder.next_starts(2)
        assert set(scheduler.next_runs()) == {"other"}
        assert scheduler.replace_checks([other]) == ScheduleChange()  # unchanged: untouched
    assert starts == slots_after(slot, 0, 1)
    assert recorder.checks == ["probe", "other", "other"]


# -- a coverage plan ------------------------------------------------------------------------


def coverage_schedule(samples: int) -> Schedule:
    return Schedule(coverage={"samples_per_week": samples}).planned(
        seed="probe",
        hours=BusinessHours(timezone="Europe/London", always_open=True),
        contacts_per_hour=6,
    )


async def test_a_coverage_check_catches_up_its_planned_slot_and_waits_for_the_next() -> None:
    """A simulated clock weeks ahead, inside a planned slot's grace: the scheduler starts that
    slot, and APScheduler (on the real clock) waits for the plan's next slot."""
    schedule = coverage_schedule(168)
    plan = schedule.plan
    assert plan is not None
    planned = plan.week(plan.week_of(utc_now()) + 5)[40].at
    recorder = Recorder()

    def in_its_grace() -> datetime:
        return planned + timedelta(minutes=2)

    async with scheduling(schedule, recorder, clock=in_its_grace) as scheduler:
        assert await recorder.next_starts(1) == [planned]
        following = plan.following(utc_now())
        assert following is not None
        assert scheduler.next_runs()["probe"] == following.at
        # A reload with another quota is a changed check, which fires on its new plan.
        changed = Check(
            id="probe",
            target="acme",
            channel="email",
            scenario="s",
            schedule=coverage_schedule(100),
        )
        assert scheduler.replace_checks([changed]) == ScheduleChange(changed=("probe",))
        new_plan = changed.schedule.plan
        assert new_plan is not None
        new_following = new_plan.following(utc_now())
        assert new_following is not None
        assert scheduler.next_runs()["probe"] == new_following.at
    assert recorder.lags == []  # catch-ups are late by design, not lag
