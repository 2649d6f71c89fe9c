"""The evidence store on real SQLite files: claims, evidence, restarts, versions, concurrency."""

import asyncio
import contextlib
import hashlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

from exporters.store import (
    SCHEMA_VERSION,
    EvidenceStore,
    SchemaVersionError,
    StoreError,
    UnknownRunError,
)
from exporters.store_schema import prepare_schema
from probes.base import Evidence, Reply, Responder, Sent
from scenarios.model import ObservedReply, Outcome, Period, RoutingResult, RunResult, Thresholds

SLOT = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SENT_AT = datetime(2025, 3, 3, 9, 0, 2, 123456, tzinfo=UTC)
RAW_CONTACT = (
    b"From: Probe <probe@cxprobe.test>\r\nSubject: Invoice CXP-0000000001\r\n\r\nHello\r\n"
)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "evidence" / "cxprobe.db"  # parents do not exist yet


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[EvidenceStore]:
    async with EvidenceStore(sqlite_url(db_path)) as opened:
        yield opened


def new_result(check_id: str = "acme-email-billing", slot: datetime = SLOT) -> RunResult:
    return RunResult(
        run_id=str(uuid.uuid4()),
        check_id=check_id,
        target="acme",
        channel="email",
        scenario="billing-question",
        location="test",
        slot=slot,
        token="CXP-" + uuid.uuid4().hex[:10].upper(),
        period=Period.BUSINESS,
        thresholds=Thresholds(
            first_response=300.0, human_response=3600.0, after_hours_response=None, deadline=7200
        ),
        expected_queue="billing",
    )


def sent(external_id: str = "<contact-1@cxprobe.test>", at: datetime = SENT_AT) -> Sent:
    return Sent(
        at=at,
        external_id=external_id,
        evidence=Evidence(kind="email", media_type="message/rfc822", content=RAW_CONTACT),
        resume_state={"mailbox": "probe", "uidvalidity": 7, "last_uid": 41},
    )


def reply(
    external_id: str, seconds: float, responder: Responder = Responder.HUMAN, *, late: bool = False
) -> tuple[Reply, ObservedReply]:
    arrived = SENT_AT + timedelta(seconds=seconds)
    observed_at = arrived + timedelta(milliseconds=500)
    raw = f"From: billing@acme.test\r\nMessage-ID: {external_id}\r\n\r\nAnswer\r\n".encode()
    channel_reply = Reply(
        observed_at=observed_at,
        arrived_at=arrived,
        timing_method="imap-internaldate",
        sender="billing@acme.test",
        text="Answer",
        responder=responder,
        external_id=external_id,
        subject="Re: Invoice",
        headers={"Message-ID": external_id, "In-Reply-To": "<contact-1@cxprobe.test>"},
        evidence=Evidence(kind="email", media_type="message/rfc822", content=raw),
    )
    judged = ObservedReply(
        arrived_at=arrived,
        observed_at=observed_at,
        seconds=seconds,
        responder=responder,
        sender="billing@acme.test",
        queue="billing",
        late=late,
    )
    return channel_reply, judged


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


async def test_new_store_creates_directories_in_wal_mode(
    store: EvidenceStore, db_path: Path
) -> None:
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]  # a new file would say "delete"
    assert query(db_path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert await store.ping()


async def test_ping_is_false_once_closed(db_path: Path) -> None:
    async with EvidenceStore(sqlite_url(db_path)) as store:
        pass
    assert not await store.ping()


async def test_claiming_a_slot_twice_keeps_the_first_run(
    store: EvidenceStore, db_path: Path
) -> None:
    first, second = new_result(), new_result()
    assert await store.claim_slot(first)
    assert not await store.claim_slot(second)
    runs = await store.recent_runs()
    assert [run.run_id for run in runs] == [first.run_id]
    assert runs[0].outcome is None
    assert query(db_path, "SELECT run_id FROM slots") == [(first.run_id,)]
    assert await store.load_run(second.run_id) is None


async def test_concurrent_claims_from_two_stores_on_one_file(db_path: Path) -> None:
    slots = [SLOT + timedelta(minutes=minute) for minute in range(25)]
    async with (
        EvidenceStore(sqlite_url(db_path)) as one,
        EvidenceStore(sqlite_url(db_path)) as other,
    ):
        claims = [
            (slot, store.claim_slot(new_result(slot=slot)))
            for slot in slots
            for store in (one, other, one, other)
        ]
        won = await asyncio.gather(*(claim for _, claim in claims))
        for slot in slots:
            assert sum(w for (s, _), w in zip(claims, won, strict=True) if s == slot) == 1
        assert len(await one.recent_runs(limit=1000)) == len(slots)
    assert query(db_path, "SELECT count(*) FROM slots") == [(len(slots),)]


async def test_contact_and_replies_are_stored_once(store: EvidenceStore) -> None:
    result = new_result()
    await store.claim_slot(result)
    await store.record_sent(result.run_id, sent(), "billing")
    await store.record_sent(result.run_id, sent(), "billing")  # idempotent
    first = reply("<r1@acme.test>", 12.5, Responder.AUTO)
    assert await store.record_reply(result.run_id, *first)
    assert not await store.record_reply(result.run_id, *first)  # backfill after a reconnect
    assert await store.record_reply(result.run_id, *reply("<r2@acme.test>", 95.0))

    stored = await store.messages(result.run_id)
    assert [(m.direction, m.external_id) for m in stored] == [
        ("out", "<contact-1@cxprobe.test>"),
        ("in", "<r1@acme.test>"),
        ("in", "<r2@acme.test>"),
    ]
    contact, auto, human = stored
    assert (contact.sender, contact.subject) == (
        "Probe <probe@cxprobe.test>",
        "Invoice CXP-0000000001",
    )
    assert contact.responder is None and contact.arrived_at == SENT_AT
    assert (auto.responder, auto.timing_method, auto.seconds) == ("auto", "imap-internaldate", 12.5)
    assert auto.headers["In-Reply-To"] == "<contact-1@cxprobe.test>"
    assert human.queue == "billing" and human.late is False

    loaded = await store.load_run(result.run_id)
    assert loaded is not None
    assert loaded.sent_at == SENT_AT
    assert [r.seconds for r in loaded.replies] == [12.5, 95.0]
    assert loaded.replies[0] == first[1]


async def test_a_reply_without_an_external_id_is_deduplicated_by_content(
    store: EvidenceStore,
) -> None:
    result = new_result()
    await store.claim_slot(result)
    channel_reply, judged = reply("", 30.0)
    assert await store.record_reply(result.run_id, channel_reply, judged)
    assert not await store.record_reply(result.run_id, channel_reply, judged)
    [message] = await store.messages(result.run_id)
    assert message.external_id.startswith("sha256:")


async def test_artifacts_keep_the_bytes_and_their_sha256(store: EvidenceStore) -> None:
    result = new_result()
    await store.claim_slot(result)
    await store.record_sent(result.run_id, sent(), None)
    channel_reply, judged = reply("<r1@acme.test>", 4.0)
    await store.record_reply(result.run_id, channel_reply, judged)
    transcript = Evidence(kind="transcript", media_type="text/plain", content=b"\x00binary\xff")
    await store.record_evidence(result.run_id, transcript)

    assert channel_reply.evidence is not None
    expected = [RAW_CONTACT, channel_reply.evidence.content, transcript.content]
    stored = await store.artifacts(result.run_id)
    assert [a.sha256 for a in stored] == [hashlib.sha256(c).hexdigest() for c in expected]
    assert [a.size for a in stored] == [len(c) for c in expected]
    assert stored[2].message_id is None
    for artifact, content in zip(stored, expected, strict=True):
        assert await store.artifact_content(artifact.id) == content
    summary = await store.messages(result.run_id)
    assert [m.sha256 for m in summary] == [a.sha256 for a in stored[:2]]


async def test_finish_closes_the_run_with_its_figures(store: EvidenceStore) -> None:
    result = new_result()
    await store.claim_slot(result)
    await store.record_sent(result.run_id, sent(), "billing")
    result.sent_at = SENT_AT
    result.outcome = Outcome.MET
    result.reason = "human answer in 95 s"
    result.first_response_seconds = 12.5
    result.first_response_responder = Responder.AUTO
    result.first_human_seconds = 95.0
    result.routed_queue = "billing"
    result.routing = RoutingResult.CORRECT
    result.finished_at = SENT_AT + timedelta(seconds=96)
    await store.finish(result)

    [finished] = await store.recent_runs()
    assert finished.outcome is Outcome.MET
    assert finished.first_response_responder is Responder.AUTO
    assert finished.routing is RoutingResult.CORRECT
    assert finished.finished_at == result.finished_at
    assert finished.thresholds == result.thresholds
    assert await store.open_runs() == []


async def test_update_figures_keeps_the_run_closed_and_its_outcome(store: EvidenceStore) -> None:
    result = new_result()
    await store.claim_slot(result)
    result.outcome, result.reason = Outcome.BREACHED, "no human answer within 1h"
    await store.finish(result)
    result.first_human_seconds = 5400.0
    await store.update_figures(result)
    loaded = await store.load_run(result.run_id)
    assert loaded is not None
    assert (loaded.outcome, loaded.first_human_seconds) == (Outcome.BREACHED, 5400.0)
    assert await store.open_runs() == []


async def test_finish_needs_an_outcome_and_a_known_run(store: EvidenceStore) -> None:
    result = new_result()
    await store.claim_slot(result)
    with pytest.raises(ValueError, match="needs an outcome"):
        await store.finish(result)
    stranger = new_result(slot=SLOT + timedelta(hours=1))
    stranger.outcome = Outcome.ERROR
    with pytest.raises(UnknownRunError, match=stranger.run_id):
        await store.finish(stranger)
    with pytest.raises(UnknownRunError):
        await store.record_reply(stranger.run_id, *reply("<r@x>", 1.0))


async def test_open_runs_survive_a_restart(db_path: Path) -> None:
    result = new_result()
    unsent = new_result(slot=SLOT + timedelta(hours=1))
    async with EvidenceStore(sqlite_url(db_path)) as store:
        await store.claim_slot(result)
        await store.claim_slot(unsent)
        await store.record_sent(result.run_id, sent(), "billing")
        await store.record_reply(result.run_id, *reply("<r2@acme.test>", 95.0, late=True))
        await store.record_reply(result.run_id, *reply("<r1@acme.test>", 12.5, Responder.AUTO))

    async with EvidenceStore(sqlite_url(db_path)) as restarted:
        resumable, never_sent = await restarted.open_runs()
    assert resumable.result.run_id == result.run_id
    assert resumable.result.sent_at == SENT_AT
    assert resumable.sent_external_id == "<contact-1@cxprobe.test>"
    assert resumable.resume_state == {"mailbox": "probe", "uidvalidity": 7, "last_uid": 41}
    assert resumable.sent_evidence_present
    assert [(r.seconds, r.responder, r.late) for r in resumable.result.replies] == [
        (12.5, Responder.AUTO, False),
        (95.0, Responder.HUMAN, True),
    ]
    assert never_sent.result.run_id == unsent.run_id
    assert never_sent.result.sent_at is None
    assert (never_sent.sent_external_id, never_sent.resume_state) == (None, {})
    assert not never_sent.sent_evidence_present


async def test_find_run_by_message_id_or_token(store: EvidenceStore) -> None:
    result = new_result()
    other = new_result(slot=SLOT + timedelta(hours=1))
    await store.claim_slot(result)
    await store.claim_slot(other)
    await store.record_sent(result.run_id, sent(), "billing")
    await store.record_reply(result.run_id, *reply("<r1@acme.test>", 12.5))

    by_id = await store.find_run_by_thread_keys(["<unknown@x>", "<contact-1@cxprobe.test>"])
    assert by_id is not None and by_id.run_id == result.run_id
    assert len(by_id.replies) == 1
    by_token = await store.find_run_by_thread_keys(iter([other.token]))
    assert by_token is not None and by_token.run_id == other.run_id
    # A message-id match outranks a token match (e.g. a reply quoting another run's token).
    both = await store.find_run_by_thread_keys({other.token, "<contact-1@cxprobe.test>"})
    assert both is not None and both.run_id == result.run_id
    assert await store.find_run_by_thread_keys(["CXP-NOTKNOWN00"]) is None
    assert await store.find_run_by_thread_keys([]) is None


async def test_timestamps_come_back_in_utc_and_equal(store: EvidenceStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    slot = datetime(2025, 6, 1, 23, 30, 0, 654321, tzinfo=plus_two)
    result = new_result(slot=slot)
    await store.claim_slot(result)
    at = datetime(2025, 6, 1, 23, 30, 5, 1, tzinfo=plus_two)
    await store.record_sent(result.run_id, sent(at=at), None)
    loaded = await store.load_run(result.run_id)
    assert loaded is not None
    assert loaded.slot == slot and loaded.slot.tzinfo is UTC
    assert loaded.sent_at == at and loaded.sent_at is not None and loaded.sent_at.tzinfo is UTC
    assert loaded.slot.hour == 21  # stored and returned in UTC
    # The slot is found again whatever zone the caller uses.
    assert not await store.claim_slot(new_result(slot=slot.astimezone(UTC)))


async def test_naive_timestamps_are_refused(store: EvidenceStore) -> None:
    result = new_result(slot=datetime(2025, 6, 1, 9, 0))  # naive on purpose
    with pytest.raises(Exception, match="naive datetime"):
        await store.claim_slot(result)
    assert await store.recent_runs() == []


async def test_contacts_are_counted_per_target_and_channel(store: EvidenceStore) -> None:
    for minute in range(3):
        result = new_result(slot=SLOT + timedelta(minutes=minute))
        await store.claim_slot(result)
        at = SENT_AT + timedelta(minutes=minute)
        await store.record_sent(result.run_id, sent(f"<c{minute}@x>", at=at), None)
    await store.claim_slot(new_result(slot=SLOT + timedelta(minutes=9)))  # claimed, not sent
    assert await store.count_contacts_since("acme", "email", SENT_AT) == 3
    assert await store.count_contacts_since("acme", "email", SENT_AT + timedelta(minutes=1)) == 2
    assert await store.count_contacts_since("acme", "webchat", SENT_AT) == 0
    assert await store.count_contacts_since("other", "email", SENT_AT) == 0


async def test_recent_runs_newest_slot_first_and_filtered(store: EvidenceStore) -> None:
    for hour in range(4):
        check = "acme-email-billing" if hour % 2 else "acme-email-tech"
        await store.claim_slot(new_result(check, SLOT + timedelta(hours=hour)))
    recent = await store.recent_runs(3)
    assert [r.slot.hour for r in recent] == [12, 11, 10]
    billing = await store.recent_runs(check_id="acme-email-billing")
    assert [r.slot.hour for r in billing] == [12, 10]
    assert await store.recent_runs(target="other") == []


async def test_five_hundred_concurrent_replies(db_path: Path) -> None:
    async with EvidenceStore(sqlite_url(db_path)) as store:
        results = [new_result(slot=SLOT + timedelta(minutes=n)) for n in range(50)]
        for result in results:
            assert await store.claim_slot(result)
        writes = [
            store.record_reply(result.run_id, *reply(f"<r{n}@acme.test>", float(n)))
            for result in results
            for n in range(10)
        ]
        reads = [store.open_runs() for _ in range(20)]
        outcomes = await asyncio.gather(*writes, *reads)
    assert outcomes[: len(writes)] == [True] * 500
    assert query(db_path, "SELECT count(*) FROM messages") == [(500,)]
    assert query(db_path, "SELECT count(*) FROM artifacts") == [(500,)]


async def test_two_stores_write_one_file_at_once(db_path: Path) -> None:
    async with (
        EvidenceStore(sqlite_url(db_path)) as one,
        EvidenceStore(sqlite_url(db_path)) as other,
    ):
        result = new_result()
        await one.claim_slot(result)
        writes = [
            store.record_reply(result.run_id, *reply(f"<r{n}@acme.test>", float(n)))
            for n in range(100)
            for store in (one, other)
        ]
        stored = await asyncio.gather(*writes)
    assert sorted(stored) == [False] * 100 + [True] * 100  # each reply stored exactly once


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    async with EvidenceStore(sqlite_url(db_path)):
        pass
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (?, '2030-01-01 00:00:00.000000')",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(SchemaVersionError) as refused:
        async with EvidenceStore(sqlite_url(db_path)):
            pass
    message = str(refused.value)
    assert str(db_path) in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert "Upgrade cxprobe" in message


async def test_tables_without_a_schema_version_are_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("CREATE TABLE runs (id INTEGER)")
    with pytest.raises(SchemaVersionError, match="no schema_version"):
        async with EvidenceStore(sqlite_url(db_path)):
            pass


def test_older_schemas_are_migrated_in_order(tmp_path: Path) -> None:
    applied: list[int] = []

    def add_notes(conn: Connection) -> None:
        applied.append(2)
        conn.execute(text("ALTER TABLE runs ADD COLUMN notes TEXT"))

    def index_notes(conn: Connection) -> None:
        applied.append(3)
        conn.execute(text("CREATE INDEX ix_runs_notes ON runs (notes)"))

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        with engine.begin() as conn:
            assert prepare_schema(conn, "old.db", migrations=()) == (0, 1)
        with engine.begin() as conn:
            found = prepare_schema(conn, "old.db", migrations=(add_notes, index_notes))
            assert found == (1, 3)
        with engine.begin() as conn:
            assert prepare_schema(conn, "old.db", migrations=(add_notes, index_notes)) == (3, 3)
            versions = conn.execute(text("SELECT version FROM schema_version ORDER BY 1"))
            assert versions.scalars().all() == [1, 2, 3]
            conn.execute(text("SELECT notes FROM runs"))
    finally:
        engine.dispose()
    assert applied == [2, 3]


async def test_a_url_without_an_async_driver_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="async driver"):
        async with EvidenceStore(f"sqlite:///{tmp_path / 'x.db'}"):
            pass
    with pytest.raises(StoreError, match="not a database URL"):
        EvidenceStore("not a url")


async def test_an_unusable_location_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the evidence store"):
        async with EvidenceStore(sqlite_url(tmp_path)):  # a directory, not a database file
            pass


async def test_channel_state_is_saved_replaced_and_kept_per_channel(db_path: Path) -> None:
    async with EvidenceStore(sqlite_url(db_path)) as store:
        assert await store.load_channel_state("email", "imap:probe") is None
        await store.save_channel_state("email", "imap:probe", {"last_uid": 3})
        await store.save_channel_state("email", "imap:probe", {"last_uid": 7})
        await store.save_channel_state("sms", "imap:probe", {"other": True})
    async with EvidenceStore(sqlite_url(db_path)) as restarted:
        assert await restarted.load_channel_state("email", "imap:probe") == {"last_uid": 7}
        assert await restarted.load_channel_state("sms", "imap:probe") == {"other": True}
