"""Money budgets in the claim, on SQLite and on PostgreSQL: a budget that runs out stops the
send in the claim (monitors racing included) and records a closed ``skipped: budget`` run;
the provider's actual price replaces the estimate in what the budgets count."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from cxprobe.store.budgets import BudgetWindow, ContactCost
from cxprobe.store.chain import RUN, Scope, link_problems
from cxprobe.store.database import Claim, EvidenceStore, LeaseHolder, RunCost
from scenarios.model import Outcome, RunResult
from scenarios.verdicts import slo_events
from tests.stores import StoreBackend
from tests.unit.test_store import SLOT, new_result, sent

ACCOUNT = "AC" + "0" * 32
#: Every window starts before the runs claimed in a test (claims are timed by the clock).
WINDOW_START = datetime.now(UTC) - timedelta(hours=1)


def window(
    budget: str = "acme-spend", limit: float = 0.05, *, scope: str = "target", key: str = "acme"
) -> BudgetWindow:
    assert scope in ("target", "account")
    return BudgetWindow(budget, scope, key, "daily", WINDOW_START, limit, "USD")  # type: ignore[arg-type]


def cost(amount: float = 0.02, *windows: BudgetWindow) -> ContactCost:
    return ContactCost(amount, "USD", ACCOUNT, windows or (window(),))


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[EvidenceStore]:
    async with EvidenceStore(store_backend.url) as opened:
        yield opened


def checks(count: int, prefix: str = "acme-sms") -> list[RunResult]:
    return [new_result(f"{prefix}-{n}", channel="sms") for n in range(count)]


async def test_a_budget_that_runs_out_skips_the_claim(
    store: EvidenceStore, store_backend: StoreBackend
) -> None:
    results = checks(3)
    claims = [await store.claim_slot(result, cost=cost()) for result in results]
    assert claims == [Claim.CLAIMED, Claim.CLAIMED, Claim.SKIPPED]
    skipped = results[2]
    reason = "skipped: budget acme-spend daily (0.04/0.05 USD)"
    assert (skipped.outcome, skipped.reason) == (Outcome.SKIPPED, reason)
    assert slo_events(skipped) == []  # never a breach, never an SLO event
    stored = await store.load_run(skipped.run_id)
    assert stored is not None
    assert (stored.outcome, stored.reason, stored.sent_at) == (Outcome.SKIPPED, reason, None)
    assert stored.finished_at is not None
    # The slot is taken (it is not tried again) and the skipped run is sealed in the chain.
    assert await store.claim_slot(dataclasses.replace(skipped, run_id="x" * 36, token="t")) in (
        Claim.TAKEN,
    )
    snapshot = await store.snapshot(Scope(SLOT, SLOT + timedelta(days=1)))
    assert snapshot.problems == [] and link_problems(snapshot.chain) == []
    assert [e.run_id for e in snapshot.chain if e.kind == RUN] == [skipped.run_id]
    costs = await store_backend.query(
        "SELECT estimated_cost, currency, cost_account FROM runs ORDER BY created_at"
    )
    assert costs == [(0.02, "USD", ACCOUNT)] * 3
    # A cheaper contact still fits what is left; a free one always does.
    assert await store.claim_slot(checks(1, "cheap")[0], cost=cost(0.01)) is Claim.CLAIMED
    assert await store.claim_slot(checks(1, "free")[0], cost=cost(0.0)) is Claim.CLAIMED


async def test_every_budget_that_applies_is_checked(store: EvidenceStore) -> None:
    roomy = window("acme-spend", 10.0)
    tight = window("twilio", 0.03, scope="account", key=ACCOUNT)
    first, second = checks(2)
    assert await store.claim_slot(first, cost=cost(0.02, roomy, tight)) is Claim.CLAIMED
    assert await store.claim_slot(second, cost=cost(0.02, roomy, tight)) is Claim.SKIPPED
    assert second.reason == "skipped: budget twilio daily (0.02/0.03 USD)"
    # Another account's budget does not see this account's spend.
    elsewhere = window("other", 0.03, scope="account", key="AC" + "1" * 32)
    third = checks(1, "elsewhere")[0]
    other_cost = dataclasses.replace(cost(0.02, elsewhere), account="AC" + "1" * 32)
    assert await store.claim_slot(third, cost=other_cost) is Claim.CLAIMED


async def test_contacts_never_sent_and_skipped_runs_spend_nothing(store: EvidenceStore) -> None:
    first, second, third = checks(3)
    assert await store.claim_slot(first, cost=cost()) is Claim.CLAIMED
    first.outcome, first.reason = Outcome.ERROR, "the provider was down"
    await store.finish(first)  # closed without a send: no money spent
    assert await store.claim_slot(second, cost=cost(0.04)) is Claim.CLAIMED
    assert await store.claim_slot(third, cost=cost(0.04)) is Claim.SKIPPED
    (spend,) = await store.budget_spends(cost())
    assert (spend.spent, spend.left) == (0.04, 0.01)


async def test_two_monitors_racing_share_one_budget(store_backend: StoreBackend) -> None:
    async with (
        EvidenceStore(store_backend.url, holder=LeaseHolder("monitor-a")) as one,
        EvidenceStore(store_backend.url, holder=LeaseHolder("monitor-b")) as other,
    ):
        for round_ in range(5):  # several rounds (each its own budgets): interleavings vary
            billed = f"AC{round_:032d}"
            account = window(f"account-{round_}", 0.05, scope="account", key=billed)
            target = window(f"target-{round_}", 10.0)
            results = checks(6, f"round-{round_}")
            # Half list the budgets in the other order: the locks are still taken in one.
            costs = [
                dataclasses.replace(cost(0.02, *windows), account=billed)
                for windows in [(target, account), (account, target)] * 3
            ]
            claims = await asyncio.gather(
                *(
                    store.claim_slot(result, cost=each)
                    for result, each, store in zip(results, costs, (one, other) * 3, strict=True)
                )
            )
            assert sorted(claims) == [Claim.CLAIMED] * 2 + [Claim.SKIPPED] * 4
            spends = await one.budget_spends(cost(0.0, account))
            assert spends[0].spent == 0.04
    assert await store_backend.query(
        "SELECT count(*) FROM runs WHERE outcome = 'skipped' AND sent_at IS NULL"
    ) == [(20,)]


async def test_the_actual_price_replaces_the_estimate(store: EvidenceStore) -> None:
    first, second, third = checks(3)
    assert await store.claim_slot(first, cost=cost(0.04)) is Claim.CLAIMED
    await store.record_sent(first.run_id, sent("SM-first"), None)
    first.outcome = Outcome.MET
    await store.finish(first)
    awaiting = await store.runs_awaiting_price(WINDOW_START)
    assert [(run.run_id, run.external_id) for run in awaiting] == [(first.run_id, "SM-first")]
    # The estimate leaves no room for another 0.02; the actual price (0.0079) does.
    assert await store.claim_slot(second, cost=cost()) is Claim.SKIPPED
    assert not await store.record_actual_cost(first.run_id, 0.0079, "EUR")  # not converted
    assert await store.record_actual_cost(first.run_id, 0.0079, "USD")
    costs = await store.run_costs(first.run_id)
    assert costs is not None and (costs.estimated, costs.actual) == (0.04, 0.0079)
    assert await store.runs_awaiting_price(WINDOW_START) == []
    assert await store.claim_slot(third, cost=cost()) is Claim.CLAIMED
    (spend,) = await store.budget_spends(cost())
    assert spend.spent == pytest.approx(0.0279)


async def test_free_contacts_record_no_cost_and_await_no_price(store: EvidenceStore) -> None:
    free = new_result("acme-email")
    free_cost = ContactCost(0.0, None, "", (window(),), priced=False)
    assert await store.claim_slot(free, cost=free_cost) is Claim.CLAIMED
    await store.record_sent(free.run_id, sent(), None)
    free.outcome = Outcome.MET
    await store.finish(free)
    assert await store.run_costs(free.run_id) == RunCost(None, None, None, None)
    assert await store.runs_awaiting_price(WINDOW_START) == []
