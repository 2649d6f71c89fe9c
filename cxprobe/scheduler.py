"""APScheduler wiring: one job per check, firing at its slots.

A *slot* is a check's nominal scheduled time (without jitter); the slots, their epoch and the
misfire grace are the check's :class:`scenarios.schedule.Schedule`'s (interval schedules are
aligned to a fixed epoch, so a restart produces the same slots and the store's (check, slot)
claim stops a slot from running twice). Jitter is a per-slot offset derived from a hash of the
check and slot, so it spreads starts (as synthetic-monitoring agents do) yet is the same if the
slot is re-fired. The APScheduler job only starts the run; the runner owns it from then on, so a
long email run never blocks its check's next slot.

A configuration reload replaces the checks (:meth:`CheckScheduler.replace_checks`): removed
checks stop firing, added and changed ones are scheduled and catch up as at start, and runs
already started go on.

At start every check also catches up its current slot, when that slot is within its misfire
grace (by default: until the next slot is due): a restart does not silently skip the slot it
interrupted, and the store's claim keeps a slot that already ran from running again. The
catch-up is a one-off start beside the APScheduler job, not an early first run of the job:
APScheduler counts each fire from the previous one, so an early first run would shift every
later fire off its slot by however far into the slot the process started.

A slot's run starts at the slot plus its jitter; the scheduler lag is how late it actually
started compared with that. The catch-up is late by design and is not observed as lag.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from cxprobe.settings import Check
from scenarios.engine import Clock, utc_now

StartSlot = Callable[[Check, datetime], Awaitable[object]]


@dataclass(frozen=True)
class ScheduleChange:
    """The check ids a reload added, removed and changed (unchanged ones are not listed)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


def jitter_for(check_id: str, slot: datetime, jitter: float) -> float:
    """A stable offset in [0, jitter) seconds for this check and slot."""
    if jitter <= 0:
        return 0.0
    digest = hashlib.sha256(f"{check_id}|{slot.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * jitter


class CheckScheduler:
    """Fires each check's slots and hands them to ``start_slot``."""

    def __init__(
        self,
        checks: list[Check],
        start_slot: StartSlot,
        *,
        observe_lag: Callable[[float], None],
        logger: logging.Logger,
        clock: Clock = utc_now,
    ) -> None:
        self._checks = {check.id: check for check in checks}
        self._start_slot = start_slot
        self._observe_lag = observe_lag
        self._logger = logger
        self._clock = clock
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._pending: set[asyncio.Task[None]] = set()
        #: Each check's latest slot handed on, so no slot starts twice from this process.
        self._last_slot: dict[str, datetime] = {}
        self._stopping = False

    def start(self) -> None:
        for check in self._checks.values():
            self._add_job(check)
        self._scheduler.start()
        for job in self._scheduler.get_jobs():
            self._log_scheduled(job.id)
        now = self._clock()
        for check in self._checks.values():
            self._catch_up(check, now)

    def replace_checks(self, checks: list[Check]) -> ScheduleChange:
        """Schedule ``checks`` instead of the current ones (a configuration reload).

        Removed checks fire no more; added and changed ones get a new job and catch up their
        current slot, as at start; unchanged ones keep their job untouched. Runs already
        started are not touched (the runner owns them), and neither is a jittered start that
        is already waiting: its slot was due under the old configuration.
        """
        wanted = {check.id: check for check in checks}
        change = ScheduleChange(
            added=tuple(sorted(wanted.keys() - self._checks.keys())),
            removed=tuple(sorted(self._checks.keys() - wanted.keys())),
            changed=tuple(
                sorted(
                    check_id
                    for check_id, check in wanted.items()
                    if check_id in self._checks and self._checks[check_id] != check
                )
            ),
        )
        for check_id in change.removed:
            if self._scheduler.get_job(check_id) is not None:
                self._scheduler.remove_job(check_id)
            self._last_slot.pop(check_id, None)
        self._checks = wanted
        now = self._clock()
        for check_id in (*change.added, *change.changed):
            self._add_job(wanted[check_id])
            if self._scheduler.running:
                self._log_scheduled(check_id)
                self._catch_up(wanted[check_id], now)
        return change

    def _add_job(self, check: Check) -> None:
        # No next_run_time: APScheduler then starts from the trigger's own next fire, which
        # is on a slot, and counts every later fire from there.
        self._scheduler.add_job(
            self._fire,
            check.schedule.trigger(),
            args=[check.id],
            id=check.id,
            name=check.id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(check.schedule.grace)),
            replace_existing=True,
        )

    def _log_scheduled(self, check_id: str) -> None:
        job = self._scheduler.get_job(check_id)
        next_run = None if job is None else job.next_run_time
        self._logger.info("check scheduled", extra={"check": check_id, "next_run": str(next_run)})

    def _catch_up(self, check: Check, now: datetime) -> None:
        if (slot := check.schedule.slot_in_grace(now)) is not None:
            self._logger.info(
                "catching up the current slot",
                extra={"check": check.id, "slot": slot.isoformat()},
            )
            self._launch(check, slot, catch_up=True)

    async def stop(self) -> None:
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    async def _fire(self, check_id: str) -> None:
        check = self._checks.get(check_id)
        if check is None:
            return  # removed by a reload while this fire was being dispatched
        slot = check.schedule.slot_in_grace(self._clock())
        if slot is None:
            return  # fired too late (a suspended process): the next slot runs in its turn
        self._launch(check, slot, catch_up=False)

    def _launch(self, check: Check, slot: datetime, *, catch_up: bool) -> None:
        last = self._last_slot.get(check.id)
        if self._stopping or (last is not None and slot <= last):
            # Already handed on: a start on a slot's boundary both catches that slot up and
            # has the job fire it.
            return
        self._last_slot[check.id] = slot
        # The jittered start runs as its own task so the APScheduler job returns at once and
        # is never counted as "still running" during the jitter sleep.
        task = asyncio.create_task(self._start_at(check, slot, observe_lag=not catch_up))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _start_at(self, check: Check, slot: datetime, *, observe_lag: bool) -> None:
        """Start ``slot``'s run at the slot plus its jitter (at once if that has passed)."""
        due = slot + timedelta(seconds=jitter_for(check.id, slot, check.schedule.jitter))
        delay = (due - self._clock()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        if observe_lag:
            self._observe_lag(max(0.0, (self._clock() - due).total_seconds()))
        try:
            await self._start_slot(check, slot)
        except Exception:
            # Starting a run touches the store; a failure there must not kill the job.
            self._logger.exception("could not start run", extra={"check": check.id})
