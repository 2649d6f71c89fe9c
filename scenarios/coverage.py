"""The 24/7 coverage planner: ``samples_per_week`` contacts spread over the hours of the week.

A *cell* is one hour of the target's local week (Monday 00:00 to Sunday 23:00: 168 cells).
A coverage plan samples every cell within a rolling window of weeks, by stratified sampling:

- **Which cells a week samples.** The 168 cells are put in an order drawn from the check's seed
  (a hash per cell, so every process and every Python computes the same order). Week ``w``
  takes the ``N`` positions ``w*N .. w*N+N-1`` of that order, read cyclically: any
  ``ceil(168 / N)`` consecutive weeks sample every cell (:attr:`CoveragePlan.cycle_weeks`),
  and with ``N >= 168`` every cell is sampled ``N // 168`` or ``N // 168 + 1`` times a week.
- **When inside a cell.** A cell with ``k`` samples is cut into ``k`` equal parts and each
  sample takes a random minute in its part, drawn from a hash of (seed, week, cell, part): the
  same minute in every process, so monitors sharing a store compute the same slots and the
  store's (check, slot) claim lets one of them run each.
- **The rate limit.** The runner refuses a contact when the target's channel already had
  ``max_contacts_per_hour`` in the hour before (from every location). The plan keeps its
  contacts further apart than that allows (:attr:`CoveragePlan.spacing`, with slack for the
  send itself and for jitter), so the claim never has to skip one of its slots; a plan that
  cannot (too many samples for the limit) is refused by the configuration.

Weeks are local weeks counted from :data:`PLAN_EPOCH`, so the plan of a week does not depend
on when a monitor started. Public holidays are marked on the slots that fall on them, and a
holiday sample does not count for its cell: a desk's holiday behaviour is not its ordinary
Monday's. On the day the clocks go forward the missing local hour has no slot that week; in the
hour repeated when they go back, a cell spans both readings.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scenarios.hours import DAY_NAMES, BusinessCalendar, BusinessHours

HOURS_PER_WEEK = 168
WEEK = timedelta(days=7)
#: Plan weeks are counted from this local Monday (the date of the slot epoch).
PLAN_EPOCH = date(2000, 1, 3)
#: Seconds between two contacts beyond what the rate limit needs: the claim counts the earlier
#: contact from when it was sent, which is a little after its slot.
SEND_SLACK = 60
#: Weeks of plans kept computed per check (a plan is recomputed, identically, if evicted).
_CACHED_WEEKS = 64


class Cell(NamedTuple):
    """One hour of the local week: ``weekday`` 0 is Monday, ``hour`` 0..23."""

    weekday: int
    hour: int

    @property
    def number(self) -> int:
        return self.weekday * 24 + self.hour

    @classmethod
    def at_number(cls, number: int) -> Cell:
        weekday, hour = divmod(number, 24)
        return cls(weekday, hour)

    def __str__(self) -> str:
        return f"{DAY_NAMES[self.weekday]} {self.hour:02d}:00"


def cell_of(instant: datetime, zone: ZoneInfo) -> Cell:
    """The cell ``instant`` falls in, in ``zone``'s local week."""
    local = instant.astimezone(zone)
    return Cell(local.weekday(), local.hour)


class Coverage(BaseModel):
    """The ``schedule.coverage`` section: sample every hour of the week instead of a fixed
    interval."""

    model_config = ConfigDict(extra="forbid")

    samples_per_week: int = Field(
        description="Contacts a week, spread so every hour of the week is sampled in turn "
        "(168: every hour each week; 24: every hour within 7 weeks)."
    )

    @field_validator("samples_per_week")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"samples_per_week is {value}; give at least 1 (168 samples every hour of the "
                "week each week, 24 within 7 weeks)"
            )
        return value


@dataclass(frozen=True)
class PlannedSlot:
    """One contact of a plan: its slot (UTC), its cell and the public holiday it falls on."""

    at: datetime
    cell: Cell
    holiday: str | None


class _Part(NamedTuple):
    """Where one sample may go: part ``part`` of ``cell`` (UNIX seconds, end exclusive)."""

    cell: Cell
    part: int
    start: int
    end: int
    local_date: date


@dataclass(frozen=True)
class CoveragePlan:
    """One check's plan: ``samples_per_week`` contacts a week in the target's calendar.

    ``contacts_per_hour`` is the target's rate limit on the channel, ``contacts_per_slot`` how
    many contacts one slot makes (one per location the check runs at), ``jitter`` how late a
    slot's contact may start. ``weekly_quota`` is where a weekly contact budget joins the fit.
    """

    seed: str
    samples_per_week: int
    hours: BusinessHours
    contacts_per_hour: int
    contacts_per_slot: int = 1
    jitter: float = 0.0
    weekly_quota: int | None = None
    _calendar: BusinessCalendar = field(init=False, compare=False, repr=False)
    _order: tuple[int, ...] = field(init=False, compare=False, repr=False)
    _weeks: dict[int, tuple[PlannedSlot, ...]] = field(
        init=False, compare=False, repr=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        # Frozen: the derived fields are set once, here.
        object.__setattr__(self, "_calendar", BusinessCalendar(self.hours))
        object.__setattr__(self, "_order", self._cell_order())

    # -- figures -----------------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return self._calendar.zone

    @property
    def slots_per_hour(self) -> int:
        """Slots an hour the rate limit allows this check (each slot contacts every location)."""
        return self.contacts_per_hour // self.contacts_per_slot

    @property
    def spacing(self) -> int:
        """Least seconds between two slots of the plan (0 slots an hour: a day, never fits)."""
        if self.slots_per_hour < 1:
            return 86_400
        return math.ceil(3600 / self.slots_per_hour + SEND_SLACK + self.jitter)

    @property
    def cycle_weeks(self) -> int:
        """Weeks in which every cell is sampled once at least (without holidays or DST)."""
        return math.ceil(HOURS_PER_WEEK / self.samples_per_week)

    @property
    def period_weeks(self) -> int:
        """After this many weeks the cells sampled repeat (the minutes inside them do not)."""
        return HOURS_PER_WEEK // math.gcd(self.samples_per_week, HOURS_PER_WEEK)

    @property
    def mean_gap(self) -> float:
        return WEEK.total_seconds() / self.samples_per_week

    # -- weeks -------------------------------------------------------------------------------

    def week_of(self, instant: datetime) -> int:
        """The plan week ``instant`` lies in (local weeks from :data:`PLAN_EPOCH`)."""
        return (self._calendar.local_time(instant).date() - PLAN_EPOCH).days // 7

    def week_start(self, week: int) -> datetime:
        """When plan week ``week`` starts (its local Monday 00:00), in UTC."""
        return self._hour_start(PLAN_EPOCH + timedelta(weeks=week), 0)

    def cell_counts(self, week: int) -> list[int]:
        """Samples per cell (by :attr:`Cell.number`) in week ``week``."""
        whole, extra = divmod(self.samples_per_week, HOURS_PER_WEEK)
        counts = [whole] * HOURS_PER_WEEK
        first = week * self.samples_per_week % HOURS_PER_WEEK
        for position in range(first, first + extra):
            counts[self._order[position % HOURS_PER_WEEK]] += 1
        return counts

    def week(self, week: int) -> tuple[PlannedSlot, ...]:
        """Week ``week``'s slots, in order. A sample that cannot be placed (only in a plan the
        configuration would refuse) is left out."""
        cached = self._weeks.get(week)
        if cached is None:
            cached = self._place(week)
            if len(self._weeks) >= _CACHED_WEEKS:
                self._weeks.pop(next(iter(self._weeks)))
            self._weeks[week] = cached
        return cached

    def slots(self, start: datetime, end: datetime) -> Iterator[PlannedSlot]:
        """The planned slots in ``[start, end)``, in order."""
        for week in range(self.week_of(start), self.week_of(end) + 1):
            for slot in self.week(week):
                if start <= slot.at < end:
                    yield slot

    def latest(self, now: datetime, *, weeks_back: int = 3) -> PlannedSlot | None:
        """The latest slot at or before ``now`` (None if there was none in ``weeks_back``
        weeks: a plan has a slot nearly every week)."""
        current = self.week_of(now)
        for week in range(current, current - weeks_back - 1, -1):
            earlier = [slot for slot in self.week(week) if slot.at <= now]
            if earlier:
                return earlier[-1]
        return None

    def following(self, after: datetime, *, weeks_ahead: int = 3) -> PlannedSlot | None:
        """The first slot at or after ``after`` (None if none within ``weeks_ahead`` weeks)."""
        current = self.week_of(after)
        for week in range(current, current + weeks_ahead + 1):
            later = [slot for slot in self.week(week) if slot.at >= after]
            if later:
                return later[0]
        return None

    def weeks_to_cover(self, from_week: int) -> int | None:
        """How many weeks, from ``from_week`` on, until every cell has had a sample on an
        ordinary (not holiday) day; None if that takes longer than two periods."""
        seen: set[int] = set()
        horizon = min(2 * self.period_weeks + self.cycle_weeks, 400)
        for offset in range(horizon):
            seen.update(
                slot.cell.number for slot in self.week(from_week + offset) if slot.holiday is None
            )
            if len(seen) == HOURS_PER_WEEK:
                return offset + 1
        return None

    def fit_problem(self) -> str | None:
        """Why this plan cannot keep the rate limit (or the weekly quota), or None if it can.

        Every pattern of cells comes round within :attr:`period_weeks`, so placing those
        weeks' samples answers for every week (capped for plans of many thousands of slots)."""
        contacts = self.samples_per_week * self.contacts_per_slot
        if self.weekly_quota is not None and contacts > self.weekly_quota:
            return (
                f"{self.samples_per_week} samples a week make {contacts} contacts, more than "
                f"the weekly quota of {self.weekly_quota}; lower samples_per_week"
            )
        if self.slots_per_hour >= 1:
            weeks = max(1, min(self.period_weeks, 20_000 // self.samples_per_week))
            for week in range(weeks):
                if (crowded := self._first_overflow(week)) is not None:
                    return self._too_many(f"no room for every sample around {crowded.cell}")
        return None if self.slots_per_hour >= 1 else self._too_many("no slot fits an hour")

    # -- internals ---------------------------------------------------------------------------

    def _too_many(self, where: str) -> str:
        most = HOURS_PER_WEEK * (3600 // self.spacing)
        per_slot = (
            f" at each of {self.contacts_per_slot} locations" if self.contacts_per_slot > 1 else ""
        )
        return (
            f"{self.samples_per_week} samples a week do not fit the rate limit of "
            f"{self.contacts_per_hour} contact(s) an hour{per_slot} ({where}): contacts must be "
            f"more than {self.spacing} s apart, so about {most} at most fit a week, fewer where "
            "sampled hours follow each other; lower samples_per_week or raise the target's "
            "rate_limit.max_contacts_per_hour"
        )

    def _cell_order(self) -> tuple[int, ...]:
        def rank(index: int) -> bytes:
            return hashlib.sha256(f"{self.seed}|cell|{index}".encode()).digest()

        return tuple(sorted(range(HOURS_PER_WEEK), key=rank))

    def _draw(self, *parts: object) -> float:
        """A number in [0, 1) from the seed and ``parts``, the same in every process."""
        key = "|".join(str(part) for part in (self.seed, *parts))
        digest = hashlib.sha256(key.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def _hour_start(self, local_date: date, hour: int) -> datetime:
        """The UTC start of a local hour (its first reading when the clocks go back)."""
        return datetime.combine(local_date, time(hour), tzinfo=self.zone).astimezone(UTC)

    def _exists(self, local_date: date, hour: int) -> bool:
        """False for the local hour skipped when the clocks go forward."""
        wall = datetime.combine(local_date, time(hour))
        back = wall.replace(tzinfo=self.zone).astimezone(UTC).astimezone(self.zone)
        return back.replace(tzinfo=None) == wall

    def _hour_span(self, local_date: date, hour: int) -> tuple[int, int] | None:
        """A local hour's UNIX seconds, from its start to the start of the next existing hour
        (two hours' worth when the clocks go back); None if the clocks skip it."""
        if not self._exists(local_date, hour):
            return None
        start = self._hour_start(local_date, hour)
        following = datetime.combine(local_date, time(hour)) + timedelta(hours=1)
        while not self._exists(following.date(), following.hour):
            following += timedelta(hours=1)
        end = self._hour_start(following.date(), following.hour)
        return int(start.timestamp()), int(end.timestamp())

    def _parts(self, week: int) -> list[_Part]:
        """The week's sample places, in time order: each sampled local hour cut into as many
        parts as it has samples."""
        monday = PLAN_EPOCH + timedelta(weeks=week)
        parts: list[_Part] = []
        for number, count in enumerate(self.cell_counts(week)):
            cell = Cell.at_number(number)
            local_date = monday + timedelta(days=cell.weekday)
            if count == 0 or (span := self._hour_span(local_date, cell.hour)) is None:
                continue
            start, end = span
            width = (end - start) / count
            parts += [
                _Part(
                    cell,
                    part,
                    start=start + int(part * width),
                    end=start + int((part + 1) * width),
                    local_date=local_date,
                )
                for part in range(count)
            ]
        return parts

    def _first_overflow(self, week: int) -> _Part | None:
        """The first part even the earliest placement cannot fit, or None: every sample as
        early as the spacing allows is the placement that leaves the most room."""
        spacing = self.spacing
        previous = int(self.week_start(week).timestamp()) - (spacing + 1) // 2
        last_allowed = int(self.week_start(week + 1).timestamp()) - (spacing + 1) // 2
        for part in self._parts(week):
            previous = max(part.start, previous + spacing)
            if previous > min(part.end - 1, last_allowed):
                return part
        return None

    def _place(self, week: int) -> tuple[PlannedSlot, ...]:
        """A random minute in each part, every two more than :attr:`spacing` apart (also across
        the week's edges: half the spacing from each). A sample with no room left (only in a
        plan :meth:`fit_problem` refuses) is left out."""
        parts = self._parts(week)
        spacing = self.spacing
        latest = self._latest_places(parts, week, spacing)
        placed: list[PlannedSlot] = []
        previous = int(self.week_start(week).timestamp()) - (spacing + 1) // 2
        for part, last in zip(parts, latest, strict=True):
            first = max(part.start, previous + spacing)
            if first > last:
                continue
            at = self._random_minute(first, last, week, part)
            previous = at
            placed.append(
                PlannedSlot(
                    at=datetime.fromtimestamp(at, UTC),
                    cell=part.cell,
                    holiday=self._calendar.holiday_name(part.local_date),
                )
            )
        return tuple(placed)

    def _latest_places(self, parts: list[_Part], week: int, spacing: int) -> list[int]:
        """The latest second each part's sample may take and still leave room for the later
        ones (and half the spacing before the next week)."""
        bound = int(self.week_start(week + 1).timestamp()) - (spacing + 1) // 2
        latest = [0] * len(parts)
        for index in range(len(parts) - 1, -1, -1):
            latest[index] = min(parts[index].end - 1, bound)
            bound = latest[index] - spacing
        return latest

    def _random_minute(self, first: int, last: int, week: int, part: _Part) -> int:
        """A random whole minute in ``[first, last]`` seconds, or a random second when no
        whole minute lies between them."""
        draw = self._draw(week, part.cell.number, part.part)
        low, high = -(-first // 60), last // 60
        if low <= high:
            return 60 * (low + int(draw * (high - low + 1)))
        return first + int(draw * (last - first + 1))
