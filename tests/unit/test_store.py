"""The evidence store on real databases, each test on SQLite and on PostgreSQL: claims,
evidence, restarts, versions, concurrency. Tests named ``test_sqlite_*`` are about SQLite
itself (its file, WAL mode); ``test_postgresql_*`` about a PostgreSQL server."""

import asyncio
import contextlib
import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from cxprobe.store.chain import RUN, Scope, link_problems
from cxprobe.store.database import (
    Claim,
    EvidenceStore,
    LeaseHolder,
    StoreError,
    UnknownRunError,
)
from cxprobe.store.ledger import entries_between
from cxprobe.store.migrations import HEAD_REVISION
from cxprobe.store.retention import PurgePolicy, PurgeReport
from probes.base import Evidence, Reply, Responder, Sent
from sandbox.net import free_port
from scenarios.model import ObservedReply, Outcome, Period, RoutingResult, RunResult, Thresholds
from tests.postgres import PostgresServer
from tests.stores import StoreBackend, revision_numbers

SLOT = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SENT_AT = datetime(2025, 3, 3, 9, 0, 2, 123456, tzinfo=UTC)
RAW_CONTACT = (
    b"From: Probe <probe@cxprobe.test>\r\nSubject: Invoice CXP-0000000001\r\n\r\nHello\r\n"
)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> StoreBackend:
    """A SQLite store file whose directories do not exist yet (for SQLite-only tests)."""
    return StoreBackend.sqlite(tmp_path / "data" / "evidence" / "cxprobe.db")


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[EvidenceStore]:
    async with EvidenceStore(store_backend.url) as opened:
        yield opened


def new_result(
    check_id: str = "acme-email-billing",
    slot: datetime = SLOT,
    *,
    location: str = "test",
    channel: str = "email",
) -> RunResult:
    return RunResult(
        run_id=str(uuid.uuid4()),
        check_id=check_id,
        target="acme",
        channel=channel,
        scenario="billing-question",
        location=location,
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
        external_id=external_id,
        qualifies=responder is Responder.HUMAN,
    )
    return channel_reply, judged


async def test_a_new_store_has_the_current_schema_and_no_runs(
    store: EvidenceStore, store_backend: StoreBackend
) -> None:
    # Created by running every revision, each recorded for cxprobe from before Alembic too.
    assert (
        await store_backend.query("SELECT version FROM schema_version ORDER BY 1")
        == revision_numbers()
    )
    assert await store_backend.query("SELECT version_num FROM alembic_version") == [
        (HEAD_REVISION,)
    ]
    assert await store.recent_runs() == []


async def test_sqlite_a_new_store_creates_directories_in_wal_mode(
    sqlite_backend: StoreBackend,
) -> None:
    assert sqlite_backend.sqlite_path is not None
    assert not sqlite_backend.sqlite_path.parent.exists()
    async with EvidenceStore(sqlite_backend.url):
        # A new file would say "delete".
        assert await sqlite_backend.query("PRAGMA journal_mode") == [("wal",)]


async def test_a_closed_store_refuses_to_be_used(store_backend: StoreBackend) -> None:
    async with EvidenceStore(store_backend.url) as store:
        pass
    with pytest.raises(StoreError, match="not open"):
        await store.recent_runs()
    with pytest.raises(StoreError, match="not open"):
        await store.claim_slot(new_result())


async def test_claiming_a_slot_twice_keeps_the_first_run(
    store: EvidenceStore, store_backend: StoreBackend
) -> None:
    first, second = new_result(), new_result()
    assert await store.claim_slot(first) is Claim.CLAIMED
    assert await store.claim_slot(second) is Claim.TAKEN
    runs = await store.recent_runs()
    assert [run.run_id for run in runs] == [first.run_id]
    assert runs[0].outcome is None
    assert await store_backend.query("SELECT run_id FROM slots") == [(first.run_id,)]
    assert await store.load_run(second.run_id) is None


async def test_concurrent_claims_from_two_stores_on_one_database(
    store_backend: StoreBackend,
) -> None:
    slots = [SLOT + timedelta(minutes=minute) for minute in range(25)]
    async with (
        EvidenceStore(store_backend.url) as one,
        EvidenceStore(store_backend.url) as other,
    ):
        claims = [
            (slot, store.claim_slot(new_result(slot=slot)))
            for slot in slots
            for store in (one, other, one, other)
        ]
        won = await asyncio.gather(*(claim for _, claim in claims))
        for slot in slots:
            per_slot = [w for (s, _), w in zip(claims, won, strict=True) if s == slot]
            assert sorted(per_slot) == [Claim.CLAIMED, Claim.TAKEN, Claim.TAKEN, Claim.TAKEN]
        assert len(await one.recent_runs(limit=1000)) == len(slots)
    assert await store_backend.query("SELECT count(*) FROM slots") == [(len(slots),)]


async def test_each_location_claims_its_own_slot(
    store: EvidenceStore, store_backend: StoreBackend
) -> None:
    paris, tokyo = new_result(location="paris"), new_result(location="tokyo")
    assert await store.claim_slot(paris) is Claim.CLAIMED
    assert await store.claim_slot(tokyo) is Claim.CLAIMED
    assert await store.claim_slot(new_result(location="tokyo")) is Claim.TAKEN
    assert sorted(await store_backend.query("SELECT location, run_id FROM slots")) == [
        ("paris", paris.run_id),
        ("tokyo", tokyo.run_id),
    ]


async def test_open_runs_of_one_location(store: EvidenceStore) -> None:
    paris, tokyo = new_result(location="paris"), new_result(location="tokyo")
    later = new_result(slot=SLOT + timedelta(hours=1), location="paris")
    for result in (later, tokyo, paris):
        await store.claim_slot(result)
    assert [o.result.run_id for o in await store.open_runs(location="paris")] == [
        paris.run_id,
        later.run_id,
    ]
    assert [o.result.run_id for o in await store.open_runs(location="tokyo")] == [tokyo.run_id]
    assert await store.open_runs(location="sydney") == []
    assert len(await store.open_runs()) == 3


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
    binary = b"\x00binary\xff"
    channel_reply, judged = reply("<r1@acme.test>", 4.0)
    channel_reply = dataclasses.replace(
        channel_reply,
        evidence=Evidence(kind="email", media_type="application/octet-stream", content=binary),
    )
    await store.record_reply(result.run_id, channel_reply, judged)

    expected = [RAW_CONTACT, binary]
    stored = await store.artifacts(result.run_id)
    assert [a.sha256 for a in stored] == [hashlib.sha256(c).hexdigest() for c in expected]
    assert [a.size for a in stored] == [len(c) for c in expected]
    for artifact, content in zip(stored, expected, strict=True):
        assert await store.artifact_content(artifact.id) == content
    summary = await store.messages(result.run_id)
    assert [m.sha256 for m in summary] == [a.sha256 for a in stored]
    assert [m.id for m in summary] == [a.message_id for a in stored]


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


async def test_open_runs_survive_a_restart(store_backend: StoreBackend) -> None:
    result = new_result()
    unsent = new_result(slot=SLOT + timedelta(hours=1))
    async with EvidenceStore(store_backend.url) as store:
        await store.claim_slot(result)
        await store.claim_slot(unsent)
        await store.record_sent(result.run_id, sent(), "billing")
        await store.record_reply(result.run_id, *reply("<r2@acme.test>", 95.0, late=True))
        await store.record_reply(result.run_id, *reply("<r1@acme.test>", 12.5, Responder.AUTO))

    async with EvidenceStore(store_backend.url) as restarted:
        resumable, never_sent = await restarted.open_runs()
    assert resumable.result.run_id == result.run_id
    assert resumable.result.sent_at == SENT_AT
    assert resumable.sent_external_id == "<contact-1@cxprobe.test>"
    assert resumable.resume_state == {"mailbox": "probe", "uidvalidity": 7, "last_uid": 41}
    assert [(r.seconds, r.responder, r.late) for r in resumable.result.replies] == [
        (12.5, Responder.AUTO, False),
        (95.0, Responder.HUMAN, True),
    ]
    assert never_sent.result.run_id == unsent.run_id
    assert never_sent.result.sent_at is None
    assert (never_sent.sent_external_id, never_sent.resume_state) == (None, {})


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
    assert await store.claim_slot(new_result(slot=slot.astimezone(UTC))) is Claim.TAKEN


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
    # Claimed now and not sent yet: in flight, so it counts from any earlier start.
    await store.claim_slot(new_result(slot=SLOT + timedelta(minutes=9), location="tokyo"))
    given_up = new_result(slot=SLOT + timedelta(minutes=10))  # closed unsent: no contact
    await store.claim_slot(given_up)
    given_up.outcome, given_up.reason = Outcome.INTERRUPTED, "stopped before sending"
    await store.finish(given_up)
    assert await store.count_contacts_since("acme", "email", SENT_AT) == 4
    assert await store.count_contacts_since("acme", "email", SENT_AT + timedelta(minutes=1)) == 3
    assert await store.count_contacts_since("acme", "webchat", SENT_AT) == 0
    assert await store.count_contacts_since("other", "email", SENT_AT) == 0
    # An unsent claim older than the start (a monitor died before sending) ages out.
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await store.count_contacts_since("acme", "email", later) == 0


def budgeted_checks(count: int = 4) -> list[RunResult]:
    """One slot each of ``count`` checks on the same target and channel."""
    return [new_result(f"acme-email-{n}") for n in range(count)]


BUDGET_SINCE = SLOT - timedelta(hours=1)


async def test_the_contact_budget_admits_only_max_contacts(
    store: EvidenceStore, store_backend: StoreBackend
) -> None:
    claims = [
        await store.claim_slot(result, max_contacts=2, since=BUDGET_SINCE)
        for result in budgeted_checks()
    ]
    assert claims == [Claim.CLAIMED, Claim.CLAIMED, Claim.OVER_BUDGET, Claim.OVER_BUDGET]
    # A refusal writes nothing.
    assert await store_backend.query("SELECT count(*) FROM runs") == [(2,)]
    assert await store_backend.query("SELECT count(*) FROM slots") == [(2,)]
    # Another channel of the same target has its own budget.
    webchat = new_result("acme-webchat", channel="webchat")
    assert await store.claim_slot(webchat, max_contacts=2, since=BUDGET_SINCE) is Claim.CLAIMED


async def test_concurrent_claims_share_the_budget(store: EvidenceStore) -> None:
    claims = await asyncio.gather(
        *(
            store.claim_slot(result, max_contacts=2, since=BUDGET_SINCE)
            for result in budgeted_checks()
        )
    )
    assert sorted(claims) == [Claim.CLAIMED, Claim.CLAIMED, Claim.OVER_BUDGET, Claim.OVER_BUDGET]


async def test_two_stores_on_one_database_share_the_budget(store_backend: StoreBackend) -> None:
    async with (
        EvidenceStore(store_backend.url) as one,
        EvidenceStore(store_backend.url) as other,
    ):
        for round_ in range(5):  # several rounds (each its own channel): interleavings vary
            results = [
                new_result(f"acme-{round_}-{n}", channel=f"channel-{round_}") for n in range(4)
            ]
            claims = await asyncio.gather(
                *(
                    store.claim_slot(result, max_contacts=2, since=BUDGET_SINCE)
                    for result, store in zip(results, (one, other, one, other), strict=True)
                )
            )
            counted = sorted(claims)
            assert counted == [Claim.CLAIMED, Claim.CLAIMED, Claim.OVER_BUDGET, Claim.OVER_BUDGET]
    assert await store_backend.query("SELECT count(*) FROM slots") == [(10,)]


async def test_a_taken_slot_is_reported_before_a_spent_budget(store: EvidenceStore) -> None:
    first = new_result()
    assert await store.claim_slot(first, max_contacts=1, since=BUDGET_SINCE) is Claim.CLAIMED
    again = new_result()  # the same check and slot, e.g. a second process at this location
    assert await store.claim_slot(again, max_contacts=1, since=BUDGET_SINCE) is Claim.TAKEN
    other = new_result("acme-email-tech")
    assert await store.claim_slot(other, max_contacts=1, since=BUDGET_SINCE) is Claim.OVER_BUDGET


async def test_contacts_in_flight_count_against_the_budget(store: EvidenceStore) -> None:
    in_flight = new_result("acme-email-tech", location="tokyo")
    assert await store.claim_slot(in_flight) is Claim.CLAIMED  # not sent yet
    claim = await store.claim_slot(new_result(), max_contacts=1, since=BUDGET_SINCE)
    assert claim is Claim.OVER_BUDGET
    # Once sent, it counts by its send time: here before the budget's start, so no longer.
    await store.record_sent(in_flight.run_id, sent(at=BUDGET_SINCE - timedelta(seconds=1)), None)
    claim = await store.claim_slot(new_result(), max_contacts=1, since=BUDGET_SINCE)
    assert claim is Claim.CLAIMED


async def test_a_budget_needs_its_start(store: EvidenceStore) -> None:
    with pytest.raises(ValueError, match="since"):
        await store.claim_slot(new_result(), max_contacts=1)
    assert await store.recent_runs() == []


async def test_recent_runs_newest_slot_first_and_filtered(store: EvidenceStore) -> None:
    for hour in range(4):
        check = "acme-email-billing" if hour % 2 else "acme-email-tech"
        await store.claim_slot(new_result(check, SLOT + timedelta(hours=hour)))
    recent = await store.recent_runs(3)
    assert [r.slot.hour for r in recent] == [12, 11, 10]
    billing = await store.recent_runs(check_id="acme-email-billing")
    assert [r.slot.hour for r in billing] == [12, 10]
    assert await store.recent_runs(target="other") == []


async def test_five_hundred_concurrent_replies(store_backend: StoreBackend) -> None:
    async with EvidenceStore(store_backend.url) as store:
        results = [new_result(slot=SLOT + timedelta(minutes=n)) for n in range(50)]
        for result in results:
            assert await store.claim_slot(result) is Claim.CLAIMED
        writes = [
            store.record_reply(result.run_id, *reply(f"<r{n}@acme.test>", float(n)))
            for result in results
            for n in range(10)
        ]
        reads = [store.open_runs() for _ in range(20)]
        outcomes = await asyncio.gather(*writes, *reads)
    assert outcomes[: len(writes)] == [True] * 500
    assert await store_backend.query("SELECT count(*) FROM messages") == [(500,)]
    assert await store_backend.query("SELECT count(*) FROM artifacts") == [(500,)]


async def test_two_stores_write_one_database_at_once(store_backend: StoreBackend) -> None:
    holder = LeaseHolder()  # one monitor's two engines: both may write to its run
    async with (
        EvidenceStore(store_backend.url, holder=holder) as one,
        EvidenceStore(store_backend.url, holder=holder) as other,
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


async def test_a_url_without_an_async_driver_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="async driver"):
        async with EvidenceStore(f"sqlite:///{tmp_path / 'x.db'}"):
            pass
    with pytest.raises(StoreError, match="not a database URL"):
        EvidenceStore("not a url")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg//alice:S3cretPW@db/cx",  # no ':' before '//'
        "postgresql+asyncpg:alice:S3cretPW@db/cx",
        "postgresql+asyncpg//alice:S3c:ret/PW@more@db/cx",  # ':', '/' and '@' unencoded
        "postgresql+asyncpg://alice:S3cretPW@db:port/cx",  # a port that is not a number
    ],
)
def test_a_malformed_url_is_quoted_without_its_password(url: str) -> None:
    with pytest.raises(StoreError, match="not a database URL") as refused:
        EvidenceStore(url)
    message = str(refused.value)
    for secret in ("S3c", "ret", "PW", "more"):
        assert secret not in message
    assert "@db" in message  # the rest is quoted, to find the mistake


async def test_store_messages_never_show_a_password() -> None:
    url = "postgresql+nosuchdriver://alice:S3cretPW@db/cx?sslpassword=K3yPW&sslmode=require"
    store = EvidenceStore(url)
    assert store.where == (
        "postgresql+nosuchdriver://alice:***@db/cx?sslmode=require&sslpassword=%2A%2A%2A"
    )
    with pytest.raises(StoreError) as refused:
        async with store:
            pass
    assert "nosuchdriver" in str(refused.value)
    assert "S3cretPW" not in str(refused.value) and "K3yPW" not in str(refused.value)


async def test_sqlite_an_unusable_location_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the evidence store"):
        async with EvidenceStore(sqlite_url(tmp_path)):  # a directory, not a database file
            pass


async def test_channel_state_is_saved_replaced_and_kept_per_channel(
    store_backend: StoreBackend,
) -> None:
    async with EvidenceStore(store_backend.url) as store:
        assert await store.load_channel_state("email", "imap:probe") is None
        await store.save_channel_state("email", "imap:probe", {"last_uid": 3})
        await store.save_channel_state("email", "imap:probe", {"last_uid": 7})
        await store.save_channel_state("sms", "imap:probe", {"other": True})
    async with EvidenceStore(store_backend.url) as restarted:
        assert await restarted.load_channel_state("email", "imap:probe") == {"last_uid": 7}
        assert await restarted.load_channel_state("sms", "imap:probe") == {"other": True}


# -- several monitors on one database ------------------------------------------------------------

#: Monitor processes sharing one store in the tests below: each its own EvidenceStore (engine
#: and connection pool), as separate processes would have. They share one lease holder: these
#: tests are about the store's transactions racing, where any writer may touch any run;
#: tests/unit/test_leases.py has monitors that each hold their own leases.
MONITORS = 4


@contextlib.asynccontextmanager
async def monitors(url: str, count: int = MONITORS) -> AsyncIterator[list[EvidenceStore]]:
    holder = LeaseHolder()
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(EvidenceStore(url, holder=holder)) for _ in range(count)
        ]


async def test_several_monitors_open_a_new_store_at_once(store_backend: StoreBackend) -> None:
    async with contextlib.AsyncExitStack() as stack:
        opened = await asyncio.gather(
            *(stack.enter_async_context(EvidenceStore(store_backend.url)) for _ in range(MONITORS))
        )
        assert [await store.chain_head() for store in opened] == [(0, "0" * 64)] * MONITORS
    # Created once: every revision recorded once, one chain head.
    assert (
        await store_backend.query("SELECT version FROM schema_version ORDER BY 1")
        == revision_numbers()
    )
    assert await store_backend.query("SELECT version_num FROM alembic_version") == [
        (HEAD_REVISION,)
    ]
    assert await store_backend.query("SELECT count(*) FROM chain_head") == [(1,)]


async def test_several_monitors_claim_each_slot_once(store_backend: StoreBackend) -> None:
    checks = ("acme-email-billing", "acme-email-tech")
    slots = [SLOT + timedelta(minutes=minute) for minute in range(20)]
    async with monitors(store_backend.url) as stores:
        attempts = [
            ((check, slot), store.claim_slot(new_result(check, slot)))
            for check in checks
            for slot in slots
            for store in stores
        ]
        claims = await asyncio.gather(*(claim for _, claim in attempts))
        # A budget shared by the monitors too: 6 checks on one channel, 3 contacts allowed.
        budgeted = await asyncio.gather(
            *(
                store.claim_slot(
                    new_result(f"acme-chat-{n}", channel="webchat"),
                    max_contacts=3,
                    since=BUDGET_SINCE,
                )
                for n in range(6)
                for store in stores
            )
        )
    won: dict[tuple[str, datetime], list[Claim]] = {}
    for (key, _), claim in zip(attempts, claims, strict=True):
        won.setdefault(key, []).append(claim)
    assert all(sorted(each) == [Claim.CLAIMED] + [Claim.TAKEN] * 3 for each in won.values())
    assert budgeted.count(Claim.CLAIMED) == 3
    expected = len(checks) * len(slots) + 3
    assert await store_backend.query("SELECT count(*) FROM slots") == [(expected,)]
    assert await store_backend.query("SELECT count(*) FROM runs") == [(expected,)]


def closed(result: RunResult, outcome: Outcome = Outcome.MET) -> RunResult:
    result.outcome, result.reason = outcome, f"{outcome} in the concurrency test"
    result.sent_at = SENT_AT
    return result


async def test_several_monitors_finishing_at_once_write_one_valid_chain(
    store_backend: StoreBackend,
) -> None:
    """Each run is finished by one monitor while another records a reply to it and a third
    finishes it again with other figures: whatever the interleaving, every closed run's
    content is what its latest entry sealed, and the entries form one unbroken chain."""
    results = [new_result(slot=SLOT + timedelta(minutes=n)) for n in range(24)]
    async with monitors(store_backend.url) as stores:
        for result in results:
            assert await stores[0].claim_slot(result) is Claim.CLAIMED
            await stores[0].record_sent(result.run_id, sent(f"<c-{result.run_id}@x>"), None)

        def again(result: RunResult) -> RunResult:
            revised = dataclasses.replace(closed(result), replies=[])
            revised.first_response_seconds = 1.5
            return revised

        await asyncio.gather(
            *(
                step
                for n, result in enumerate(results)
                for step in (
                    stores[n % MONITORS].finish(closed(result)),
                    stores[(n + 1) % MONITORS].record_reply(
                        result.run_id, *reply(f"<r-{n}@acme.test>", 9.0)
                    ),
                    stores[(n + 2) % MONITORS].finish(again(result)),
                )
            )
        )
        snapshot = await stores[3].snapshot(Scope(SLOT, SLOT + timedelta(days=1)))
        head = await stores[2].chain_head()
    assert snapshot.problems == []
    entries = snapshot.chain
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert link_problems(entries) == []
    assert head == (entries[-1].seq, entries[-1].entry_hash)
    sealed_first = [entry.run_id for entry in entries if entry.kind == RUN]
    assert sorted(sealed_first) == sorted(result.run_id for result in results)  # once each
    assert all(run.entry is not None for run in snapshot.runs)
    assert all(len(run.messages) == 2 for run in snapshot.runs)  # contact and reply


async def test_several_monitors_save_one_channel_state_at_once(
    store_backend: StoreBackend,
) -> None:
    async with monitors(store_backend.url) as stores:
        for round_ in range(3):  # a new key each round: every monitor inserts at once
            key = f"imap:probe-{round_}"
            await asyncio.gather(
                *(
                    store.save_channel_state("email", key, {"last_uid": n})
                    for n, store in enumerate(stores)
                )
            )
            assert await stores[0].load_channel_state("email", key) in [
                {"last_uid": n} for n in range(MONITORS)
            ]
    assert await store_backend.query("SELECT count(*) FROM channel_state") == [(3,)]


async def test_a_reused_run_id_or_token_is_a_store_error(store: EvidenceStore) -> None:
    first = new_result()
    await store.claim_slot(first)
    same_id = dataclasses.replace(new_result(slot=SLOT + timedelta(hours=1)), run_id=first.run_id)
    with pytest.raises(StoreError, match="already in the evidence store"):
        await store.claim_slot(same_id)
    same_token = dataclasses.replace(new_result(slot=SLOT + timedelta(hours=2)), token=first.token)
    with pytest.raises(StoreError, match="already in the evidence store"):
        await store.claim_slot(same_token)
    assert [run.run_id for run in await store.recent_runs()] == [first.run_id]


# -- bad PostgreSQL URLs, against the real server ----------------------------------------------


async def refusal(url: str) -> str:
    """The message of the StoreError opening ``url`` raises (it must raise one)."""
    with pytest.raises(StoreError) as refused:
        async with EvidenceStore(url):
            pass
    return " ".join(str(refused.value).split())


async def test_postgresql_a_wrong_password_is_explained_without_it(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    url = postgres_server.url(postgres_database, password="Wr0ngPassw0rd")
    message = await refusal(url)
    assert url.replace(":Wr0ngPassw0rd@", ":***@") in message
    assert "Wr0ngPassw0rd" not in message and postgres_server.password not in message
    assert "password authentication failed" in message
    assert "refused user 'cxprobe'" in message and "${VAR}" in message


async def test_postgresql_a_server_that_cannot_be_reached_is_explained(
    postgres_server: PostgresServer,
) -> None:
    closed_port = free_port()  # nothing listens there
    message = await refusal(postgres_server.url("cxprobe", port=closed_port))
    assert f"postgresql+asyncpg://cxprobe:***@127.0.0.1:{closed_port}/cxprobe" in message
    assert postgres_server.password not in message
    assert f"127.0.0.1:{closed_port} cannot be reached" in message
    assert "that the server is running" in message


async def test_postgresql_a_missing_database_is_explained(postgres_server: PostgresServer) -> None:
    message = await refusal(postgres_server.url("no_such_store"))
    assert 'database "no_such_store" does not exist' in message
    assert "CREATE DATABASE no_such_store OWNER cxprobe" in message
    assert postgres_server.password not in message


async def test_postgresql_a_url_without_an_async_driver_is_explained(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    url = postgres_server.url(postgres_database).replace("postgresql+asyncpg", "postgresql")
    message = await refusal(url)  # SQLAlchemy's default driver for postgresql:// is psycopg2
    assert "async driver" in message and "postgresql+asyncpg://" in message
    assert postgres_server.password not in message


async def test_a_reply_with_nul_characters_is_stored(store: EvidenceStore) -> None:
    """A broken or hostile reply may carry NUL characters, which PostgreSQL's text refuses:
    they are stored as U+FFFD (on both backends alike), the raw evidence byte for byte."""
    result = new_result()
    await store.claim_slot(result)
    channel_reply, judged = reply("<r1\x00@acme.test>", 3.0)
    raw = b"From: billing@acme.test\r\n\r\nAn\x00swer\r\n"
    channel_reply = dataclasses.replace(
        channel_reply,
        text="An\x00swer",
        subject="Re:\x00 Invoice",
        headers={"X-Odd": "a\x00b"},
        evidence=Evidence(kind="email", media_type="message/rfc822", content=raw),
    )
    judged = dataclasses.replace(judged, sender="bil\x00ling@acme.test")
    assert await store.record_reply(result.run_id, channel_reply, judged)
    assert not await store.record_reply(result.run_id, channel_reply, judged)
    [stored] = await store.messages(result.run_id)
    assert (stored.text, stored.subject, stored.sender) == (
        "An\ufffdswer",
        "Re:\ufffd Invoice",
        "bil\ufffdling@acme.test",
    )
    assert stored.external_id == "<r1\ufffd@acme.test>"
    assert stored.headers == {"X-Odd": "a\x00b"}  # JSON escapes it
    assert await store.artifact_content(stored.artifacts[0].id) == raw
    result.outcome, result.reason = Outcome.FAILED, "Provider\x00Error"
    await store.finish(result)
    loaded = await store.load_run(result.run_id)
    assert loaded is not None and loaded.reason == "Provider\ufffdError"
    late, judged = reply("<late\x00@acme.test>", 9000.0, late=True)
    assert await store.record_reply(result.run_id, late, judged)  # amends the sealed run
    snapshot = await store.snapshot(Scope(SLOT, SLOT + timedelta(days=1)))
    assert snapshot.problems == [] and link_problems(snapshot.chain) == []
    assert [entry.note for entry in snapshot.chain][-1].endswith("<late\ufffd@acme.test>")


async def test_a_purge_and_late_replies_from_other_monitors_at_once(
    store_backend: StoreBackend,
) -> None:
    """A purge deletes closed runs while other monitors record late replies to them: no
    deadlock (every writer locks a run's row before the chain head), each reply is either
    recorded (and amends the run before it goes) or refused as unknown, and the chain stays
    valid."""
    results = [new_result(slot=SLOT + timedelta(minutes=n)) for n in range(16)]
    policy = PurgePolicy(
        older_than=timedelta(days=1), keep_failures=timedelta(days=1), require_exported=False
    )
    async with monitors(store_backend.url, 3) as (purger, *repliers):
        for result in results:
            await purger.claim_slot(result)
            await purger.finish(closed(result))

        async def late_reply(n: int, result: RunResult) -> str:
            late = reply(f"<late-{n}@acme.test>", 90000.0, late=True)
            try:
                await repliers[n % 2].record_reply(result.run_id, *late)
            except UnknownRunError:
                return "purged first"
            return "recorded"

        purge, *replies = await asyncio.gather(
            purger.purge(policy, now=SLOT + timedelta(days=30)),
            *(late_reply(n, result) for n, result in enumerate(results)),
        )
        assert isinstance(purge, PurgeReport)
        async with purger._read() as conn:
            chain = await conn.run_sync(entries_between, 1, 10**9)
    assert sorted(run.run_id for run in purge.purged) == sorted(r.run_id for r in results)
    assert set(replies) <= {"recorded", "purged first"}
    assert link_problems(chain) == []
    assert await store_backend.query("SELECT count(*) FROM runs") == [(0,)]
    assert await store_backend.query("SELECT count(*) FROM messages") == [(0,)]


async def test_postgresql_the_store_reconnects_after_its_connections_are_dropped(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    async with EvidenceStore(postgres_server.url(postgres_database)) as store:
        first = new_result()
        await store.claim_slot(first)  # the pool now holds a connection
        dropped = postgres_server.sql(
            postgres_database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{postgres_database}' AND pid <> pg_backend_pid()",
        )
        assert dropped and all(row == ("t",) for row in dropped)
        assert await store.claim_slot(new_result(slot=SLOT + timedelta(hours=1))) is Claim.CLAIMED
        assert len(await store.recent_runs()) == 2
