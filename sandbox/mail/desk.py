"""The mail desk: a reference support mailbox that acknowledges, routes and answers contacts.

It owns its Dovecot, SMTP front, control API, random stream and reply tasks; everything stops
when the `async with` block ends. Decisions follow the profile; what actually happened is
written to the ground-truth log for tests and demos to compare the monitor against.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sandbox.clock import DeskClock, Period, iso_utc, real_now
from sandbox.ground_truth import Event, GroundTruthLog
from sandbox.mail.control import ControlServer
from sandbox.mail.dovecot import Dovecot, DovecotError, MailUser
from sandbox.mail.replies import Contact, ReplyKind, compose, parse_contact, quote
from sandbox.mail.smtp_front import SmtpFront
from sandbox.mail.tls import ServerCertificate, make_certificate
from sandbox.net import LOOPBACK
from sandbox.profile import Profile
from sandbox.routing import intended_queue, route

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class _PlannedReply:
    kind: ReplyKind
    delay: float
    sender: str
    body: str
    queue: str | None
    intended_queue: str | None


class MailDesk:
    """`async with MailDesk(profile, workdir) as desk:` runs the whole mail sandbox."""

    host: str = LOOPBACK

    def __init__(self, profile: Profile, workdir: Path) -> None:
        self.profile = profile
        self.workdir = Path(workdir).resolve()
        mail = profile.mail
        self._support = mail.support_address.lower()
        self._domain = self._support.rpartition("@")[2] or "sandbox.localhost"
        self._rng = random.Random(profile.seed)
        self._clock = DeskClock(profile.clock.offset_seconds)
        self._outage = mail.outage
        self._reject = mail.reject
        self._tasks: set[asyncio.Task[None]] = set()
        self._stack = AsyncExitStack()
        self.dovecot = Dovecot(
            self.workdir / "dovecot",
            [MailUser(m.address, m.password) for m in mail.probe_mailboxes],
            imap_port=mail.imap.port,
            lmtp_port=mail.lmtp.port,
        )
        self._certificate: ServerCertificate | None = None
        self._smtp: SmtpFront | None = None
        self._control: ControlServer | None = None
        self._log: GroundTruthLog | None = None

    # -- addresses ---------------------------------------------------------------------

    @property
    def smtp_port(self) -> int:
        return self._started(self._smtp).port

    @property
    def imap_port(self) -> int:
        return self.dovecot.imap_port

    @property
    def lmtp_port(self) -> int:
        return self.dovecot.lmtp_port

    @property
    def control_port(self) -> int:
        return self._started(self._control).port

    @property
    def ground_truth_path(self) -> Path:
        return self.workdir / "ground_truth.jsonl"

    @property
    def ca_file(self) -> Path:
        """CA certificate that verifies the SMTP front's TLS certificate."""
        return self._started(self._certificate).ca_file

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    # -- switches ----------------------------------------------------------------------

    def set_outage(self, on: bool) -> None:
        self._outage = on

    def set_reject(self, on: bool) -> None:
        self._reject = on

    def set_clock_offset(self, seconds: float) -> None:
        self._clock.offset_seconds = seconds

    def period_now(self) -> Period:
        return self.profile.business_hours.period_at(self._clock.now(), self.profile.zone)

    def state(self) -> dict[str, Any]:
        return {
            "outage": self._outage,
            "reject": self._reject,
            "clock_offset_seconds": self._clock.offset_seconds,
            "desk_time": self._clock.now().astimezone(self.profile.zone).isoformat(),
            "period": self.period_now(),
            "pending_replies": len(self._tasks),
            "support_address": self._support,
            "smtp": {"host": self.host, "port": self.smtp_port, "tls": self.profile.mail.smtp.tls},
            "imap": {"host": self.host, "port": self.imap_port},
            "lmtp": {"host": self.host, "port": self.lmtp_port},
            "ground_truth_path": str(self.ground_truth_path),
        }

    # -- ground truth ------------------------------------------------------------------

    def ground_truth(self) -> list[Event]:
        return self._started(self._log).events()

    async def wait_for_events(
        self, predicate: Callable[[Event], bool], count: int = 1
    ) -> list[Event]:
        """Wait (bound it with asyncio.timeout) until count events match; returns all matches."""
        return await self._started(self._log).wait_for(predicate, count)

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> MailDesk:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._log = GroundTruthLog(self.ground_truth_path)
            self._stack.callback(self._log.close)
            await self._stack.enter_async_context(self.dovecot)
            smtp = self.profile.mail.smtp
            self._certificate = await make_certificate(self.workdir / "tls")
            self._smtp = await self._stack.enter_async_context(
                SmtpFront(
                    self._check_rcpt,
                    self._on_message,
                    port=smtp.port,
                    tls=smtp.tls,
                    tls_context=self._certificate.server_context(),
                    auth=(smtp.auth.username, smtp.auth.password) if smtp.auth else None,
                )
            )
            self._control = await self._stack.enter_async_context(
                ControlServer(self, self.profile.control.port)
            )
            self._stack.push_async_callback(self._cancel_replies)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _cancel_replies(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- inbound -----------------------------------------------------------------------

    def _check_rcpt(self, address: str) -> str | None:
        if address.lower() != self._support:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        if self._reject:
            self._record("rejected", to=address, period=self.period_now())
            return f"550 5.1.1 <{address}>: Recipient address rejected: mailbox unavailable"
        return None

    async def _on_message(self, mail_from: str, recipients: list[str], raw: bytes) -> None:
        received_at = real_now()
        desk_time = self._clock.now()
        period = self.profile.business_hours.period_at(desk_time, self.profile.zone)
        contact = parse_contact(raw)
        mail = self.profile.mail
        intended = intended_queue(contact.routing_text, mail.queues, mail.default_queue)
        self._record(
            "received",
            at=received_at,
            message_id=contact.message_id,
            # A customer's follow-up answers the last message of its thread.
            in_reply_to=next(reversed(contact.references.split()), None),
            period=period,
            to=self._support,
            intended_queue=intended,
            sender=contact.reply_to,
            subject=contact.subject,
            desk_time=desk_time.astimezone(self.profile.zone).isoformat(),
            outage=self._outage,
        )
        if self._outage:
            return
        for planned in self._plan(contact, period, received_at):
            task = asyncio.create_task(self._reply_later(contact, planned, period))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _plan(self, contact: Contact, period: Period, received_at: datetime) -> list[_PlannedReply]:
        mail = self.profile.mail
        plans: list[_PlannedReply] = []
        if period == "after_hours":
            hours = mail.after_hours
            if hours.auto_reply:
                sender = hours.sender or mail.auto_ack.sender
                delay = hours.delay.sample(self._rng)
                plans.append(_PlannedReply("after_hours", delay, sender, hours.text, None, None))
            return plans
        ack = mail.auto_ack
        if ack.enabled:
            plans.append(
                _PlannedReply(
                    "auto_ack", ack.delay.sample(self._rng), ack.sender, ack.text, None, None
                )
            )
        chosen = route(
            contact.routing_text, mail.queues, mail.default_queue, mail.misroute_rate, self._rng
        )
        queue = mail.queues[chosen.actual]
        body = f"Hello,\n\n{queue.text}\n\n{quote(contact, received_at)}\n\n{queue.signature}\n"
        delay = queue.latency.sample(self._rng)
        plans.append(
            _PlannedReply("human", delay, queue.sender, body, chosen.actual, chosen.intended)
        )
        return plans

    # -- outbound ----------------------------------------------------------------------

    async def _reply_later(self, contact: Contact, planned: _PlannedReply, period: Period) -> None:
        await asyncio.sleep(planned.delay)
        fields: dict[str, Any] = {
            "in_reply_to": contact.message_id,
            "kind": planned.kind,
            "queue": planned.queue,
            "intended_queue": planned.intended_queue,
            "period": period,
            "to": contact.reply_to,
        }
        if self._outage:
            self._record("reply_dropped", reason="outage", **fields)
            return
        if contact.reply_to is None or not self.dovecot.has_user(contact.reply_to):
            self._record("reply_dropped", reason="recipient is not a sandbox mailbox", **fields)
            return
        reply = compose(
            contact,
            kind=planned.kind,
            sender=planned.sender,
            to=contact.reply_to,
            body=planned.body,
            domain=self._domain,
            now=real_now(),
        )
        fields["message_id"] = reply["Message-ID"]
        # RFC 3834: automatic replies go out with a null reverse path so nothing answers them.
        envelope_from = planned.sender if planned.kind == "human" else ""
        try:
            await self.dovecot.deliver(envelope_from, contact.reply_to, reply.as_bytes())
        except (DovecotError, OSError) as err:
            log.warning("reply %s to %s not delivered: %s", planned.kind, contact.reply_to, err)
            self._record("reply_dropped", reason=str(err), **fields)
            return
        # Taken after LMTP's per-recipient 250: the moment the message is in the mailbox.
        self._record("reply_sent", at=real_now(), **fields)

    # -- helpers -----------------------------------------------------------------------

    def _record(self, event: str, *, at: datetime | None = None, **fields: Any) -> None:
        entry: Event = {
            "event": event,
            "at": iso_utc(at or real_now()),
            "message_id": None,
            "in_reply_to": None,
            "kind": None,
            "queue": None,
            "intended_queue": None,
            "period": None,
            "to": None,
        }
        entry.update(fields)
        with contextlib.suppress(ValueError):  # the log is closed once the desk has stopped
            self._started(self._log).append(entry)

    @staticmethod
    def _started(part: _T | None) -> _T:
        if part is None:
            raise RuntimeError("the mail desk is not running; use `async with MailDesk(...)`")
        return part
