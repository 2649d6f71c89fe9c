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
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cxprobe import __version__, logs
from cxprobe.app import Monitor, open_monitor
from cxprobe.cli_config import ConfigOption, load_or_exit
from cxprobe.cli_courtesy import maintenance_app, optout_app
from cxprobe.cli_db import db_app
from cxprobe.cli_evidence import evidence_app, report
from cxprobe.cli_plan import plan
from cxprobe.rules.common import DEFAULT_DOCS_URL
from cxprobe.rules.generate import ProbedCheck, RuleOptions, generate_rules, regenerate_command
from cxprobe.settings import Config
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
)


@app.command()
def validate(config: Annotated[Path, typer.Argument(help="The YAML configuration.")]) -> None:
    """Check a configuration; print OK or every problem (file, line, key) and exit 2."""
    console = Console(stderr=True)
    loaded = load_or_exit(config, console)
    Console().print(
        f"OK: {config} — {len(loaded.targets)} target(s), {len(loaded.checks)} check(s), "
        f"{len(loaded.checks_here())} at location {loaded.monitor.location!r}",
        highlight=False,
    )


@app.command()
def run(config: ConfigOption) -> None:
    """Run the monitor around the clock until SIGTERM or Ctrl-C."""
    loaded = load_or_exit(config, Console(stderr=True))
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
) -> None:
    """Run one check now, wait for its outcome and print what was measured."""
    console = Console()
    loaded = load_or_exit(config, Console(stderr=True))
    check = loaded.check(check_id)
    if check is None:
        Console(stderr=True).print(
            f"[red]no check {check_id!r} in {config}[/]; checks: "
            + ", ".join(c.id for c in loaded.checks),
            highlight=False,
        )
        raise typer.Exit(2)
    if check not in loaded.checks_here():
        Console(stderr=True).print(
            f"[red]check {check_id!r} does not run here[/]: it is disabled or not listed for "
            f"location {loaded.monitor.location!r} (monitor.location). Enable it, or run "
            "cxprobe where it belongs.",
            highlight=False,
        )
        raise typer.Exit(2)
    logger = logs.configure(loaded.monitor.log_format)

    # The HTTP server only for channels that need provider webhooks.
    serve_http = CHANNEL_TYPES[check.channel].needs_http

    async def execute() -> tuple[RunResult | None, list[str]]:
        async with open_monitor(loaded, logger, serve_http=serve_http) as monitor:
            slot = datetime.now(UTC).replace(microsecond=0)
            result = await monitor.runner.execute(check, slot)
            lines = await _evidence_lines(monitor.store, result) if result else []
            return result, lines

    try:
        result, evidence = asyncio.run(execute())
    except OSError as exc:
        if not serve_http:
            raise
        # A check whose channel needs the HTTP server for its webhooks; the usual cause
        # is a `cxprobe run` already serving on the same port.
        http = loaded.monitor.http
        Console(stderr=True).print(
            f"[red]cannot listen on {http.host}:{http.port} for webhooks[/] ({exc.strerror}): is "
            "`cxprobe run` already serving there? Stop it, or run `once` with a config whose "
            "monitor.http.port is free (and a webhook public_url that reaches it).",
            highlight=False,
        )
        raise typer.Exit(2) from None
    if result is None:
        console.print("[yellow]not run: the slot was taken[/]")
        raise typer.Exit(4)
    _print_result(console, result, evidence)
    code = EXIT_BY_OUTCOME[result.outcome or Outcome.ERROR]
    if code == 0 and result.routing is RoutingResult.WRONG:
        code = 1
    raise typer.Exit(code)


async def _evidence_lines(store: EvidenceStore, result: RunResult) -> list[str]:
    summaries = CHANNEL_TYPES[result.channel].evidence_summaries
    lines = []
    for message in await store.messages(result.run_id):
        arrow = "→" if message.direction == "out" else "←"
        when = message.arrived_at or message.observed_at
        stamp = when.strftime("%H:%M:%S.%f")[:-3] if when else "?"
        late = " (late)" if message.late else ""
        digest = f" sha256:{message.sha256[:12]}… {message.size} B" if message.sha256 else ""
        summary = message.subject or (message.text.splitlines()[0][:80] if message.text else "")
        lines.append(
            f"{arrow} {stamp} {message.responder or 'customer':<8} {message.sender}"
            f" — {summary}{late}{digest}"
        )
    for artifact in await store.artifacts(result.run_id):
        if artifact.message_id is not None:
            continue  # shown with its message above
        lines.append(
            f"▣ {artifact.kind} ({artifact.media_type}) sha256:{artifact.sha256[:12]}… "
            f"{artifact.size} B"
        )
        summarise = summaries.get(artifact.kind)
        if summarise is not None:  # the channel can say more of this kind (a call's timeline)
            content = await store.artifact_content(artifact.id)
            lines += summarise(content or b"{}", result.sent_at)
    return lines


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s ({format_duration(value)})"


def _print_result(console: Console, result: RunResult, evidence: list[str]) -> None:
    colour = {"met": "green", "breached": "yellow"}.get(str(result.outcome), "red")
    table = Table(show_header=False, box=None)
    table.add_row("check", result.check_id)
    table.add_row("run", result.run_id)
    table.add_row("token", result.token)
    table.add_row("period", str(result.period))
    table.add_row("outcome", f"[{colour}]{result.outcome}[/] {result.reason}")
    table.add_row("sent at", result.sent_at.isoformat() if result.sent_at else "—")
    table.add_row(
        "first answer",
        _seconds(result.first_response_seconds)
        + (f" by {result.first_response_responder}" if result.first_response_responder else ""),
    )
    table.add_row("first human answer", _seconds(result.first_human_seconds))
    table.add_row(
        "routing",
        f"{result.routing} (expected {result.expected_queue or '—'}, "
        f"reached {result.routed_queue or '—'})",
    )
    if result.answer is not None:
        table.add_row("answer", f"{result.answer}, resolved: {str(result.resolved).lower()}")
    if result.language is not None:
        table.add_row("language", f"{result.language} ({result.reply_language or 'unknown'})")
    if result.rubric_items:
        table.add_row("rubric", _rubric_line(result))
    limits = ", ".join(
        f"{name} {format_duration(value)}"
        for name, value in result.thresholds.as_dict().items()
        if value is not None
    )
    table.add_row("thresholds", limits)
    console.print(table)
    if result.turns:
        _print_turns(console, result)
    if evidence:
        console.print("[bold]evidence[/]")
        for line in evidence:
            console.print("  " + line, highlight=False)


def _print_turns(console: Console, result: RunResult) -> None:
    """A scripted conversation's timeline: each message the probe sent, what it answered and
    how fast the next reply (and the next human reply) came."""
    console.print("[bold]conversation[/]")
    for turn in result.turns:
        said = turn.said.splitlines()[0][:60] if turn.said else ""
        when = turn.matched or "opening"
        stamp = turn.sent_at.strftime("%H:%M:%S.%f")[:-3]
        console.print(
            f"  turn {turn.index} ({when}) {stamp} “{said}” → next reply "
            f"{_seconds(turn.next_reply_seconds)}, next human {_seconds(turn.next_human_seconds)}",
            highlight=False,
        )


@app.command()
def runs(
    config: ConfigOption,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 20,
    check: Annotated[str | None, typer.Option(help="Only this check.")] = None,
) -> None:
    """Recent runs from the evidence store, newest first."""
    loaded = load_or_exit(config, Console(stderr=True))

    async def fetch() -> list[RunResult]:
        async with EvidenceStore(loaded.monitor.store_url) as store:
            return await store.recent_runs(limit, check_id=check)

    table = Table("slot (UTC)", "check", "period", "outcome", "first", "human", "routing")
    for result in asyncio.run(fetch()):
        table.add_row(
            result.slot.strftime("%Y-%m-%d %H:%M:%S"),
            result.check_id,
            str(result.period),
            str(result.outcome or "open"),
            _short(result.first_response_seconds),
            _short(result.first_human_seconds),
            str(result.routing),
        )
    Console().print(table)


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
    errors = Console(stderr=True)
    loaded = load_or_exit(config, errors)
    try:
        checks = rule_checks(loaded)
    except ValueError as exc:
        errors.print(f"[red]{config}: {exc}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    options = RuleOptions(docs_url=docs_url, grafana_url=grafana_url)
    command = regenerate_command(str(config), None if output is None else str(output), options)
    generated = generate_rules(checks, options, source=str(config), command=command)
    for omission in generated.omitted:
        errors.print(f"[yellow]note:[/] {omission}", highlight=False, soft_wrap=True)
    if output is None:
        sys.stdout.write(generated.text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(generated.text)
    errors.print(
        f"wrote {output}: {generated.recording} recording rules, {generated.alerts} alerts "
        f"for {generated.slos} SLOs and {len(checks)} checks",
        highlight=False,
        soft_wrap=True,
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
            Console(stderr=True).print(f"[red]cxprobe:[/] {exc}", highlight=False)
            sys.exit(2)


def _rubric_line(result: RunResult) -> str:
    """``72.5 / 100 (missed: name, sign_off)``: the score and the items that were not met."""
    score = "not scored" if result.rubric_score is None else f"{result.rubric_score:g} / 100"
    missed = [item.item for item in result.rubric_items if item.met is False]
    return f"{score} (missed: {', '.join(missed)})" if missed else score
