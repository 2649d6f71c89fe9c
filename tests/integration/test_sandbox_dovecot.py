"""sandbox.mail.dovecot against the real Dovecot binary: start, LMTP delivery, IMAP, IDLE, Sieve."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aioimaplib
import pytest
from aiosmtpd.smtp import SMTP, Envelope

from sandbox.mail.dovecot import Dovecot, DovecotError, MailUser

PROBE = MailUser("probe@cxprobe.test", "probe-secret")
VACATION = """require ["vacation", "vacation-seconds"];
vacation :seconds 0 :subject "Away" :from "agent@vendor.test" "I am away until Monday.";
"""


@pytest.fixture
async def dovecot(tmp_path: Path) -> AsyncIterator[Dovecot]:
    async with Dovecot(tmp_path / "dovecot", [PROBE]) as server:
        yield server


async def login(server: Dovecot, user: MailUser) -> aioimaplib.IMAP4:
    client = aioimaplib.IMAP4(server.host, server.imap_port, timeout=10)
    await client.wait_hello_from_server()
    response = await client.login(user.address, user.password)
    assert response.result == "OK", response
    return client


async def messages(server: Dovecot, user: MailUser) -> list[bytes]:
    client = await login(server, user)
    try:
        await client.select("INBOX")
        response = await client.fetch("1:*", "(BODY.PEEK[])")
        return [bytes(line) for line in response.lines if isinstance(line, bytearray)]
    finally:
        await client.logout()


async def test_lmtp_delivery_is_readable_over_imap_byte_for_byte(dovecot: Dovecot) -> None:
    body = b"Subject: dots\r\nMessage-ID: <d@x.test>\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
    await dovecot.deliver("", PROBE.address, body)

    [stored] = await messages(dovecot, PROBE)
    assert stored.startswith(b"Return-Path: <>\r\n")
    assert stored.endswith(body)


async def test_unknown_recipient_is_refused(dovecot: Dovecot) -> None:
    with pytest.raises(DovecotError, match="RCPT TO"):
        await dovecot.deliver("a@b.test", "nobody@cxprobe.test", b"Subject: x\r\n\r\nx\r\n")


async def test_wrong_password_is_refused(dovecot: Dovecot) -> None:
    client = aioimaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    await client.wait_hello_from_server()
    assert (await client.login(PROBE.address, "wrong")).result == "NO"
    await client.logout()


async def test_users_can_be_added_while_running(dovecot: Dovecot) -> None:
    second = MailUser("second@cxprobe.test", "pw2")
    dovecot.add_user(second)
    await dovecot.deliver("a@b.test", second.address, b"Subject: hi\r\n\r\nhi\r\n")
    assert len(await messages(dovecot, second)) == 1


async def test_idle_reports_a_delivery_within_a_second(dovecot: Dovecot) -> None:
    client = await login(dovecot, PROBE)
    await client.select("INBOX")
    idle = await client.idle_start(timeout=10)  # returns once Dovecot answered "+ idling"
    delivered = time.monotonic()
    await dovecot.deliver("", PROBE.address, b"Subject: ping\r\n\r\nping\r\n")
    async with asyncio.timeout(5):
        push = await client.wait_server_push()
    # Dovecot batches mailbox change notifications for ~0.5 s before telling IDLE clients.
    assert time.monotonic() - delivered < 1.5
    assert b"1 EXISTS" in push
    client.idle_done()
    await asyncio.wait_for(idle, 5)
    await client.logout()


class _RelayToDovecot:
    """Submission server for Sieve's replies: hands each one to Dovecot over LMTP."""

    def __init__(self) -> None:
        self.server: Dovecot | None = None

    async def handle_DATA(self, smtp: SMTP, session: object, envelope: Envelope) -> str:
        assert self.server is not None
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        for rcpt in envelope.rcpt_tos:
            await self.server.deliver(envelope.mail_from or "", rcpt, content)
        return "250 OK"


async def test_sieve_vacation_answers_like_a_third_party_responder(tmp_path: Path) -> None:
    relay = _RelayToDovecot()
    loop = asyncio.get_running_loop()
    submission = await loop.create_server(
        lambda: SMTP(relay, hostname="relay.localhost", loop=loop), "127.0.0.1", 0
    )
    agent = MailUser("agent@vendor.test", "pw", sieve_script=VACATION)
    try:
        port = submission.sockets[0].getsockname()[1]
        async with Dovecot(tmp_path / "dovecot", [PROBE, agent], submission_port=port) as server:
            relay.server = server
            customer_mail = (
                b"From: probe@cxprobe.test\r\nTo: agent@vendor.test\r\n"
                b"Subject: Hello [CXP-1]\r\nMessage-ID: <c1@cxprobe.test>\r\n\r\nThere?\r\n"
            )
            await server.deliver(PROBE.address, agent.address, customer_mail)
            [reply] = await messages(server, PROBE)
    finally:
        submission.close()
        await submission.wait_closed()

    assert b"Auto-Submitted: auto-replied (vacation)" in reply
    assert b"In-Reply-To: <c1@cxprobe.test>" in reply
    assert b"I am away until Monday." in reply


async def test_many_concurrent_imap_sessions(dovecot: Dovecot) -> None:
    clients = await asyncio.gather(*(login(dovecot, PROBE) for _ in range(100)))
    await asyncio.gather(*(c.logout() for c in clients))
