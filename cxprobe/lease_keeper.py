"""Keeps this monitor's leases on open runs, and takes over those of monitors that died.

Every :attr:`~cxprobe.store.leases.LeaseHolder.renew_every` seconds the keeper renews the
leases this process holds, tells the runner which of its runs another monitor has taken over
(the runner stops touching them), and, once :meth:`LeaseKeeper.take_over` has been called at
start (``cxprobe run``; not ``cxprobe once``), takes over the runs of its location whose lease
expired and hands them to the runner to resume. A store that fails is logged and counted and
tried again at the next tick: the keeper never ends by itself.
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
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self, stack: AsyncExitStack) -> None:
        self._task = asyncio.create_task(self._keep(), name="lease-keeper")
        stack.push_async_callback(self.stop)

    async def stop(self) -> None:
        """Stop renewing (before the runner releases the leases: a renewal after the release
        would extend them again)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def take_over(self) -> int:
        """At start: take back the runs an earlier process of this monitor held and those of
        the location nobody holds; from now on, take over expired leases at every tick.
        Returns how many runs were resumed."""
        self._taking_over = True
        return await self._take_over(reclaim_own=True)

    async def tick(self) -> None:
        """One renewal (and look for expired leases); a failing store is logged, not raised."""
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
        if self._taking_over:
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

    async def _keep(self) -> None:
        interval = self.store.holder.renew_every
        while True:
            await asyncio.sleep(interval)
            await self.tick()

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
