"""A check's schedule (the ``checks[].schedule`` config section) and all its slot arithmetic.

A *slot* is a nominal scheduled time, without jitter. The scheduler fires and claims slots,
evidence export lists the slots that should have run (gaps), the rules derive event rates and
staleness limits from the gaps between slots: all of them ask this model, so they agree.

**The epoch.** Interval (``every``) slots are whole multiples of the interval counted from
:data:`SLOT_EPOCH`, 2000-01-03 00:00 UTC (a Monday), whatever the time of day the monitor
starts: a restart produces the same slots, so the store's (check, slot) claim stops a slot from
running twice, and slots already claimed in a store keep their times. Cron slots are the
expression's times in its zone; where a cron figure must not depend on today (its nominal
interval, its gaps), it is counted from the same epoch.

**Coverage.** A ``coverage`` schedule's slots are a plan (:mod:`scenarios.coverage`) that
samples every hour of the target's week in turn. The plan needs what the schedule section does
not say (the target's calendar and rate limit, the check's id as its seed), so the
configuration hands them over with :meth:`Schedule.planned`; the plan's weeks are local weeks
counted from the slot epoch's date, and like interval slots they do not depend on when a
monitor started.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import NamedTuple

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from scenarios.coverage import Coverage, CoveragePlan
from scenarios.durations import Duration
from scenarios.hours import BusinessHours

#: Interval slots are multiples of the interval counted from here; cron figures that must not
#: depend on today start here too.
SLOT_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday, midnight UTC

#: Gaps of a cron: scan two weeks (both weekends), longer only for crons that fire fewer than
#: five times in them, and never more slots than a per-minute cron has in two weeks.
_GAPS_SCAN = timedelta(days=15)
_GAPS_LONGEST_SCAN = timedelta(days=800)
_GAPS_MIN_SLOTS = 5
_GAPS_MAX_SLOTS = 21_000

_NEXT = timedelta(microseconds=1)


#: Day-of-week numbers as crontab reads them: 0 (and 7) is Sunday.
_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMERIC_DAYS = re.compile(r"^(?P<base>\*|\d+(?:-\d+)?)(?:/(?P<step>\d+))?$")


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """The trigger of a five-field crontab ``expression`` in ``timezone``.

    APScheduler 3 numbers weekdays from Monday (0 = Monday), crontab from Sunday (0 or
    7 = Sunday): its ``from_crontab`` would run ``1-5`` Tuesday to Saturday. Numeric weekdays
    are therefore given to it as names, which both read alike."""
    fields = expression.split()
    if len(fields) == 5:
        fields[4] = _weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)


def _weekday_names(field: str) -> str:
    """A crontab day-of-week field with its numbers (``1-5``, ``0,6``, ``*/2``) as day names;
    names, and anything malformed (left for APScheduler to reject), are kept as written."""
    names: list[str] = []
    for part in field.split(","):
        match = _NUMERIC_DAYS.match(part)
        if match is None or (match["base"] == "*" and match["step"] is None):
            names.append(part)
            continue
        base, step = match["base"], int(match["step"] or 1)
        first, _, last = ("0-6" if base == "*" else base).partition("-")
        low, high = int(first), int(last or (6 if match["step"] else first))
        if high > 7 or low > high or step < 1:
            names.append(part)
            continue
        names += [_CRONTAB_DAYS[day % 7] for day in range(low, high + 1, step)]
    return ",".join(dict.fromkeys(names))


class Gaps(NamedTuple):
    """How often a schedule fires, as the rules need it.

    A cron's nominal interval is not enough: ``*/15 8-18 * * 1-5`` fires every 15 minutes by
    day and not at all between Friday evening and Monday morning, and a staleness limit of three
    times 15 minutes would call the check stale every night.
    """

    #: Mean seconds between slots (the SLO event rate is its inverse).
    mean: float
    #: The longest seconds from a slot to the third slot after it (the staleness threshold).
    three_slots: float


class PlanTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires on a coverage plan's slots (as :class:`CronTrigger` does on a cron's)."""

    __slots__ = ("plan",)

    def __init__(self, plan: CoveragePlan) -> None:
        self.plan = plan

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        start = now if previous_fire_time is None else max(previous_fire_time + _NEXT, now)
        slot = self.plan.following(start)
        return None if slot is None else slot.at

    def __str__(self) -> str:
        return f"coverage[{self.plan.samples_per_week}/week]"


class Schedule(BaseModel):
    """When a check runs: ``every`` (aligned to :data:`SLOT_EPOCH`), ``cron`` in a zone, or
    ``coverage`` (a plan over the target's week, once :meth:`planned`)."""

    model_config = ConfigDict(extra="forbid")

    every: Duration | None = Field(None, description="Run at this interval (aligned to epoch).")
    cron: str | None = Field(
        None, description="Five-field crontab expression (weekdays: 0 or 7 is Sunday, or names)."
    )
    coverage: Coverage | None = Field(
        None,
        description="Spread this many samples a week so every hour of the target's week is "
        "sampled in turn (in its business-hours time zone).",
    )
    timezone: str = Field("UTC", description="Zone the cron expression is read in.")
    jitter: Duration = Field(0.0, description="Spread starts by up to this much per slot.")
    misfire_grace: Duration | None = Field(
        None,
        description="Still run a slot this late (after downtime or a restart); "
        "default: until the next slot is due.",
    )

    _plan: CoveragePlan | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if sum(kind is not None for kind in (self.every, self.cron, self.coverage)) != 1:
            raise ValueError(
                "give exactly one of 'every' (e.g. 15m) or 'cron' (e.g. '*/15 * * * *') "
                "or 'coverage' (e.g. {samples_per_week: 168})"
            )
        if self.coverage is not None and "timezone" in self.model_fields_set:
            raise ValueError(
                "a coverage plan follows the target's business_hours.timezone; remove "
                "'timezone' from the schedule"
            )
        if self.every is not None and self.every < 1:
            raise ValueError("'every' must be at least 1s")
        if self.cron is not None:
            try:
                cron_trigger(self.cron, self.timezone)
            except (ValueError, KeyError) as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from exc
        return self

    # -- the coverage plan -----------------------------------------------------------------

    def planned(
        self,
        *,
        seed: str,
        hours: BusinessHours,
        contacts_per_hour: int,
        contacts_per_slot: int = 1,
        weekly_quota: int | None = None,
    ) -> Schedule:
        """This schedule with its coverage plan made (itself unchanged for every/cron).

        ``seed`` is the check's id (every monitor computes the same plan from it), ``hours``
        the target's calendar, ``contacts_per_hour`` its rate limit on the channel and
        ``contacts_per_slot`` the locations the check runs at; ``weekly_quota`` is a weekly
        contact budget, if one applies."""
        if self.coverage is None:
            return self
        planned = self.model_copy()
        planned._plan = CoveragePlan(
            seed=seed,
            samples_per_week=self.coverage.samples_per_week,
            hours=hours,
            contacts_per_hour=contacts_per_hour,
            contacts_per_slot=contacts_per_slot,
            jitter=self.jitter,
            weekly_quota=weekly_quota,
        )
        return planned

    @property
    def plan(self) -> CoveragePlan | None:
        """The coverage plan (None for every/cron). Raises ``ValueError`` for a coverage
        schedule that was never :meth:`planned` (the configuration plans every check's)."""
        if self.coverage is not None and self._plan is None:
            raise ValueError(
                "a coverage schedule has no plan until Schedule.planned() is given the target"
            )
        return self._plan

    # -- what the scheduler fires ----------------------------------------------------------

    def trigger(self) -> BaseTrigger:
        """The APScheduler trigger that fires on this schedule's slots."""
        if self.every is not None:
            return IntervalTrigger(seconds=self.every, start_date=SLOT_EPOCH, timezone=UTC)
        if (plan := self.plan) is not None:
            return PlanTrigger(plan)
        return self._cron()

    @property
    def grace(self) -> float:
        """Seconds after its time that a slot may still start."""
        return self.misfire_grace if self.misfire_grace is not None else self.interval

    @property
    def interval(self) -> float:
        """Nominal seconds between slots (cron: the gap after its first slot from the epoch;
        coverage: a week over its samples)."""
        if self.every is not None:
            return self.every
        if (plan := self.plan) is not None:
            return plan.mean_gap
        fires = self._cron_fires(SLOT_EPOCH)
        first, second = next(fires), next(fires)
        return (second - first).total_seconds()

    # -- slots -----------------------------------------------------------------------------

    def latest_slot(self, now: datetime) -> datetime | None:
        """The most recent slot at or before ``now``; for a cron, only if it lies within the
        misfire grace (None when the cron had no slot that recently)."""
        if self.every is not None:
            elapsed = (now - SLOT_EPOCH).total_seconds()
            return self._every_slot(int(elapsed // self.every))
        if (plan := self.plan) is not None:
            latest = plan.latest(now)
            return None if latest is None else latest.at
        # Walk forward from the oldest slot still worth running; cron slots are a minute apart
        # at least, so this takes a handful of steps.
        slot: datetime | None = None
        for fire in self._cron_fires(now - timedelta(seconds=self.grace + 1)):
            if fire > now:
                break
            slot = fire
        return slot

    def slot_in_grace(self, now: datetime) -> datetime | None:
        """The latest slot, if it may still start at ``now`` (within the misfire grace)."""
        slot = self.latest_slot(now)
        if slot is None or (now - slot).total_seconds() > self.grace:
            return None
        return slot

    def slots(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """The slots in ``[start, end)``, in order (UTC), exactly as the scheduler fires them."""
        if self.every is not None:
            index = math.ceil((start - SLOT_EPOCH).total_seconds() / self.every)
            while (slot := self._every_slot(index)) < end:
                if slot >= start:
                    yield slot
                index += 1
            return
        if (plan := self.plan) is not None:
            yield from (slot.at for slot in plan.slots(start, end))
            return
        for fire in self._cron_fires(start):
            if fire >= end:
                return
            yield fire

    def gaps(self) -> Gaps:
        """The mean gap between slots and the longest span of three gaps. An interval's are
        exact; a cron's are measured from the epoch over two weeks (longer for rare crons).

        Raises ``ValueError`` for a cron that fires less than twice in 800 days."""
        if self.every is not None:
            return Gaps(self.every, 3 * self.every)
        if (plan := self.plan) is not None:
            return self._plan_gaps(plan)
        slots = self._gaps_sample()
        if len(slots) < 2:
            raise ValueError(
                f"cron {self.cron!r} fires less than twice in {_GAPS_LONGEST_SCAN.days} days: "
                "too rarely to tell when the check is stale; schedule it more often"
            )
        seconds = [(later - earlier).total_seconds() for earlier, later in pairwise(slots)]
        mean = sum(seconds) / len(seconds)
        if len(seconds) < 3:  # a cron this rare: three of its longest gaps
            return Gaps(mean, 3 * max(seconds))
        return Gaps(mean, max(sum(seconds[i : i + 3]) for i in range(len(seconds) - 2)))

    # -- internals -------------------------------------------------------------------------

    def _every_slot(self, index: int) -> datetime:
        assert self.every is not None
        return SLOT_EPOCH + timedelta(seconds=index * self.every)

    def _cron(self) -> CronTrigger:
        assert self.cron is not None
        return cron_trigger(self.cron, self.timezone)

    def _cron_fires(self, start: datetime) -> Iterator[datetime]:
        """The cron's slots at or after ``start``, in order, in UTC."""
        trigger = self._cron()
        fire = trigger.get_next_fire_time(None, start)
        while fire is not None:
            yield fire.astimezone(UTC)
            # Step on in UTC: local arithmetic drops the fold, so in the hour repeated when
            # clocks go back, "a microsecond after" the second 01:30 would be before it and
            # the trigger would answer that 01:30 again, for ever.
            fire = trigger.get_next_fire_time(fire, fire.astimezone(UTC) + _NEXT)

    def _plan_gaps(self, plan: CoveragePlan) -> Gaps:
        """A plan's mean gap is exact; its longest three gaps are measured over a period of
        its weeks (at least two, fewer for plans of very many slots)."""
        weeks = max(2, min(plan.period_weeks + 1, _GAPS_MAX_SLOTS // plan.samples_per_week))
        start = plan.week_start(0)
        slots = list(self.slots(start, start + timedelta(weeks=weeks)))
        seconds = [(later - earlier).total_seconds() for earlier, later in pairwise(slots)]
        if len(seconds) < 3:
            return Gaps(plan.mean_gap, 3 * max(seconds, default=plan.mean_gap))
        three = max(sum(seconds[i : i + 3]) for i in range(len(seconds) - 2))
        return Gaps(plan.mean_gap, three)

    def _gaps_sample(self) -> list[datetime]:
        slots: list[datetime] = []
        for fire in self._cron_fires(SLOT_EPOCH):
            elapsed = fire - SLOT_EPOCH
            if len(slots) >= _GAPS_MAX_SLOTS or elapsed > _GAPS_LONGEST_SCAN:
                break
            if elapsed > _GAPS_SCAN and len(slots) >= _GAPS_MIN_SLOTS:
                break
            slots.append(fire)
        return slots
