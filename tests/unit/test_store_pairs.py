"""Pair holds in the store (revision 0011), each test on SQLite and PostgreSQL: a channel's pair
(probe id, brand id) is held by one open run for every monitor on the store; a hold whose run is
closed is stale and is taken over; only the holder releases it; monitors racing for one pair
get it once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest

from cxprobe.store.database import EvidenceStore
from cxprobe.store.retention import PurgePolicy
from scenarios.model import Outcome, RunResult
from tests.stores import StoreBackend
from tests.unit.test_store import SENT_AT, SLOT, new_result

PAIR = "pair:+15005550006:+442071234568"


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[EvidenceStore]:
    async with EvidenceStore(store_backend.url) as opened:
        yield opened


async def open_run(store: EvidenceStore, minutes: int) -> RunResult:
    result = new_result("acme-sms", SLOT + timedelta(minutes=minutes), channel="sms")
    await store.claim_slot(result)
    return result


async def close(store: EvidenceStore, result: RunResult) -> None:
    result.outcome, result.reason = Outcome.ERROR, "not sent"
    result.finished_at = SENT_AT
    await store.finish(result)


async def test_one_open_run_holds_a_pair(store: EvidenceStore, store_backend: StoreBackend) -> None:
    first, second = await open_run(store, 0), await open_run(store, 1)
    assert await store.hold_pair("sms", PAIR, first.token) is None
    assert await store.hold_pair("sms", PAIR, first.token) is None  # already its own
    assert await store.hold_pair("sms", PAIR, second.token) == first.token
    # Another channel's pair of the same name is another pair.
    assert await store.hold_pair("whatsapp", PAIR, second.token) is None
    # Only the holder releases it.
    assert await store.release_pair("sms", PAIR, second.token) is False
    assert await store.hold_pair("sms", PAIR, second.token) == first.token
    assert await store.release_pair("sms", PAIR, first.token) is True
    assert await store.hold_pair("sms", PAIR, second.token) is None
    rows = await store_backend.query("SELECT channel, pair, token FROM pair_holds ORDER BY channel")
    assert rows == [("sms", PAIR, second.token), ("whatsapp", PAIR, second.token)]


async def test_a_closed_runs_hold_is_taken_over(store: EvidenceStore) -> None:
    """Its monitor died before releasing it: once the run is closed (taken over and judged,
    or interrupted), the pair is free."""
    died, next_run = await open_run(store, 0), await open_run(store, 1)
    assert await store.hold_pair("sms", PAIR, died.token) is None
    assert await store.hold_pair("sms", PAIR, next_run.token) == died.token
    await close(store, died)
    assert await store.hold_pair("sms", PAIR, next_run.token) is None
    assert await store.release_pair("sms", PAIR, died.token) is False  # no longer its


async def test_monitors_racing_for_a_pair_get_it_once(store_backend: StoreBackend) -> None:
    """Several monitors (stores of their own on one database) ask at once, many times."""
    async with EvidenceStore(store_backend.url) as setup:
        runs = [await open_run(setup, minutes) for minutes in range(8)]
    async with AsyncExitStack() as stack:
        monitors = [
            await stack.enter_async_context(EvidenceStore(store_backend.url)) for _ in range(4)
        ]
        for round_ in range(3):
            key = f"{PAIR}:{round_}"  # a new pair each round: every monitor inserts at once
            answers = await asyncio.gather(
                *(
                    monitors[index % len(monitors)].hold_pair("sms", key, run.token)
                    for index, run in enumerate(runs)
                )
            )
            winners = [run for run, holder in zip(runs, answers, strict=True) if holder is None]
            assert len(winners) == 1, answers
            assert {holder for holder in answers if holder is not None} == {winners[0].token}


async def test_a_purged_runs_hold_goes_with_it(
    store: EvidenceStore, store_backend: StoreBackend
) -> None:
    died = await open_run(store, 0)
    assert await store.hold_pair("sms", PAIR, died.token) is None
    await close(store, died)
    policy = PurgePolicy(timedelta(days=1), timedelta(days=1), require_exported=False)
    report = await store.purge(policy, now=SLOT + timedelta(days=3), dry_run=False)
    assert [run.run_id for run in report.purged] == [died.run_id]
    assert await store_backend.query("SELECT count(*) FROM pair_holds") == [(0,)]
    later = await open_run(store, 60 * 24 * 3)
    assert await store.hold_pair("sms", PAIR, later.token) is None
