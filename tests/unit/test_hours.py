"""Business hours: periods at instants (weekdays, range edges, DST, holidays, exceptions), the
next change, and the messages users see for invalid hours."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from scenarios.hours import BusinessCalendar, BusinessHours
from scenarios.model import Period


def calendar(**section: Any) -> BusinessCalendar:
    section.setdefault("timezone", "Europe/London")
    if "always_open" not in section:
        section.setdefault("weekly", {"mon": ["09:00-17:30"], "sat": ["10:00-14:00"]})
    return BusinessCalendar(BusinessHours.model_validate(section))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# 2026-01-05 is a Monday; January is GMT, so UTC and London wall time agree.


@pytest.mark.parametrize(
    ("instant", "period"),
    [
        ("2026-01-05 08:59:59", Period.AFTER_HOURS),
        ("2026-01-05 09:00:00", Period.BUSINESS),  # open is inclusive
        ("2026-01-05 17:29:59", Period.BUSINESS),
        ("2026-01-05 17:30:00", Period.AFTER_HOURS),  # close is exclusive
        ("2026-01-06 12:00:00", Period.AFTER_HOURS),  # Tuesday: not listed, closed
        ("2026-01-10 10:00:00", Period.BUSINESS),  # Saturday
        ("2026-01-11 12:00:00", Period.AFTER_HOURS),  # Sunday
    ],
)
def test_period_by_weekday_and_range_edges(instant: str, period: Period) -> None:
    assert calendar().period_at(utc(instant)) is period


def test_both_range_spellings_and_24_00() -> None:
    cal = calendar(weekly={"mon": [{"open": "22:00", "close": "24:00"}], "tue": ["00:00-01:00"]})
    assert cal.period_at(utc("2026-01-05 23:59:59")) is Period.BUSINESS
    assert cal.period_at(utc("2026-01-06 00:30:00")) is Period.BUSINESS
    assert cal.period_at(utc("2026-01-06 01:00:00")) is Period.AFTER_HOURS
    # Monday 22:00 to Tuesday 01:00 is one stretch: midnight is not a change.
    assert cal.next_change_after(utc("2026-01-05 22:00:00")) == utc("2026-01-06 01:00:00")


def test_hours_are_local_wall_time_in_summer_and_winter() -> None:
    cal = calendar()
    # 2026-07-06 is a Monday in BST (UTC+1): 09:00 local is 08:00 UTC.
    assert cal.period_at(utc("2026-07-06 07:59:59")) is Period.AFTER_HOURS
    assert cal.period_at(utc("2026-07-06 08:00:00")) is Period.BUSINESS
    assert cal.period_at(utc("2026-07-06 16:30:00")) is Period.AFTER_HOURS


def test_dst_days_in_europe_london() -> None:
    # Clocks go forward on Sunday 2026-03-29 at 01:00 UTC and back on 2026-10-25 at 01:00 UTC.
    cal = calendar(weekly={"sun": ["00:30-03:00"]})
    spring = utc("2026-03-29 00:30:00")
    assert cal.period_at(spring) is Period.BUSINESS
    assert cal.local_time(utc("2026-03-29 01:00:00")).hour == 2  # 01:00-02:00 never happens
    # 03:00 BST is 02:00 UTC: open 2.5 hours of wall time, 1.5 hours of real time.
    assert cal.next_change_after(spring) == utc("2026-03-29 02:00:00")
    autumn = utc("2026-10-24 23:30:00")  # 00:30 BST
    assert cal.period_at(autumn) is Period.BUSINESS
    # 01:00-02:00 happens twice; 03:00 GMT is 03:00 UTC: 3.5 hours of real time.
    assert cal.period_at(utc("2026-10-25 01:30:00")) is Period.BUSINESS
    assert cal.next_change_after(autumn) == utc("2026-10-25 03:00:00")


def test_opening_inside_the_spring_forward_gap_opens_at_the_transition() -> None:
    cal = calendar(weekly={"sun": ["01:30-05:00"]})
    # Wall time jumps from 01:00 GMT to 02:00 BST, past 01:30, at 01:00 UTC.
    assert cal.period_at(utc("2026-03-29 00:59:59")) is Period.AFTER_HOURS
    assert cal.period_at(utc("2026-03-29 01:00:00")) is Period.BUSINESS
    assert cal.next_change_after(utc("2026-03-29 00:00:00")) == utc("2026-03-29 01:00:00")


GB_HOLIDAYS = {"country": "GB", "subdivision": "ENG"}
ALL_WEEK = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def test_public_holiday() -> None:
    cal = calendar(weekly=ALL_WEEK, holidays=GB_HOLIDAYS)
    assert cal.period_at(utc("2026-12-25 12:00:00")) is Period.HOLIDAY
    assert cal.period_at(utc("2026-12-25 20:00:00")) is Period.HOLIDAY  # all day
    assert cal.holiday_name(date(2026, 12, 25)) == "Christmas Day"
    assert cal.holiday_name(date(2026, 12, 23)) is None
    assert cal.period_at(utc("2026-12-23 12:00:00")) is Period.BUSINESS
    # Without a holiday source the same day is an ordinary Friday.
    assert calendar(weekly=ALL_WEEK).period_at(utc("2026-12-25 12:00:00")) is Period.BUSINESS


def test_holiday_is_the_local_date() -> None:
    # 2026-12-25 00:30 in Auckland is still 2026-12-24 in UTC.
    cal = calendar(timezone="Pacific/Auckland", always_open=True, holidays={"country": "NZ"})
    assert cal.period_at(utc("2026-12-24 11:30:00")) is Period.HOLIDAY
    assert cal.period_at(utc("2026-12-24 10:30:00")) is Period.BUSINESS


def test_holiday_tables_are_built_per_year_on_use() -> None:
    cal = calendar(weekly=ALL_WEEK, holidays=GB_HOLIDAYS)
    assert cal.holiday_name(date(2027, 1, 1)) == "New Year's Day"
    assert cal.holiday_name(date(2030, 12, 25)) == "Christmas Day"
    assert sorted(cal._holiday_years) == [2027, 2030]


def test_exceptions_open_a_holiday_and_close_a_weekday() -> None:
    cal = calendar(
        weekly=ALL_WEEK,
        holidays=GB_HOLIDAYS,
        exceptions=[
            {"date": "2026-12-25", "hours": ["10:00-12:00"], "note": "skeleton crew"},
            {"date": "2026-12-24", "hours": ["09:00-13:00"], "note": "Christmas Eve"},
            {"date": "2026-12-29", "closed": True},
            {"date": "2026-12-26", "closed": True},
        ],
    )
    assert cal.period_at(utc("2026-12-25 11:00:00")) is Period.BUSINESS
    # An opened holiday is an ordinary day outside its special hours.
    assert cal.period_at(utc("2026-12-25 13:00:00")) is Period.AFTER_HOURS
    assert cal.period_at(utc("2026-12-24 12:59:59")) is Period.BUSINESS
    assert cal.period_at(utc("2026-12-24 13:00:00")) is Period.AFTER_HOURS
    assert cal.period_at(utc("2026-12-29 12:00:00")) is Period.AFTER_HOURS  # a Tuesday
    # Closing a holiday leaves it a holiday.
    assert cal.period_at(utc("2026-12-26 12:00:00")) is Period.HOLIDAY


def test_next_change_after() -> None:
    cal = calendar(holidays=GB_HOLIDAYS)
    assert cal.next_change_after(utc("2026-01-05 10:00:00")) == utc("2026-01-05 17:30:00")
    # Monday evening: closed through Tuesday to Friday, opens Saturday 10:00.
    assert cal.next_change_after(utc("2026-01-05 17:30:00")) == utc("2026-01-10 10:00:00")
    # Christmas Day (Friday) runs into Boxing Day (Saturday); the holiday ends at midnight
    # into an ordinary closed Sunday, not at Saturday's usual opening time.
    assert cal.next_change_after(utc("2026-12-25 08:00:00")) == utc("2026-12-27 00:00:00")
    assert cal.next_change_after(utc("2026-12-24 23:00:00")) == utc("2026-12-25 00:00:00")
    assert cal.period_at(utc("2026-12-25 00:00:00")) is Period.HOLIDAY


def test_next_change_after_returns_an_aware_utc_instant_and_none_when_nothing_changes() -> None:
    found = calendar().next_change_after(utc("2026-01-05 10:00:00"))
    assert found is not None and found.utcoffset() is not None
    assert calendar(always_open=True).next_change_after(utc("2026-01-05 10:00:00")) is None
    assert calendar(weekly={}).next_change_after(utc("2026-01-05 10:00:00")) is None
    # A 24/7 desk that observes holidays changes at the next one.
    holiday_desk = calendar(always_open=True, holidays=GB_HOLIDAYS)
    assert holiday_desk.next_change_after(utc("2026-06-01 00:00:00")) == utc("2026-08-30 23:00")


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        calendar().period_at(datetime(2026, 1, 5, 9, 0))


def errors(section: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        BusinessHours.model_validate(section)
    return [
        (error["loc"], error["msg"].removeprefix("Value error, "))
        for error in caught.value.errors(include_url=False)
    ]


@pytest.mark.parametrize(
    ("section", "where", "message"),
    [
        (
            {"timezone": "Europe/Londn", "weekly": {}},
            ("timezone",),
            "unknown time zone 'Europe/Londn' (did you mean Europe/London",
        ),
        (
            {"timezone": "UTC", "weekly": {"mon": ["9-17"]}},
            ("weekly", "mon", 0),
            "opening hours '9-17' are not written 'HH:MM-HH:MM' on the 24-hour clock",
        ),
        (
            {"timezone": "UTC", "weekly": {"mon": ["09:00-17:00 "]}},
            None,
            None,
        ),
        (
            {"timezone": "UTC", "weekly": {"mon": ["09:00-17:00, 18:00-19:00"]}},
            ("weekly", "mon", 0),
            "are not written 'HH:MM-HH:MM'",
        ),
        (
            {"timezone": "UTC", "weekly": {"mon": ["17:00-09:00"]}},
            ("weekly", "mon", 0),
            "closing time 09:00 is not after opening time 17:00; a range cannot cross midnight: "
            "write '17:00-24:00' on this day and '00:00-09:00' on the next",
        ),
        (
            {"timezone": "UTC", "weekly": {"tue": [{"open": "10:00", "close": "10:00"}]}},
            ("weekly", "tue", 0),
            "closing time 10:00 is not after opening time 10:00",
        ),
        (
            {"timezone": "UTC", "weekly": {"mon": [{"open": "9:00", "close": "17:00"}]}},
            ("weekly", "mon", 0, "open"),
            "opening time '9:00' is not HH:MM between 00:00 and 23:59",
        ),
        (
            {"timezone": "UTC", "weekly": {"mon": ["09:00-13:00", "12:00-17:00"]}},
            ("weekly", "mon"),
            "opening hours 09:00-13:00 and 12:00-17:00 overlap; merge them into one range",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"country": "XX"}},
            ("holidays",),
            "unknown holiday country 'XX': use an ISO 3166-1 alpha-2 code the holidays package "
            "supports, e.g. GB, US, DE, FR",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "holidays": {"country": "GB", "subdivision": "LDN"}},
            ("holidays",),
            "unknown subdivision 'LDN' of holiday country GB; supported: ENG, NIR, SCT, WLS",
        ),
        (
            {"timezone": "UTC"},
            (),
            "give 'weekly' hours (e.g. weekly: {mon: ['09:00-17:00']}) or 'always_open: true'",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "always_open": True},
            (),
            "give either 'weekly' hours or 'always_open: true', not both",
        ),
        (
            {"timezone": "UTC", "weekly": {}, "exceptions": [{"date": "2026-12-24"}]},
            ("exceptions", 0),
            "exception for 2026-12-24 needs 'hours' (e.g. ['09:00-13:00']) or 'closed: true'",
        ),
        (
            {
                "timezone": "UTC",
                "weekly": {},
                "exceptions": [{"date": "2026-12-24", "closed": True}] * 2,
            },
            (),
            "two exceptions for 2026-12-24; keep one per date",
        ),
        (
            {"timezone": "UTC", "weekly": {"monday": ["09:00-17:00"]}},
            ("weekly", "monday"),
            "Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_hours_say_what_is_wrong(
    section: dict[str, Any], where: tuple[int | str, ...] | None, message: str | None
) -> None:
    if where is None:  # surrounding blanks are tolerated
        BusinessHours.model_validate(section)
        return
    found = errors(section)
    assert len(found) == 1, found
    location, text = found[0]
    assert location == where
    assert message is not None and message in text
