from datetime import UTC, datetime, timedelta

from cxprobe.scheduler import SLOT_EPOCH, jitter_for, latest_slot
from cxprobe.settings import Schedule


def test_interval_slots_are_aligned_and_stable() -> None:
    schedule = Schedule(every=900)
    now = datetime(2026, 11, 22, 10, 7, 31, tzinfo=UTC)
    assert latest_slot(schedule, now) == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    # A restart a few minutes later computes the same slot, so the store's claim dedupes it.
    assert latest_slot(schedule, now + timedelta(minutes=5)) == latest_slot(schedule, now)
    assert (latest_slot(schedule, now) - SLOT_EPOCH).total_seconds() % 900 == 0


def test_slot_at_exact_boundary_is_that_slot() -> None:
    boundary = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert latest_slot(Schedule(every=900), boundary) == boundary


def test_cron_slot_in_its_time_zone() -> None:
    schedule = Schedule(cron="30 9 * * mon-fri", timezone="Europe/London")
    now = datetime(2026, 11, 23, 9, 32, tzinfo=UTC)  # a Monday, GMT
    assert latest_slot(schedule, now) == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def test_cron_slot_older_than_the_misfire_grace_is_not_run() -> None:
    schedule = Schedule(cron="30 9 * * mon-fri", misfire_grace=300)
    assert latest_slot(schedule, datetime(2026, 11, 23, 9, 36, tzinfo=UTC)) is None


def test_cron_slot_late_fire_within_grace() -> None:
    schedule = Schedule(cron="*/5 * * * *")
    now = datetime(2026, 11, 23, 12, 4, 59, tzinfo=UTC)
    assert latest_slot(schedule, now) == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_jitter_is_stable_bounded_and_spread() -> None:
    slot = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert jitter_for("a", slot, 0) == 0
    assert jitter_for("a", slot, 60) == jitter_for("a", slot, 60)
    offsets = {jitter_for(f"check-{i}", slot, 60) for i in range(50)}
    assert all(0 <= offset < 60 for offset in offsets)
    assert max(offsets) - min(offsets) > 30  # spread, not bunched


def test_schedule_interval_of_cron() -> None:
    assert Schedule(cron="*/15 * * * *").interval == 900
    assert Schedule(every=120).interval == 120
