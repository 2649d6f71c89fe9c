"""Maintenance windows: declared periods when a target's channel is not to be judged.

A window is one-off (``starts_at`` .. ``ends_at``) or recurring (a five-field ``cron`` that
opens it, kept open for ``duration``), in its own ``timezone``, and applies to one target, one
channel kind, or one channel of one target. In ``pause`` mode no contact is sent while it is
open (the slot is recorded as ``skipped: maintenance``); in ``exclude_from_slo`` mode runs go on
but count for no SLO. Windows come from the configuration and from ``cxprobe maintenance add``
(kept in the store, so a change needs no restart); both are :class:`DeclaredWindow` here, which
the runner, the report and the evidence export read alike.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scenarios.durations import Duration, format_duration
from scenarios.schedule import cron_trigger

#: The longest a recurring window may stay open: longer is a window that never ends.
MAX_RECURRING_DURATION = 7 * 86_400.0
_NEXT = timedelta(microseconds=1)


class MaintenanceMode(enum.StrEnum):
    """What a window does to the runs it covers."""

    PAUSE = "pause"  # no contact is sent; the slot is recorded as skipped
    EXCLUDE_FROM_SLO = "exclude_from_slo"  # runs go on, but count for no SLO


class MaintenanceWindow(BaseModel):
    """One declared maintenance window (a ``maintenance`` list item of the configuration)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, description="Why: shown in the report and the evidence.")
    target: str | None = Field(None, description="A targets key; omitted: every target.")
    channel: str | None = Field(None, description="A channel kind; omitted: every channel.")
    starts_at: datetime | None = Field(None, description="One-off: when it opens.")
    ends_at: datetime | None = Field(None, description="One-off: when it closes.")
    cron: str | None = Field(None, description="Recurring: five-field crontab that opens it.")
    duration: Duration | None = Field(None, description="Recurring: how long it stays open.")
    timezone: str = Field("UTC", description="IANA zone of the times and the cron.")
    mode: MaintenanceMode = MaintenanceMode.PAUSE

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from None
        return value

    @model_validator(mode="after")
    def _ends(self) -> MaintenanceWindow:
        if self.target is None and self.channel is None:
            raise ValueError("a maintenance window needs a target, a channel, or both")
        one_off = self.starts_at is not None or self.ends_at is not None
        recurring = self.cron is not None or self.duration is not None
        if one_off == recurring:
            raise ValueError(
                "a maintenance window is either one-off (starts_at and ends_at) "
                "or recurring (cron and duration)"
            )
        if one_off:
            self._check_one_off()
        else:
            self._check_recurring()
        return self

    def _check_one_off(self) -> None:
        if self.starts_at is None:
            raise ValueError("a one-off maintenance window needs starts_at")
        if self.ends_at is None:
            raise ValueError(
                "this maintenance window never ends: give ends_at (a window that never "
                "ends hides the service for good; disable the check instead)"
            )
        if self.local(self.ends_at) <= self.local(self.starts_at):
            raise ValueError("this maintenance window never opens: ends_at must be after starts_at")

    def _check_recurring(self) -> None:
        if self.cron is None:
            raise ValueError("a recurring maintenance window needs cron (when it opens)")
        if self.duration is None or self.duration <= 0:
            raise ValueError(
                "this maintenance window never ends: give duration (how long it stays open "
                "each time its cron fires), e.g. 2h"
            )
        if self.duration > MAX_RECURRING_DURATION:
            raise ValueError(
                f"this maintenance window stays open {format_duration(self.duration)} each "
                f"time, longer than {format_duration(MAX_RECURRING_DURATION)}: it would never "
                "end; shorten duration or disable the check"
            )
        try:
            cron_trigger(self.cron, self.timezone)
        except ValueError as exc:
            raise ValueError(f"invalid cron {self.cron!r}: {exc}") from None

    def local(self, moment: datetime) -> datetime:
        """``moment`` as an aware time: naive times are read in the window's zone."""
        if moment.tzinfo is None:
            return moment.replace(tzinfo=ZoneInfo(self.timezone))
        return moment

    def applies_to(self, target: str, channel: str) -> bool:
        return self.target in (None, target) and self.channel in (None, channel)

    def openings(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The periods (UTC) the window is open that overlap [start, end), in time order."""
        if self.starts_at is not None and self.ends_at is not None:
            opened = self.local(self.starts_at).astimezone(UTC)
            closed = self.local(self.ends_at).astimezone(UTC)
            if opened < end and closed > start:
                yield opened, closed
            return
        assert self.cron is not None and self.duration is not None
        trigger = cron_trigger(self.cron, self.timezone)
        length = timedelta(seconds=self.duration)
        fire = trigger.get_next_fire_time(None, start - length)
        while fire is not None and fire < end:
            opened = fire.astimezone(UTC)
            if opened + length > start:
                yield opened, opened + length
            fire = trigger.get_next_fire_time(fire, fire + _NEXT)

    def open_at(self, moment: datetime) -> bool:
        return any(True for _ in self.openings(moment, moment + _NEXT))

    def describe(self) -> str:
        scope = " ".join(
            part
            for part in (
                f"target {self.target}" if self.target else "",
                f"channel {self.channel}" if self.channel else "",
            )
            if part
        )
        if self.cron is not None and self.duration is not None:
            when = f"cron {self.cron!r} for {format_duration(self.duration)} ({self.timezone})"
        else:
            assert self.starts_at is not None and self.ends_at is not None
            when = (
                f"{self.local(self.starts_at).astimezone(UTC):%Y-%m-%d %H:%M} to "
                f"{self.local(self.ends_at).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            )
        return f"{scope}, {when}, {self.mode}: {self.reason}"


@dataclass(frozen=True)
class DeclaredWindow:
    """A window as the runner and the auditors see it: where it was declared, and whether an
    operator ended it early (``cxprobe maintenance end``)."""

    window: MaintenanceWindow
    #: ``config`` or ``store #<id>``.
    source: str
    ended_at: datetime | None = None

    def openings(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open periods overlapping [start, end), cut short where the window was ended."""
        for opened, closed in self.window.openings(start, end):
            if self.ended_at is not None:
                if opened >= self.ended_at:
                    return
                closed = min(closed, self.ended_at)
                if closed <= start:
                    continue  # ended before the range
            yield opened, closed

    def open_at(self, moment: datetime) -> bool:
        return any(True for _ in self.openings(moment, moment + _NEXT))

    def applies_to(self, target: str, channel: str) -> bool:
        return self.window.applies_to(target, channel)


def open_windows(
    windows: Iterable[DeclaredWindow], target: str, channel: str, moment: datetime
) -> list[DeclaredWindow]:
    """The windows open at ``moment`` for ``target``'s ``channel``; pausing ones first (a
    pause wins over an exclusion when both are open)."""
    found = [w for w in windows if w.applies_to(target, channel) and w.open_at(moment)]
    return sorted(found, key=lambda w: w.window.mode is not MaintenanceMode.PAUSE)
