"""The scheduler alone: cxprobe's CheckScheduler (real APScheduler AsyncIOScheduler) firing
many interval checks whose runs are a no-op, so the figures are the scheduler's, not a probe's.

Each check has its own interval between ``shortest`` and ``longest`` seconds (jitter 0).
Interval slots are multiples of the interval from the slot epoch (2000-01-03), so distinct
intervals put the checks' slots at unrelated phases: the starts are spread over time, as a
real configuration's are (``aligned=True`` gives every check the same interval instead, the
worst case of all slots falling on one instant).

The stand-in for the runner records when it was asked to start each slot. Start lag is that
moment minus the slot (the scheduler's own lag observation, taken just before, is reported
too). Slots caught up at start (a one-off burst, late by design) and those of a short
warm-up are left out; every slot due in the measured window must start exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bench.stats import cpu_seconds, summary_ms
from cxprobe.scheduler import CheckScheduler
from cxprobe.settings import Check
from scenarios.engine import utc_now
from scenarios.schedule import Schedule

#: Slots this close to the end of the run may not have started yet; not counted.
END_MARGIN_SECONDS = 1.0


def bench_checks(count: int, shortest: float, longest: float, *, aligned: bool) -> list[Check]:
    """``count`` interval checks, intervals evenly spaced in [shortest, longest) (µs-exact)."""
    checks = []
    for index in range(count):
        every = shortest if aligned else round(shortest + (longest - shortest) * index / count, 6)
        checks.append(
            Check(
                id=f"check-{index:05d}",
                target="acme",
                channel="email",
                scenario="billing",
                schedule=Schedule(every=every, jitter=0),
            )
        )
    return checks


@dataclass
class StartRecorder:
    """Stands in for ``Runner.start_slot``: notes the start and returns at once."""

    starts: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    #: The scheduler's own lag observations, with when each was made.
    observed_lags: list[tuple[datetime, float]] = field(default_factory=list)

    async def start_slot(self, check: Check, slot: datetime) -> None:
        self.starts.append((check.id, slot, utc_now()))

    def observe_lag(self, seconds: float) -> None:
        self.observed_lags.append((utc_now(), seconds))


class CountingHandler(logging.Handler):
    """Counts the records it gets instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextmanager
def counted_job_errors() -> Iterator[CountingHandler]:
    """APScheduler's "Error running job" records, counted rather than printed: stopping
    cancels the job coroutines it has dispatched and not yet run, and logs each one."""
    executors = logging.getLogger("apscheduler.executors")
    handler = CountingHandler()
    executors.addHandler(handler)
    executors.propagate = False
    try:
        yield handler
    finally:
        executors.removeHandler(handler)
        executors.propagate = True


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("bench.scheduler")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def window_figures(
    checks: list[Check], recorder: StartRecorder, window: tuple[datetime, datetime]
) -> dict[str, Any]:
    """Lags and missed or repeated slots for the slots due in ``window``."""
    begin, end = window
    in_window = [(c, s, at) for c, s, at in recorder.starts if begin <= s < end]
    started = Counter((check_id, slot) for check_id, slot, _ in in_window)
    expected = {(check.id, slot) for check in checks for slot in check.schedule.slots(begin, end)}
    lags = [(at - slot).total_seconds() for _, slot, at in in_window]
    return {
        "slots_due": len(expected),
        "slots_started": len(started),
        "missed": len(expected - started.keys()),
        "started_twice": sum(1 for count in started.values() if count > 1),
        "unexpected": len(started.keys() - expected),
        "start_lag": summary_ms(lags) if lags else None,
        "early_starts": sum(1 for lag in lags if lag < 0),
    }


@dataclass(frozen=True)
class Measured:
    """When the measured window ran and what it cost."""

    began: datetime  # the scheduler's start (slots up to here are caught up)
    start_seconds: float  # wall time of CheckScheduler.start() (adding every job)
    window: tuple[datetime, datetime]
    cpu_seconds: float  # the process's CPU during the window


async def _run(
    configured: list[Check], recorder: StartRecorder, seconds: float, warmup: float
) -> Measured:
    """Run the scheduler for ``warmup`` then ``seconds`` seconds (the window measured)."""
    scheduler = CheckScheduler(
        configured, recorder.start_slot, observe_lag=recorder.observe_lag, logger=_quiet_logger()
    )
    began = utc_now()
    started = time.perf_counter()
    scheduler.start()
    start_seconds = time.perf_counter() - started
    try:
        await asyncio.sleep(warmup)
        measured_from = utc_now()
        cpu_before = cpu_seconds()
        await asyncio.sleep(seconds)
        cpu_used = cpu_seconds() - cpu_before
        measured_to = utc_now()
    finally:
        await scheduler.stop()
        await asyncio.sleep(0.1)  # the cancelled job coroutines end and are logged (counted)
    return Measured(began, start_seconds, (measured_from, measured_to), cpu_used)


async def measure(
    checks: int = 10_000,
    seconds: float = 120.0,
    *,
    shortest: float = 5.0,
    longest: float = 10.0,
    warmup: float = 10.0,
    aligned: bool = False,
) -> dict[str, Any]:
    configured = bench_checks(checks, shortest, longest, aligned=aligned)
    recorder = StartRecorder()
    with counted_job_errors() as job_errors:
        run = await _run(configured, recorder, seconds, warmup)
    measured_from, measured_to = run.window
    due_until = measured_to - timedelta(seconds=END_MARGIN_SECONDS)
    figures = window_figures(configured, recorder, (measured_from, due_until))
    starts = sum(1 for _, _, at in recorder.starts if measured_from <= at < measured_to)
    observed = [lag for at, lag in recorder.observed_lags if measured_from <= at < measured_to]
    lag = figures["start_lag"]
    return {
        "checks": checks,
        "intervals_seconds": [shortest, shortest if aligned else longest],
        "layout": "aligned" if aligned else "spread",
        "jitter_seconds": 0,
        "measured_seconds": round((measured_to - measured_from).total_seconds(), 1),
        "warmup_seconds": warmup,
        "scheduler_start_seconds": round(run.start_seconds, 3),
        "caught_up_at_start": sum(1 for _, slot, _ in recorder.starts if slot <= run.began),
        **figures,
        "jobs_cancelled_at_stop": job_errors.count,
        "scheduler_observed_lag": summary_ms(observed) if observed else None,
        "starts_per_second": round(starts / seconds, 1),
        "cpu_seconds": round(run.cpu_seconds, 2),
        "cpu_share_of_one_core": round(run.cpu_seconds / seconds, 3),
        "cpu_ms_per_start": round(run.cpu_seconds / starts * 1000, 4) if starts else None,
        "goal": {"start_lag_p99_ms_max": 100},
        "passed": bool(lag and lag["p99_ms"] <= 100 and figures["missed"] == 0),
    }
