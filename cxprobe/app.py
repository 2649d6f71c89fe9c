"""Assembly: builds the store, metrics, channels, runner, scheduler and HTTP server from a
config, and tears them down in reverse order. Everything is passed in; nothing is global.

:meth:`Monitor.reload` (``cxprobe run`` calls it on SIGHUP) re-reads the config file. A file
that does not validate changes nothing: the running configuration is kept, the problems are
logged and ``cxprobe_config_last_reload_successful`` is 0. A valid file is applied: targets,
scenarios, SLAs, retention and checks (added, removed and changed checks are rescheduled, the
check series refreshed; runs in progress go on as they started). Channels and the ``monitor``
section hold resources made at start (connections, a browser, the HTTP port, the store), so
changes there are *not* applied: the reload logs "restart needed" naming them, keeps running
with the started ones, and leaves checks on a channel kind that was not started unscheduled
until a restart. The metric is 1 then too (the file was valid and is what runs, as far as it
can); the warning says what waits for a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from cxprobe import __version__
from cxprobe.errors import ConfigError
from cxprobe.runner import Runner
from cxprobe.scheduler import CheckScheduler, ScheduleChange
from cxprobe.server import HttpServer
from cxprobe.settings import Check, Config, load_config
from cxprobe.store.database import EvidenceStore, LeaseHolder
from exporters.metrics import CheckSeries, MonitorMetrics
from probes import CHANNEL_TYPES
from scenarios.engine import Clock, utc_now


@dataclass
class Monitor:
    config: Config
    store: EvidenceStore
    metrics: MonitorMetrics
    registry: CollectorRegistry
    runner: Runner
    scheduler: CheckScheduler
    server: HttpServer | None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("cxprobe"))
    #: One reload at a time: a second SIGHUP waits for the first to be applied.
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock)

    def health(self) -> Mapping[str, Any]:
        return {
            "status": "ok" if self.scheduler.running else "starting",
            "scheduler_running": self.scheduler.running,
            "checks": len(self.config.checks_here()),
            **self.runner.health(),
        }

    async def reload(self, path: Path | None = None) -> bool:
        """Re-read the configuration (``path``, by default the file it was loaded from) and
        apply what can be applied without a restart (module docstring). False when the file
        is invalid and the running configuration was kept."""
        source = path or self.config.source
        assert source is not None, "a configuration loaded from a file"
        async with self._reloading:
            try:
                loaded = await asyncio.to_thread(load_config, source)
            except ConfigError as exc:
                self.metrics.config_reloaded(False)
                self.logger.error(
                    "configuration reload failed: the running configuration is kept; fix "
                    "the file and send SIGHUP again",
                    extra={"config": str(source), "problems": exc.problems},
                )
                return False
            self._apply(loaded)
            return True

    def _apply(self, loaded: Config) -> None:
        started = self.runner.channels.keys()
        waiting = restart_needed(self.config, loaded, started)
        # What runs: the new file, with the channels and monitor settings that were started.
        applied = loaded.model_copy(
            update={"monitor": self.config.monitor, "channels": self.config.channels}
        )
        runnable = [check for check in applied.checks_here() if check.channel in started]
        self.runner.reconfigure(applied)
        change = self.scheduler.replace_checks(runnable)
        self.metrics.declare_checks(check_series(applied, runnable))
        self.metrics.config_reloaded(True)
        self.config = applied
        self._log_reload(applied, change, waiting)

    def _log_reload(self, applied: Config, change: ScheduleChange, waiting: list[str]) -> None:
        fields = {
            "config": str(applied.source),
            "config_sha256": applied.sha256,
            "added": list(change.added),
            "removed": list(change.removed),
            "changed": list(change.changed),
        }
        self.logger.info("configuration reloaded", extra=fields)
        if waiting:
            self.logger.warning(
                "restart needed: these changes are not applied until cxprobe restarts",
                extra={"config": str(applied.source), "not_applied": waiting},
            )


def restart_needed(running: Config, loaded: Config, started: Collection[str]) -> list[str]:
    """What in ``loaded`` a running monitor cannot apply: changed ``monitor`` keys, changed
    channel sections, and checks on a channel kind it did not start."""
    waiting = [
        f"monitor.{key}"
        for key in type(running.monitor).model_fields
        if getattr(running.monitor, key) != getattr(loaded.monitor, key)
    ]
    waiting += [
        f"channels.{kind}"
        for kind in CHANNEL_TYPES
        if running.channel_settings(kind) != loaded.channel_settings(kind)
    ]
    waiting += [
        f"checks {check.id}: channel {check.channel} is not started"
        for check in loaded.checks_here()
        if check.channel not in started
    ]
    return waiting


def check_series(config: Config, checks: list[Check] | None = None) -> list[CheckSeries]:
    return [
        CheckSeries(
            check_id=check.id,
            target=check.target,
            channel=check.channel,
            scenario=check.scenario,
            location=config.monitor.location,
            thresholds=config.thresholds(check),
            objective=config.targets[check.target].sla(check.channel).objective,
            judges_answers=config.scenarios[check.scenario].expect is not None,
            judges_language=config.scenarios[check.scenario].language is not None,
            rubric_items=_rubric_items(config, check),
            contact_mode=str(config.targets[check.target].contact_mode),
            competitor=config.targets[check.target].competitor,
        )
        for check in (config.checks_here() if checks is None else checks)
    ]


def _rubric_items(config: Config, check: Check) -> tuple[str, ...]:
    rubric = config.scenarios[check.scenario].rubric
    return () if rubric is None else tuple(item.id for item in rubric.items)


@asynccontextmanager
async def open_monitor(
    config: Config,
    logger: logging.Logger,
    *,
    serve_http: bool = True,
    clock: Clock = utc_now,
    calendar_clock: Clock | None = None,
) -> AsyncIterator[Monitor]:
    """A ready monitor (channels started, HTTP listening); the scheduler is not started.

    A config loaded with its secrets deferred is refused (ConfigError naming each unset
    variable) before anything connects: a placeholder is never sent anywhere."""
    config.require_environment()
    async with AsyncExitStack() as stack:
        registry = CollectorRegistry(auto_describe=True)
        metrics = MonitorMetrics(registry, __version__)
        metrics.declare_checks(check_series(config))
        metrics.config_reloaded(True)
        holder = LeaseHolder(name=config.monitor.name, timeout=config.monitor.lease_timeout)
        store = await stack.enter_async_context(
            EvidenceStore(config.monitor.store_url, logger=logger.getChild("store"), holder=holder)
        )
        runner = Runner(
            config,
            store,
            metrics,
            logger.getChild("runner"),
            clock=clock,
            calendar_clock=calendar_clock,
        )
        await runner.start(stack)
        webhooks = runner.webhooks
        scheduler = CheckScheduler(
            config.checks_here(),
            runner.start_slot,
            observe_lag=metrics.observe_scheduler_lag,
            logger=logger.getChild("scheduler"),
            clock=clock,
        )
        stack.push_async_callback(scheduler.stop)
        monitor = Monitor(
            config, store, metrics, registry, runner, scheduler, server=None, logger=logger
        )
        if serve_http:
            http = config.monitor.http
            server = HttpServer(
                host=http.host,
                port=http.port,
                registry=registry,
                health=monitor.health,
                logger=logger.getChild("http"),
            )
            server.add_routes(webhooks.routes)
            monitor.server = await stack.enter_async_context(server)
            webhooks.local_url = monitor.server.url
        yield monitor
