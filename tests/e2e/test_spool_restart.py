"""Nothing lost between the spool and the store (issue 17): a monitor SIGKILLed after it spooled
a large reply but before its store took it; the reply is then gone from the mailbox (another
client expunged it), so only the spool has it. The restarted monitor resumes the run and stores
the reply from the spool, byte for byte, and empties the spool."""

from __future__ import annotations

import asyncio
import hashlib
import imaplib
import sqlite3
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from cxprobe.store.database import EvidenceStore
from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
from tests.e2e.monitor_process import MonitorProcess, wait_until
from tests.support import (
    PROBE_ADDRESS,
    PROBE_PASSWORD,
    desk_profile,
    monitor_config,
    require_binary,
)

#: Larger than a fetch chunk (1 MiB) and than the parse cap the config sets.
REPLY_BYTES = 3 * 1024 * 1024


@pytest.fixture(autouse=True)
def _peers() -> None:
    require_binary("dovecot")


def large_reply(in_reply_to: str) -> bytes:
    reply = EmailMessage()
    reply["From"] = "billing@acme.test"
    reply["To"] = PROBE_ADDRESS
    reply["Subject"] = "Re: your invoice"
    reply["Message-ID"] = "<statement.1@acme.test>"
    reply["In-Reply-To"] = in_reply_to
    reply.set_content("Hello Alex,\n\nthe statement is attached.\n-- \nAcme Billing Team")
    reply.add_attachment(b"%PDF-1.7 statement " * (REPLY_BYTES // 19), "application", "pdf")
    return reply.as_bytes(policy=SMTP)


def take_from_mailbox(port: int) -> bytes:
    """What the mailbox holds (the oracle), then expunge it, as another mail client might."""
    with imaplib.IMAP4("127.0.0.1", port) as imap:  # logs out on leaving
        imap.login(PROBE_ADDRESS, PROBE_PASSWORD)
        imap.select("INBOX")
        _, found = imap.uid("SEARCH", "HEADER", "Message-ID", "<statement.1@acme.test>")
        (uid,) = found[0].split()
        _, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        held = fetched[0]
        assert isinstance(held, tuple)
        imap.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
        imap.expunge()
    return held[1]


async def test_a_reply_spooled_before_a_kill_is_stored_by_the_restarted_monitor(
    tmp_path: Path,
) -> None:
    profile = desk_profile(human_seconds=600)  # the desk stays silent: the test answers
    profile["mail"]["auto_ack"]["enabled"] = False
    async with MailDesk(Profile.model_validate(profile), tmp_path / "desk") as desk:
        config = monitor_config(
            tmp_path,
            smtp_port=desk.smtp_port,
            imap_port=desk.imap_port,
            sla={"first_response": "30s", "human_response": "60s", "deadline": "90s"},
            imap={"max_message_bytes": 65536},
        )
        database = tmp_path / "cxprobe.db"
        spool = tmp_path / "data" / "spool" / "email" / "probe"
        env = {"CXPROBE_TEST_IMAP_PASSWORD": PROBE_PASSWORD}
        first = MonitorProcess(config, tmp_path / "first.log", env)
        second = MonitorProcess(config, tmp_path / "second.log", env)
        lock = None
        try:
            async with EvidenceStore(f"sqlite+aiosqlite:///{database}") as store:

                async def sent() -> bool:
                    runs = await store.recent_runs(10)
                    return len(runs) == 1 and runs[0].sent_at is not None

                first.start()
                await wait_until(sent, 30, "the contact to be recorded as sent")
                (run,) = await store.recent_runs(10)
                (contact,) = await store.messages(run.run_id)
                # From now on the first monitor's store waits: it can spool, not store.
                lock = sqlite3.connect(database, isolation_level=None)
                lock.execute("BEGIN IMMEDIATE")
                await desk.dovecot.deliver(
                    "billing@acme.test", PROBE_ADDRESS, large_reply(contact.external_id)
                )
                await wait_until(lambda: list(spool.glob("*.msg")), 30, "the reply to be spooled")
                first.kill()
                lock.rollback()
                lock.close()
                lock = None
                held = await asyncio.to_thread(take_from_mailbox, desk.imap_port)
                assert [m.direction for m in await store.messages(run.run_id)] == ["out"]

                second.start()

                async def reply_stored() -> bool:
                    return len(await store.messages(run.run_id)) == 2

                await wait_until(reply_stored, 60, "the spooled reply to be stored")
                reply = (await store.messages(run.run_id))[1]
                (artifact,) = reply.artifacts
                content = await store.artifact_content(artifact.id)
                await wait_until(lambda: not any(spool.iterdir()), 30, "the spool to be emptied")
                assert second.terminate() == 0, second.log
        finally:
            if lock is not None:
                lock.close()
            first.ensure_stopped()
            second.ensure_stopped()

    assert reply.direction == "in" and reply.responder == "human", reply
    assert "the statement is attached" in reply.text
    assert len(held) > REPLY_BYTES and content == held
    assert artifact.sha256 == hashlib.sha256(held).hexdigest() and artifact.size == len(held)
    assert "handing on replies spooled by an earlier process" in second.log
    assert "run resumed" in second.log
