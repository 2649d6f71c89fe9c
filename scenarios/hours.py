"""Business hours and public holidays: which :class:`~scenarios.model.Period` an instant is in.

:class:`BusinessHours` is the ``targets.<id>.business_hours`` config section::

    business_hours:
      timezone: Europe/London                      # IANA name
      weekly:                                      # mon..sun; a day left out is closed
        mon: ["09:00-17:30"]                       # or [{open: "09:00", close: "17:30"}]
        sat: ["10:00-14:00"]
      holidays: {country: GB, subdivision: ENG}    # public holidays from the `holidays` package
      exceptions:                                  # dated overrides; win over weekly and holidays
        - {date: 2026-12-24, hours: ["09:00-13:00"], note: "Christmas Eve"}
        - {date: 2026-12-29, closed: true}

``always_open: true`` replaces ``weekly`` for 24/7 desks. A range opens at its first minute
(inclusive) and closes at its last (exclusive); ``24:00`` closes at the end of the day.

:class:`BusinessCalendar` answers questions about instants. Everything is compared in the
target's local wall time (via :mod:`zoneinfo`), so "09:00" is 09:00 in winter and in summer and
a DST day is simply 23 or 25 hours long.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays as holiday_tables
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scenarios.model import Period

MINUTES_PER_DAY = 24 * 60
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_OPEN_TIME = re.compile(_CLOCK)
_CLOSE_TIME = re.compile(rf"{_CLOCK}|24:00")
_RANGE = re.compile(rf"(?P<open>{_CLOCK})\s*-\s*(?P<close>{_CLOCK}|24:00)")

#: How far ahead :meth:`BusinessCalendar.next_change_after` looks by default: a year of
#: holidays plus slack, so a 24/7 desk with holidays still finds its next holiday.
DEFAULT_HORIZON = timedelta(days=400)

#: A local calendar date. Aliased because a config field is itself called ``date``.
LocalDate = date

#: A day's opening hours as (open, close) minutes after local midnight, sorted, disjoint.
Spans = tuple[tuple[int, int], ...]


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")  # already validated as HH:MM by a full-match regex
    return int(hours) * 60 + int(minutes)


class TimeRange(BaseModel):
    """One opening range of a day, written ``"09:00-17:30"`` or ``{open: ..., close: ...}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    open: str = Field(description="Opening time, local HH:MM (24-hour clock; inclusive).")
    close: str = Field(
        description="Closing time, local HH:MM (exclusive); 24:00 is the end of the day."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            match = _RANGE.fullmatch(data.strip())
            if match is None:
                raise ValueError(
                    f"opening hours {data!r} are not written 'HH:MM-HH:MM' on the 24-hour "
                    "clock (e.g. '09:00-17:30'; close may be '24:00')"
                )
            return match.groupdict()
        if not isinstance(data, Mapping | TimeRange):
            raise ValueError(
                f"opening hours must be 'HH:MM-HH:MM' or {{open: 'HH:MM', close: 'HH:MM'}}, "
                f"not {data!r}"
            )
        return data

    @field_validator("open")
    @classmethod
    def _valid_open(cls, value: str) -> str:
        if not _OPEN_TIME.fullmatch(value):
            raise ValueError(f"opening time {value!r} is not HH:MM between 00:00 and 23:59")
        return value

    @field_validator("close")
    @classmethod
    def _valid_close(cls, value: str) -> str:
        if not _CLOSE_TIME.fullmatch(value):
            raise ValueError(f"closing time {value!r} is not HH:MM between 00:01 and 24:00")
        return value

    @model_validator(mode="after")
    def _close_after_open(self) -> TimeRange:
        if self.close_minute <= self.open_minute:
            raise ValueError(
                f"closing time {self.close} is not after opening time {self.open}; a range "
                f"cannot cross midnight: write '{self.open}-24:00' on this day and "
                f"'00:00-{self.close}' on the next"
            )
        return self

    @property
    def open_minute(self) -> int:
        return _minutes(self.open)

    @property
    def close_minute(self) -> int:
        return _minutes(self.close)

    def __str__(self) -> str:
        return f"{self.open}-{self.close}"


def _sorted_disjoint(ranges: list[TimeRange]) -> list[TimeRange]:
    """``ranges`` sorted; overlapping ranges are rejected (touching ones are fine)."""
    ordered = sorted(ranges, key=lambda r: r.open_minute)
    for before, after in itertools.pairwise(ordered):
        if after.open_minute < before.close_minute:
            raise ValueError(
                f"opening hours {before} and {after} overlap; merge them into one range"
            )
    return ordered


def _spans(ranges: Sequence[TimeRange]) -> Spans:
    """Ranges as minute spans, touching ones merged (09:00-12:00 + 12:00-17:00 is one span)."""
    merged: list[tuple[int, int]] = []
    for item in ranges:
        if merged and item.open_minute <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], item.close_minute))
        else:
            merged.append((item.open_minute, item.close_minute))
    return tuple(merged)


class WeeklyHours(BaseModel):
    """Opening ranges per weekday (local time); a day left out is closed all day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mon: list[TimeRange] = Field(default_factory=list, description="Monday's opening ranges.")
    tue: list[TimeRange] = Field(default_factory=list, description="Tuesday's opening ranges.")
    wed: list[TimeRange] = Field(default_factory=list, description="Wednesday's opening ranges.")
    thu: list[TimeRange] = Field(default_factory=list, description="Thursday's opening ranges.")
    fri: list[TimeRange] = Field(default_factory=list, description="Friday's opening ranges.")
    sat: list[TimeRange] = Field(default_factory=list, description="Saturday's opening ranges.")
    sun: list[TimeRange] = Field(default_factory=list, description="Sunday's opening ranges.")

    @field_validator(*DAY_NAMES)
    @classmethod
    def _no_overlap(cls, value: list[TimeRange]) -> list[TimeRange]:
        return _sorted_disjoint(value)

    def on(self, weekday: int) -> list[TimeRange]:
        """The ranges of ``weekday`` (0 = Monday, as :meth:`date.weekday`)."""
        ranges: list[TimeRange] = getattr(self, DAY_NAMES[weekday])
        return ranges


class HolidaySource(BaseModel):
    """Which public holidays apply, as the ``holidays`` package knows them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str = Field(description="ISO 3166-1 alpha-2 country code, e.g. GB, US, DE.")
    subdivision: str | None = Field(
        default=None, description="The country's subdivision code, e.g. ENG for England."
    )

    @model_validator(mode="after")
    def _supported(self) -> HolidaySource:
        supported: dict[str, list[str]] = holiday_tables.list_supported_countries()
        if self.country not in supported:
            close = difflib.get_close_matches(self.country.upper(), list(supported), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(
                f"unknown holiday country {self.country!r}{hint}: use an ISO 3166-1 alpha-2 "
                "code the holidays package supports, e.g. GB, US, DE, FR "
                "(see https://holidays.readthedocs.io)"
            )
        if self.subdivision is None:
            return self
        try:
            holiday_tables.country_holidays(self.country, subdiv=self.subdivision)
        except NotImplementedError:
            known = supported[self.country]
            if not known:
                raise ValueError(
                    f"holiday country {self.country} has no subdivisions; remove 'subdivision'"
                ) from None
            raise ValueError(
                f"unknown subdivision {self.subdivision!r} of holiday country {self.country}; "
                f"supported: {', '.join(known)}"
            ) from None
        return self

    def table(self, year: int) -> dict[date, str]:
        """The public holidays of ``year``: date → name (several names joined by '; ')."""
        found = holiday_tables.country_holidays(self.country, subdiv=self.subdivision, years=year)
        return dict(found)


class DateOverride(BaseModel):
    """A dated exception: special hours or a closure, winning over weekly hours and holidays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: LocalDate = Field(description="The local date this applies to (YYYY-MM-DD).")
    hours: list[TimeRange] | None = Field(
        default=None, description="Opening ranges on that date (replace the weekly ones)."
    )
    closed: bool = Field(default=False, description="Closed all day.")
    note: str = Field(default="", description="Why, for people reading the config.")

    @field_validator("hours")
    @classmethod
    def _no_overlap(cls, value: list[TimeRange] | None) -> list[TimeRange] | None:
        return None if value is None else _sorted_disjoint(value)

    @model_validator(mode="after")
    def _hours_or_closed(self) -> DateOverride:
        if self.closed and self.hours is not None:
            raise ValueError(
                f"exception for {self.date} gives both 'hours' and 'closed: true'; keep one"
            )
        if not self.closed and not self.hours:
            raise ValueError(
                f"exception for {self.date} needs 'hours' (e.g. ['09:00-13:00']) or 'closed: true'"
            )
        return self


class BusinessHours(BaseModel):
    """A target's opening hours, public holidays and dated exceptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(description="IANA time zone of the hours, e.g. Europe/London.")
    weekly: WeeklyHours | None = Field(
        default=None, description="Opening ranges per weekday; a day left out is closed."
    )
    always_open: bool = Field(
        default=False, description="Open 24/7 (instead of 'weekly'); holidays still apply."
    )
    holidays: HolidaySource | None = Field(
        default=None, description="Public holidays that count as closed (period 'holiday')."
    )
    exceptions: list[DateOverride] = Field(
        default_factory=list, description="Dated overrides (special hours or closures)."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            close = difflib.get_close_matches(value, sorted(available_timezones()), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(
                f"unknown time zone {value!r}{hint}: use an IANA name such as Europe/London "
                "or America/New_York"
            ) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BusinessHours:
        if self.always_open and self.weekly is not None:
            raise ValueError("give either 'weekly' hours or 'always_open: true', not both")
        if not self.always_open and self.weekly is None:
            raise ValueError(
                "give 'weekly' hours (e.g. weekly: {mon: ['09:00-17:00']}) or 'always_open: true'"
            )
        seen: set[date] = set()
        for override in self.exceptions:
            if override.date in seen:
                raise ValueError(f"two exceptions for {override.date}; keep one per date")
            seen.add(override.date)
        return self


_ALL_DAY: Spans = ((0, MINUTES_PER_DAY),)


class BusinessCalendar:
    """Answers which period an instant is in for one target's :class:`BusinessHours`.

    Instants must be timezone-aware; results are computed in the target's local wall time.
    Public holiday tables are built per year on first use and kept on this instance.
    """

    def __init__(self, hours: BusinessHours) -> None:
        self.hours = hours
        self.zone = ZoneInfo(hours.timezone)
        weekly = hours.weekly
        self._weekly: tuple[Spans, ...] = tuple(
            _ALL_DAY if weekly is None else _spans(weekly.on(day)) for day in range(7)
        )
        self._overrides: dict[date, Spans] = {
            override.date: _spans(override.hours or []) for override in hours.exceptions
        }
        self._holiday_years: dict[int, dict[date, str]] = {}

    def local_time(self, instant: datetime) -> datetime:
        """``instant`` as the target's local time."""
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError(
                f"instant {instant.isoformat()} has no time zone; pass an aware datetime (UTC)"
            )
        return instant.astimezone(self.zone)

    def holiday_name(self, local_date: date) -> str | None:
        """The public holiday on ``local_date`` (whatever the exceptions say), or None."""
        source = self.hours.holidays
        if source is None:
            return None
        table = self._holiday_years.get(local_date.year)
        if table is None:
            table = self._holiday_years[local_date.year] = source.table(local_date.year)
        return table.get(local_date)

    def period_at(self, instant: datetime) -> Period:
        """HOLIDAY on a public holiday no exception opens; else BUSINESS inside opening
        hours; else AFTER_HOURS."""
        local = self.local_time(instant)
        day = local.date()
        override = self._overrides.get(day)
        # An exception with hours opens a holiday; a closing one leaves it a holiday.
        if self.holiday_name(day) is not None and not override:
            return Period.HOLIDAY
        spans = self._weekly[day.weekday()] if override is None else override
        # Boundaries are whole minutes, so comparing the floored minute is exact: open at
        # 09:00:00 inclusive, closed at 17:30:00 exclusive.
        minute = local.hour * 60 + local.minute
        if any(start <= minute < end for start, end in spans):
            return Period.BUSINESS
        return Period.AFTER_HOURS

    def next_change_after(
        self, instant: datetime, *, horizon: timedelta = DEFAULT_HORIZON
    ) -> datetime | None:
        """The first instant (UTC) after ``instant`` whose period differs from ``instant``'s;
        None when nothing changes within ``horizon``."""
        current = self.period_at(instant)
        first_day = self.local_time(instant).date()
        # Start a day early: around DST transitions at midnight an instant of the previous
        # local day can still lie ahead.
        for offset in range(-1, horizon.days + 1):
            for candidate in self._change_candidates(first_day + timedelta(days=offset)):
                if candidate > instant and self.period_at(candidate) is not current:
                    return candidate
        return None

    def _change_candidates(self, day: date) -> list[datetime]:
        """Every UTC instant of local ``day`` at which the period could change, sorted.

        The period is a function of the local wall time, so it can only change where the
        wall time reaches a boundary (midnight or a range edge: both readings of an
        ambiguous time count) or jumps (a DST transition).
        """
        override = self._overrides.get(day)
        spans = self._weekly[day.weekday()] if override is None else override
        minutes = {0} | {edge for span in spans for edge in span if edge < MINUTES_PER_DAY}
        found: set[datetime] = set()
        for minute in minutes:
            wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone)
            found.update(wall.replace(fold=fold).astimezone(UTC) for fold in (0, 1))
        found.update(self._transitions(day))
        return sorted(found)

    def _transitions(self, day: date) -> Iterator[datetime]:
        """The UTC offset change during local ``day``, if any (found by bisection to the
        second, because zoneinfo does not expose its transition table)."""
        start = datetime.combine(day, time(), tzinfo=self.zone).timestamp()
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=self.zone).timestamp()
        low, high = int(start), int(end)
        before = self._offset(low)
        if before == self._offset(high):
            return
        # Invariant: the offset at ``low`` is the old one, at ``high`` the new one.
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(middle) == before:
                low = middle
            else:
                high = middle
        yield datetime.fromtimestamp(high, UTC)

    def _offset(self, timestamp: int) -> timedelta | None:
        return datetime.fromtimestamp(timestamp, self.zone).utcoffset()
