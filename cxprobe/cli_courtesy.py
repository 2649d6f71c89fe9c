"""``cxprobe maintenance add|list|end`` and ``cxprobe optout list|clear`` (README, "Courtesy
and cost").

Registered in :mod:`cxprobe.cli`. Both work on the store the configuration names, which every
monitor on it reads before each claim: a window added or ended, or an opt-out cleared, takes
effect at the next slot, with no restart.

Exit codes: 0 success; 2 invalid configuration or arguments (the message says which and why);
1 ``maintenance end`` of a window that is not in force.
"""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from cxprobe.cli_config import STORE_SECRETS, ConfigOption, load_or_exit
from cxprobe.cli_output import (
    JsonOption,
    make_console,
    markup,
    plain,
    print_json,
    typer_markup_mode,
)
from cxprobe.courtesy import windows_in_force
from cxprobe.settings import Config
from cxprobe.store.courtesy import STORE_SOURCE, OptOut
from cxprobe.store.database import EvidenceStore
from probes import CHANNEL_TYPES
from scenarios.maintenance import DeclaredWindow, MaintenanceMode, MaintenanceWindow

maintenance_app = typer.Typer(
    name="maintenance",
    help="Maintenance windows: no contacts (or no SLO) while one is open; no restart needed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=typer_markup_mode(),
)
optout_app = typer.Typer(
    name="optout",
    help="Recipients paused by an opt-out (STOP, Twilio 21610) or a permanent bounce.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=typer_markup_mode(),
)

TargetOption = Annotated[str | None, typer.Option(help="A targets key of the configuration.")]
ChannelOption = Annotated[str | None, typer.Option(help="A channel kind, e.g. sms.")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who does it (kept with the record); default: $USER.")
]


def _operator(by: str | None) -> str:
    return by or getpass.getuser()


def _check_scope(config: Config, target: str | None, channel: str | None) -> list[str]:
    problems = []
    if target is not None and target not in config.targets:
        problems.append(f"--target {target!r}: not a target of the configuration")
    if channel is not None and channel not in CHANNEL_TYPES:
        problems.append(f"--channel {channel!r}: not a channel kind ({', '.join(CHANNEL_TYPES)})")
    return problems


def _exit_with(console: Console, problems: list[str]) -> None:
    for problem in problems:
        console.print(markup("[red]{}[/]", problem))
    raise typer.Exit(2)


@maintenance_app.command("add")
def add_command(
    config: ConfigOption,
    reason: Annotated[str, typer.Option(help="Why: shown in the report and the evidence.")],
    target: TargetOption = None,
    channel: ChannelOption = None,
    start: Annotated[
        datetime | None, typer.Option(help="One-off: when it opens (default: now).")
    ] = None,
    end: Annotated[datetime | None, typer.Option(help="One-off: when it closes.")] = None,
    cron: Annotated[str | None, typer.Option(help="Recurring: crontab that opens it.")] = None,
    duration: Annotated[str | None, typer.Option(help="Recurring: how long, e.g. 2h.")] = None,
    timezone: Annotated[str, typer.Option(help="IANA zone of the times and cron.")] = "UTC",
    mode: Annotated[MaintenanceMode, typer.Option(help="pause or exclude_from_slo.")] = (
        MaintenanceMode.PAUSE
    ),
    by: ByOption = None,
) -> None:
    """Declare a maintenance window (one-off: --end; recurring: --cron and --duration)."""
    errors = make_console(stderr=True)
    loaded = load_or_exit(config, errors, secrets=STORE_SECRETS)
    if problems := _check_scope(loaded, target, channel):
        _exit_with(errors, problems)
    if cron is None and duration is None and start is None:
        start = datetime.now(UTC)
    try:
        window = MaintenanceWindow(
            reason=reason,
            target=target,
            channel=channel,
            starts_at=start,
            ends_at=end,
            cron=cron,
            duration=duration,  # parsed by the model ("2h")
            timezone=timezone,
            mode=mode,
        )
    except ValidationError as exc:
        _exit_with(errors, [error["msg"].removeprefix("Value error, ") for error in exc.errors()])
        return

    async def add() -> int:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            return await store.add_maintenance(window, created_by=_operator(by))

    window_id = asyncio.run(add())
    make_console().print(plain(f"maintenance window {window_id} added: {window.describe()}"))


@maintenance_app.command("list")
def list_command(
    config: ConfigOption,
    ended: Annotated[bool, typer.Option("--all", help="Also windows ended early.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Every window in force (the configuration's and the store's), and whether it is open."""
    loaded = load_or_exit(config, make_console(stderr=True), secrets=STORE_SECRETS)

    async def windows() -> list[DeclaredWindow]:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            declared = await windows_in_force(loaded, store)
            if ended:
                declared += [
                    w for w in await store.maintenance_windows(include_ended=True) if w.ended_at
                ]
            return declared

    now = datetime.now(UTC)
    found = asyncio.run(windows())
    if as_json:
        print_json({"windows": [_window_document(declared, now) for declared in found]})
        return
    console = make_console()
    for declared in found:
        state = "OPEN" if declared.open_at(now) else "closed"
        if declared.ended_at is not None:
            state = f"ended {declared.ended_at:%Y-%m-%d %H:%M} UTC"
        console.print(plain(f"{declared.source}: [{state}] {declared.window.describe()}"))
    if not found:
        console.print("no maintenance windows")


def _window_document(declared: DeclaredWindow, now: datetime) -> dict[str, Any]:
    """One window of ``maintenance list --json``."""
    source = declared.source
    return {
        "id": int(source.removeprefix(STORE_SOURCE)) if source.startswith(STORE_SOURCE) else None,
        "source": source,
        "open": declared.ended_at is None and declared.open_at(now),
        "ended_at": declared.ended_at,
        "description": declared.window.describe(),
        **declared.window.model_dump(mode="json"),
    }


@maintenance_app.command("end")
def end_command(
    config: ConfigOption,
    window_id: Annotated[int, typer.Argument(help="The window's id (cxprobe maintenance list).")],
) -> None:
    """End a window added with ``maintenance add`` now (a recurring one for good)."""
    loaded = load_or_exit(config, make_console(stderr=True), secrets=STORE_SECRETS)

    async def end() -> bool:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            return await store.end_maintenance(window_id)

    if not asyncio.run(end()):
        make_console(stderr=True).print(
            f"[red]no maintenance window {window_id} in force in the store[/] (windows of the "
            "configuration end by editing the file)"
        )
        raise typer.Exit(1)
    make_console().print(f"maintenance window {window_id} ended")


@optout_app.command("list")
def optout_list_command(
    config: ConfigOption,
    cleared: Annotated[bool, typer.Option("--all", help="Also opt-outs already cleared.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Recipients no contact is sent to, and why."""
    loaded = load_or_exit(config, make_console(stderr=True), secrets=STORE_SECRETS)

    async def listed() -> list[OptOut]:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            return await store.opt_outs(include_cleared=cleared)

    found = asyncio.run(listed())
    if as_json:
        print_json({"opt_outs": found})
        return
    console = make_console()
    for o in found:
        console.print(
            plain(
                f"{o.target} {o.channel} {o.recipient}: since {o.created_at:%Y-%m-%d %H:%M} UTC"
                f" (run {o.run_id}): {o.reason}"
                + (
                    ""
                    if o.cleared_at is None
                    else f" [cleared {o.cleared_at:%Y-%m-%d %H:%M} UTC by {o.cleared_by}]"
                )
            )
        )
    if not found:
        console.print("no opt-outs")


@optout_app.command("clear")
def optout_clear_command(
    config: ConfigOption,
    target: Annotated[str, typer.Option(help="The target whose recipient may be contacted.")],
    channel: ChannelOption = None,
    by: ByOption = None,
) -> None:
    """Re-enable contacts to a target's recipient (on one channel, or all), e.g. after the
    brand's team confirmed the number may be probed again."""
    errors = make_console(stderr=True)
    loaded = load_or_exit(config, errors, secrets=STORE_SECRETS)
    if problems := _check_scope(loaded, target, channel):
        _exit_with(errors, problems)

    async def clear() -> int:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            return await store.clear_opt_outs(target, channel, by=_operator(by))

    cleared = asyncio.run(clear())
    make_console().print(
        plain(f"{cleared} opt-out(s) cleared for {target}" + (f" {channel}" if channel else ""))
    )
