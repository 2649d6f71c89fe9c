"""The email channel: contacts go out over SMTP, replies come back through one IMAP watcher per
probe mailbox (:mod:`probes.email.watcher`), classified by :mod:`probes.email.parse`.

Timing (DESIGN.md "Timing semantics"):

* ``Sent.at`` (t0) is the UTC time right after the server's 250 reply to DATA.
* ``Reply.observed_at`` is the UTC time the watcher fetched the reply (with IDLE on Dovecot this
  trails delivery by Dovecot's ~0.5 s notification batching; with polling, by up to
  ``poll_interval``).
* ``Reply.arrived_at`` is the mailbox's IMAP INTERNALDATE, which has second resolution, plus
  half a second (the middle of that second), clamped to ``[Sent.at, observed_at]``;
  ``timing_method`` is ``"imap-internaldate"``. The raw INTERNALDATE (ISO 8601) is kept in the
  reply's headers as ``X-Cxprobe-Internaldate`` so both figures survive.

Errors: a recipient refused for good (5xx at RCPT, say 550 5.1.1 unknown user) or a 5xx answer
to the message itself is :class:`ContactRejected` (the run ``failed``), as is a bounce for the
contact's ``to`` address, raised from :meth:`EmailConversation.replies` (a bounce for a ``cc``
address is logged and skipped, as a refused ``cc`` is when sending). The submission server
refusing *the probe* is our configuration, not the target: a refused sender (MAIL FROM), a
refused or missing login (530, 535, 538) and any 5.7.x policy refusal (554 5.7.1 relay denied)
are :class:`ChannelUnavailable`, as are connection, TLS, 4xx answers and timeouts. Messages never
contain credentials.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

import aiosmtplib

from probes.base import (
    ChannelServices,
    ChannelType,
    ChannelUnavailable,
    Contact,
    ContactRejected,
    DefaultSla,
    Evidence,
    Methodology,
    ProbeError,
    Reply,
    Responder,
    Sent,
    per_address,
    utc_now,
)
from probes.email.parse import TEST_HEADER, TOKEN_HEADER, DeliveryStatus
from probes.email.settings import (
    EmailAddress,
    EmailChannelSettings,
    ImapSettings,
    Mailbox,
    SmtpSettings,
    tls_context,
)
from probes.email.watcher import FetchedMail, MailboxWatcher, Registration, WatcherStats
from probes.errors import OptedOut, describe_error
from probes.spool import Spool

__all__ = [
    "EMAIL",
    "EmailAddress",
    "EmailChannel",
    "EmailChannelSettings",
    "EmailConversation",
    "ImapSettings",
    "Mailbox",
    "SmtpSettings",
    "build_message",
    "send_message",
]


#: Replies by which a server refuses the client rather than a message or recipient: login
#: required (530), credentials invalid (535), encryption required (538).
_CLIENT_REFUSED_CODES = frozenset({530, 535, 538})
#: Enhanced status class 5.7: security or policy (relay denied, sender not allowed).
_POLICY_STATUS = re.compile(r"^\s*5\.7\.\d{1,3}\b")


def spool_directory_name(mailbox_name: str) -> str:
    """The spool directory of a mailbox: its name when that is a plain file name, else a
    digest of it (a configuration key may hold any character)."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}", mailbox_name):
        return mailbox_name
    return "mailbox-" + hashlib.sha256(mailbox_name.encode()).hexdigest()[:16]


def new_message_id(domain: str) -> str:
    """A fresh ``<...@domain>`` Message-ID: time plus 80 random bits."""
    return f"<cxp.{time.time_ns():x}.{secrets.token_hex(10)}@{domain}>"


def build_message(
    mailbox: Mailbox,
    address: EmailAddress,
    contact: Contact,
    message_id: str,
    *,
    thread: Sequence[str] = (),
) -> EmailMessage:
    """The contact as a MIME message (``Subject: <subject> [<token>]``).

    ``thread``: the Message-IDs this one follows up, oldest first; it then answers the last
    of them (``Re:``, ``In-Reply-To``, ``References``) so it stays in the same thread.
    """
    message = EmailMessage(policy=SMTP_POLICY)
    sender_name = contact.sender_name  # the scenario's customer (monitor.customer_name)
    username, _, domain = mailbox.address.rpartition("@")
    message["From"] = Address(display_name=sender_name, username=username, domain=domain)
    message["To"] = address.to
    if address.cc:
        message["Cc"] = ", ".join(address.cc)
    subject = f"{contact.subject} [{contact.token}]"
    message["Subject"] = f"Re: {subject}" if thread else subject
    message["Date"] = format_datetime(utc_now())
    message["Message-ID"] = message_id
    if thread:
        message["In-Reply-To"] = thread[-1]
        message["References"] = " ".join(thread)
    if contact.disclosed:
        # Mystery contacts look like any customer's mail: the token stays in the subject.
        message[TOKEN_HEADER] = contact.token
        message[TEST_HEADER] = f"yes; ref={contact.token}"
    message.set_content(contact.text)
    return message


async def send_message(
    settings: SmtpSettings,
    sender: str,
    recipients: list[str],
    raw: bytes,
    *,
    settings_key: str = "the probe mailbox's smtp settings",
) -> datetime:
    """Submit ``raw``; return the UTC time right after the 250 reply to DATA.

    Raises :class:`ContactRejected` when a recipient or the message is refused for good,
    :class:`ChannelUnavailable` otherwise; messages about the server refusing the probe itself
    name ``settings_key`` (where to fix it).
    """
    client = _smtp_client(settings, sender)
    where = f"SMTP server {settings.host}:{settings.port}"
    fix = f"no contact was sent; check {settings_key} (login, tls, sender address)"
    try:
        try:
            await client.connect()
            errors, _ = await client.sendmail(sender, recipients, raw)
            accepted_at = utc_now()
        finally:
            # Also after a failed connect (e.g. refused login): never leave the socket open.
            await _quit(client)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise _send_failure(exc, where, fix, settings.username) from None
    refused_primary = [r for r in recipients[:1] if r in errors]
    if refused_primary:
        response = errors[refused_primary[0]]
        text = f"{where} refused {refused_primary[0]}: {response.code} {response.message}"
        if _refuses_the_client(response.code, response.message):
            raise ChannelUnavailable(f"{text}; {fix}")
        raise (ContactRejected if response.code >= 500 else ChannelUnavailable)(text)
    return accepted_at


def _smtp_client(settings: SmtpSettings, sender: str) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        use_tls=settings.tls == "implicit",
        start_tls=settings.tls == "starttls",
        tls_context=tls_context(settings.ca_file) if settings.tls != "none" else None,
        timeout=settings.timeout,
        # The mailbox's domain: avoids a blocking socket.getfqdn() in the event loop.
        local_hostname=sender.rpartition("@")[2],
    )


def _send_failure(exc: BaseException, where: str, fix: str, username: str | None) -> ProbeError:
    """What a failed submission means: the contact refused for good (:class:`ContactRejected`)
    or the probe unable to send (:class:`ChannelUnavailable`, naming what to fix)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if any(_refuses_the_client(r.code, r.message) for r in exc.recipients):
            return ChannelUnavailable(
                f"{where} refused to take mail from the probe ({refusals}); {fix}"
            )
        text = f"{where} refused every recipient ({refusals})"
        if all(r.code >= 500 for r in exc.recipients):
            return ContactRejected(text)
        return ChannelUnavailable(text)  # 4xx: try again later
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        login = f"the login of {username!r}"
        return ChannelUnavailable(f"{where} refused {login} ({exc.code} {exc.message}); {fix}")
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return ChannelUnavailable(
            f"{where} refused the sender {exc.sender} ({exc.code} {exc.message}); {fix}"
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{where} answered {exc.code} {exc.message}"
        if exc.code < 500:
            return ChannelUnavailable(text)  # try again later
        about_the_contact = isinstance(
            exc, aiosmtplib.SMTPDataError | aiosmtplib.SMTPRecipientRefused
        )
        if about_the_contact and not _refuses_the_client(exc.code, exc.message):
            return ContactRejected(text)
        # Greeting, HELO, login or policy: the server refused the probe, not the contact.
        return ChannelUnavailable(f"{text}; {fix}")
    return ChannelUnavailable(f"{where} could not be used: {describe_error(exc)}")


def _refuses_the_client(code: int, message: str) -> bool:
    """A refusal of the probe by its own submission server (login, relay, sender policy)."""
    return code in _CLIENT_REFUSED_CODES or bool(_POLICY_STATUS.match(message))


async def _quit(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        client.close()


class EmailConversation:
    """One contact: sent once, then a stream of the replies routed to it."""

    def __init__(
        self,
        channel: EmailChannel,
        mailbox_name: str,
        address: EmailAddress,
        token: str,
        sent: Sent | None = None,
    ) -> None:
        self._channel = channel
        self._mailbox_name = mailbox_name
        self._mailbox = channel.settings.mailboxes[mailbox_name]
        self._address = address
        self._token = token
        self._sent = sent
        self._queue: asyncio.Queue[FetchedMail] = asyncio.Queue()
        self._seen: set[str] = set()
        self._registration: Registration | None = None
        self._closed = False
        self._follow_up_ids: list[str] = []

    @property
    def token(self) -> str:
        return self._token

    @property
    def message_id(self) -> str | None:
        return self._sent.external_id if self._sent else None

    async def send(self, contact: Contact) -> Sent:
        if self._sent is not None or self._registration is not None:
            raise RuntimeError("an email conversation sends exactly one contact")
        message_id = new_message_id(self._mailbox.domain)
        raw = build_message(self._mailbox, self._address, contact, message_id).as_bytes()
        # Listen before sending, so even an instant auto-reply cannot be missed.
        self._listen({message_id, contact.token}, since=utc_now(), backfill=False)
        recipients = [self._address.to, *self._address.cc]
        at = await send_message(
            self._mailbox.smtp,
            self._mailbox.address,
            recipients,
            raw,
            settings_key=f"channels.email.mailboxes.{self._mailbox_name}.smtp",
        )
        self._sent = Sent(
            at=at,
            external_id=message_id,
            evidence=Evidence("email", "message/rfc822", raw),
            resume_state={"mailbox": self._mailbox_name, "token": contact.token},
        )
        return self._sent

    async def follow_up(self, contact: Contact) -> Sent:
        """Another message in the contact's thread; replies to it route to this conversation."""
        if self._sent is None or self._registration is None:
            raise RuntimeError("follow up only after the contact was sent")
        message_id = new_message_id(self._mailbox.domain)
        thread = [self._sent.external_id, *self._follow_up_ids]
        message = build_message(self._mailbox, self._address, contact, message_id, thread=thread)
        raw = message.as_bytes()
        watcher = self._channel.watcher(self._mailbox_name)
        watcher.add_keys(self._registration, {message_id})
        at = await send_message(
            self._mailbox.smtp,
            self._mailbox.address,
            [self._address.to, *self._address.cc],
            raw,
            settings_key=f"channels.email.mailboxes.{self._mailbox_name}.smtp",
        )
        self._follow_up_ids.append(message_id)
        return Sent(
            at=at,
            external_id=message_id,
            evidence=Evidence("email", "message/rfc822", raw),
            resume_state=self._sent.resume_state,
        )

    def reattach(self) -> None:
        """Listen for replies to the contact sent by an earlier process, old ones included."""
        assert self._sent is not None
        keys = {self._token}
        if self._sent.external_id:
            keys.add(self._sent.external_id)
        self._listen(keys, since=self._sent.at, backfill=True)

    async def caught_up(self) -> None:
        """Until the mail that arrived while no process listened has been searched for.

        A resumed run is judged only after that: judging before would miss replies that are
        in the mailbox. Bounded by the mailbox's IMAP timeout, twice (connect, then search).
        """
        assert self._registration is not None
        timeout = 2 * self._channel.settings.mailboxes[self._mailbox_name].imap.timeout
        try:
            async with asyncio.timeout(timeout):
                await self._registration.searched.wait()
        except TimeoutError:
            raise ChannelUnavailable(
                f"mailbox {self._mailbox_name!r} could not be searched within {timeout:g}s of "
                "resuming, so replies that arrived meanwhile cannot be counted; the run is not "
                "judged"
            ) from None

    def _listen(self, keys: set[str], *, since: datetime, backfill: bool) -> None:
        watcher = self._channel.watcher(self._mailbox_name)
        self._registration = watcher.register(keys, self._deliver, since=since, backfill=backfill)

    def _deliver(self, fetched: FetchedMail) -> bool:
        """Take a routed message (holding its spool file until the reply is stored), unless
        it was taken before or the conversation is closed."""
        if fetched.external_id in self._seen or self._closed:
            return False
        self._seen.add(fetched.external_id)
        self._queue.put_nowait(fetched)
        return True

    async def replies(self) -> AsyncIterator[Reply]:
        while True:
            fetched = await self._queue.get()
            bounce = fetched.mail.bounce
            if bounce is None:
                yield fetched.reply(sent_at=self._sent.at if self._sent else None)
                continue
            fetched.spooled.done()  # a delivery report is the run's outcome, not a reply
            if bounce.failed_for(self._address.to):
                described = (
                    f"the contact bounced: {bounce.describe()}, reported by "
                    f"{fetched.mail.sender or 'an unnamed sender'}"
                )
                if bounce.status.startswith("5."):
                    # A permanent failure: writing again would bounce again.
                    raise OptedOut(described, recipient=self._address.to)
                raise ContactRejected(described)
            else:
                self._channel.services.logger.info(
                    _unrelated_bounce(bounce, self._address, self._mailbox.address),
                    extra={
                        "mailbox": self._mailbox_name,
                        "status": bounce.status,
                        "recipients": ", ".join(bounce.failed_recipients),
                    },
                )

    async def close(self) -> list[Evidence]:
        """Stop listening. Email keeps its evidence per message, so nothing is returned."""
        if self._closed:
            return []
        self._closed = True
        if self._registration is not None:
            self._channel.watcher(self._mailbox_name).unregister(self._registration)
        # Replies routed here but never consumed are late replies now: hand them on.
        while not self._queue.empty():
            fetched = self._queue.get_nowait()
            await self._channel.unmatched(fetched.reply(sent_at=None))
        return []


class EmailChannel:
    """The email channel driver; one per process."""

    kind: ClassVar[str] = "email"

    def __init__(self, settings: EmailChannelSettings, services: ChannelServices) -> None:
        self.settings = settings
        self.services = services
        self._watchers: dict[str, MailboxWatcher] = {}
        self._started = False
        self._spool_root: Path | None = services.spool_dir

    async def start(self, stack: AsyncExitStack, addresses: Sequence[EmailAddress] = ()) -> None:
        """Watch the mailboxes of ``addresses`` from now on (late replies to finished runs
        arrive between runs); others start on first use, and a mailbox no check uses is never
        connected."""
        self._started = True
        if self._spool_root is None:
            # No data directory: spooled replies last as long as the channel.
            temporary = stack.enter_context(tempfile.TemporaryDirectory(prefix="cxprobe-spool-"))
            self._spool_root = Path(temporary)
        stack.push_async_callback(self._stop)
        for address in addresses:
            self.watcher(address.mailbox)

    async def _stop(self) -> None:
        watchers, self._watchers = list(self._watchers.values()), {}
        await asyncio.gather(*(watcher.stop() for watcher in watchers))
        self._started = False

    def watcher(self, mailbox_name: str) -> MailboxWatcher:
        """The (running) watcher of ``mailbox_name``."""
        watcher = self._watchers.get(mailbox_name)
        if watcher is None:
            if not self._started or self._spool_root is None:
                raise RuntimeError("EmailChannel.start() must be called before use")
            watcher = MailboxWatcher(
                name=mailbox_name,
                settings=self.settings.mailboxes[mailbox_name].imap,
                logger=self.services.logger,
                on_unmatched=self.unmatched,
                spool=Spool(self._spool_root / spool_directory_name(mailbox_name)),
                ready=self.services.runs_resumed,
                state=self.services.state,
            )
            self._watchers[mailbox_name] = watcher
            watcher.start()
        return watcher

    def stats(self) -> list[WatcherStats]:
        return [watcher.stats for watcher in self._watchers.values()]

    def health(self) -> Mapping[str, Any]:
        """Per watched mailbox: connected, IDLE or polling, open runs it routes for."""
        return {
            "mailboxes": {
                stats.mailbox: {
                    "connected": stats.connected,
                    "idle": stats.idle,
                    "registered": stats.registered,
                }
                for stats in self.stats()
            }
        }

    async def unmatched(self, reply: Reply) -> None:
        await self.services.on_unmatched(reply)

    def _mailbox_name(self, address: EmailAddress) -> str:
        if address.mailbox not in self.settings.mailboxes:
            raise ChannelUnavailable(
                f"mailbox {address.mailbox!r} is not configured under channels.email.mailboxes "
                f"(configured: {', '.join(sorted(self.settings.mailboxes))})"
            )
        return address.mailbox

    async def open(self, address: EmailAddress, token: str) -> EmailConversation:
        """A new conversation; refused (ChannelUnavailable) while its mailbox cannot be read,
        because a contact whose replies nobody can see would be judged as the target's fault."""
        name = self._mailbox_name(address)
        watcher = self.watcher(name)
        try:
            await watcher.connected_within(self.settings.mailboxes[name].imap.timeout)
        except ConnectionError as exc:
            raise ChannelUnavailable(f"{exc}; no contact was sent") from None
        return EmailConversation(self, name, address, token)

    async def resume(self, address: EmailAddress, token: str, sent: Sent) -> EmailConversation:
        name = self._mailbox_name(address)
        state_mailbox = sent.resume_state.get("mailbox")
        if isinstance(state_mailbox, str) and state_mailbox in self.settings.mailboxes:
            name = state_mailbox  # the contact went out from this mailbox; replies land there
        state_token = sent.resume_state.get("token")
        conversation = EmailConversation(
            self, name, address, state_token if isinstance(state_token, str) else token, sent
        )
        conversation.reattach()
        try:
            await conversation.caught_up()
        except BaseException:
            await conversation.close()
            raise
        return conversation


EMAIL = ChannelType(
    kind=EmailChannel.kind,
    settings_model=EmailChannelSettings,
    address_model=EmailAddress,
    create=EmailChannel,
    # A desk acknowledges within minutes and answers within the hour (DESIGN.md defaults).
    default_sla=DefaultSla(
        first_response=15 * 60,
        human_response=3600,
        after_hours_response=15 * 60,
        deadline=4 * 3600,
    ),
    methodology=Methodology(
        t0="the SMTP server's 250 reply to DATA",
        reply_timing="mailbox arrival time: IMAP INTERNALDATE (observation time via IDLE kept too)",
        precision="±0.5 s (INTERNALDATE has one-second resolution; IDLE adds ~0.5 s, not counted)",
    ),
    cross_check=per_address(EmailAddress.check_against),
    resumable=True,
    # A published support address: anyone may write to it.
    public=True,
    # RFC 3834 headers tell auto-replies from people; no bot or IVR on email.
    responders=frozenset({Responder.HUMAN, Responder.AUTO}),
)


def _unrelated_bounce(bounce: DeliveryStatus, address: EmailAddress, own_address: str) -> str:
    """What a delivery report that does not fail the contact's ``to`` is about, for the log.

    A failed cc is like a cc refused when sending: the support address still got the contact.
    A report for the probe's own address is about mail sent *to* the probe (an answer that
    bounced on its way back), and one for an address the contact never named is someone else's.
    """
    failed = set(bounce.failed_recipients)
    copies = failed & {recipient.lower() for recipient in address.cc}
    if copies and copies == failed:
        return "bounce for a cc recipient ignored: the contact reached its to address"
    if own_address.lower() in failed:
        return (
            "delivery report for the probe's own address ignored: mail to the probe failed, "
            "not the contact"
        )
    return "delivery report ignored: it names no recipient of the contact"
