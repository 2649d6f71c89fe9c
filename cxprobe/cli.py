"""The ``cxprobe`` command line.

Exit codes: 0 success (``once``: met with no misroute), 1 breached or misrouted, 2 invalid
configuration or usage, 3 the contact failed (refused/bounced), 4 the probe errored, was
interrupted or was skipped (an opt-out, a maintenance window, the contact budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cxprobe import __version__, logs
from cxprobe.app import Monitor, open_monitor
from cxprobe.cli_config import (
    EVERY_SECRET,
    NO_SECRET,
    STORE_SECRETS,
    ConfigOption,
    load_or_exit,
    print_problems,
)
from cxprobe.cli_courtesy import maintenance_app, optout_app
from cxprobe.cli_db import db_app
from cxprobe.cli_evidence import evidence_app, report
from cxprobe.cli_output import (
    JsonOption,
    make_console,
    markup,
    plain,
    print_json,
    typer_markup_mode,
)
from cxprobe.cli_plan import plan
from cxprobe.errors import ConfigError
from cxprobe.rules.common import DEFAULT_DOCS_URL
from cxprobe.rules.generate import ProbedCheck, RuleOptions, generate_rules, regenerate_command
from cxprobe.settings import Config, load_config
from cxprobe.store.database import EvidenceStore
from probes import CHANNEL_TYPES
from probes.errors import CxprobeError
from scenarios.durations import format_duration
from scenarios.model import Outcome, RoutingResult, RunResult

EXIT_BY_OUTCOME = {
    Outcome.MET: 0,
    Outcome.BREACHED: 1,
    Outcome.FAILED: 3,
    Outcome.ERROR: 4,
    Outcome.INTERRUPTED: 4,
    Outcome.SKIPPED: 4,  # no contact sent on purpose: nothing was probed
}

app = typer.Typer(
    name="cxprobe",
    help="Synthetic monitoring of customer service: probe support channels like a customer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=typer_markup_mode(),
)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML configuration.")],
    require_env: Annotated[
        bool,
        typer.Option(
            "--require-env",
            help="Also fail when a ${VAR} is not set (run it where the monitor runs).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check a configuration; print OK or every problem (file, line, key) and exit 2.

    Unset ${VAR} secrets are warnings: the file can be checked without them (in CI, on a
    laptop); `run` and `once` refuse to start until they are set. --require-env makes them
    problems."""
    errors = make_console(stderr=True)
    try:
        loaded = load_config(config, environment="deferred")
        if require_env:
            loaded.require_environment()
    except ConfigError as exc:
        if as_json:
            print_json({"ok": False, "config": config, "problems": exc.problems, "warnings": []})
        else:
            print_problems(errors, config, exc.problems)
        raise typer.Exit(2) from None
    warnings = [
        f"{unset.where}: environment variable {unset.name} is not set; `cxprobe run` and "
        "`once` refuse to start until it is"
        for unset in loaded.unset
    ]
    if as_json:
        print_json(
            {
                "ok": True,
                "config": config,
                "location": loaded.monitor.location,
                "targets": list(loaded.targets),
                "checks": [check.id for check in loaded.checks],
                "checks_here": [check.id for check in loaded.checks_here()],
                "unset_variables": sorted({unset.name for unset in loaded.unset}),
                "problems": [],
                "warnings": warnings,
            }
        )
        return
    for warning in warnings:
        errors.print(markup("[yellow]warning:[/] {}", warning))
    make_console().print(
        markup(
            "OK: {} — {} target(s), {} check(s), {} at location {!r}",
            config,
            len(loaded.targets),
            len(loaded.checks),
            len(loaded.checks_here()),
            loaded.monitor.location,
        )
    )


@app.command()
def run(config: ConfigOption) -> None:
    """Run the monitor around the clock until SIGTERM or Ctrl-C."""
    loaded = load_or_exit(config, make_console(stderr=True), secrets=EVERY_SECRET)
    logger = logs.configure(loaded.monitor.log_format)
    asyncio.run(_run(loaded, logger))


async def _run(config: Config, logger: logging.Logger) -> None:
    stop = asyncio.Event()
    reload_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # From the start: SIGHUP's default action would end the process.
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
    async with open_monitor(config, logger) as monitor:
        resumed = await monitor.runner.resume_open_runs()
        monitor.scheduler.start()
        reloading = asyncio.create_task(_reload_on_request(monitor, reload_requested))
        server = monitor.server
        logger.info(
            "cxprobe running",
            extra={
                "version": __version__,
                "config": str(config.source),
                "checks": len(config.checks_here()),
                "resumed_runs": resumed,
                "metrics_url": f"http://{server.host}:{server.port}/metrics" if server else None,
            },
        )
        await stop.wait()
        reloading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloading
        logger.info("stopping: open runs stay in the store and resume at the next start")
    logger.info("cxprobe stopped")


async def _reload_on_request(monitor: Monitor, requested: asyncio.Event) -> None:
    """Reload the configuration whenever SIGHUP asked for it (several at once: one reload)."""
    while True:
        await requested.wait()
        requested.clear()
        await monitor.reload()


@app.command()
def once(
    config: ConfigOption,
    check_id: Annotated[str, typer.Argument(help="The id of the check to run now.")],
    as_json: JsonOption = False,
) -> None:
    """Run one check now, wait for its outcome and print what was measured."""
    errors = make_console(stderr=True)
    loaded = load_or_exit(config, errors, secrets=EVERY_SECRET)
    check = loaded.check(check_id)
    if check is None:
        errors.print(
            markup("[red]no check {!r} in {}[/]; checks: ", check_id, config)
            + markup("{}", ", ".join(c.id for c in loaded.checks))
        )
        raise typer.Exit(2)
    if check not in loaded.checks_here():
        errors.print(
            markup(
                "[red]check {!r} does not run here[/]: it is disabled or not listed for "
                "location {!r} (monitor.location). Enable it, or run cxprobe where it belongs.",
                check_id,
                loaded.monitor.location,
            )
        )
        raise typer.Exit(2)
    logger = logs.configure(loaded.monitor.log_format)

    # The HTTP server only for channels that need provider webhooks.
    serve_http = CHANNEL_TYPES[check.channel].needs_http

    async def execute() -> tuple[RunResult | None, list[EvidenceRecord]]:
        async with open_monitor(loaded, logger, serve_http=serve_http) as monitor:
            slot = datetime.now(UTC).replace(microsecond=0)
            result = await monitor.runner.execute(check, slot)
            records = await _evidence(monitor.store, result) if result else []
            return result, records

    try:
        result, evidence = asyncio.run(execute())
    except OSError as exc:
        if not serve_http:
            raise
        # A check whose channel needs the HTTP server for its webhooks; the usual cause
        # is a `cxprobe run` already serving on the same port.
        http = loaded.monitor.http
        errors.print(
            markup(
                "[red]cannot listen on {}:{} for webhooks[/] ({}): is `cxprobe run` already "
                "serving there? Stop it, or run `once` with a config whose monitor.http.port "
                "is free (and a webhook public_url that reaches it).",
                http.host,
                http.port,
                exc.strerror,
            )
        )
        raise typer.Exit(2) from None
    if result is None:
        if as_json:
            print_json({"run": None, "not_run": "the slot was taken", "evidence": []})
        else:
            make_console().print("[yellow]not run: the slot was taken[/]")
        raise typer.Exit(4)
    if as_json:
        print_json({"run": result, "not_run": None, "evidence": evidence})
    else:
        _print_result(make_console(), result, evidence)
    code = EXIT_BY_OUTCOME[result.outcome or Outcome.ERROR]
    if code == 0 and result.routing is RoutingResult.WRONG:
        code = 1
    raise typer.Exit(code)


@dataclass(frozen=True)
class EvidenceRecord:
    """One message or artifact of a run, as ``once`` prints it (``--json``: these keys)."""

    type: str  # "message" or "artifact"
    sha256: str | None
    size: int | None
    #: message: "in" or "out"; its arrival (or observation) time, responder, sender, late.
    direction: str | None = None
    at: datetime | None = None
    responder: str | None = None
    sender: str | None = None
    late: bool = False
    #: message: its subject or first line; artifact: what the channel says of it (a call's
    #: timeline), one line each.
    summary: list[str] = field(default_factory=list)
    #: artifact: its kind and media type.
    kind: str | None = None
    media_type: str | None = None

    def lines(self) -> list[str]:
        digest = f" sha256:{self.sha256[:12]}… {self.size} B" if self.sha256 else ""
        if self.type == "artifact":
            return [f"▣ {self.kind} ({self.media_type}){digest}", *self.summary]
        arrow = "→" if self.direction == "out" else "←"
        stamp = self.at.strftime("%H:%M:%S.%f")[:-3] if self.at else "?"
        late = " (late)" if self.late else ""
        summary = self.summary[0] if self.summary else ""
        return [
            f"{arrow} {stamp} {self.responder or 'customer':<8} {self.sender}"
            f" — {summary}{late}{digest}"
        ]


async def _evidence(store: EvidenceStore, result: RunResult) -> list[EvidenceRecord]:
    summaries = CHANNEL_TYPES[result.channel].evidence_summaries
    records = []
    for message in await store.messages(result.run_id):
        summary = message.subject or (message.text.splitlines()[0][:80] if message.text else "")
        records.append(
            EvidenceRecord(
                type="message",
                sha256=message.sha256 or None,
                size=message.size if message.sha256 else None,
                direction=message.direction,
                at=message.arrived_at or message.observed_at,
                responder=message.responder,
                sender=message.sender,
                late=bool(message.late),
                summary=[summary],
            )
        )
    for artifact in await store.artifacts(result.run_id):
        if artifact.message_id is not None:
            continue  # shown with its message above
        lines: list[str] = []
        summarise = summaries.get(artifact.kind)
        if summarise is not None:  # the channel can say more of this kind (a call's timeline)
            content = await store.artifact_content(artifact.id)
            lines = summarise(content or b"{}", result.sent_at)
        records.append(
            EvidenceRecord(
                type="artifact",
                sha256=artifact.sha256,
                size=artifact.size,
                kind=artifact.kind,
                media_type=artifact.media_type,
                summary=lines,
            )
        )
    return records


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s ({format_duration(value)})"


def _print_result(console: Console, result: RunResult, evidence: list[EvidenceRecord]) -> None:
    """One ``label  value`` line each (no table: a long reason pads no other line); every
    value is plain text, never markup."""
    colour = {"met": "green", "breached": "yellow"}.get(str(result.outcome), "red")
    responder = f" by {result.first_response_responder}" if result.first_response_responder else ""
    rows: list[tuple[str, str | Text]] = [
        ("check", result.check_id),
        ("target", f"{result.target} · {result.channel} · {result.scenario}"),
        ("run", result.run_id),
        ("token", result.token),
        ("period", str(result.period)),
        ("outcome", Text.assemble((str(result.outcome), colour), " ", result.reason)),
        ("sent at", result.sent_at.isoformat() if result.sent_at else "—"),
        ("first answer", _seconds(result.first_response_seconds) + responder),
        ("first human answer", _seconds(result.first_human_seconds)),
        (
            "routing",
            f"{result.routing} (expected {result.expected_queue or '—'}, "
            f"reached {result.routed_queue or '—'})",
        ),
    ]
    if result.answer is not None:
        rows.append(("answer", f"{result.answer}, resolved: {str(result.resolved).lower()}"))
    if result.language is not None:
        rows.append(("language", f"{result.language} ({result.reply_language or 'unknown'})"))
    if result.rubric_items:
        rows.append(("rubric", _rubric_line(result)))
    limits = ", ".join(
        f"{name} {format_duration(value)}"
        for name, value in result.thresholds.as_dict().items()
        if value is not None
    )
    rows.append(("thresholds", limits))
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        console.print(Text.assemble(label.ljust(width), value))
    if result.turns:
        _print_turns(console, result)
    if evidence:
        console.print("[bold]evidence[/]")
        for record in evidence:
            for line in record.lines():
                console.print(plain("  " + line))


def _print_turns(console: Console, result: RunResult) -> None:
    """A scripted conversation's timeline: each message the probe sent, what it answered and
    how fast the next reply (and the next human reply) came."""
    console.print("[bold]conversation[/]")
    for turn in result.turns:
        said = turn.said.splitlines()[0][:60] if turn.said else ""
        when = turn.matched or "opening"
        stamp = turn.sent_at.strftime("%H:%M:%S.%f")[:-3]
        console.print(
            plain(
                f"  turn {turn.index} ({when}) {stamp} “{said}” → next reply "
                f"{_seconds(turn.next_reply_seconds)}, next human "
                f"{_seconds(turn.next_human_seconds)}"
            )
        )


@app.command()
def runs(
    config: ConfigOption,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 20,
    check: Annotated[str | None, typer.Option(help="Only this check.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Recent runs from the evidence store, newest first."""
    loaded = load_or_exit(config, make_console(stderr=True), secrets=STORE_SECRETS)

    async def fetch() -> list[RunResult]:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            return await store.recent_runs(limit, check_id=check)

    found = asyncio.run(fetch())
    if as_json:
        print_json({"runs": found})
        return
    table = Table("slot (UTC)", "check", "period", "outcome", "first", "human", "routing")
    for result in found:
        table.add_row(
            result.slot.strftime("%Y-%m-%d %H:%M:%S"),
            plain(result.check_id),
            str(result.period),
            str(result.outcome or "open"),
            _short(result.first_response_seconds),
            _short(result.first_human_seconds),
            str(result.routing),
        )
    make_console().print(table)


def _short(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}s"


@app.command()
def rules(
    config: ConfigOption,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the rules here (default: print them).", show_default=False
        ),
    ] = None,
    docs_url: Annotated[
        str, typer.Option(help="Where docs/alerting.md is published; runbook links point into it.")
    ] = DEFAULT_DOCS_URL,
    grafana_url: Annotated[
        str, typer.Option(help="Grafana's base URL for dashboard links (default: a /d/... path).")
    ] = "",
) -> None:
    """Generate Prometheus rules from the config: SLO recording rules, burn-rate alerts, probe
    health alerts (docs/alerting.md). Regenerate after changing targets, SLAs or checks."""
    errors = make_console(stderr=True)
    loaded = load_or_exit(config, errors, secrets=NO_SECRET)
    try:
        checks = rule_checks(loaded)
    except ValueError as exc:
        errors.print(markup("[red]{}: {}[/]", config, exc))
        raise typer.Exit(2) from None
    options = RuleOptions(docs_url=docs_url, grafana_url=grafana_url)
    command = regenerate_command(str(config), None if output is None else str(output), options)
    generated = generate_rules(checks, options, source=str(config), command=command)
    for omission in generated.omitted:
        errors.print(markup("[yellow]note:[/] {}", omission))
    if output is None:
        sys.stdout.write(generated.text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(generated.text)
    errors.print(
        plain(
            f"wrote {output}: {generated.recording} recording rules, {generated.alerts} alerts "
            f"for {generated.slos} SLOs and {len(checks)} checks"
        )
    )


def rule_checks(config: Config) -> list[ProbedCheck]:
    """The enabled checks as the rule generator needs them. Every location's: the SLO events
    carry no location, and a check nobody exports is itself alerted (CxprobeCheckNotExported)."""
    checks = []
    for index, check in enumerate(config.checks):
        if not check.enabled:
            continue
        target = config.targets[check.target]
        thresholds = config.thresholds(check)
        try:
            gaps = check.schedule.gaps()
        except ValueError as exc:
            raise ValueError(f"checks[{index}] ({check.id}): {exc}") from None
        checks.append(
            ProbedCheck(
                check_id=check.id,
                target=check.target,
                target_name=target.name,
                channel=check.channel,
                scenario=check.scenario,
                objective=target.sla(check.channel).objective,
                slos=tuple(thresholds.slos()),
                deadline=thresholds.deadline,
                jitter=check.schedule.jitter,
                interval=gaps.mean,
                three_slots=gaps.three_slots,
            )
        )
    return checks


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


app.add_typer(evidence_app, name="evidence")
app.add_typer(db_app, name="db")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(optout_app, name="optout")
app.command()(report)
app.command()(plan)


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        try:
            app()
        except CxprobeError as exc:
            # E.g. an evidence store that cannot be opened: the message says what to do.
            make_console(stderr=True).print(markup("[red]cxprobe:[/] {}", exc))
            sys.exit(2)


def _rubric_line(result: RunResult) -> str:
    """``72.5 / 100 (missed: name, sign_off)``: the score and the items that were not met."""
    score = "not scored" if result.rubric_score is None else f"{result.rubric_score:g} / 100"
    missed = [item.item for item in result.rubric_items if item.met is False]
    return f"{score} (missed: {', '.join(missed)})" if missed else score
