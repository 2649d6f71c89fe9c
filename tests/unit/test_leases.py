"""Leases on open runs in the store, on SQLite and PostgreSQL: claimed with the run, renewed,
taken over once expired (never while live), fenced against a paused monitor, released on stop.

Time passing is simulated by moving a lease's expiry into the past in the database, as the
lease's own clock (the database's) would see it after the timeout: no test waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from cxprobe.store.database import Claim, EvidenceStore, LeaseHolder, LeaseLostError
from scenarios.model import Outcome
from tests.stores import StoreBackend
from tests.unit.test_store import new_result, reply, sent

LOCATION = "test"


@contextlib.asynccontextmanager
async def two_monitors(url: str) -> AsyncIterator[tuple[EvidenceStore, EvidenceStore]]:
    """Monitors "a" and "b" of one location, each its own process (engine, session)."""
    async with (
        EvidenceStore(url, holder=LeaseHolder(name="a")) as a,
        EvidenceStore(url, holder=LeaseHolder(name="b")) as b,
    ):
        yield a, b


async def expire(backend: StoreBackend, owner: str) -> None:
    """``owner``'s leases as they are once it has stopped renewing for the lease timeout."""
    await backend.execute(
        "UPDATE runs SET lease_expires_at = '2000-01-01 00:00:00.000000' "
        f"WHERE lease_owner = '{owner}'"
    )


async def leases(backend: StoreBackend) -> list[tuple[str, str]]:
    return sorted(await backend.query("SELECT run_id, lease_owner FROM runs WHERE status = 'open'"))


async def test_a_claimed_run_is_leased_to_its_monitor_and_renewed(
    store_backend: StoreBackend,
) -> None:
    async with two_monitors(store_backend.url) as (a, b):
        run = new_result()
        assert await a.claim_slot(run) is Claim.CLAIMED
        assert await leases(store_backend) == [(run.run_id, "a")]
        [(before,)] = await store_backend.query("SELECT lease_expires_at FROM runs")
        renewal = await a.renew_leases([run.run_id])
        assert renewal.held == {run.run_id} and renewal.lost == frozenset()
        [(after,)] = await store_backend.query("SELECT lease_expires_at FROM runs")
        assert str(after) > str(before)
        # b holds nothing and cannot take a live lease.
        assert (await b.renew_leases([])).held == frozenset()
        assert await b.take_over_leases(LOCATION) == []
        assert await leases(store_backend) == [(run.run_id, "a")]


async def test_an_expired_lease_is_taken_over_once_with_what_resuming_needs(
    store_backend: StoreBackend,
) -> None:
    async with (
        two_monitors(store_backend.url) as (a, b),
        EvidenceStore(store_backend.url, holder=LeaseHolder(name="c")) as c,
    ):
        runs = [new_result(slot=new_result().slot.replace(minute=m)) for m in range(5)]
        for run in runs:
            await a.claim_slot(run)
            await a.record_sent(run.run_id, sent(f"<c-{run.run_id}@x>"), None)
        await a.record_reply(runs[0].run_id, *reply("<r0@acme.test>", 3.0))
        await expire(store_backend, "a")
        # b and c look at once: every run goes to exactly one of them.
        taken_b, taken_c = await asyncio.gather(
            b.take_over_leases(LOCATION), c.take_over_leases(LOCATION)
        )
        taken = {o.result.run_id: o for o in [*taken_b, *taken_c]}
        assert sorted(taken) == sorted(run.run_id for run in runs)
        assert len(taken_b) + len(taken_c) == len(runs)
        first = taken[runs[0].run_id]
        assert first.sent_external_id == f"<c-{runs[0].run_id}@x>"
        assert first.resume_state["last_uid"] == 41
        assert [r.external_id for r in first.result.replies] == ["<r0@acme.test>"]
        owners = dict(await leases(store_backend))
        assert {owners[o.result.run_id] for o in taken_b} <= {"b"}
        assert {owners[o.result.run_id] for o in taken_c} <= {"c"}
        # Nothing left to take, and another location's runs were never candidates.
        assert await b.take_over_leases(LOCATION) == []


async def test_a_paused_monitor_finds_its_run_taken_and_cannot_write_to_it(
    store_backend: StoreBackend,
) -> None:
    async with two_monitors(store_backend.url) as (a, b):
        run = new_result()
        await a.claim_slot(run)
        await a.record_sent(run.run_id, sent(), None)
        await expire(store_backend, "a")
        [taken] = await b.take_over_leases(LOCATION)
        # a wakes up: its renewal reports the loss, and every write to the run is refused.
        renewal = await a.renew_leases([run.run_id])
        assert renewal.lost == {run.run_id} and renewal.held == frozenset()
        with pytest.raises(LeaseLostError, match=r"leased to b now"):
            await a.record_reply(run.run_id, *reply("<late@acme.test>", 4.0))
        with pytest.raises(LeaseLostError):
            await a.check_lease(run.run_id)
        run.outcome = Outcome.BREACHED
        with pytest.raises(LeaseLostError):
            await a.finish(run)
        # The new owner writes and finishes; then the run is closed for everyone (a late
        # reply to a closed run is anybody's to record).
        assert await b.record_reply(run.run_id, *reply("<r1@acme.test>", 5.0))
        taken.result.outcome = Outcome.MET
        await b.finish(taken.result)
        assert await a.record_reply(run.run_id, *reply("<r2@acme.test>", 6.0))
    assert await store_backend.query("SELECT count(*) FROM messages WHERE direction = 'in'") == [
        (2,)
    ]


async def test_a_stopping_monitor_releases_and_a_restarted_one_takes_back_its_own(
    store_backend: StoreBackend,
) -> None:
    async with two_monitors(store_backend.url) as (a, b):
        kept, released = new_result(), new_result(slot=new_result().slot.replace(minute=30))
        await a.claim_slot(kept)
        # A restart of "a": a new session of the same name takes its runs back at once...
        async with EvidenceStore(store_backend.url, holder=LeaseHolder(name="a")) as restarted:
            assert await b.take_over_leases(LOCATION, reclaim_own=True) == []
            [back] = await restarted.take_over_leases(LOCATION, reclaim_own=True)
            assert back.result.run_id == kept.run_id
            with pytest.raises(LeaseLostError):
                await a.check_lease(kept.run_id)
            await restarted.claim_slot(released)
            # ...and a stop releases: the other monitor takes them at its next look.
            assert await restarted.release_leases() == 2
        taken = await b.take_over_leases(LOCATION)
        assert sorted(o.result.run_id for o in taken) == sorted([kept.run_id, released.run_id])


async def test_runs_from_before_leases_are_taken_by_the_first_monitor_to_look(
    store_backend: StoreBackend,
) -> None:
    async with two_monitors(store_backend.url) as (a, b):
        run = new_result()
        await a.claim_slot(run)
        await store_backend.execute(
            "UPDATE runs SET lease_owner = NULL, lease_session = NULL, lease_expires_at = NULL"
        )
        [taken] = await b.take_over_leases(LOCATION)
        assert taken.result.run_id == run.run_id
        assert await a.take_over_leases(LOCATION) == []
        assert await leases(store_backend) == [(run.run_id, "b")]
