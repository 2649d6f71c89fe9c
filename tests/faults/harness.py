"""What every fault test shares (this module has no tests).

A fault test runs a real monitor on a real sandbox peer (the contract suite's harnesses) with
its scheduler started and its check firing every few seconds, breaks something while a run
is in flight, and then shows two things from the store: the faulted run ended as a recorded
outcome with its reason, and a run the scheduler started after the fault finished (the
scheduler did not stall). Each test prints one figures line (``make faults`` runs pytest with
``-s`` so it shows); docs/faults.md keeps the figures of a run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import yaml

from cxprobe.app import Monitor
from scenarios.model import RunResult
from tests.contract.harness import Sandbox

#: Longest one step of a fault test may wait for the store (a failing test, not a hang).
STEP_TIMEOUT = 30.0
#: The store has no change notification: how often a waiting test reads it.
READ_EVERY = 0.05


def edit_config(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """Apply ``change`` to the YAML config at ``path`` (as data) and write it back."""
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def every(seconds: int) -> Callable[[dict[str, Any]], None]:
    """A config change: every check fires every ``seconds`` (no jitter)."""

    def reschedule(data: dict[str, Any]) -> None:
        for check in data["checks"]:
            check["schedule"] = {"every": f"{seconds}s"}

    return reschedule


@asynccontextmanager
async def scheduled(sandbox: Sandbox[Any]) -> AsyncIterator[Monitor]:
    """The sandbox's monitor with its scheduler started: the check's current slot runs at
    once and each later slot in its turn."""
    async with sandbox.monitoring() as monitor:
        monitor.scheduler.start()
        yield monitor


async def run_where(
    monitor: Monitor, predicate: Callable[[RunResult], bool], what: str, *, oldest: bool = False
) -> RunResult:
    """The newest (or ``oldest``) stored run for which ``predicate`` holds, once there is
    one (``what`` says which run the test waited for when it fails)."""
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                runs = await monitor.store.recent_runs(200)
                for run in reversed(runs) if oldest else runs:
                    if predicate(run):
                        return run
                await asyncio.sleep(READ_EVERY)
    except TimeoutError:
        raise AssertionError(f"no {what} in the store within {STEP_TIMEOUT:g}s") from None


async def until(condition: Callable[[], bool], what: str) -> None:
    """Until ``condition`` holds (read every READ_EVERY: what it reads has no event)."""
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(READ_EVERY)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {STEP_TIMEOUT:g}s") from None


async def run_in_flight(monitor: Monitor) -> RunResult:
    """A run the scheduler started whose contact is out and which is not judged yet."""
    return await run_where(
        monitor,
        lambda run: run.sent_at is not None and run.finished_at is None,
        "run with its contact sent and still open",
    )


async def first_run_finished(monitor: Monitor) -> RunResult:
    """The monitor's first run (the slot the scheduler catches up at start), once finished:
    a later slot's run may end before it."""
    first = await run_where(monitor, lambda run: True, "run claimed", oldest=True)
    return await finished(monitor, first)


async def finished(monitor: Monitor, run: RunResult) -> RunResult:
    """``run`` as stored once it is finished (its outcome recorded)."""
    return await run_where(
        monitor,
        lambda stored: stored.run_id == run.run_id and stored.finished_at is not None,
        f"outcome of run {run.run_id}",
    )


async def later_run_finished(monitor: Monitor, after: datetime) -> RunResult:
    """A run of a slot after ``after`` (started by the scheduler after the fault), once it
    is finished: the scheduler did not stall."""
    return await run_where(
        monitor,
        lambda run: run.slot > after and run.finished_at is not None,
        f"finished run of a slot after {after:%H:%M:%S}",
    )


@dataclass(frozen=True)
class Figures:
    """What a fault test measured, over every run of its monitor."""

    fault: str
    runs: int  # slots claimed
    recorded: int  # runs finished with an outcome in the store
    lost: int  # runs claimed and never finished, once nothing is in progress
    stalled: int  # slots between the first and the last claimed one that never started
    extra: dict[str, Any]

    def line(self) -> str:
        extra = "".join(f" {name}={value}" for name, value in self.extra.items())
        return (
            f"FAULT {self.fault}: runs={self.runs} recorded={self.recorded} lost={self.lost} "
            f"stalled={self.stalled}{extra}"
        )


async def settle(monitor: Monitor, fault: str, **extra: Any) -> Figures:
    """Stop the scheduler, let the runs in progress end, count what the store holds, and
    print the figures line."""
    await monitor.scheduler.stop()
    await until(lambda: not monitor.runner.health()["runs_in_progress"], "the runs' end")
    runs = await monitor.store.recent_runs(1000)
    recorded = sum(run.outcome is not None and run.finished_at is not None for run in runs)
    figures = Figures(
        fault=fault,
        runs=len(runs),
        recorded=recorded,
        lost=len(runs) - recorded,
        stalled=_slots_not_started(monitor, runs),
        extra=extra,
    )
    print(figures.line())
    return figures


def _slots_not_started(monitor: Monitor, runs: list[RunResult]) -> int:
    """Slots of each check between its first and last claimed one that no run claimed."""
    missing = 0
    for check in monitor.config.checks:
        slots = sorted(run.slot for run in runs if run.check_id == check.id)
        if len(slots) < 2:
            continue
        expected = check.schedule.slots(slots[0], slots[-1] + timedelta(microseconds=1))
        missing += len(set(expected) - set(slots))
    return missing


def descendants(
    root: psutil.Process, named: Callable[[str, str | None], bool]
) -> list[psutil.Process]:
    """The processes under ``root`` for which ``named(name, parent's name)`` holds (those
    that end while being looked at are left out)."""
    found = []
    for process in root.children(recursive=True):
        try:
            parent = process.parent()
            if named(process.name(), parent.name() if parent is not None else None):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


class LogWatch:
    """The records with one message that a logger (or a child) logs, as they come."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.records: list[logging.LogRecord] = []
        self._seen = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def note(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.records.append(record)
            self._loop.call_soon_threadsafe(self._seen.set)

    async def seen(self) -> None:
        """Until the message has been logged at least once."""
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                await self._seen.wait()
        except TimeoutError:
            raise AssertionError(f"{self.message!r} not logged within {STEP_TIMEOUT:g}s") from None


@contextmanager
def log_records(logger: str, message: str) -> Iterator[LogWatch]:
    """What ``logger`` (or a child) logs with ``message`` while the block runs (warnings and
    worse: the level the logger is raised to if it is quieter)."""
    watch = LogWatch(message)

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            watch.note(record)

    handler = _Collect(level=logging.DEBUG)
    target = logging.getLogger(logger)
    previous = target.level
    target.addHandler(handler)
    if target.getEffectiveLevel() > logging.WARNING:
        target.setLevel(logging.WARNING)
    try:
        yield watch
    finally:
        target.removeHandler(handler)
        target.setLevel(previous)
