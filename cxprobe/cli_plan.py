"""``cxprobe plan``: each check's slots for the coming weeks and the hours of the week they
sample (docs/coverage.md).

Registered in :mod:`cxprobe.cli` as ``app.command()(plan)``. A coverage check also says how
many weeks, from the first week shown, until every hour of the week has had a sample on an
ordinary day (holiday samples are marked, and count apart). Every monitor computes the same
plan, so this is what each of them will run.

Exit codes: 0 success; 2 invalid configuration or arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from cxprobe.cli_config import NO_SECRET, ConfigOption, load_or_exit
from cxprobe.cli_output import JsonOption, make_console, markup, plain, print_json
from cxprobe.settings import Check, Config
from scenarios.coverage import HOURS_PER_WEEK, cell_of
from scenarios.durations import format_duration
from scenarios.hours import BusinessCalendar
from scenarios.schedule import Schedule


@dataclass(frozen=True)
class PlannedContact:
    at: str  # UTC, ISO 8601
    local: str  # the target's wall time
    cell: str  # the hour of the week it samples
    holiday: str | None


@dataclass(frozen=True)
class PlannedWeek:
    start: str  # the target's local Monday
    contacts: list[PlannedContact]


@dataclass(frozen=True)
class CheckPlan:
    check: str
    target: str
    channel: str
    schedule: str
    timezone: str
    max_contacts_per_hour: int
    weeks: list[PlannedWeek]
    #: Hours of the week (of 168) the shown weeks sample on ordinary days.
    cells_sampled: int
    #: Coverage only: weeks in which every cell comes round once, without holidays or DST.
    cycle_weeks: int | None = None
    #: Coverage only: weeks from the first shown until every cell had an ordinary sample.
    weeks_to_cover: int | None = None


def describe(schedule: Schedule) -> str:
    if schedule.coverage is not None:
        return f"coverage: {schedule.coverage.samples_per_week} samples a week"
    if schedule.every is not None:
        return f"every {format_duration(schedule.every)}"
    return f"cron '{schedule.cron}' ({schedule.timezone})"


def check_plan(config: Config, check: Check, first_day: datetime, weeks: int) -> CheckPlan:
    """``check``'s slots in ``weeks`` local weeks from the one holding ``first_day``."""
    target = config.targets[check.target]
    calendar = BusinessCalendar(target.business_hours)
    local_day = calendar.local_time(first_day).date()
    monday = local_day - timedelta(days=local_day.weekday())
    planned_weeks: list[PlannedWeek] = []
    sampled: set[int] = set()
    for offset in range(weeks):
        week_day = monday + timedelta(weeks=offset)
        start = datetime.combine(week_day, datetime.min.time(), tzinfo=calendar.zone)
        end = datetime.combine(week_day + timedelta(days=7), datetime.min.time(), calendar.zone)
        contacts = []
        for slot in check.schedule.slots(start.astimezone(UTC), end.astimezone(UTC)):
            local = calendar.local_time(slot)
            cell = cell_of(slot, calendar.zone)
            holiday = calendar.holiday_name(local.date())
            if holiday is None:
                sampled.add(cell.number)
            contacts.append(
                PlannedContact(
                    at=slot.isoformat(),
                    local=local.strftime("%a %Y-%m-%d %H:%M %Z"),
                    cell=str(cell),
                    holiday=holiday,
                )
            )
        planned_weeks.append(PlannedWeek(start=week_day.isoformat(), contacts=contacts))
    plan = check.schedule.plan
    return CheckPlan(
        check=check.id,
        target=check.target,
        channel=check.channel,
        schedule=describe(check.schedule),
        timezone=target.business_hours.timezone,
        max_contacts_per_hour=target.contacts_per_hour(),
        weeks=planned_weeks,
        cells_sampled=len(sampled),
        cycle_weeks=None if plan is None else plan.cycle_weeks,
        weeks_to_cover=None if plan is None else plan.weeks_to_cover(plan.week_of(first_day)),
    )


def _print_plan(console: Console, plan: CheckPlan, weeks: int) -> None:
    console.print(
        markup(
            "[bold]{}[/] · {} · {} · {} · {} · at most {} contact(s) an hour",
            plan.check,
            plan.target,
            plan.channel,
            plan.schedule,
            plan.timezone,
            plan.max_contacts_per_hour,
        )
    )
    span = "this week" if weeks == 1 else f"these {weeks} weeks"
    summary = f"  {plan.cells_sampled} of {HOURS_PER_WEEK} hours of the week sampled {span}"
    if plan.cycle_weeks is not None:
        covered = (
            f"every hour sampled within {plan.weeks_to_cover} week(s) from the week of "
            f"{plan.weeks[0].start}"
            if plan.weeks_to_cover is not None
            else "not every hour is sampled within two plan periods"
        )
        summary += f"; {covered} (every hour comes round in {plan.cycle_weeks} week(s))"
    console.print(plain(summary))
    for week in plan.weeks:
        console.print(plain(f"  week of {week.start}: {len(week.contacts)} contact(s)"))
        for contact in week.contacts:
            holiday = f"  holiday: {contact.holiday}" if contact.holiday else ""
            console.print(plain(f"    {contact.local}  ({contact.cell}){holiday}"))


def plan(
    config: ConfigOption,
    weeks: Annotated[
        int, typer.Option("--weeks", min=1, max=52, help="How many weeks to show.")
    ] = 1,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="Show the weeks from the one holding this date (2026-12-21); default: today.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print each enabled check's slots for the week (coverage: how many weeks until every
    hour of the week has a sample)."""
    loaded = load_or_exit(config, make_console(stderr=True), secrets=NO_SECRET)
    first_day = _first_day(start)
    plans = [
        check_plan(loaded, check, first_day, weeks) for check in loaded.checks if check.enabled
    ]
    if as_json:
        print_json({"checks": plans})
        return
    console = make_console()
    for one in plans:
        _print_plan(console, one, weeks)


def _first_day(start: str | None) -> datetime:
    if start is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(start)
    except ValueError:
        raise typer.BadParameter(
            f"{start!r} is not an ISO 8601 date (e.g. 2026-12-21)", param_hint="--start"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
