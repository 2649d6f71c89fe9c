"""The provider's actual price replaces a contact's estimate, when the provider reports it.

Twilio leaves a message's or call's ``price`` null until it is rated, often minutes after the
send. So the price is asked for at the end of each run and, while it is still null, again on
every sweep (every :data:`SWEEP_INTERVAL`, runs of the last :data:`LOOKBACK`): the budgets
then count the actual price where it is known, else the estimate. Channels whose driver cannot
tell a price (:class:`probes.base.PricedChannel`) keep their estimate.

As the actual prices lower (or raise) what the budgets have spent, the budget gauges are
refreshed after each sweep, and at start, for every configured budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cxprobe.budgets import CostEstimator
from cxprobe.store.database import AwaitingPrice, ContactCost, EvidenceStore
from exporters.metrics import MonitorMetrics
from probes.base import PricedChannel
from probes.errors import describe_error

#: How often runs whose price is still unknown are asked about again.
SWEEP_INTERVAL = 300.0
#: How old a run may be and still get its price (providers rate within hours).
LOOKBACK = timedelta(days=7)


@dataclass
class PriceCollector:
    """Asks the channels for the actual price of sent contacts and records it."""

    store: EvidenceStore
    channels: Mapping[str, Any]  # kind -> channel driver (priced ones answer)
    logger: logging.Logger
    clock: Callable[[], datetime]
    metrics: MonitorMetrics | None = None
    #: The running configuration's budgets and prices (it changes on a reload).
    estimator: Callable[[], CostEstimator] | None = None
    interval: float = SWEEP_INTERVAL
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self, stack: AsyncExitStack) -> None:
        await self.show_budgets()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="price-sweep")
        stack.push_async_callback(self.stop)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def collect(self, run_id: str) -> bool:
        """The price of one finished run, if its channel reports it now; never raises."""
        try:
            awaiting = await self.store.runs_awaiting_price(self.clock() - LOOKBACK, run_id=run_id)
        except Exception as exc:  # the run is recorded; its price can wait for a sweep
            self.logger.warning("price not looked up", extra={"error": describe_error(exc)})
            return False
        return bool(awaiting) and await self._record(awaiting[0])

    async def sweep(self) -> int:
        """Ask again for every recent run whose price is unknown, then refresh the budget
        gauges; returns how many prices were set."""
        recorded = 0
        for run in await self.store.runs_awaiting_price(self.clock() - LOOKBACK):
            recorded += await self._record(run)
        await self.show_budgets()
        return recorded

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception as exc:  # retried at the next interval
                self.logger.warning("price sweep failed", extra={"error": describe_error(exc)})

    async def show_budgets(self) -> None:
        """Every configured budget window's spend, limit and what is left, in the metrics;
        best effort (the next claim or sweep refreshes them)."""
        if self.metrics is None or self.estimator is None:
            return
        windows = self.estimator().windows(self.clock())
        try:
            spends = await self.store.budget_spends(ContactCost(0.0, None, "", windows))
        except Exception as exc:
            self.logger.warning("budget metrics not updated", extra={"error": describe_error(exc)})
            return
        self.metrics.show_budgets(
            [
                (
                    each.window.budget,
                    each.window.period,
                    each.window.currency,
                    each.spent,
                    each.window.limit,
                )
                for each in spends
            ]
        )

    async def _record(self, run: AwaitingPrice) -> bool:
        channel = self.channels.get(run.channel)
        if not isinstance(channel, PricedChannel):
            return False
        try:
            price = await channel.actual_price(run.external_id)
        except Exception as exc:
            self.logger.info(
                "price not fetched; asked again later",
                extra={"run_id": run.run_id, "error": describe_error(exc)},
            )
            return False
        if price is None:
            return False
        if not await self.store.record_actual_cost(run.run_id, price.amount, price.currency):
            self.logger.warning(
                "provider price in another currency than the estimate: the estimate stays",
                extra={"run_id": run.run_id, "currency": price.currency},
            )
            return False
        self.logger.info(
            "actual price recorded",
            extra={"run_id": run.run_id, "price": price.amount, "currency": price.currency},
        )
        return True
