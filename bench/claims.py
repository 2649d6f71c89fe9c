"""Claims per second on PostgreSQL with several monitors competing for the same slots.

Each monitor is its own :class:`EvidenceStore` (its own engine and connection pool), as
separate processes would be, on one real PostgreSQL server started for the benchmark. Every
monitor tries to claim every slot, in its own shuffled order, with a few claims in flight at
once (the runner's concurrency); the database decides. The figures are the claim attempts and
the slots won per second, claim latency, and the check that matters: every slot won exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.stats import summary_ms
from cxprobe.store.database import Claim, EvidenceStore
from scenarios.model import Period, RunResult, Thresholds
from tests.postgres import running_postgres

SLOT_EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


def _result(check_id: str, slot: datetime) -> RunResult:
    return RunResult(
        run_id=str(uuid.uuid4()),
        check_id=check_id,
        target="acme",
        channel="email",
        scenario="billing-question",
        location="bench",
        slot=slot,
        token="CXP-" + uuid.uuid4().hex[:10].upper(),
        period=Period.BUSINESS,
        thresholds=Thresholds(
            first_response=300.0, human_response=3600.0, after_hours_response=None, deadline=7200
        ),
        expected_queue="billing",
    )


async def _monitor(
    url: str, slots: list[tuple[str, datetime]], in_flight: int, seed: int
) -> tuple[list[Claim], list[float]]:
    """One monitor claiming every slot in its own order; its outcomes and latencies."""
    order = list(slots)
    random.Random(seed).shuffle(order)
    outcomes: list[Claim] = []
    latencies: list[float] = []
    gate = asyncio.Semaphore(in_flight)

    async def claim(store: EvidenceStore, check_id: str, slot: datetime) -> None:
        async with gate:
            began = time.perf_counter()
            outcomes.append(await store.claim_slot(_result(check_id, slot)))
            latencies.append(time.perf_counter() - began)

    async with EvidenceStore(url) as store:
        await asyncio.gather(*(claim(store, check_id, slot) for check_id, slot in order))
    return outcomes, latencies


async def measure(monitors: int = 4, checks: int = 50, slots_per_check: int = 20) -> dict[str, Any]:
    with running_postgres() as server:
        database = server.create_database()
        url = server.url(database)
        async with EvidenceStore(url):  # the schema, created once before the clock starts
            pass
        slots = [
            (f"check-{check:03d}", SLOT_EPOCH + timedelta(minutes=slot))
            for check in range(checks)
            for slot in range(slots_per_check)
        ]
        began = time.perf_counter()
        per_monitor = await asyncio.gather(
            *(_monitor(url, slots, in_flight=4, seed=index) for index in range(monitors))
        )
        seconds = time.perf_counter() - began
        stored = server.sql(database, "SELECT count(*) FROM slots")
    outcomes = [outcome for monitor_outcomes, _ in per_monitor for outcome in monitor_outcomes]
    latencies = [latency for _, monitor_latencies in per_monitor for latency in monitor_latencies]
    won = outcomes.count(Claim.CLAIMED)
    return {
        "monitors": monitors,
        "slots": len(slots),
        "attempts": len(outcomes),
        "won": won,
        "taken": outcomes.count(Claim.TAKEN),
        "slots_stored": int(stored[0][0]),
        "duplicates": won - len(slots),
        "seconds": round(seconds, 2),
        "attempts_per_second": round(len(outcomes) / seconds, 1),
        "slots_won_per_second": round(won / seconds, 1),
        "claim_latency_ms": summary_ms(latencies),
        "won_per_monitor": [
            monitor_outcomes.count(Claim.CLAIMED) for monitor_outcomes, _ in per_monitor
        ],
    }
