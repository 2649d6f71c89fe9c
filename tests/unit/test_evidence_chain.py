"""The tamper-evidence chain: canonical records, links, sealing in the store, amendments,
concurrent finishes and the schema 1 -> 2 migration; the store's tests on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from cxprobe.store.chain import (
    AMENDMENT,
    GENESIS,
    RUN,
    THRESHOLD_NAMES,
    ChainEntry,
    link_problems,
    record_hash,
    run_record,
)
from cxprobe.store.database import EvidenceStore, LeaseHolder
from cxprobe.store.ledger import entries_between
from scenarios.model import Outcome, RoutingResult, SloName
from tests.stores import StoreBackend, revision_numbers
from tests.unit.test_store import SENT_AT, new_result, reply, sent

SLOT = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def a_run() -> dict[str, Any]:
    return {
        "run_id": "r1",
        "check_id": "c",
        "target": "acme",
        "channel": "email",
        "scenario": "billing-question",
        "location": "here",
        "slot_at": SLOT,
        "token": "CXP-1",
        "period": "business",
        "thresholds": {"first_response": 300, "deadline": 7200.0},
        "expected_queue": "billing",
        "sent_at": SLOT + timedelta(seconds=2),
        "sent_external_id": "",
        "first_response_seconds": 12,
        "first_response_responder": "human",
        "first_human_seconds": 12.5,
        "routed_queue": None,
        "routing": "correct",
        "outcome": "met",
        "reason": "",
        "created_at": SLOT,
        "finished_at": SLOT + timedelta(minutes=2),
    }


def a_message(external_id: str, seconds: float) -> dict[str, Any]:
    return {
        "direction": "in",
        "external_id": external_id,
        "observed_at": SLOT + timedelta(seconds=seconds + 0.5),
        "arrived_at": SLOT + timedelta(seconds=seconds),
        "timing_method": "imap-internaldate",
        "seconds": seconds,
        "sender": "billing@acme.test",
        "responder": "human",
        "channel_responder": "human",
        "subject": "Re: x",
        "text": "Grüße — answer",
        "headers": {"b": "2", "a": "1"},
        "late": False,
        "qualifies": None,
        "queue": "billing",
    }


def test_the_record_hash_ignores_order_and_representation() -> None:
    messages = [a_message("<m1>", 5.0), a_message("<m2>", 9.0)]
    artifacts = [
        {
            "kind": "email",
            "media_type": "message/rfc822",
            "sha256": "a" * 64,
            "size": 10,
            "message": ("in", "<m1>"),
        },
        {
            "kind": "transcript",
            "media_type": "text/plain",
            "sha256": "b" * 64,
            "size": 3,
            "message": None,
        },
    ]
    digest = record_hash(run_record(a_run(), messages, artifacts))
    shuffled = record_hash(run_record(a_run(), messages[::-1], artifacts[::-1]))
    # The same run as text (as an export holds it): ISO times, floats, null for empty.
    as_text = a_run() | {
        "slot_at": "2025-03-03T10:00:00+01:00",
        "sent_at": "2025-03-03T09:00:02.000000Z",
        "sent_external_id": None,
        "first_response_seconds": "12",
    }
    assert digest == shuffled == record_hash(run_record(as_text, messages, artifacts))
    changed = [a_message("<m1>", 5.0) | {"text": "Grusse — answer"}, messages[1]]
    assert record_hash(run_record(a_run(), changed, artifacts)) != digest


def entry(seq: int, prev: str, created: datetime = SLOT) -> ChainEntry:
    unsigned = ChainEntry(
        seq=seq,
        kind=RUN,
        run_id=f"r{seq}",
        check_id="c",
        target="acme",
        channel="email",
        location="here",
        slot_at=SLOT,
        record_hash=f"{seq:064x}",
        prev_hash=prev,
        entry_hash="",
        created_at=created,
    )
    return dataclasses.replace(unsigned, entry_hash=unsigned.computed_hash())


def chain_of(length: int) -> list[ChainEntry]:
    entries: list[ChainEntry] = []
    for seq in range(1, length + 1):
        entries.append(entry(seq, entries[-1].entry_hash if entries else GENESIS))
    return entries


def test_links_name_the_entry_that_was_changed_removed_or_moved() -> None:
    entries = chain_of(5)
    assert link_problems(entries) == []
    edited = [*entries[:2], dataclasses.replace(entries[2], record_hash="f" * 64), *entries[3:]]
    assert link_problems(edited) == [
        "chain: entry 3 (run of run r3) does not match its entry hash: one of its fields was "
        "changed"
    ]
    assert link_problems([*entries[:2], *entries[3:]]) == ["chain: entry 3 missing between 2 and 4"]
    # Re-signing the edited entry does not help: the next one no longer links to it.
    resigned = dataclasses.replace(edited[2], entry_hash=edited[2].computed_hash())
    problems = link_problems([*entries[:2], resigned, *entries[3:]])
    assert problems == [
        "chain: entry 4 does not link to entry 3 (its previous-hash differs): an entry was "
        "changed, removed or inserted"
    ]


async def chain_rows(store: EvidenceStore) -> list[ChainEntry]:
    async with store._read() as conn:
        entries: list[ChainEntry] = await conn.run_sync(entries_between, 1, 10**9)
        return entries


async def test_finish_seals_and_a_late_reply_amends(store_backend: StoreBackend) -> None:
    async with EvidenceStore(store_backend.url) as store:
        assert await store.chain_head() == (0, GENESIS)
        result = new_result()
        await store.claim_slot(result)
        await store.record_sent(result.run_id, sent(), "billing")
        await store.record_reply(result.run_id, *reply("<r1@acme.test>", 30.0))
        assert await chain_rows(store) == []  # open runs are not sealed yet
        result.sent_at = SENT_AT
        result.outcome, result.routing = Outcome.MET, RoutingResult.CORRECT
        await store.finish(result)
        [sealed] = await chain_rows(store)
        assert (sealed.kind, sealed.run_id, sealed.seq, sealed.prev_hash) == (
            RUN,
            result.run_id,
            1,
            GENESIS,
        )
        # Nothing changed: no entry. A late reply and new figures: one amendment each.
        await store.update_figures(result)
        await store.record_reply(result.run_id, *reply("<r2@acme.test>", 9000.0, late=True))
        result.first_human_seconds = 30.0
        await store.update_figures(result)
        entries = await chain_rows(store)
        assert [e.kind for e in entries] == [RUN, AMENDMENT, AMENDMENT]
        assert "reply recorded after sealing: <r2@acme.test>" in entries[1].note
        assert link_problems(entries) == []
        assert await store.chain_head() == (3, entries[-1].entry_hash)


async def test_concurrent_finishes_from_two_stores_never_fork_the_chain(
    store_backend: StoreBackend,
) -> None:
    holder = LeaseHolder()  # the chain is under test here, not the leases: both may finish
    async with (
        EvidenceStore(store_backend.url, holder=holder) as first,
        EvidenceStore(store_backend.url, holder=holder) as second,
    ):
        results = [new_result(slot=SLOT + timedelta(minutes=i)) for i in range(40)]
        for result in results:
            await first.claim_slot(result)
            result.outcome = Outcome.BREACHED
        await asyncio.gather(
            *((first if i % 2 else second).finish(r) for i, r in enumerate(results))
        )
        entries = await chain_rows(first)
    assert [e.seq for e in entries] == list(range(1, 41))
    assert sorted(e.run_id or "" for e in entries) == sorted(r.run_id for r in results)
    assert link_problems(entries) == []


async def downgrade_to_version_1(backend: StoreBackend) -> None:
    """What a schema 1 store looked like: no chain or export tables, no run leases or costs,
    no Alembic revision (tests/unit/test_migrations.py builds one from the old code's DDL as
    well)."""
    await backend.execute(
        *(
            f"DROP TABLE {table}"
            for table in (
                "exported_runs",
                "exports",
                "chain",
                "chain_head",
                "alembic_version",
                "maintenance_windows",
                "opt_outs",
            )
        ),
        "DROP INDEX ix_runs_status_location",
        "DROP INDEX ix_runs_created_at",
        *(
            f"ALTER TABLE runs DROP COLUMN {column}"
            for column in (
                "lease_owner",
                "lease_session",
                "lease_expires_at",
                "estimated_cost",
                "actual_cost",
                "currency",
                "cost_account",
            )
        ),
        # What revision 0004 added to runs (dropped on its own: PostgreSQL and SQLite alike).
        "ALTER TABLE runs DROP COLUMN contact_mode",
        "ALTER TABLE runs DROP COLUMN slo_excluded",
        # And revision 0005.
        *(
            f"ALTER TABLE runs DROP COLUMN {column}"
            for column in ("answer", "resolved", "language", "reply_language")
        ),
        # And revision 0007 (conversation turns).
        "ALTER TABLE messages DROP COLUMN turn",
        # And revision 0008 (rubric scores).
        "ALTER TABLE runs DROP COLUMN rubric_score",
        "ALTER TABLE runs DROP COLUMN rubric_items",
        # And revision 0009 (artifact chunks).
        "DROP TABLE artifact_chunks",
        # And revision 0010 (run measures).
        "DROP TABLE run_measures",
        # And revision 0011 (pair holds).
        "DROP TABLE pair_holds",
        "DELETE FROM schema_version",
        "INSERT INTO schema_version VALUES (1, '2025-01-01 00:00:00.000000')",
    )


async def test_upgrading_a_version_1_store_seals_its_closed_runs(
    store_backend: StoreBackend,
) -> None:
    async with EvidenceStore(store_backend.url) as store:
        closed = [new_result(slot=SLOT + timedelta(minutes=i)) for i in range(3)]
        still_open = new_result(slot=SLOT + timedelta(hours=1))
        for result in [*closed, still_open]:
            await store.claim_slot(result)
        for result in closed:
            result.outcome = Outcome.MET
            await store.finish(result)
    await downgrade_to_version_1(store_backend)
    assert await store_backend.query("SELECT max(version) FROM schema_version") == [(1,)]
    async with EvidenceStore(store_backend.url) as store:
        entries = await chain_rows(store)
        versions = await store_backend.query("SELECT version FROM schema_version ORDER BY 1")
        assert versions == revision_numbers()
        assert sorted(e.run_id or "" for e in entries) == sorted(r.run_id for r in closed)
        assert {e.note for e in entries} == {"sealed when the store was upgraded to schema 2"}
        assert link_problems(entries) == []
        still_open.outcome = Outcome.BREACHED
        await store.finish(still_open)  # the chain goes on after the upgrade
        assert (await store.chain_head())[0] == 4


def test_the_sealed_thresholds_are_every_slo_and_the_deadline() -> None:
    assert set(THRESHOLD_NAMES) == {*SloName, "deadline"}
