"""Keeps this monitor's leases on open runs, and takes over those of monitors that died.

Every :attr:`~cxprobe.store.leases.LeaseHolder.renew_every` seconds the keeper renews the
leases this process holds, tells the runner which of its runs another monitor has taken over
(the runner stops touching them), and, once :meth:`LeaseKeeper.take_over` has been called at
start (``cxprobe run``; not ``cxprobe once``), takes over the runs of its location whose lease
expired and hands them to the runner to resume. A store that fails is logged and counted and
tried again at the next tick: the keeper never ends by itself.

Renewals keep their own cadence, apart from the take-over sweeps: a sweep that takes over many
runs at once (and resumes them) must not delay the renewal of the leases already held, or a
busy monitor lets its own leases lapse while alive and two monitors take each other's runs back
and forth. A step that overruns its interval is followed by the next at once, not an interval
later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cxprobe.store.database import EvidenceStore, OpenRun
from exporters.metrics import MonitorMetrics
from probes.errors import describe_error


@dataclass
class LeaseKeeper:
    """Renews, watches and takes over leases for one runner."""

    store: EvidenceStore
    location: str
    metrics: MonitorMetrics
    logger: logging.Logger
    #: The runs this process drives now.
    driven: Callable[[], Collection[str]]
    #: Called with a run this process drives that another monitor has taken over.
    lost: Callable[[str], None]
    #: Resumes runs just taken over; returns how many it resumed.
    resume: Callable[[list[OpenRun]], Awaitable[int]]
    held: int = 0
    taken_over: int = 0
    lost_runs: int = 0
    renewal_failures: int = 0
    last_renewed_at: datetime | None = None
    _taking_over: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    async def start(self, stack: AsyncExitStack) -> None:
        self._tasks = [
            asyncio.create_task(self._every(self.renew), name="lease-renewal"),
            asyncio.create_task(self._every(self.sweep), name="lease-take-over"),
        ]
        stack.push_async_callback(self.stop)

    async def stop(self) -> None:
        """Stop renewing (before the runner releases the leases: a renewal after the release
        would extend them again)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def take_over(self) -> int:
        """At start: take back the runs an earlier process of this monitor held and those of
        the location nobody holds; from now on, take over expired leases at every tick.
        Returns how many runs were resumed."""
        self._taking_over = True
        return await self._take_over(reclaim_own=True)

    async def renew(self) -> None:
        """Renew this process's leases; a failing store is logged, not raised."""
        try:
            renewal = await self.store.renew_leases(self.driven())
        except Exception as exc:
            self.renewal_failures += 1
            self.metrics.record_lease_renewal_failure(self.location)
            self.logger.warning(
                "leases not renewed; trying again",
                extra={"error": describe_error(exc), "held": self.held},
            )
            return
        self.last_renewed_at = datetime.now(UTC)
        self.held = len(renewal.held)
        self.metrics.set_leases_held(self.location, self.held)
        for run_id in sorted(renewal.lost):
            self.lost_runs += 1
            self.metrics.record_lease_lost(self.location)
            self.lost(run_id)

    async def sweep(self) -> None:
        """Take over expired leases (once :meth:`take_over` was called); a failing store is
        logged, not raised."""
        if not self._taking_over:
            return
        try:
            await self._take_over(reclaim_own=False)
        except Exception as exc:
            self.logger.warning(
                "expired leases not taken over; trying again",
                extra={"error": describe_error(exc)},
            )

    async def _take_over(self, *, reclaim_own: bool) -> int:
        runs = await self.store.take_over_leases(self.location, reclaim_own=reclaim_own)
        if not runs:
            return 0
        self.taken_over += len(runs)
        self.metrics.record_taken_over(self.location, len(runs))
        self.held += len(runs)
        self.metrics.set_leases_held(self.location, self.held)
        return await self.resume(runs)

    async def _every(self, step: Callable[[], Awaitable[None]]) -> None:
        """``step`` every ``renew_every`` seconds, counted from each start (a step that
        overruns the interval is followed by the next at once)."""
        interval = self.store.holder.renew_every
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due + interval, loop.time())
            await step()

    def health(self) -> Mapping[str, Any]:
        holder = self.store.holder
        return {
            "monitor": holder.name,
            "session": holder.session,
            "lease_timeout": holder.timeout,
            "held": self.held,
            "taken_over": self.taken_over,
            "lost": self.lost_runs,
            "renewal_failures": self.renewal_failures,
            "last_renewed_at": self.last_renewed_at.isoformat() if self.last_renewed_at else None,
        }
