"""The mail desk: a reference support mailbox that acknowledges, routes and answers contacts.

It owns its Dovecot, SMTP front, control API, random streams and reply tasks; everything stops
when the `async with` block ends. Decisions follow the profile; what actually happened is
written to the ground-truth log for tests and demos to compare the monitor against.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.clock import Period, real_now
from sandbox.ground_truth import EventName
from sandbox.mail.control import build_app
from sandbox.mail.dovecot import Dovecot, DovecotError, MailUser
from sandbox.mail.replies import Contact, ReplyKind, compose, parse_contact, quote
from sandbox.mail.smtp_front import SmtpFront
from sandbox.mail.tls import ServerCertificate, make_certificate
from sandbox.peer import SandboxPeer, hours_and_clock
from sandbox.profile import Profile
from sandbox.reply_team import find_token
from sandbox.routing import DeskStreams, intended_queue, route
from sandbox.scripted_agent import ScriptedAgents

log = logging.getLogger(__name__)
# Every event carries these keys, null where they do not apply.
_EVENT_KEYS = (
    "message_id",
    "in_reply_to",
    "kind",
    "queue",
    "intended_queue",
    "period",
    "to",
    "answer",
    "asked",
    "rubric",
)


@dataclass(frozen=True)
class PlannedReply:
    kind: ReplyKind
    delay: float
    sender: str
    body: str
    queue: str | None
    intended_queue: str | None
    #: What a human answer says (the profile's ``answers`` kind); None: the queue's own text.
    answer: str | None = None
    #: Which of the queue's ``asks`` the reply asks (sandbox/scripted_agent.py); None: none.
    asked: int | None = None
    #: The rubric parts the human answer was composed with (sandbox/answers.py); None: it
    #: was not composed from parts.
    rubric: list[str] | None = None


class MailDesk(SandboxPeer):
    """`async with MailDesk(profile, workdir) as desk:` runs the whole mail sandbox."""

    ground_truth_file = "ground_truth.jsonl"
    not_running = "the mail desk is not running; use `async with MailDesk(...)`"
    # Its HTTP server is the control API alone, so the routes sit at the root.
    control_prefix = ""

    def __init__(self, profile: Profile, workdir: Path) -> None:
        super().__init__(workdir, **hours_and_clock(profile))
        self.profile = profile
        if profile.mail is None:
            raise ValueError("the sandbox profile has no mail: section, so it has no mail desk")
        mail = self.mail = profile.mail
        self._support = mail.support_address.lower()
        self._domain = self._support.rpartition("@")[2] or "sandbox.localhost"
        self.streams = DeskStreams(profile.seed, "mail")
        self._agents = ScriptedAgents({name: queue.asks for name, queue in mail.queues.items()})
        self._outage = mail.outage
        self._reject = mail.reject
        self._defer = mail.defer
        self.dovecot = Dovecot(
            self.workdir / "dovecot",
            [MailUser(m.address, m.password) for m in mail.probe_mailboxes],
            imap_port=mail.imap.port,
            lmtp_port=mail.lmtp.port,
        )
        self._certificate: ServerCertificate | None = None
        self._smtp: SmtpFront | None = None

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
        return self.port

    @property
    def ca_file(self) -> Path:
        """CA certificate that verifies the SMTP front's TLS certificate."""
        return self._started(self._certificate).ca_file

    # -- switches ----------------------------------------------------------------------

    def set_outage(self, on: bool) -> None:
        self._outage = on

    def set_reject(self, on: bool) -> None:
        self._reject = on

    def set_defer(self, on: bool) -> None:
        """Answer the support address's RCPT with a temporary failure (4xx) while on."""
        self._defer = on

    def state(self) -> dict[str, Any]:
        return {
            "outage": self._outage,
            "reject": self._reject,
            "defer": self._defer,
            **self.clock_state(),
            "pending_replies": len(self._tasks),
            "support_address": self._support,
            "smtp": {"host": self.host, "port": self.smtp_port, "tls": self.mail.smtp.tls},
            "imap": {"host": self.host, "port": self.imap_port},
            "lmtp": {"host": self.host, "port": self.lmtp_port},
            "ground_truth_path": str(self.ground_truth_path),
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def _start(self, stack: AsyncExitStack) -> None:
        await stack.enter_async_context(self.dovecot)
        smtp = self.mail.smtp
        self._certificate = await make_certificate(self.workdir / "tls")
        self._smtp = await stack.enter_async_context(
            SmtpFront(
                self._check_rcpt,
                self._on_message,
                port=smtp.port,
                tls=smtp.tls,
                tls_context=self._certificate.server_context(),
                auth=(smtp.auth.username, smtp.auth.password) if smtp.auth else None,
            )
        )
        switches = {"outage": self.set_outage, "reject": self.set_reject, "defer": self.set_defer}
        app = build_app(self._controls(), switches)
        await self._serve(app, "the mail desk's control API", [self.profile.control.port])
        stack.push_async_callback(self._cancel_tasks)

    # -- inbound -----------------------------------------------------------------------

    def _check_rcpt(self, address: str) -> str | None:
        if address.lower() != self._support:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        if self._reject:
            self._record("rejected", to=address, period=self.period_now())
            return f"550 5.1.1 <{address}>: Recipient address rejected: mailbox unavailable"
        if self._defer:
            self._record("deferred", to=address, period=self.period_now())
            return f"451 4.3.2 <{address}>: Recipient address deferred: try again later"
        return None

    async def _on_message(self, mail_from: str, recipients: list[str], raw: bytes) -> None:
        received_at = real_now()
        desk_time = self._clock.now()
        period = self.profile.business_hours.period_at(desk_time, self.profile.zone)
        contact = parse_contact(raw)
        mail = self.mail
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
        for planned in self.plan(contact, period, received_at):
            self._spawn(self._reply_later(contact, planned, period))

    def plan(self, contact: Contact, period: Period, received_at: datetime) -> list[PlannedReply]:
        """The replies the desk sends to an accepted contact, its routing decision included."""
        mail = self.mail
        plans: list[PlannedReply] = []
        if period == "after_hours":
            hours = mail.after_hours
            if hours.auto_reply:
                sender = hours.sender or mail.auto_ack.sender
                delay = hours.delay.sample(self.streams.latency)
                plans.append(PlannedReply("after_hours", delay, sender, hours.text, None, None))
            return plans
        ack = mail.auto_ack
        if ack.enabled:
            plans.append(
                PlannedReply(
                    "auto_ack",
                    ack.delay.sample(self.streams.latency),
                    ack.sender,
                    ack.text,
                    None,
                    None,
                )
            )
        chosen = route(
            contact.routing_text,
            mail.queues,
            mail.default_queue,
            mail.misroute_rate,
            self.streams.routing,
        )
        # A thread stays with the queue whose agent asked the customer a question.
        step = self._agents.next_step(
            find_token(contact.subject, contact.text), chosen.actual, contact.text
        )
        queue = mail.queues[step.queue]
        answer, text = (
            (None, queue.text) if mail.answers is None else mail.answers.pick(self.streams.answers)
        )
        if step.question is not None:
            answer, text = None, step.question
        answers = mail.answers
        composed = None if answers is None else answers.compose(self.streams.answers, text)
        # Composed from rubric parts (sandbox/answers.py), or the desk's usual layout.
        said = f"Hello,\n\n{text}" if composed is None else composed.text
        body = f"{said}\n\n{quote(contact, received_at)}\n\n{queue.signature}\n"
        delay = queue.latency.sample(self.streams.latency)
        plans.append(
            PlannedReply(
                "human",
                delay,
                queue.sender,
                body,
                step.queue,
                chosen.intended,
                answer,
                step.asked,
                None if composed is None else list(composed.parts),
            )
        )
        return plans

    # -- outbound ----------------------------------------------------------------------

    async def _reply_later(self, contact: Contact, planned: PlannedReply, period: Period) -> None:
        await asyncio.sleep(planned.delay)
        fields: dict[str, Any] = {
            "in_reply_to": contact.message_id,
            "kind": planned.kind,
            "queue": planned.queue,
            "intended_queue": planned.intended_queue,
            "period": period,
            "to": contact.reply_to,
            "answer": planned.answer,
            "asked": planned.asked,
            "rubric": planned.rubric,
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

    def _record(self, event: EventName, *, at: datetime | None = None, **fields: Any) -> None:
        self._truth.record(event, at=at, **{**dict.fromkeys(_EVENT_KEYS), **fields})
