"""The email channel against real peers: aiosmtpd for sending (plain, STARTTLS, implicit TLS,
AUTH, refusals) and a real Dovecot (IMAP IDLE, LMTP delivery) for replies.

No mocks. Dovecot must be installed: the fixtures fail with install advice, never skip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import hashlib
import imaplib
import logging
import re
import shutil
import socket
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from cxprobe.evidence.export import ExportOptions, export_evidence
from cxprobe.evidence.verify import verify_export
from cxprobe.store.chain import Scope
from cxprobe.store.database import EvidenceStore
from probes.base import (
    ChannelServices,
    ChannelUnavailable,
    Contact,
    ContactRejected,
    MemoryChannelState,
    Reply,
    Responder,
    Sent,
    new_token,
)
from probes.email.channel import (
    EMAIL,
    EmailAddress,
    EmailChannel,
    EmailChannelSettings,
    EmailConversation,
)
from probes.email.watcher import FETCH_CHUNK_BYTES
from probes.errors import OptedOut
from probes.spool import Spool
from sandbox.mail.dovecot import Dovecot, MailUser
from sandbox.mail.tls import ServerCertificate, make_certificate
from scenarios.model import ObservedReply, Outcome
from tests.stores import StoreBackend
from tests.support import require_binary
from tests.unit.test_store import new_result as new_run

PROBE = MailUser("probe@cxprobe.test", "probe-secret")
SUPPORT = "support@acme.test"
AGENT = "jane@acme.test"
SMTP_USER, SMTP_PASSWORD = "probe-smtp", "smtp-hunter2"
EVENT_TIMEOUT = 10.0
#: Long enough for a duplicate (IDLE push ~0.5 s + fetch) to have shown up.
QUIET = 1.5


# -- peers ------------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """aiosmtpd handler: keeps what it accepts; optionally refuses recipients or hands every
    message to a hook before answering DATA (a desk that replies instantly)."""

    refuse_rcpt: str | None = None
    refuse_mail: str | None = None
    on_data: Callable[[Envelope], Awaitable[None]] | None = None
    received: list[Envelope] = field(default_factory=list)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_mail:
            return self.refuse_mail
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.on_data is not None:
            await self.on_data(envelope)
        self.received.append(envelope)
        return "250 Message accepted"


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled=True would leave the client waiting


@dataclass
class SmtpServer:
    port: int
    sink: SmtpSink


async def start_smtp(
    stack: AsyncExitStack,
    sink: SmtpSink,
    *,
    tls: str = "none",
    cert: ServerCertificate | None = None,
    auth: bool = False,
) -> SmtpServer:
    loop = asyncio.get_running_loop()
    context = cert.server_context() if cert else None

    def factory() -> SMTP:
        with warnings.catch_warnings():
            # aiosmtpd warns about AUTH over plain text; the probe must still support it.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return _smtp()

    def _smtp() -> SMTP:
        return SMTP(
            sink,
            hostname="smtp.localhost",
            loop=loop,
            tls_context=context if tls == "starttls" else None,
            require_starttls=tls == "starttls",
            authenticator=_authenticate if auth else None,
            auth_required=auth,
            # aiosmtpd 1.4 only counts STARTTLS as TLS; on implicit TLS it would hide AUTH.
            auth_require_tls=tls == "starttls",
        )

    server = await loop.create_server(
        factory, "127.0.0.1", 0, ssl=context if tls == "implicit" else None
    )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    stack.push_async_callback(close)
    return SmtpServer(server.sockets[0].getsockname()[1], sink)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


@pytest.fixture
async def dovecot(tmp_path: Path) -> AsyncIterator[Dovecot]:
    require_binary("dovecot")
    async with Dovecot(tmp_path / "dovecot", [PROBE]) as server:
        yield server


@pytest.fixture
async def smtp(stack: AsyncExitStack) -> SmtpServer:
    return await start_smtp(stack, SmtpSink())


# -- the channel under test ---------------------------------------------------------------------


@dataclass
class Probe:
    """An EmailChannel with its unmatched sink, as the runner would build it."""

    channel: EmailChannel
    unmatched: asyncio.Queue[Reply]

    async def contact(
        self, token: str | None = None, address: EmailAddress | None = None
    ) -> tuple[EmailConversation, Sent]:
        token = token or new_token()
        conversation = await self.channel.open(address or ADDRESS, token)
        sent = await conversation.send(
            Contact(token, "Refund please", f"Where is my refund? Ref {token}", "Alex Morgan")
        )
        return conversation, sent


ADDRESS = EmailAddress(to=SUPPORT, mailbox="probe")


def channel_settings(
    imap_port: int, smtp_port: int, *, imap: dict[str, Any] | None = None, **smtp: Any
) -> EmailChannelSettings:
    return EmailChannelSettings.model_validate(
        {
            "mailboxes": {
                "probe": {
                    "address": PROBE.address,
                    "smtp": {"host": "127.0.0.1", "port": smtp_port, "tls": "none", **smtp},
                    "imap": {
                        "host": "127.0.0.1",
                        "port": imap_port,
                        "tls": "none",
                        "username": PROBE.address,
                        "password": PROBE.password,
                        "reconnect_max_backoff": 0.5,
                        **(imap or {}),
                    },
                }
            }
        }
    )


async def start_probe(
    stack: AsyncExitStack,
    settings: EmailChannelSettings,
    *,
    connect: bool = True,
    state: MemoryChannelState | None = None,
    spool_dir: Path | None = None,
    runs_resumed: asyncio.Event | None = None,
) -> Probe:
    """The email channel, started; ``state`` and ``spool_dir`` are what survives a restart
    (fresh by default), ``runs_resumed`` the runner's signal (set by default)."""
    unmatched: asyncio.Queue[Reply] = asyncio.Queue()

    async def on_unmatched(reply: Reply) -> None:
        unmatched.put_nowait(reply)

    services = ChannelServices(
        logging.getLogger("test.email"), on_unmatched, state or MemoryChannelState()
    )
    if spool_dir is not None or runs_resumed is not None:
        services = dataclasses.replace(
            services,
            spool_dir=spool_dir,
            runs_resumed=runs_resumed or services.runs_resumed,
        )
    channel = EMAIL.create(settings, services)
    assert isinstance(channel, EmailChannel)
    await channel.start(stack)
    if connect:
        async with asyncio.timeout(EVENT_TIMEOUT):
            await channel.watcher("probe").wait_connected()
    return Probe(channel, unmatched)


@pytest.fixture
async def probe(stack: AsyncExitStack, dovecot: Dovecot, smtp: SmtpServer) -> Probe:
    return await start_probe(stack, channel_settings(dovecot.imap_port, smtp.port))


def reply_mail(
    subject: str,
    *,
    in_reply_to: str | None = None,
    references: str | None = None,
    body: str = "Hello Alex,\n\nYour refund is on its way.\n\n-- \nAcme Billing Team\n",
    sender: str = AGENT,
    extra: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"Jane <{sender}>"
    message["To"] = PROBE.address
    message["Subject"] = subject
    message["Message-ID"] = email.utils.make_msgid(domain="acme.test")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in (extra or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


async def next_reply(conversation: EmailConversation) -> Reply:
    async with asyncio.timeout(EVENT_TIMEOUT):
        async for reply in conversation.replies():
            return reply
    raise AssertionError("replies() ended")


def raw_evidence(reply: Reply) -> bytes:
    """The reply's raw message: its spool file's bytes (the watcher never holds them)."""
    assert reply.evidence is not None and reply.evidence.file is not None
    assert reply.evidence.content == b""
    return reply.evidence.file.path.read_bytes()


def observed_human(reply: Reply, sent: Sent) -> ObservedReply:
    return ObservedReply(
        arrived_at=reply.arrived_at,
        observed_at=reply.observed_at,
        seconds=(reply.arrived_at - sent.at).total_seconds(),
        responder=Responder.HUMAN,
        sender=reply.sender,
        queue="billing",
        late=False,
        external_id=reply.external_id,
        qualifies=True,
    )


async def assert_no_more(conversation: EmailConversation) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(next_reply(conversation), QUIET)


# -- sending ------------------------------------------------------------------------------------


async def test_send_builds_the_contact_and_times_the_data_reply(
    dovecot: Dovecot, smtp: SmtpServer, probe: Probe
) -> None:
    token = new_token()
    before = datetime.now(UTC)
    conversation, sent = await probe.contact(token)
    after = datetime.now(UTC)

    assert before <= sent.at <= after
    [envelope] = smtp.sink.received
    assert envelope.mail_from == PROBE.address and envelope.rcpt_tos == [SUPPORT]
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=default_policy)
    assert message["From"] == f"Alex Morgan <{PROBE.address}>"
    assert message["To"] == SUPPORT
    assert message["Subject"] == f"Refund please [{token}]"
    assert message["X-Cxprobe-Token"] == token
    assert message["Message-ID"] == sent.external_id
    assert sent.external_id.endswith("@cxprobe.test>")
    assert message["Date"] is not None
    assert message.get_content().strip() == f"Where is my refund? Ref {token}"
    assert sent.evidence is not None and sent.evidence.media_type == "message/rfc822"
    assert sent.evidence.content.replace(b"\r\n", b"\n") == envelope.content.replace(b"\r\n", b"\n")
    assert dict(sent.resume_state) == {"mailbox": "probe", "token": token}
    await conversation.close()


@pytest.mark.parametrize("tls", ["none", "starttls", "implicit"])
async def test_send_over_each_tls_mode_with_auth(
    tmp_path: Path, stack: AsyncExitStack, dovecot: Dovecot, tls: str
) -> None:
    cert = await make_certificate(tmp_path / "tls")
    sink = SmtpSink()
    server = await start_smtp(stack, sink, tls=tls, cert=cert, auth=True)
    settings = channel_settings(
        dovecot.imap_port,
        server.port,
        tls=tls,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        ca_file=str(cert.ca_file),
    )
    probe = await start_probe(stack, settings)
    _, sent = await probe.contact()
    assert len(sink.received) == 1 and sent.external_id


async def test_untrusted_certificate_is_channel_unavailable(
    tmp_path: Path, stack: AsyncExitStack, dovecot: Dovecot
) -> None:
    cert = await make_certificate(tmp_path / "tls")
    server = await start_smtp(stack, SmtpSink(), tls="implicit", cert=cert)
    probe = await start_probe(
        stack, channel_settings(dovecot.imap_port, server.port, tls="implicit")
    )
    with pytest.raises(ChannelUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await probe.contact()


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_watch_over_imap_tls(
    tmp_path: Path, stack: AsyncExitStack, smtp: SmtpServer, tls: str
) -> None:
    require_binary("dovecot")
    cert = await make_certificate(tmp_path / "tls")
    async with Dovecot(tmp_path / "dovecot", [PROBE], tls=cert) as server:
        port = server.imaps_port if tls == "implicit" else server.imap_port
        imap = {"tls": tls, "ca_file": str(cert.ca_file)}
        probe = await start_probe(stack, channel_settings(port, smtp.port, imap=imap))
        conversation, sent = await probe.contact()
        await server.deliver(AGENT, PROBE.address, reply_mail("Re", in_reply_to=sent.external_id))
        assert (await next_reply(conversation)).subject == "Re"
        logins = [
            line
            for line in (server.workdir / "dovecot-info.log").read_text().splitlines()
            if "imap-login: Info: Login:" in line
        ]
    assert logins and all(", TLS" in line for line in logins), logins


async def test_untrusted_imap_certificate_is_retried_and_logged(
    tmp_path: Path, stack: AsyncExitStack, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    require_binary("dovecot")
    cert = await make_certificate(tmp_path / "tls")
    async with Dovecot(tmp_path / "dovecot", [PROBE], tls=cert) as server:
        imap = {"tls": "implicit"}  # no ca_file: the private CA is not trusted
        probe = await start_probe(
            stack, channel_settings(server.imaps_port, smtp.port, imap=imap), connect=False
        )
        watcher = probe.channel.watcher("probe")
        async with asyncio.timeout(EVENT_TIMEOUT):
            while sum("reconnecting" in r.getMessage() for r in caplog.records) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert watcher.running and not watcher.stats.connected
    errors = [str(getattr(r, "error", "")) for r in caplog.records]
    assert any("CERTIFICATE_VERIFY_FAILED" in error for error in errors), errors


async def test_wrong_smtp_password_is_unavailable_and_never_echoed(
    tmp_path: Path, stack: AsyncExitStack, dovecot: Dovecot
) -> None:
    cert = await make_certificate(tmp_path / "tls")
    server = await start_smtp(stack, SmtpSink(), tls="starttls", cert=cert, auth=True)
    settings = channel_settings(
        dovecot.imap_port,
        server.port,
        tls="starttls",
        username=SMTP_USER,
        password="not-the-password",
        ca_file=str(cert.ca_file),
    )
    probe = await start_probe(stack, settings)
    with pytest.raises(ChannelUnavailable, match="refused the login") as caught:
        await probe.contact()
    assert "not-the-password" not in str(caught.value)


async def test_login_required_but_not_configured_is_unavailable(
    stack: AsyncExitStack, dovecot: Dovecot
) -> None:
    """Our submission server refusing the probe (530 at MAIL FROM) is not the target's doing."""
    sink = SmtpSink()
    server = await start_smtp(stack, sink, auth=True)
    probe = await start_probe(stack, channel_settings(dovecot.imap_port, server.port))
    with pytest.raises(ChannelUnavailable, match="530") as caught:
        await probe.contact()
    assert "check channels.email.mailboxes.probe.smtp" in str(caught.value)
    assert sink.received == []


@pytest.mark.parametrize(
    ("refusal", "where"),
    [
        ("553 5.1.8 <probe@cxprobe.test>: Sender address rejected: not owned by user", "mail"),
        ("554 5.7.1 <support@acme.test>: Relay access denied", "rcpt"),
    ],
    ids=["sender-refused", "relay-denied"],
)
async def test_submission_server_refusing_the_probe_is_unavailable(
    stack: AsyncExitStack, dovecot: Dovecot, refusal: str, where: str
) -> None:
    sink = SmtpSink(refuse_mail=refusal) if where == "mail" else SmtpSink(refuse_rcpt=refusal)
    server = await start_smtp(stack, sink)
    probe = await start_probe(stack, channel_settings(dovecot.imap_port, server.port))
    with pytest.raises((ChannelUnavailable, ContactRejected)) as caught:
        await probe.contact()
    assert isinstance(caught.value, ChannelUnavailable), caught.value
    assert refusal.split()[1] in str(caught.value)
    assert "check channels.email.mailboxes.probe.smtp" in str(caught.value)


async def test_refused_recipient_is_contact_rejected(
    stack: AsyncExitStack, dovecot: Dovecot
) -> None:
    server = await start_smtp(
        stack, SmtpSink(refuse_rcpt="550 5.1.1 <support@acme.test>: no such user")
    )
    probe = await start_probe(stack, channel_settings(dovecot.imap_port, server.port))
    with pytest.raises(ContactRejected, match="550") as caught:
        await probe.contact()
    assert "no such user" in str(caught.value)


async def test_temporary_refusal_is_channel_unavailable(
    stack: AsyncExitStack, dovecot: Dovecot
) -> None:
    server = await start_smtp(stack, SmtpSink(refuse_rcpt="451 4.3.0 try again later"))
    probe = await start_probe(stack, channel_settings(dovecot.imap_port, server.port))
    with pytest.raises((ChannelUnavailable, ContactRejected)) as caught:
        await probe.contact()
    assert isinstance(caught.value, ChannelUnavailable) and "451" in str(caught.value)


async def test_no_contact_is_sent_while_the_mailbox_cannot_be_watched(
    stack: AsyncExitStack, smtp: SmtpServer
) -> None:
    # Bound but not listening: every IMAP connection attempt is refused.
    closed = stack.enter_context(socket.socket())
    closed.bind(("127.0.0.1", 0))
    settings = channel_settings(closed.getsockname()[1], smtp.port, imap={"timeout": 1})
    probe = await start_probe(stack, settings, connect=False)
    started = time.monotonic()
    with pytest.raises(ChannelUnavailable, match="no contact was sent") as caught:
        await probe.contact()
    assert 0.9 <= time.monotonic() - started < EVENT_TIMEOUT
    assert "'probe'" in str(caught.value)  # names the mailbox to look at
    assert smtp.sink.received == []


async def test_unreachable_smtp_server_is_channel_unavailable(
    stack: AsyncExitStack, dovecot: Dovecot
) -> None:
    server = await start_smtp(stack, SmtpSink())
    port = server.port
    await stack.aclose()  # the SMTP server is gone; nothing listens on its port
    async with AsyncExitStack() as again:
        probe = await start_probe(again, channel_settings(dovecot.imap_port, port))
        with pytest.raises(ChannelUnavailable, match=f"127.0.0.1:{port}"):
            await probe.contact()


# -- routing replies ----------------------------------------------------------------------------


async def test_reply_routed_by_in_reply_to(dovecot: Dovecot, probe: Probe) -> None:
    conversation, sent = await probe.contact()
    delivered_at = datetime.now(UTC)
    await dovecot.deliver(
        AGENT, PROBE.address, reply_mail("Re: Refund", in_reply_to=sent.external_id)
    )

    reply = await next_reply(conversation)
    assert reply.sender == AGENT and reply.responder is Responder.HUMAN
    assert reply.text == "Hello Alex,\n\nYour refund is on its way.\n\n--\nAcme Billing Team"
    assert sent.external_id in reply.thread_keys
    assert reply.timing_method == "imap-internaldate"
    assert abs((reply.arrived_at - delivered_at).total_seconds()) <= 1.5
    assert sent.at <= reply.arrived_at <= reply.observed_at
    internaldate = datetime.fromisoformat(reply.headers["X-Cxprobe-Internaldate"])
    middle_of_second = internaldate + timedelta(seconds=0.5)
    assert reply.arrived_at == max(min(middle_of_second, reply.observed_at), sent.at)
    assert b"Acme Billing Team" in raw_evidence(reply)
    await assert_no_more(conversation)
    assert probe.unmatched.empty()


async def test_reply_routed_by_references_only(dovecot: Dovecot, probe: Probe) -> None:
    conversation, sent = await probe.contact()
    other, _ = await probe.contact()
    references = f"<thread-root@acme.test> {sent.external_id}"
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Your case", references=references))

    reply = await next_reply(conversation)
    assert sent.external_id in reply.thread_keys
    await assert_no_more(other)


async def test_reply_routed_by_token_only(dovecot: Dovecot, probe: Probe) -> None:
    conversation, sent = await probe.contact()
    token = sent.resume_state["token"]
    await dovecot.deliver(
        AGENT, PROBE.address, reply_mail("Case opened", body=f"About {token}: done.")
    )

    reply = await next_reply(conversation)
    assert token in reply.thread_keys and reply.text == f"About {token}: done."


async def test_unrelated_message_goes_to_unmatched(dovecot: Dovecot, probe: Probe) -> None:
    conversation, _ = await probe.contact()
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Newsletter", body="Big sale!"))

    async with asyncio.timeout(EVENT_TIMEOUT):
        stranger = await probe.unmatched.get()
    assert stranger.subject == "Newsletter" and stranger.thread_keys == frozenset()
    await assert_no_more(conversation)


async def test_reply_to_a_closed_conversation_goes_to_unmatched(
    dovecot: Dovecot, probe: Probe
) -> None:
    conversation, sent = await probe.contact()
    await conversation.close()
    await dovecot.deliver(
        AGENT, PROBE.address, reply_mail("Re: late", in_reply_to=sent.external_id)
    )

    async with asyncio.timeout(EVENT_TIMEOUT):
        late = await probe.unmatched.get()
    assert sent.external_id in late.thread_keys
    assert probe.channel.watcher("probe").stats.registered == 0


async def test_reply_arriving_before_the_250_is_not_missed(
    stack: AsyncExitStack, dovecot: Dovecot
) -> None:
    """The desk auto-acknowledges before it even answers DATA: registration comes first."""

    async def instant_ack(envelope: Envelope) -> None:
        assert isinstance(envelope.content, bytes)
        contact = email.message_from_bytes(envelope.content, policy=default_policy)
        ack = reply_mail(
            f"Re: {contact['Subject']}",
            in_reply_to=str(contact["Message-ID"]),
            sender="noreply@acme.test",
            extra={"Auto-Submitted": "auto-replied"},
        )
        await dovecot.deliver("noreply@acme.test", PROBE.address, ack)

    server = await start_smtp(stack, SmtpSink(on_data=instant_ack))
    probe = await start_probe(stack, channel_settings(dovecot.imap_port, server.port))
    conversation, sent = await probe.contact()

    reply = await next_reply(conversation)
    assert reply.responder is Responder.AUTO
    assert reply.arrived_at >= sent.at  # clamped: INTERNALDATE + 0.5 s may be later than t0


async def test_auto_and_human_replies_are_told_apart(dovecot: Dovecot, probe: Probe) -> None:
    conversation, sent = await probe.contact()
    msgid = sent.external_id
    deliveries = [
        ("noreply@acme.test", {"Auto-Submitted": "auto-replied"}, Responder.AUTO),
        ("", {}, Responder.AUTO),  # null return path
        (AGENT, {"X-Autoreply": "yes"}, Responder.AUTO),
        (AGENT, {"Precedence": "bulk"}, Responder.AUTO),
        (AGENT, {"X-Auto-Response-Suppress": "All"}, Responder.HUMAN),
        (AGENT, {"Auto-Submitted": "no"}, Responder.HUMAN),
    ]
    for envelope_from, headers, _ in deliveries:
        mail = reply_mail("Re: x", in_reply_to=msgid, extra=headers)
        await dovecot.deliver(envelope_from, PROBE.address, mail)

    seen = [await next_reply(conversation) for _ in deliveries]
    assert [reply.responder for reply in seen] == [expected for _, _, expected in deliveries]


def dsn(sent: Sent, recipient: str) -> bytes:
    """An RFC 3464 bounce of the contact ``sent``: delivery to ``recipient`` failed."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.acme.test>\r\n"
        f"To: {PROBE.address}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {email.utils.make_msgid(domain='mx.acme.test')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        "--r\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 mailbox unknown\r\n\r\n"
        "--r\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {sent.external_id}\r\nSubject: Refund please\r\n\r\n--r--\r\n"
    ).encode()


async def test_bounce_fails_the_contact(dovecot: Dovecot, probe: Probe) -> None:
    conversation, sent = await probe.contact()
    await dovecot.deliver("", PROBE.address, dsn(sent, SUPPORT))

    with pytest.raises(ContactRejected, match=r"5\.1\.1.*mailbox unknown"):
        await next_reply(conversation)


async def test_a_permanent_bounce_opts_the_address_out(dovecot: Dovecot, probe: Probe) -> None:
    """A 5.x.x failure: writing again would bounce again, so the runner pauses the address."""
    conversation, sent = await probe.contact()
    await dovecot.deliver("", PROBE.address, dsn(sent, SUPPORT))

    with pytest.raises(OptedOut, match=r"5\.1\.1") as raised:
        await next_reply(conversation)
    assert raised.value.recipient == SUPPORT


async def test_a_temporary_failure_bounce_fails_without_opting_out(
    dovecot: Dovecot, probe: Probe
) -> None:
    conversation, sent = await probe.contact()
    report = dsn(sent, SUPPORT).replace(b"Status: 5.1.1", b"Status: 4.4.7")
    await dovecot.deliver("", PROBE.address, report)

    with pytest.raises(ContactRejected, match=r"4\.4\.7") as raised:
        await next_reply(conversation)
    assert not isinstance(raised.value, OptedOut)


async def test_plain_text_bounce_fails_the_contact(dovecot: Dovecot, probe: Probe) -> None:
    """qmail's "failure notice" has no delivery-status part; it is a bounce all the same."""
    conversation, sent = await probe.contact()
    failure_notice = (
        "From: MAILER-DAEMON@mx.acme.test\r\n"
        f"To: {PROBE.address}\r\nSubject: failure notice\r\n"
        "Message-ID: <qmail-1@mx.acme.test>\r\n\r\n"
        "Hi. This is the qmail-send program at mx.acme.test.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"<{SUPPORT}>:\r\nRemote host said: 550 5.1.1 no mailbox here by that name\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"From: Alex Morgan <{PROBE.address}>\r\nTo: {SUPPORT}\r\n"
        f"Message-ID: {sent.external_id}\r\nSubject: Refund please\r\n\r\nWhere?\r\n"
    ).encode()
    await dovecot.deliver("", PROBE.address, failure_notice)

    with pytest.raises(ContactRejected, match=r"5\.1\.1.*no mailbox here"):
        await next_reply(conversation)


async def test_bounce_for_a_cc_does_not_fail_the_contact(
    dovecot: Dovecot, probe: Probe, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    boss = "boss@acme.test"
    address = EmailAddress(to=SUPPORT, mailbox="probe", cc=[boss])
    conversation, sent = await probe.contact(address=address)
    assert smtp.sink.received[0].rcpt_tos == [SUPPORT, boss]
    await dovecot.deliver("", PROBE.address, dsn(sent, boss))
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Re", in_reply_to=sent.external_id))

    reply = await next_reply(conversation)  # the bounce is skipped, the answer counts
    assert reply.subject == "Re" and reply.sender == AGENT
    assert any("bounce for a cc recipient" in r.getMessage() for r in caplog.records)
    await assert_no_more(conversation)
    assert probe.unmatched.empty()


async def test_a_report_for_the_probes_own_address_says_so(
    dovecot: Dovecot, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    """No cc on the contact: a report naming the probe's own address is not "a cc recipient"."""
    caplog.set_level(logging.INFO)
    conversation, sent = await probe.contact()
    await dovecot.deliver("", PROBE.address, dsn(sent, PROBE.address))
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Re", in_reply_to=sent.external_id))

    reply = await next_reply(conversation)
    assert reply.sender == AGENT
    messages = [r.getMessage() for r in caplog.records]
    assert not any("cc recipient" in message for message in messages), messages
    assert any("probe's own address" in message for message in messages), messages


async def test_a_human_reply_in_an_unknown_charset_is_a_human_answer(
    dovecot: Dovecot, probe: Probe
) -> None:
    """Its text part's charset is unknown to Python: read by fallback, never dropped."""
    conversation, sent = await probe.contact()
    mail = reply_mail("Re: Refund", in_reply_to=sent.external_id, body="Réglé, Alex. Jane\n")
    mail = mail.replace(b'charset="utf-8"', b"charset=x-unknown-charset")
    assert b"charset=x-unknown-charset" in mail
    await dovecot.deliver(AGENT, PROBE.address, mail)

    reply = await next_reply(conversation)
    assert reply.responder is Responder.HUMAN
    assert "Alex" in reply.text
    assert "unknown charset 'x-unknown-charset'" in reply.headers["X-Cxprobe-Decoding"]
    assert b"x-unknown-charset" in raw_evidence(reply)


async def test_a_reply_larger_than_max_message_bytes_is_read_in_part_and_kept_whole(
    stack: AsyncExitStack, dovecot: Dovecot, smtp: SmtpServer
) -> None:
    """Only the first max_message_bytes are parsed (off the event loop); the evidence is whole."""
    cap = 64 * 1024
    settings = channel_settings(dovecot.imap_port, smtp.port, imap={"max_message_bytes": cap})
    probe = await start_probe(stack, settings)
    conversation, sent = await probe.contact()
    body = "Your refund is on its way.\n" + "padding line of an attachment-sized reply\n" * 5000
    mail = reply_mail("Re: Refund", in_reply_to=sent.external_id, body=body)
    small = reply_mail("Re: again", in_reply_to=sent.external_id)
    await dovecot.deliver(AGENT, PROBE.address, mail)
    await dovecot.deliver(AGENT, PROBE.address, small)

    large, following = await next_reply(conversation), await next_reply(conversation)
    assert large.responder is Responder.HUMAN and "refund is on its way" in large.text
    assert len(raw_evidence(large)) >= len(mail)
    note = large.headers["X-Cxprobe-Decoding"]
    # Read up to the cap, cut back to the last line break within it (whole encoded lines).
    read = int(re.search(r"its first (\d+) bytes read", note).group(1))  # type: ignore[union-attr]
    assert cap - 200 < read <= cap, note
    assert following.subject == "Re: again" and "X-Cxprobe-Decoding" not in following.headers


def statement_reply(in_reply_to: str, size: int) -> bytes:
    """A reply with a PDF-sized attachment, CRLF line ends (as IMAP serves it)."""
    message = EmailMessage()
    message["From"] = AGENT
    message["To"] = PROBE.address
    message["Subject"] = "Re: Refund"
    message["Message-ID"] = f"<statement.{time.time_ns()}@acme.test>"
    message["In-Reply-To"] = in_reply_to
    message.set_content("Hello Alex,\n\nthe statement is attached.\n\n--\nAcme Billing Team")
    message.add_attachment(b"%PDF-1.7 statement " * (size // 19), "application", "pdf")
    return message.as_bytes(policy=email.policy.SMTP)


def mailbox_copy(port: int, message_id: str) -> bytes:
    """The message as the mailbox holds it, read over a connection of the test's own."""
    with imaplib.IMAP4("127.0.0.1", port) as imap:
        imap.login(PROBE.address, PROBE.password)
        imap.select("INBOX", readonly=True)
        _, found = imap.uid("SEARCH", "HEADER", "Message-ID", message_id)
        (uid,) = found[0].split()
        _, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    item = fetched[0]
    assert isinstance(item, tuple)
    return item[1]


async def test_a_reply_larger_than_a_fetch_chunk_is_stored_and_exported_byte_for_byte(
    stack: AsyncExitStack,
    dovecot: Dovecot,
    smtp: SmtpServer,
    store_backend: StoreBackend,
    tmp_path: Path,
) -> None:
    """Fetched a chunk at a time into its spool file, copied into the store in chunks: the
    export holds exactly the mailbox's bytes and verifies."""
    settings = channel_settings(dovecot.imap_port, smtp.port, imap={"max_message_bytes": 65536})
    probe = await start_probe(stack, settings)
    conversation, sent = await probe.contact()
    raw = statement_reply(sent.external_id, 3 * FETCH_CHUNK_BYTES + 4321)
    await dovecot.deliver(AGENT, PROBE.address, raw)

    reply = await next_reply(conversation)
    held = await asyncio.to_thread(mailbox_copy, dovecot.imap_port, reply.external_id)
    assert reply.evidence is not None and reply.evidence.file is not None
    assert reply.evidence.size == len(held) > len(raw)  # Dovecot adds its trace headers
    assert "the statement is attached" in reply.text
    async with EvidenceStore(store_backend.url) as store:
        result = new_run()
        result.thresholds = dataclasses.replace(result.thresholds, deadline=7200.0)
        await store.claim_slot(result)
        await store.record_sent(result.run_id, sent, result.expected_queue)
        assert await store.record_reply(result.run_id, reply, observed_human(reply, sent))
        result.sent_at, result.outcome, result.reason = sent.at, Outcome.MET, "answered"
        await store.finish(result)
        out = tmp_path / "export"
        exported = await export_evidence(
            store,
            ExportOptions(
                scope=Scope(result.slot, result.slot + timedelta(hours=1)),
                file_format="csv",
                out=out,
                now=datetime.now(UTC),
                zones={"acme": "Europe/London"},
                config_sha256="0" * 64,
                version="test",
            ),
        )
    assert reply.evidence.file.removed, "stored: the spool file is gone"
    assert exported.attachments == 2 and not exported.problems
    verification = verify_export(out)
    assert verification.ok, verification.problems
    digests = {hashlib.sha256(path.read_bytes()).hexdigest() for path in out.rglob("*.eml")}
    assert hashlib.sha256(held).hexdigest() in digests


async def test_a_left_over_reply_is_handed_on_once_resumed_runs_listen(
    stack: AsyncExitStack, dovecot: Dovecot, smtp: SmtpServer, tmp_path: Path
) -> None:
    """What an earlier process spooled waits for the runner's signal, and only that: a reply
    this process spools meanwhile is not mistaken for a left-over (and deleted under it)."""
    token = new_token()
    earlier = Spool(tmp_path / "spool" / "probe").create("7-3", {"uid": 3, "uidvalidity": 7})
    left_over = reply_mail(f"Re: Refund please [{token}]", body="Spooled before the restart.")
    earlier.write(left_over)
    earlier.commit(observed_at=datetime.now(UTC).isoformat())
    resumed = asyncio.Event()
    probe = await start_probe(
        stack,
        channel_settings(dovecot.imap_port, smtp.port),
        spool_dir=tmp_path / "spool",
        runs_resumed=resumed,
    )
    conversation, sent = await probe.contact(token)
    await dovecot.deliver(
        AGENT, PROBE.address, reply_mail("Re: Refund", in_reply_to=sent.external_id)
    )

    fresh = await next_reply(conversation)
    await assert_no_more(conversation)  # the left-over waits for the signal
    resumed.set()
    handed_on = await next_reply(conversation)

    assert "Spooled before the restart." in handed_on.text
    assert raw_evidence(handed_on) == left_over
    assert fresh.evidence is not None and fresh.evidence.file is not None
    assert fresh.evidence.file.path.exists(), "this process's own reply is untouched"
    fresh.release()
    handed_on.release()
    assert list((tmp_path / "spool" / "probe").iterdir()) == [], "both stored: spool empty"


class CuttingProxy:
    """A TCP relay to the IMAP server that drops the connection once, after ``cut_after``
    bytes came from the server: a connection lost in the middle of a body fetch."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._streams: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for stream in self._streams:
            stream.transport.abort()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._streams += [writer, up_writer]
        cut = self.cuts == 0

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            relayed = 0
            while data := await src.read(65536):
                relayed += len(data)
                if count and cut and relayed > self.cut_after and self.cuts == 0:
                    self.cuts += 1
                    break
                dst.write(data)
                await dst.drain()

        try:
            await asyncio.wait(
                {
                    asyncio.create_task(pump(reader, up_writer, False)),
                    asyncio.create_task(pump(up_reader, writer, True)),
                },
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for stream in (writer, up_writer):
                stream.transport.abort()


async def test_a_body_fetch_cut_midway_is_logged_and_fetched_again(
    stack: AsyncExitStack, dovecot: Dovecot, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await stack.enter_async_context(CuttingProxy(dovecot.imap_port, 2 * FETCH_CHUNK_BYTES))
    probe = await start_probe(stack, channel_settings(proxy.port, smtp.port))
    conversation, sent = await probe.contact()
    raw = statement_reply(sent.external_id, 4 * FETCH_CHUNK_BYTES)
    caplog.set_level(logging.WARNING, logger="test.email")
    await dovecot.deliver(AGENT, PROBE.address, raw)

    reply = await next_reply(conversation)
    held = await asyncio.to_thread(mailbox_copy, dovecot.imap_port, reply.external_id)

    assert proxy.cuts == 1
    assert reply.evidence is not None and reply.evidence.file is not None
    assert reply.evidence.sha256 == hashlib.sha256(held).hexdigest(), "complete, not truncated"
    interrupted = [
        r for r in caplog.records if r.getMessage().startswith("reply body fetch interrupted")
    ]
    assert len(interrupted) == 1
    assert f"of {len(held)} bytes: the connection was lost" in interrupted[0].error
    spooled = list(reply.evidence.file.path.parent.iterdir())
    assert sorted(p.suffix for p in spooled) == [".json", ".msg"], "the cut download left nothing"
    await assert_no_more(conversation)


async def test_polling_mode(stack: AsyncExitStack, dovecot: Dovecot, smtp: SmtpServer) -> None:
    settings = channel_settings(
        dovecot.imap_port, smtp.port, imap={"idle": False, "poll_interval": 0.2}
    )
    probe = await start_probe(stack, settings)
    assert probe.channel.watcher("probe").stats.idle is False
    conversation, sent = await probe.contact()
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Re", in_reply_to=sent.external_id))
    reply = await next_reply(conversation)
    assert reply.observed_at - reply.arrived_at < timedelta(seconds=1.5)
    await assert_no_more(conversation)


async def test_idle_is_renewed(stack: AsyncExitStack, dovecot: Dovecot, smtp: SmtpServer) -> None:
    probe = await start_probe(
        stack, channel_settings(dovecot.imap_port, smtp.port, imap={"idle_renew": 0.3})
    )
    conversation, sent = await probe.contact()
    await asyncio.sleep(1.0)  # several IDLE rounds pass
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Re", in_reply_to=sent.external_id))
    await next_reply(conversation)
    assert probe.channel.watcher("probe").stats.connected


# -- gaps: reconnects, restarts, scale ------------------------------------------------------------


async def test_reconnect_after_the_server_restarts(
    tmp_path: Path, stack: AsyncExitStack, smtp: SmtpServer
) -> None:
    require_binary("dovecot")
    workdir = tmp_path / "dovecot"
    first = Dovecot(workdir, [PROBE])
    await first.__aenter__()
    try:
        probe = await start_probe(stack, channel_settings(first.imap_port, smtp.port))
        conversation, sent = await probe.contact()
    finally:
        await first.__aexit__(None, None, None)
    watcher = probe.channel.watcher("probe")
    # Dovecot's imap process outlives its master by ~9 s before it says BYE and hangs up.
    async with asyncio.timeout(3 * EVENT_TIMEOUT):
        while watcher.stats.connected:  # noqa: ASYNC110 - the watcher has no event for this
            await asyncio.sleep(0.02)

    async with Dovecot(
        workdir, [PROBE], imap_port=first.imap_port, lmtp_port=first.lmtp_port
    ) as second:
        # Delivered right away: most likely before the watcher's back-off lets it reconnect.
        await second.deliver(AGENT, PROBE.address, reply_mail("Re", in_reply_to=sent.external_id))
        reply = await next_reply(conversation)
        assert sent.external_id in reply.thread_keys
        await assert_no_more(conversation)
        assert watcher.stats.connected
        # ...and IDLE works on the new connection.
        await second.deliver(AGENT, PROBE.address, reply_mail("Re 2", in_reply_to=sent.external_id))
        assert (await next_reply(conversation)).subject == "Re 2"
    assert probe.unmatched.empty()


async def test_uidvalidity_change_backfills_by_date(
    tmp_path: Path, stack: AsyncExitStack, smtp: SmtpServer
) -> None:
    require_binary("dovecot")
    workdir = tmp_path / "dovecot"
    first = Dovecot(workdir, [PROBE])
    await first.__aenter__()
    try:
        probe = await start_probe(stack, channel_settings(first.imap_port, smtp.port))
        conversation, sent = await probe.contact()
        await first.deliver(AGENT, PROBE.address, reply_mail("Old", body="unrelated"))
        await probe.unmatched.get()
        old_validity = probe.channel.watcher("probe").stats.uidvalidity
        await asyncio.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock's seconds
    finally:
        await first.__aexit__(None, None, None)
    shutil.rmtree(first.mail_home(PROBE.address) / "Maildir")  # a rebuilt mailbox

    async with Dovecot(
        workdir, [PROBE], imap_port=first.imap_port, lmtp_port=first.lmtp_port
    ) as second:
        await second.deliver(AGENT, PROBE.address, reply_mail("Re", in_reply_to=sent.external_id))
        reply = await next_reply(conversation)
        assert reply.subject == "Re"
        await assert_no_more(conversation)
        assert probe.channel.watcher("probe").stats.uidvalidity != old_validity


async def test_resume_after_a_restart_gets_replies_sent_meanwhile(
    dovecot: Dovecot, smtp: SmtpServer
) -> None:
    settings = channel_settings(dovecot.imap_port, smtp.port)
    async with AsyncExitStack() as first_process:
        probe = await start_probe(first_process, settings)
        _, sent = await probe.contact()
        token = sent.resume_state["token"]
    # Nobody listens now; the desk answers twice (by thread and by token).
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Re 1", in_reply_to=sent.external_id))
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Re 2", body=f"Ref {token}"))
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Unrelated", body="noise"))

    async with AsyncExitStack() as second_process:
        probe = await start_probe(second_process, settings)
        stored = Sent(at=sent.at, external_id=sent.external_id, resume_state=sent.resume_state)
        conversation = await probe.channel.resume(ADDRESS, str(token), stored)
        subjects = {(await next_reply(conversation)).subject for _ in range(2)}
        assert subjects == {"Re 1", "Re 2"}
        await assert_no_more(conversation)
        # A reply after the resume still arrives, once.
        await dovecot.deliver(
            AGENT, PROBE.address, reply_mail("Re 3", in_reply_to=sent.external_id)
        )
        assert (await next_reply(conversation)).subject == "Re 3"
        await assert_no_more(conversation)
        # Old mail found by the targeted search is not reported as a stranger.
        assert probe.unmatched.empty()


async def test_mail_that_arrived_while_stopped_is_read_after_a_restart(
    dovecot: Dovecot, smtp: SmtpServer
) -> None:
    settings = channel_settings(dovecot.imap_port, smtp.port)
    state = MemoryChannelState()
    async with AsyncExitStack() as first_process:
        await start_probe(first_process, settings, state=state)
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("While down", body="late"))
    async with AsyncExitStack() as second_process:
        probe = await start_probe(second_process, settings, state=state)
        async with asyncio.timeout(EVENT_TIMEOUT):
            assert (await probe.unmatched.get()).subject == "While down"
    saved = state.values["imap:probe"]
    assert saved["last_uid"] == 1 and saved["folder"] == "INBOX"
    # Without the saved position a watcher starts from new mail: nothing old is replayed.
    async with AsyncExitStack() as fresh_process:
        probe = await start_probe(fresh_process, settings)
        await asyncio.sleep(QUIET)
        assert probe.unmatched.empty()


async def test_a_saved_position_for_another_folder_generation_is_ignored(
    dovecot: Dovecot, smtp: SmtpServer
) -> None:
    settings = channel_settings(dovecot.imap_port, smtp.port)
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Old", body="old"))
    state = MemoryChannelState()
    position = {"host": "127.0.0.1", "username": PROBE.address, "folder": "INBOX", "last_uid": 0}
    state.values["imap:probe"] = {**position, "uidvalidity": 1}  # not this folder's
    async with AsyncExitStack() as process:
        probe = await start_probe(process, settings, state=state)
        await asyncio.sleep(QUIET)
        assert probe.unmatched.empty()
        assert state.values["imap:probe"]["uidvalidity"] != 1


async def test_resume_before_the_watcher_connected(dovecot: Dovecot, smtp: SmtpServer) -> None:
    settings = channel_settings(dovecot.imap_port, smtp.port)
    async with AsyncExitStack() as first_process:
        probe = await start_probe(first_process, settings)
        _, sent = await probe.contact()
    await dovecot.deliver(AGENT, PROBE.address, reply_mail("Re", in_reply_to=sent.external_id))
    async with AsyncExitStack() as second_process:
        probe = await start_probe(second_process, settings, connect=False)
        conversation = await probe.channel.resume(ADDRESS, "CXP-0000000000", sent)
        assert (await next_reply(conversation)).subject == "Re"


async def test_a_thousand_conversations_share_one_watcher(
    dovecot: Dovecot, smtp: SmtpServer, probe: Probe
) -> None:
    count = 1000
    started = time.monotonic()
    limit = asyncio.Semaphore(25)

    async def contact() -> tuple[EmailConversation, Sent]:
        async with limit:
            return await probe.contact()

    contacts = await asyncio.gather(*(contact() for _ in range(count)))
    assert probe.channel.watcher("probe").stats.registered == count

    async def answer(index: int, sent: Sent) -> None:
        async with limit:
            if index % 2:
                mail = reply_mail(f"Re {index}", in_reply_to=sent.external_id)
            else:
                mail = reply_mail(f"Re {index}", body=f"Ref {sent.resume_state['token']}")
            await dovecot.deliver(AGENT, PROBE.address, mail)

    await asyncio.gather(*(answer(i, sent) for i, (_, sent) in enumerate(contacts)))
    replies = await asyncio.gather(*(next_reply(conversation) for conversation, _ in contacts))
    assert [reply.subject for reply in replies] == [f"Re {i}" for i in range(count)]
    assert probe.unmatched.empty()
    stats = probe.channel.watcher("probe").stats
    assert stats.connected and stats.last_uid == count
    assert time.monotonic() - started < 60


async def test_imap_login_failure_is_retried_without_leaking_the_password(
    stack: AsyncExitStack, dovecot: Dovecot, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = channel_settings(dovecot.imap_port, smtp.port, imap={"password": "wrong-secret"})
    caplog.set_level(logging.DEBUG)
    probe = await start_probe(stack, settings, connect=False)
    watcher = probe.channel.watcher("probe")
    async with asyncio.timeout(EVENT_TIMEOUT):
        while sum("reconnecting" in r.getMessage() for r in caplog.records) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert watcher.running and not watcher.stats.connected
    assert "wrong-secret" not in caplog.text
    assert all("wrong-secret" not in str(r.__dict__) for r in caplog.records)


async def test_settings_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        channel_settings(1, 1, imap={"idel": False})
    with pytest.raises(ValueError, match="tls"):
        channel_settings(1, 1, tls="ssl")


def test_implicit_tls_context_trusts_the_extra_ca(tmp_path: Path) -> None:
    # A guard for the ca_file wiring: system CAs stay trusted as well.
    from probes.email.settings import tls_context

    context = tls_context(None)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
