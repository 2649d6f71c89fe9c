"""How often a cron schedule fires, as the rules need it: the mean gap between slots (the SLO
event rate) and the longest span of three gaps (the staleness threshold).

A cron's nominal interval is not enough: ``*/15 8-18 * * 1-5`` fires every 15 minutes by day
and not at all between Friday evening and Monday morning, and a threshold of three times
15 minutes would call the check stale every night.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from apscheduler.triggers.cron import CronTrigger

#: A fixed start (a Monday), so the figures, and the generated rules, never depend on today.
_ANCHOR = datetime(2001, 1, 1, tzinfo=UTC)
#: Scan two weeks (both weekends), longer only for crons that fire fewer than five times in
#: them, and never more slots than a per-minute cron has in two weeks.
_SCAN = timedelta(days=15)
_LONGEST_SCAN = timedelta(days=800)
_MIN_SLOTS = 5
_MAX_SLOTS = 21_000


def cron_gaps(expression: str, timezone: str) -> tuple[float, float]:
    """``(mean seconds between slots, longest seconds from a slot to the third after it)``."""
    trigger = CronTrigger.from_crontab(expression, timezone=timezone)
    slots: list[datetime] = []
    previous: datetime | None = None
    now = _ANCHOR
    while len(slots) < _MAX_SLOTS:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        elapsed = fire - _ANCHOR
        if elapsed > _LONGEST_SCAN or (elapsed > _SCAN and len(slots) >= _MIN_SLOTS):
            break
        slots.append(fire)
        previous, now = fire, fire + timedelta(microseconds=1)
    if len(slots) < 2:
        raise ValueError(
            f"cron {expression!r} fires less than twice in {_LONGEST_SCAN.days} days: "
            "too rarely to tell when the check is stale; schedule it more often"
        )
    seconds = [(later - earlier).total_seconds() for earlier, later in pairwise(slots)]
    mean = sum(seconds) / len(seconds)
    if len(seconds) < 3:  # a cron this rare: three of its longest gaps
        return mean, 3 * max(seconds)
    return mean, max(sum(seconds[i : i + 3]) for i in range(len(seconds) - 2))
