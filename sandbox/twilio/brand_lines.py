"""The brand's SMS and WhatsApp lines: which messages reach them, and how the team answers.

A message to a line is judged when it is created (a disabled line, or free-form WhatsApp text
outside the session window, makes it fail) and read when it is delivered: the line records
`message_received`, and the reply team (sandbox/reply_team.py) plans the bot's and an agent's
answers. Each answer, when due, becomes an inbound Message on the monitor's number (listable at
once, `date_sent` = now) and is POSTed, signed, to that number's messaging webhook, as Twilio
does for "a message comes in". `reply_sent.at` is that instant: the resource exists and the
webhook request is starting. A failing webhook is a `webhook_error` (and a violation); the
message stays listable, so a monitor that polls still finds it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from sandbox.clock import Period
from sandbox.messaging_profile import E164, MessagingSettings, SmsLine, WhatsAppLine
from sandbox.reply_team import Plan, PlannedReply, ReplyPlanner, find_token
from sandbox.twilio.message import Channel, MessageRecord, bare_number, channel_of
from sandbox.twilio.messages import Failure, MessageBook
from sandbox.twilio.spec import Violation
from sandbox.twilio.webhooks import WebhookError, Webhooks
from sandbox.twilio.whatsapp_window import OUTSIDE_WINDOW, OUTSIDE_WINDOW_MESSAGE, SessionWindows

Line = SmsLine | WhatsAppLine

# Twilio's errors for a message whose recipient cannot take it.
UNKNOWN_HANDSET = 30005
UNKNOWN_HANDSET_MESSAGE = "Unknown destination handset"
CHANNEL_NOT_FOUND = 63003
CHANNEL_NOT_FOUND_MESSAGE = "Channel could not find To address"

_NUMBER = re.compile(rf"^(?:whatsapp:)?{E164}$")


class BrandLines:
    def __init__(
        self,
        settings: MessagingSettings,
        *,
        account_sid: str,
        book: MessageBook,
        webhooks: Webhooks,
        planner: ReplyPlanner,
        windows: SessionWindows,
        period_now: Callable[[], Period],
        api_outage: Callable[[], bool],
        record: Callable[..., None],  # (event, at=..., **fields): a ground-truth line
        report: Callable[[Violation], None],
    ) -> None:
        self._settings = settings
        self._account_sid = account_sid
        self._book = book
        self._webhooks = webhooks
        self._planner = planner
        self._windows = windows
        self._period_now = period_now
        self._api_outage = api_outage
        self._record = record
        self._report = report
        self._webhook_urls: dict[str, str | None] = dict(settings.inbound_webhooks)
        self.outage = settings.outage
        self.line_outage: dict[Channel, bool] = {
            "sms": settings.sms is not None and settings.sms.outage,
            "whatsapp": settings.whatsapp is not None and settings.whatsapp.outage,
        }
        book.on_delivered = self._received

    # -- switches ----------------------------------------------------------------------

    def set_inbound_webhook(self, number: str, url: str | None) -> None:
        """Where messages to number (`+1...`, or `whatsapp:+1...` for WhatsApp only) go."""
        if not _NUMBER.match(number):
            raise ValueError(f"{number!r} is not an E.164 number like +15005550006")
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"{url!r} is not an http(s) URL")
        self._webhook_urls[number] = url

    def webhook_url(self, address: str) -> str | None:
        """The messaging webhook of the monitor's address; a bare number covers its WhatsApp."""
        if address in self._webhook_urls:
            return self._webhook_urls[address]
        return self._webhook_urls.get(bare_number(address))

    def silent(self, channel: Channel) -> bool:
        return self.outage or self.line_outage[channel] or self._api_outage()

    def state(self) -> dict[str, Any]:
        whatsapp = self._settings.whatsapp
        return {
            "outage": self.outage,
            "line_outage": dict(self.line_outage),
            "lines": {
                line.address: {"enabled": line.enabled, "bot": line.bot, "agents": line.agents}
                for line in (self._settings.sms, whatsapp)
                if line is not None
            },
            "inbound_webhooks": dict(self._webhook_urls),
            "whatsapp_windows": []
            if whatsapp is None
            else self._windows.open_windows(whatsapp.session_window_hours),
        }

    # -- sending to a line -------------------------------------------------------------

    def opted_out(self, to: str) -> bool:
        """Whether ``to`` is a line that opted out (Twilio refuses the create with 21610)."""
        line = self._settings.line_for(to)
        return line is not None and line.opted_out

    def failure_for(self, from_: str, to: str, template: bool) -> Failure | None:
        """How a message from_ -> to will fail, decided (like Twilio) when it is created."""
        line = self._settings.line_for(to)
        if line is None:
            return None  # someone else's number: delivered, and nobody here answers
        if isinstance(line, WhatsAppLine):
            if not line.enabled:
                return Failure("failed", CHANNEL_NOT_FOUND, CHANNEL_NOT_FOUND_MESSAGE)
            if not template and not self._windows.is_open(
                line.address, from_, line.session_window_hours
            ):
                return Failure("failed", OUTSIDE_WINDOW, OUTSIDE_WINDOW_MESSAGE)
            return None
        if not line.enabled:
            return Failure("undelivered", UNKNOWN_HANDSET, UNKNOWN_HANDSET_MESSAGE)
        return None

    # -- a line receives ---------------------------------------------------------------

    def _received(self, message: MessageRecord) -> None:
        line = self._settings.line_for(message.to)
        if line is None or not line.enabled:
            return
        period = self._period_now()
        token = find_token(message.body)
        silent = self.silent(message.channel)
        plan = self._planner.plan(
            message.body, period, token=token, silent=silent, bot=line.bot, agents=line.agents
        )
        self._record(
            "message_received",
            at=message.date_updated,
            sid=message.sid,
            channel=message.channel,
            body=message.body,
            token=token,
            content_sid=message.content_sid,
            period=period,
            queue=plan.queue,
            intended_queue=plan.intended_queue,
            outage=silent,
            replies=[reply.responder for reply in plan.replies],
            **{"from": message.from_, "to": message.to},
        )
        received = asyncio.get_running_loop().time()
        for reply in plan.replies:
            # Against an absolute deadline, so one reply's webhook does not delay the next.
            self._book.spawn(self._reply(message, line, plan, reply, received + reply.delay))

    async def _reply(
        self,
        message: MessageRecord,
        line: Line,
        plan: Plan,
        reply: PlannedReply,
        deadline: float,
    ) -> None:
        await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))
        customer = message.from_
        fields: dict[str, Any] = {
            "channel": message.channel,
            "responder": reply.responder,
            "queue": reply.queue,
            "intended_queue": reply.intended_queue,
            "agent": reply.agent,
            "answer": reply.answer,
            "rubric": None if reply.rubric is None else list(reply.rubric),
            "in_reply_to_token": find_token(message.body),
            "in_reply_to_sid": message.sid,
            "period": plan.period,
            "from": line.address,
            "to": customer,
        }
        if self.silent(message.channel):  # an outage began while the reply was being written
            self._record("reply_dropped", reason="outage", **fields)
            return
        sent = self._book.receive(self._account_sid, line.address, customer, reply.body)
        if channel_of(customer) == "whatsapp":
            self._windows.brand_wrote(line.address, customer)
        url = self.webhook_url(customer)
        self._record(
            "reply_sent", at=sent.date_created, sid=sent.sid, body=sent.body, webhook=url, **fields
        )
        if url is None:
            return
        profile_name = line.profile_name if isinstance(line, WhatsAppLine) else None
        try:
            await self._webhooks.send("POST", url, sent.inbound_params(profile_name))
        except WebhookError as err:
            self._report(Violation("webhook", err.code, err.message, "POST", url))
            self._record(
                "webhook_error",
                sid=sent.sid,
                kind="inbound",
                url=url,
                code=err.code,
                message=err.message,
            )
