"""Assembly: builds the store, metrics, channels, runner, scheduler and HTTP server from a
config, and tears them down in reverse order. Everything is passed in; nothing is global."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from cxprobe import __version__
from cxprobe.runner import Runner
from cxprobe.scheduler import CheckScheduler
from cxprobe.server import HttpServer
from cxprobe.settings import Config
from cxprobe.store.database import EvidenceStore
from exporters.metrics import CheckSeries, MonitorMetrics
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

    def health(self) -> Mapping[str, Any]:
        return {
            "status": "ok" if self.scheduler.running else "starting",
            "scheduler_running": self.scheduler.running,
            "checks": len(self.config.checks_here()),
            **self.runner.health(),
        }


def check_series(config: Config) -> list[CheckSeries]:
    return [
        CheckSeries(
            check_id=check.id,
            target=check.target,
            channel=check.channel,
            scenario=check.scenario,
            location=config.monitor.location,
            thresholds=config.thresholds(check),
            objective=config.targets[check.target].sla(check.channel).objective,
        )
        for check in config.checks_here()
    ]


@asynccontextmanager
async def open_monitor(
    config: Config,
    logger: logging.Logger,
    *,
    serve_http: bool = True,
    clock: Clock = utc_now,
    calendar_clock: Clock | None = None,
) -> AsyncIterator[Monitor]:
    """A ready monitor (channels started, HTTP listening); the scheduler is not started."""
    async with AsyncExitStack() as stack:
        registry = CollectorRegistry(auto_describe=True)
        metrics = MonitorMetrics(registry, __version__)
        metrics.declare_checks(check_series(config))
        metrics.config_reloaded(True)
        store = await stack.enter_async_context(
            EvidenceStore(config.monitor.store_url, logger=logger.getChild("store"))
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
        monitor = Monitor(config, store, metrics, registry, runner, scheduler, server=None)
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
