"""The desk's notion of "now" (shiftable for after-hours runs) and its weekly opening hours."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, model_validator

Period = Literal["business", "after_hours"]

_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class OpeningRange(BaseModel):
    """One opening interval of a day, written "HH:MM-HH:MM" in the profile; end may be 24:00."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start_minute: int
    end_minute: int

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _RANGE.match(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not an opening range like '09:00-17:30'")
        sh, sm, eh, em = (int(g) for g in match.groups())
        start, end = sh * 60 + sm, eh * 60 + em
        if sm > 59 or em > 59 or start >= 24 * 60 or end > 24 * 60:
            raise ValueError(f"{value!r} has an invalid time of day")
        if start >= end:
            raise ValueError(
                f"{value!r} ends before it starts; split overnight hours over two days"
            )
        return {"start_minute": start, "end_minute": end}

    def contains(self, minute_of_day: float) -> bool:
        return self.start_minute <= minute_of_day < self.end_minute


class WeeklyHours(BaseModel):
    """Opening hours per weekday in the profile's zone; an absent or empty day is closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mon: list[OpeningRange] = []
    tue: list[OpeningRange] = []
    wed: list[OpeningRange] = []
    thu: list[OpeningRange] = []
    fri: list[OpeningRange] = []
    sat: list[OpeningRange] = []
    sun: list[OpeningRange] = []

    def period_at(self, instant: datetime, zone: ZoneInfo) -> Period:
        local = instant.astimezone(zone)
        ranges: list[OpeningRange] = getattr(self, _DAYS[local.weekday()])
        minute = local.hour * 60 + local.minute + local.second / 60
        return "business" if any(r.contains(minute) for r in ranges) else "after_hours"


class DeskClock:
    """Wall-clock UTC shifted by an adjustable offset.

    Only the desk's decisions (business hours) use the shifted time; timestamps written to
    headers and ground truth stay real so the monitor can compare them with its own clock.
    """

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = offset_seconds

    def now(self) -> datetime:
        return real_now() + timedelta(seconds=self.offset_seconds)


def real_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(instant: datetime) -> str:
    """UTC ISO 8601 with microseconds always present, e.g. 2024-05-01T09:00:00.000000+00:00."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds")
