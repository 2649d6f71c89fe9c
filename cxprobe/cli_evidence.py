"""``cxprobe evidence export|verify|purge`` and ``cxprobe report`` (docs/evidence.md).

Registered in :mod:`cxprobe.cli` as ``app.add_typer(evidence_app, name="evidence")`` and
``app.command()(report)``.

Exit codes: 0 success; 1 ``verify`` found a problem, or ``export`` noticed the store itself
was altered (the export is written all the same, and says so); 2 invalid configuration,
arguments or an unusable output location.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cxprobe import __version__
from cxprobe.cli_config import STORE_SECRETS, ConfigOption, load_or_exit
from cxprobe.cli_output import (
    JsonOption,
    json_ready,
    make_console,
    markup,
    plain,
    print_json,
    typer_markup_mode,
)
from cxprobe.courtesy import windows_for_audit
from cxprobe.evidence.export import (
    ExportError,
    ExportOptions,
    ExportResult,
    ScheduledCheck,
    export_evidence,
)
from cxprobe.evidence.format import FORMATS
from cxprobe.evidence.verify import verify_export
from cxprobe.report.build import ReportOptions, build_report, write_report
from cxprobe.report.model import Report
from cxprobe.settings import Config
from cxprobe.store.chain import Scope, utc_text
from cxprobe.store.database import EvidenceStore
from cxprobe.store.retention import PurgePolicy, PurgeReport, Retention
from scenarios.durations import format_duration, parse_duration

evidence_app = typer.Typer(
    name="evidence",
    help="Export the evidence store with an integrity manifest, verify an export, purge old "
    "runs (docs/evidence.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=typer_markup_mode(),
)

FromOption = Annotated[
    str,
    typer.Option(
        "--from",
        help="Start of the period (slot time, inclusive): 2025-03-01, 2025-03-01T08:00Z, or an "
        "age such as 7d. Times without a zone are UTC.",
        show_default=False,
    ),
]
ToOption = Annotated[
    str | None,
    typer.Option("--to", help="End of the period (exclusive); default: now.", show_default=False),
]
TargetOption = Annotated[
    list[str] | None,
    typer.Option("--target", help="Only this target (repeatable).", show_default=False),
]
ChannelOption = Annotated[
    list[str] | None,
    typer.Option("--channel", help="Only this channel kind (repeatable).", show_default=False),
]

_AGE = re.compile(r"^\d+(?:\.\d+)?(?:ms|[smhd])(?:\d.*)?$")


def parse_instant(text: str, now: datetime, option: str) -> datetime:
    """An ISO 8601 date or time (UTC when it has no zone), or an age before ``now``."""
    value = text.strip()
    if _AGE.match(value):
        return now - timedelta(seconds=parse_duration(value))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither an ISO 8601 date/time (2025-03-01, 2025-03-01T08:00Z) nor "
            "an age (7d, 36h)",
            param_hint=option,
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def scope_of(
    start: str, end: str | None, targets: list[str] | None, channels: list[str] | None
) -> Scope:
    now = datetime.now(UTC)
    first = parse_instant(start, now, "--from")
    last = now if end is None else parse_instant(end, now, "--to")
    if last <= first:
        raise typer.BadParameter(
            f"the period is empty: --to {utc_text(last)} is not after --from {utc_text(first)}"
        )
    return Scope(first, last, tuple(targets or ()), tuple(channels or ()))


def check_filters(config: Config, scope: Scope, path: Path) -> None:
    """Unknown target or channel names in the filters are typos: say so instead of exporting
    nothing."""
    kinds = {check.channel for check in config.checks}
    unknown = [t for t in scope.targets if t not in config.targets] + [
        c for c in scope.channels if c not in kinds
    ]
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)}: not a target or a probed channel in {path} (targets: "
            f"{', '.join(config.targets)}; channels: {', '.join(sorted(kinds))})"
        )


def schedules_of(config: Config) -> list[ScheduledCheck]:
    return [
        ScheduledCheck(
            check_id=check.id,
            target=check.target,
            channel=check.channel,
            locations=tuple(check.locations) if check.locations else None,
            schedule=check.schedule,
            settle=timedelta(seconds=check.schedule.jitter + 60),
        )
        for check in config.checks
        if check.enabled
    ]


def zones_of(config: Config) -> dict[str, str]:
    return {name: target.business_hours.timezone for name, target in config.targets.items()}


@evidence_app.command("export")
def export_command(
    config: ConfigOption,
    start: FromOption,
    out: Annotated[
        Path, typer.Option("--out", help="A new (or empty) directory.", show_default=False)
    ],
    end: ToOption = None,
    target: TargetOption = None,
    channel: ChannelOption = None,
    file_format: Annotated[
        str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")
    ] = "csv",
) -> None:
    """Export the runs of a period (by slot time) with their evidence, the chain entries that
    seal them, gaps, and a manifest of SHA-256 digests."""
    errors = make_console(stderr=True)
    loaded = load_or_exit(config, errors, secrets=STORE_SECRETS)
    scope = scope_of(start, end, target, channel)
    check_filters(loaded, scope, config)
    if file_format not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    options = ExportOptions(
        scope=scope,
        file_format=file_format,
        out=out,
        now=datetime.now(UTC),
        zones=zones_of(loaded),
        config_sha256=loaded.sha256,
        version=__version__,
        schedules=schedules_of(loaded),
    )

    async def run() -> ExportResult:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            maintenance = await windows_for_audit(loaded, store, scope.targets, scope.channels)
            return await export_evidence(
                store, dataclasses.replace(options, maintenance=maintenance)
            )

    try:
        result = asyncio.run(run())
    except ExportError as exc:
        errors.print(markup("[red]{}[/]", exc))
        raise typer.Exit(2) from None
    span = result.chain_span
    make_console().print(
        plain(
            f"exported {result.runs} run(s) ({result.open_runs} still open), "
            f"{result.attachments} attachment(s), "
            f"{sum(g.kind == 'no_run' for g in result.gaps)} claimed slot(s) without a run, "
            f"{sum(g.kind == 'unclaimed' for g in result.gaps)} unclaimed slot(s) to {out}\n"
            f"chain entries {'none' if span is None else f'{span[0]}..{span[1]}'}, head "
            f"{result.head[0]} {result.head[1]}\nmanifest sha256 {result.manifest_sha256}"
        )
    )
    if result.problems:
        errors.print("[bold red]the store itself looks altered:[/]")
        for problem in result.problems:
            errors.print(plain(f"  - {problem}"))
        raise typer.Exit(1)


@evidence_app.command("verify")
def verify_command(
    directory: Annotated[Path, typer.Argument(help="An export directory.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Check an export: every file against the manifest, every run against its seal, the
    chain links, and that no run of the period is missing. Exit 0 when intact, 1 when not."""
    result = verify_export(directory)
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "directory": directory,
                "files": result.files,
                "runs": result.runs,
                "problems": result.problems,
                "notes": result.notes,
            }
        )
        if not result.ok:
            raise typer.Exit(1)
        return
    console = make_console()
    for note in result.notes:
        console.print(plain(f"note: {note}"))
    if result.ok:
        console.print(
            plain(f"OK: {directory}: {result.files} file(s), {result.runs} run(s), chain intact")
        )
        return
    errors = make_console(stderr=True)
    errors.print(markup("[bold red]FAILED: {}: {} problem(s)[/]", directory, len(result.problems)))
    for problem in result.problems:
        errors.print(plain(f"  - {problem}"))
    raise typer.Exit(1)


def retention_of(config: Config) -> Retention:
    """The config's ``retention`` section, or the defaults when the config has none."""
    configured = getattr(config, "retention", None)
    return configured if isinstance(configured, Retention) else Retention()


@evidence_app.command("purge")
def purge_command(
    config: ConfigOption,
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Purge successful runs older than this (default: retention config, 90d)."
        ),
    ] = None,
    keep_failures: Annotated[
        str | None,
        typer.Option(help="Keep failed/breached/misrouted runs this long (default 365d)."),
    ] = None,
    require_exported: Annotated[
        bool | None,
        typer.Option(
            "--require-exported/--no-require-exported",
            help="Refuse to purge runs whose current record is in no export (default: on).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Say what would be purged; change nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete runs past retention (failures kept longer), recording each purge in the chain."""
    errors = make_console(stderr=True)
    loaded = load_or_exit(config, errors, secrets=STORE_SECRETS)
    configured = retention_of(loaded)
    try:
        retention = Retention.model_validate(
            configured.model_dump()
            | {
                name: value
                for name, value in (
                    ("older_than", older_than),
                    ("keep_failures", keep_failures),
                    ("require_exported", require_exported),
                )
                if value is not None
            }
        )
    except ValueError as exc:
        errors.print(markup("[red]{}[/]", exc))
        raise typer.Exit(2) from None
    policy = retention.policy()

    async def run() -> PurgeReport:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            return await store.purge(policy, dry_run=dry_run)

    report = asyncio.run(run())
    if as_json:
        print_json({"policy": policy.as_json(datetime.now(UTC)), **json_ready(report)})
        return
    print_purge(make_console(), report, policy)


def print_purge(console: Console, report: PurgeReport, policy: PurgePolicy) -> None:
    verb = "would purge" if report.dry_run else "purged"
    console.print(
        f"{verb} {len(report.purged)} run(s) (successes older than "
        f"{format_duration(policy.older_than.total_seconds())}, failures older than "
        f"{format_duration(policy.keep_failures.total_seconds())}); kept "
        f"{report.kept_failures} younger failure(s)",
        highlight=False,
    )
    if report.protected_unexported:
        console.print(
            f"kept {len(report.protected_unexported)} run(s) never exported in their current "
            "form (run `cxprobe evidence export` first, or pass --no-require-exported)",
            highlight=False,
        )
    if report.unsealed:
        console.print(f"kept {len(report.unsealed)} closed run(s) with no seal", highlight=False)
    for entry in report.entries:
        console.print(
            plain(f"recorded as chain entry {entry.seq} ({entry.note}) {entry.entry_hash}")
        )


def report(
    config: ConfigOption,
    start: FromOption,
    out: Annotated[
        Path,
        typer.Option("--out", help="report.pdf or report.html (by suffix).", show_default=False),
    ],
    end: ToOption = None,
    target: TargetOption = None,
    channel: ChannelOption = None,
    incidents: Annotated[int, typer.Option(help="How many worst incidents to show.")] = 8,
) -> None:
    """Write the audit report of a period: SLA compliance, hour-of-week heatmaps, after-hours
    availability, routing, the channels' own measures (a heard call's audio), answer quality
    and rubric scores, competitor ranking, worst incidents, cross-channel comparison,
    methodology."""
    errors = make_console(stderr=True)
    loaded = load_or_exit(config, errors, secrets=STORE_SECRETS)
    scope = scope_of(start, end, target, channel)
    check_filters(loaded, scope, config)
    if out.suffix.lower() not in (".pdf", ".html", ".htm"):
        raise typer.BadParameter("the report is written as .pdf or .html", param_hint="--out")
    options = ReportOptions(
        scope=scope,
        now=datetime.now(UTC),
        zones=zones_of(loaded),
        target_names={name: target.name for name, target in loaded.targets.items()},
        competitors=frozenset(name for name, target in loaded.targets.items() if target.competitor),
        config_sha256=loaded.sha256,
        version=__version__,
        incidents=incidents,
    )

    async def build() -> Report:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            maintenance = await windows_for_audit(loaded, store, scope.targets, scope.channels)
            return await build_report(store, dataclasses.replace(options, maintenance=maintenance))

    document = asyncio.run(build())
    write_report(document, out)
    make_console().print(plain(f"wrote {out}"))
