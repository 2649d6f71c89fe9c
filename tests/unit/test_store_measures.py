"""A run's channel measures in the store (revision 0010), each test on SQLite and PostgreSQL:
kept with the run, read back with it, sealed in its chain record (so an edit behind cxprobe's
back is found), kept through a late reply's amendment, and purged with the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from cxprobe.store.chain import (
    MEASURED_RUN_RECORD_FORMAT,
    RUN_RECORD_FORMAT,
    Scope,
    record_hash,
    run_record,
)
from cxprobe.store.database import EvidenceStore
from cxprobe.store.retention import PurgePolicy
from probes.base import Responder
from scenarios.model import Outcome, RunResult
from tests.stores import StoreBackend
from tests.unit.test_store import SENT_AT, SLOT, new_result, reply, sent

#: What a stream-mode call measured (names as a channel type declares them).
MEASURES = {"post_dial_delay": 1.02, "time_on_hold": 12.5, "time_to_human": 31.24}
WEEK = Scope(SLOT - timedelta(days=1), SLOT + timedelta(days=1))


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[EvidenceStore]:
    async with EvidenceStore(store_backend.url) as opened:
        yield opened


async def finished(
    store: EvidenceStore, measures: dict[str, float], *, minutes: int = 0
) -> RunResult:
    result = new_result("acme-phone", SLOT + timedelta(minutes=minutes), channel="phone")
    await store.claim_slot(result)
    await store.record_sent(result.run_id, sent(f"CA{minutes:032d}"), "billing")
    result.sent_at = SENT_AT
    result.outcome, result.reason = Outcome.MET, "human answer in 31 s"
    result.measures = dict(measures)
    result.finished_at = SENT_AT + timedelta(seconds=40)
    await store.finish(result)
    return result


async def test_finished_runs_keep_their_measures_and_read_them_back(
    store: EvidenceStore, store_backend: StoreBackend
) -> None:
    measured = await finished(store, MEASURES)
    plain = await finished(store, {}, minutes=5)
    rows = await store_backend.query("SELECT run_id, name, seconds FROM run_measures ORDER BY name")
    assert rows == [(measured.run_id, name, seconds) for name, seconds in sorted(MEASURES.items())]
    loaded = await store.load_run(measured.run_id)
    assert loaded is not None and loaded.measures == MEASURES
    between = await store.runs_between(WEEK.start, WEEK.end)
    assert {run.run_id: run.measures for run in between} == {
        measured.run_id: MEASURES,
        plain.run_id: {},
    }
    assert [run.measures for run in await store.recent_runs(1)] == [{}]  # the later slot


async def test_the_measures_are_sealed_in_the_run_record(store: EvidenceStore) -> None:
    measured = await finished(store, MEASURES)
    plain = await finished(store, {}, minutes=5)
    snapshot = await store.snapshot(WEEK)
    assert snapshot.problems == []
    by_id = {run.run_id: run for run in snapshot.runs}
    for result, measures, record_format in (
        (measured, MEASURES, MEASURED_RUN_RECORD_FORMAT),
        (plain, {}, RUN_RECORD_FORMAT),  # as every run was sealed before revision 0010
    ):
        run = by_id[result.run_id]
        assert run.measures == measures
        record = run_record(run.run, run.messages, run.artifacts, run.measures)
        assert record["format"] == record_format
        assert ("measures" in record) is bool(measures)
        assert run.entry is not None and run.entry.record_hash == record_hash(record)
    # Without the measures the record is not the one sealed: they are part of what it seals.
    run = by_id[measured.run_id]
    assert run.entry is not None
    assert run.entry.record_hash != record_hash(run_record(run.run, run.messages, run.artifacts))


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE run_measures SET seconds = 3.0 WHERE name = 'time_to_human'",
        "DELETE FROM run_measures WHERE name = 'time_on_hold'",
        "INSERT INTO run_measures (run_id, name, seconds) VALUES ('{run_id}', 'time_in_ivr', 2.0)",
    ],
    ids=["changed", "deleted", "added"],
)
async def test_a_measure_edited_behind_the_store_is_found(
    store: EvidenceStore, store_backend: StoreBackend, edit: str
) -> None:
    measured = await finished(store, MEASURES)
    await store_backend.execute(edit.format(run_id=measured.run_id))
    snapshot = await store.snapshot(WEEK)
    assert snapshot.problems == [
        f"run {measured.run_id}: its content in the store differs from what chain entry 1 "
        "sealed (changed outside cxprobe)"
    ]


async def test_a_late_reply_amends_the_run_and_keeps_its_measures(store: EvidenceStore) -> None:
    measured = await finished(store, MEASURES)
    loaded = await store.load_run(measured.run_id)
    assert loaded is not None
    channel_reply, observed = reply("CA-late", 90.0, Responder.HUMAN, late=True)
    await store.record_reply(measured.run_id, channel_reply, observed)
    loaded.replies.append(observed)
    await store.update_figures(loaded)
    again = await store.load_run(measured.run_id)
    assert again is not None and again.measures == MEASURES
    snapshot = await store.snapshot(WEEK)
    assert snapshot.problems == []
    (run,) = snapshot.runs
    assert run.entry is not None and run.entry.kind == "amendment"


async def test_a_purged_run_takes_its_measures_with_it(
    store: EvidenceStore, store_backend: StoreBackend
) -> None:
    measured = await finished(store, MEASURES)
    kept = await finished(store, {"time_to_human": 4.0}, minutes=5)
    policy = PurgePolicy(timedelta(days=1), timedelta(days=1), require_exported=False)
    report = await store.purge(policy, now=SLOT + timedelta(days=3), dry_run=False)
    assert {run.run_id for run in report.purged} == {measured.run_id, kept.run_id}
    assert await store_backend.query("SELECT count(*) FROM run_measures") == [(0,)]
