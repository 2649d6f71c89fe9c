"""Courtesy: what the runner asks before it claims a slot, and what it records after a refusal.

Before a slot is claimed, :meth:`Courtesy.screen` stamps the run with its target's contact
mode and says whether a contact may be sent at all: not to a recipient who opted out (an SMS
STOP, Twilio error 21610, a permanent bounce) until an operator clears it, and not while a
maintenance window in ``pause`` mode is open (one in ``exclude_from_slo`` mode lets the run go
on and marks it excluded from the SLOs). A slot that sends nothing is recorded as a closed run,
``skipped: <why>``: the gap in the evidence is declared, never hidden, and never a breach.
Windows are read from the configuration and from the store (``cxprobe maintenance add``) at
every screen, so a window declared while the monitor runs takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cxprobe.settings import Check, Config
from cxprobe.store.courtesy import OptOut
from cxprobe.store.database import EvidenceStore
from exporters.metrics import MonitorMetrics
from probes.errors import OptedOut, describe_error
from scenarios.engine import Clock
from scenarios.maintenance import DeclaredWindow, MaintenanceMode, open_windows
from scenarios.model import RunResult, SkipReason

#: Seconds between refreshes of the maintenance and opt-out gauges between runs.
GAUGE_REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class Skip:
    """Why a slot sends no contact."""

    reason: SkipReason
    detail: str

    @property
    def run_reason(self) -> str:
        """The skipped run's ``reason``: ``skipped: <reason>: <detail>``."""
        return f"skipped: {self.reason}: {self.detail}"


def rate_limit_skip(limit: int) -> Skip:
    return Skip(
        SkipReason.RATE_LIMIT,
        f"the target's budget of {limit} contact(s) per hour on this channel is spent",
    )


def describe_window(declared: DeclaredWindow) -> str:
    return f"{declared.window.reason} (maintenance window, {declared.source})"


async def windows_in_force(config: Config, store: EvidenceStore) -> list[DeclaredWindow]:
    """Every maintenance window in force: the configuration's, then the store's."""
    declared = [DeclaredWindow(window, source="config") for window in config.maintenance]
    return declared + await store.maintenance_windows()


async def windows_for_audit(
    config: Config,
    store: EvidenceStore,
    targets: Sequence[str] = (),
    channels: Sequence[str] = (),
) -> list[DeclaredWindow]:
    """Every window an auditor of ``targets``' ``channels`` (all when empty) must see: those in
    force and those ended early, whose hours before their end were declared all the same."""
    ended = [w for w in await store.maintenance_windows(include_ended=True) if w.ended_at]
    return [
        declared
        for declared in await windows_in_force(config, store) + ended
        if (not targets or declared.window.target in (None, *targets))
        and (not channels or declared.window.channel in (None, *channels))
    ]


@dataclass
class Courtesy:
    """The runner's courtesy checks, on its store and metrics."""

    store: EvidenceStore
    metrics: MonitorMetrics
    logger: logging.Logger

    async def screen(
        self, config: Config, check: Check, result: RunResult, now: datetime
    ) -> Skip | None:
        """Stamp ``result`` with its contact mode (and SLO exclusion); a :class:`Skip` when no
        contact may be sent for it now."""
        result.contact_mode = config.targets[check.target].contact_mode
        opened = open_windows(await self.windows(config), check.target, check.channel, now)
        opt_out = await self.store.active_opt_out(check.target, check.channel)
        self.metrics.set_maintenance_active(check.target, check.channel, bool(opened))
        self.metrics.set_opted_out(check.target, check.channel, opt_out is not None)
        if opt_out is not None:
            return Skip(
                SkipReason.OPT_OUT,
                f"{opt_out.recipient} is paused since {opt_out.created_at:%Y-%m-%d %H:%M} UTC: "
                f"{opt_out.reason} (cxprobe optout clear re-enables it)",
            )
        if opened and opened[0].window.mode is MaintenanceMode.PAUSE:
            return Skip(SkipReason.MAINTENANCE, describe_window(opened[0]))
        if opened:
            result.slo_excluded = describe_window(opened[0])
        return None

    async def windows(self, config: Config) -> list[DeclaredWindow]:
        return await windows_in_force(config, self.store)

    async def opted_out(self, result: RunResult, error: OptedOut, now: datetime) -> None:
        """The run learnt that its recipient opted out: pause contacts to it. Never raises:
        the run's own outcome must still be recorded if the store fails here."""
        try:
            await self._record_opt_out(result, error, now)
        except Exception as exc:
            self.logger.error(
                "opt-out not recorded: the next slot may contact the recipient again",
                extra={"run_id": result.run_id, "error": describe_error(exc)},
            )

    async def _record_opt_out(self, result: RunResult, error: OptedOut, now: datetime) -> None:
        recorded = await self.store.record_opt_out(
            OptOut(
                id=0,
                target=result.target,
                channel=result.channel,
                recipient=error.recipient,
                reason=str(error),
                run_id=result.run_id,
                created_at=now,
            )
        )
        self.metrics.set_opted_out(result.target, result.channel, True)
        if recorded:
            self.logger.warning(
                "recipient opted out: contacts paused until `cxprobe optout clear`",
                extra={"run_id": result.run_id, "target": result.target, "error": str(error)},
            )

    async def refresh_gauges(self, config: Config, now: datetime) -> None:
        """Set the maintenance and opt-out gauges of every check's target and channel."""
        windows = await self.windows(config)
        paused = {(o.target, o.channel) for o in await self.store.opt_outs()}
        for target, channel in sorted({(c.target, c.channel) for c in config.checks_here()}):
            opened = open_windows(windows, target, channel, now)
            self.metrics.set_maintenance_active(target, channel, bool(opened))
            self.metrics.set_opted_out(target, channel, (target, channel) in paused)

    async def keep_gauges_fresh(self, config: Callable[[], Config], clock: Clock) -> None:
        """Refresh the gauges until cancelled: a window opens and closes between runs, and the
        alerts that read the gauge must see it when it does."""
        while True:
            try:
                await self.refresh_gauges(config(), clock())
            except Exception as exc:  # the store may be away for a moment; runs go on
                self.logger.warning(
                    "courtesy gauges not refreshed", extra={"error": describe_error(exc)}
                )
            await asyncio.sleep(GAUGE_REFRESH_SECONDS)
