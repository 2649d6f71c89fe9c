"""The SMS and WhatsApp channels: Twilio's Messages API out, replies by webhook or by polling.

A contact is one message from one of the probe's numbers to the brand's number (WhatsApp
addresses get the ``whatsapp:`` prefix). Replies come back either

* by Twilio's inbound-message webhook (``/webhooks/twilio/<kind>`` on the monitor's HTTP
  server; every request checked against ``X-Twilio-Signature``, a bad one gets 403 and changes
  nothing), timed when the webhook arrives (``twilio-inbound-webhook``), or
* by polling ``messages.list(to=…, from_=…, date_sent_after=…)`` in bounded pages, timed by the
  message's ``date_sent`` (one-second resolution: the middle of that second, never later than
  it was observed; ``twilio-date-sent``).

Both paths deduplicate by message SID, so a resumed run (after a restart, which back-fills by
polling) or a lost webhook never double-counts. Replies are matched to the open run of their
pair (probe number, brand number; see :mod:`probes.inbox`); later ones reach the run through
the pair's remembered token. The outbound message's status is followed (status callback or
fetch): ``failed``/``undelivered`` end the run with Twilio's error, 63016 (WhatsApp free-form
message outside the 24-hour session) with advice to configure a template. WhatsApp sends the
address's approved template (``ContentSid`` + variables) unless the brand wrote to that number
within the last 24 hours.

Who answered: the address's ``auto`` patterns mark an automatic reply; anything else is a
human's (a target's ``responders`` rules can re-classify, e.g. as a bot). The outbound record
(status, segments, price) and every reply's record are kept as evidence at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web
from twilio.rest import Client

from probes.base import (
    ChannelServices,
    ChannelType,
    ChannelUnavailable,
    Contact,
    ContactRejected,
    CostUnits,
    DefaultSla,
    Evidence,
    Methodology,
    Price,
    ProbeError,
    ProviderError,
    Reply,
    Responder,
    Sent,
    json_evidence,
    per_address,
    utc_now,
)
from probes.errors import OptedOut
from probes.inbox import (
    MESSAGE_RECORDS,
    InboxConversation,
    Pair,
    PairedInbox,
    classify_auto,
    timing_record,
)
from probes.messaging.segments import sms_segments
from probes.messaging.settings import MessagingAddress, TwilioMessagingSettings
from probes.rejections import Rejections
from probes.twilio.http import OptOutCodes, TwilioApi
from probes.twilio.pricing import price_of
from probes.twilio.webhooks import SignedRequests, forbidden

WEBHOOK_PREFIX = "/webhooks/twilio"
#: WhatsApp lets a business send free-form messages this long after the user last wrote.
WHATSAPP_SESSION = timedelta(hours=24)
FAILED = frozenset({"failed", "undelivered", "canceled"})
#: Statuses after which nothing more happens to an outbound message.
FINAL = FAILED | {"delivered", "read"}
#: Twilio errors that mean the brand's number refused or cannot take the message.
REFUSALS = {
    "21211": "the brand's number is not a valid phone number",
    "21610": "the brand's number has opted out of messages from this number (STOP)",
    "21614": "the brand's number cannot receive SMS (not a mobile number)",
    "30003": "the brand's number is unreachable",
    "30005": "the brand's number is unknown or no longer exists",
    "30006": "the brand's number cannot receive messages (a landline?)",
    "63024": "the brand's WhatsApp number is not a valid WhatsApp recipient",
}
#: Twilio's error for a number that texted STOP to the sender: nothing more may be sent to it.
OPTED_OUT = "21610"
#: The same refusals when Twilio answers them at create time (an opt-out is raised apart).
CREATE_REFUSALS = {int(code): reason for code, reason in REFUSALS.items() if code != OPTED_OUT}
#: Replies that opt the sender out of further messages (Twilio's standard opt-out keywords,
#: matched like Twilio does: the whole message, case and surrounding space ignored).
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
#: Before sending, replies this many seconds old are noted as an earlier run's.
EARLIER_WINDOW = 2.0
#: Seconds between checks of an outbound message's status while it is not final.
STATUS_CHECK_INTERVAL = 2.0


class TwilioMessagingChannel:
    """The ``sms`` or ``whatsapp`` channel driver."""

    kind: ClassVar[str]
    #: Put before the numbers in Twilio's addresses ("whatsapp:" for WhatsApp).
    prefix: ClassVar[str] = ""
    #: Whether a business-initiated message outside a session must be an approved template.
    needs_templates: ClassVar[bool] = False

    def __init__(self, settings: TwilioMessagingSettings, services: ChannelServices) -> None:
        self.settings = settings
        self._log = services.logger
        self._webhooks = services.webhooks
        self._auto_by_brand: dict[str, list[re.Pattern[str]]] = {}
        self.inbox = PairedInbox(
            services.state, services.on_unmatched, services.logger, classify=self._classify
        )
        self._signed = SignedRequests(
            settings.twilio.auth_token,
            Rejections(services.logger, services.on_rejected_webhook),
        )
        self.twilio = TwilioApi(settings.twilio, services.logger)
        self._poller: asyncio.Task[None] | None = None
        self._conversations: dict[str, MessagingConversation] = {}
        self.polls = 0
        #: Best-effort steps (listing earlier replies, backfills, polls, reconciliation, status
        #: checks) that failed and were skipped; in the health mapping, so they are seen.
        self.best_effort_failures = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(
        self, stack: AsyncExitStack, addresses: Sequence[MessagingAddress] = ()
    ) -> None:
        for address in addresses:
            self._auto_by_brand[self.address_of(address.to)] = [
                re.compile(pattern, re.IGNORECASE) for pattern in address.auto
            ]
        self.twilio.connect()
        stack.push_async_callback(self._stop)
        if self.settings.receiving.mode == "webhook":
            self._webhooks.routes.extend(
                [
                    web.post(f"{WEBHOOK_PREFIX}/{self.kind}", self._on_inbound),
                    web.post(f"{WEBHOOK_PREFIX}/{self.kind}/status/{{token}}", self._on_status),
                ]
            )
        else:
            self._poller = asyncio.create_task(self._poll_forever(), name=f"poll:{self.kind}")

    async def _stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for conversation in list(self._conversations.values()):
            await conversation.close()
        await self.twilio.close()

    @property
    def client(self) -> Client:
        return self.twilio.client

    def _classify(self, reply: Reply) -> Reply:
        """A late reply, classified as its conversation would have."""
        return classify_auto(reply, self._auto_by_brand.get(reply.sender, []))

    def address_of(self, number: str) -> str:
        return self.prefix + number

    def webhook_base(self) -> str | None:
        return self.settings.receiving.public_url or self._webhooks.local_url

    async def api(self, what: str, request: Any) -> Any:
        return await self.twilio.call(what, request)

    async def actual_price(self, external_id: str) -> Price | None:
        """The message's price as Twilio rated it; None until it is rated."""
        message = await self.api("fetch the price", self.client.messages(external_id).fetch_async())
        return price_of(message)

    # -- conversations ---------------------------------------------------------------------

    async def open(self, address: MessagingAddress, token: str) -> MessagingConversation:
        conversation = MessagingConversation(self, address, token)
        try:
            probe = await self.inbox.claim(
                self.settings.from_numbers,
                address.to,
                conversation,
                wait=self.settings.pair_wait,
            )
        except LookupError:
            raise ChannelUnavailable(
                f"every probe number still had an open conversation with {address.to} after "
                f"{self.settings.pair_wait:g}s (pair_wait); add numbers to "
                f"channels.{self.kind}.from_numbers to run more at once"
            ) from None
        conversation.pair = (probe, address.to)
        self._conversations[token] = conversation
        return conversation

    async def resume(
        self, address: MessagingAddress, token: str, sent: Sent
    ) -> MessagingConversation:
        probe = sent.resume_state.get("from")
        if not isinstance(probe, str):
            raise ChannelUnavailable("the run's stored state does not say which number sent it")
        brand = sent.resume_state.get("to")
        conversation = MessagingConversation(self, address, token)
        conversation.pair = (probe, brand if isinstance(brand, str) else address.to)
        conversation.sent_at = sent.at
        conversation.sid = sent.external_id
        try:
            await self.inbox.attach(conversation.pair, conversation)
        except LookupError:
            raise ChannelUnavailable(
                f"{probe} has started a new conversation with {conversation.pair[1]} meanwhile"
            ) from None
        self._conversations[token] = conversation
        # Replies that came while no process listened (webhooks are not retried): list them.
        # Best effort: the poller (or the reconciliation at the end) lists again.
        try:
            await conversation.backfill()
        except ProbeError as exc:
            self.best_effort_failures += 1
            self._log.warning(
                "could not list replies after the restart; retried later",
                extra={"token": token, "error": str(exc)},
            )
        conversation.watch_status()
        return conversation

    async def forget(self, conversation: MessagingConversation) -> None:
        await self.inbox.release(conversation.pair, conversation)
        self._conversations.pop(conversation.token, None)

    def health(self) -> Mapping[str, Any]:
        return {
            "api_base_url": self.settings.twilio.api_base_url,
            "receiving": self.settings.receiving.mode,
            "open_conversations": len(self.inbox),
            "runs_waiting_for_a_number": self.inbox.waiting,
            "probe_numbers": len(self.settings.from_numbers),
            "polls": self.polls,
            "best_effort_failures": self.best_effort_failures,
            "api_retries": self.twilio.retries,
            "rejected_webhooks": self._signed.rejections.count,
        }

    # -- receiving -------------------------------------------------------------------------

    async def _verified(self, request: web.Request) -> dict[str, str] | None:
        return await self._signed.form(request, self.webhook_base())

    async def _on_inbound(self, request: web.Request) -> web.Response:
        params = await self._verified(request)
        if params is None:
            return forbidden()
        observed = utc_now()
        brand = params.get("From", "").removeprefix(self.prefix)
        probe = params.get("To", "").removeprefix(self.prefix)
        reply = self.reply(
            sid=params.get("MessageSid", ""),
            brand=brand,
            body=params.get("Body", ""),
            observed=observed,
            arrived=observed,
            method="twilio-inbound-webhook",
            author=params.get("ProfileName", ""),
        )
        await self.inbox.route((probe, brand), reply)
        # An empty TwiML answer: the probe does not reply by SMS.
        return web.Response(text="<Response/>", content_type="text/xml")

    async def _on_status(self, request: web.Request) -> web.Response:
        params = await self._verified(request)
        if params is None:
            return forbidden()
        conversation = self._conversations.get(request.match_info["token"])
        if conversation is not None:
            conversation.on_status(params.get("MessageStatus", ""), params.get("ErrorCode", ""), "")
        return web.Response(status=204)

    async def _poll_forever(self) -> None:
        interval = self.settings.receiving.poll_interval
        while True:
            await asyncio.sleep(interval)
            for _, conversation in self.inbox.open_pairs():
                if not isinstance(conversation, MessagingConversation):
                    continue
                try:
                    await conversation.backfill()
                except ProbeError as exc:
                    self.best_effort_failures += 1
                    self._log.warning(
                        "poll failed; retried at the next interval",
                        extra={"token": conversation.token, "error": str(exc)},
                    )
                except Exception:  # a bug must not stop every later poll silently
                    self._log.exception("poll crashed; retried at the next interval")

    async def list_replies(self, pair: Pair, since: datetime) -> list[Reply]:
        """The brand's messages to the probe since ``since``, oldest first (bounded pages)."""
        self.polls += 1
        page_size = self.settings.receiving.page_size
        messages = await self.api(
            "list replies",
            self.client.messages.list_async(
                to=self.address_of(pair[0]),
                from_=self.address_of(pair[1]),
                date_sent_after=since - timedelta(seconds=1),
                page_size=page_size,
                limit=page_size * 10,
            ),
        )
        observed = utc_now()
        replies = []
        # Twilio lists newest first and date_sent has one-second resolution: oldest first,
        # keeping the provider's order within a second (a stable sort of the reversed list).
        for message in reversed(messages):
            date_sent = message.date_sent or observed
            if date_sent < since - timedelta(seconds=1):
                continue
            arrived = min(observed, max(since, date_sent + timedelta(seconds=0.5)))
            replies.append(
                self.reply(
                    sid=str(message.sid),
                    brand=pair[1],
                    body=message.body or "",
                    observed=observed,
                    arrived=arrived,
                    method="twilio-date-sent",
                )
            )
        return sorted(replies, key=lambda reply: reply.arrived_at)  # stable within a second

    def reply(
        self,
        *,
        sid: str,
        brand: str,
        body: str,
        observed: datetime,
        arrived: datetime,
        method: str,
        author: str = "",
    ) -> Reply:
        return Reply(
            observed_at=observed,
            arrived_at=arrived,
            timing_method=method,
            sender=self.address_of(brand),
            text=body,
            responder=Responder.HUMAN,  # classified by the conversation that takes it
            external_id=sid,
            headers={"Profile-Name": author} if author else {},
        )


class MessagingConversation(InboxConversation):
    """One message to the brand and the replies to it."""

    def __init__(
        self, channel: TwilioMessagingChannel, address: MessagingAddress, token: str
    ) -> None:
        super().__init__(token)
        self._channel = channel
        self.address = address
        self.pair: Pair = ("", address.to)
        self.sid: str | None = None
        self.status = ""
        self._status_task: asyncio.Task[None] | None = None
        self._earlier: set[str] = set()
        self._auto = [re.compile(p, re.IGNORECASE) for p in address.auto]
        self._closed = False
        self._records: list[dict[str, Any]] = []

    async def send(self, contact: Contact) -> Sent:
        channel = self._channel
        options: dict[str, Any] = {
            "to": channel.address_of(self.address.to),
            "from_": channel.address_of(self.pair[0]),
        }
        described = contact.text.strip()
        template = self.address.template if channel.needs_templates else None
        if template is not None and not await self._session_open():
            variables = {
                key: value.replace("{token}", self.token).replace(
                    "{customer_name}", contact.sender_name
                )
                for key, value in template.variables.items()
            }
            options["content_sid"] = template.content_sid
            options["content_variables"] = json.dumps(variables)
            described = f"template {template.content_sid} {json.dumps(variables)}"
        else:
            options["body"] = contact.text.strip()
        base = channel.webhook_base()
        if channel.settings.receiving.mode == "webhook":
            if base is None:
                raise ChannelUnavailable(
                    f"no URL for Twilio's webhooks: set channels.{channel.kind}.receiving."
                    "public_url, or receiving.mode: poll"
                )
            options["status_callback"] = (
                f"{base}{WEBHOOK_PREFIX}/{channel.kind}/status/{self.token}"
            )
        await channel.inbox.remember(self.pair, self.token)
        await self._note_earlier_replies()
        message = await channel.twilio.call(
            "send the message",
            channel.client.messages.create_async(**options),
            CREATE_REFUSALS,
            OptOutCodes(self.address.to, {int(OPTED_OUT): REFUSALS[OPTED_OUT]}),
        )
        self.sent_at = utc_now()
        self.sid = str(message.sid)
        self.on_status(str(message.status or ""), str(message.error_code or ""), "")
        self.watch_status()
        return Sent(
            at=self.sent_at,
            external_id=self.sid,
            text=described,
            resume_state={"from": self.pair[0], "to": self.pair[1], "kind": channel.kind},
        )

    async def _note_earlier_replies(self) -> None:
        """The brand's messages of the last seconds, which belong to an earlier run.

        Listed replies are timed by ``date_sent``, which has one-second resolution: one sent
        just before this contact, in the same second, would pass for an answer to it.
        """
        since = utc_now() - timedelta(seconds=EARLIER_WINDOW)
        try:
            self._earlier = {
                r.external_id for r in await self._channel.list_replies(self.pair, since)
            }
        except ProbeError as exc:  # best effort: the send matters more
            self._channel.best_effort_failures += 1
            self._channel._log.warning(
                "could not list earlier replies",
                extra={
                    "error": str(exc),
                    "consequence": "sent anyway; a reply to an earlier run in the same "
                    "second could pass for an answer",
                },
            )
        except Exception:  # a bug here must not cost the contact either
            self._channel.best_effort_failures += 1
            self._channel._log.exception("listing earlier replies crashed; sending anyway")

    def accepts(self, reply: Reply) -> bool:
        return reply.external_id not in self._earlier and super().accepts(reply)

    async def follow_up(self, contact: Contact) -> Sent:
        channel = self._channel
        message = await channel.api(
            "send a follow-up",
            channel.client.messages.create_async(
                to=channel.address_of(self.address.to),
                from_=channel.address_of(self.pair[0]),
                body=contact.text.strip(),
            ),
        )
        return Sent(at=utc_now(), external_id=str(message.sid), text=contact.text.strip())

    async def _session_open(self) -> bool:
        last = await self._channel.inbox.last_inbound(self.pair)
        return last is not None and utc_now() - last < WHATSAPP_SESSION

    def deliver(self, reply: Reply) -> bool:
        if reply.text.strip().upper() in OPT_OUT_KEYWORDS:
            if reply.external_id in self._seen:
                return False  # webhook and poll both saw it
            self._seen.add(reply.external_id)
            # Not an answer to the contact: the brand's number asks for no more messages.
            # Kept in the run's message records; the run fails and the number is paused.
            self.received.append(reply)
            self.fail(
                OptedOut(
                    f"the brand's number replied {reply.text.strip()!r}: it opted out of "
                    "messages from this number",
                    recipient=self.address.to,
                )
            )
            return True
        classified = classify_auto(reply, self._auto)
        return super().deliver(dataclasses.replace(classified, thread_keys=frozenset({self.token})))

    def on_status(self, status: str, error_code: str, error_message: str) -> None:
        if not status or status == self.status:
            return
        self.status = status
        if status not in FAILED:
            return
        code = error_code or "?"
        if code == "63016":
            self.fail(
                ChannelUnavailable(
                    "WhatsApp refused a free-form message outside the 24-hour session (Twilio "
                    f"error 63016): configure targets.<target>.channels.{self._channel.kind}."
                    "template with an approved ContentSid"
                )
            )
        elif code == OPTED_OUT:
            self.fail(
                OptedOut(f"{REFUSALS[code]} (Twilio error {code})", recipient=self.address.to)
            )
        elif code in REFUSALS:
            self.fail(ContactRejected(f"{REFUSALS[code]} (Twilio error {code})"))
        else:
            detail = f": {error_message}" if error_message else ""
            self.fail(ProviderError(f"the message was {status} (Twilio error {code}){detail}"))

    def watch_status(self) -> None:
        """Follow the outbound message until it is delivered or failed, whatever the status
        callbacks do (they can be lost): a carrier's refusal comes minutes after "sent"."""
        if self._status_task is None and self.sid is not None:
            self._status_task = asyncio.create_task(self._watch_status(), name=f"status:{self.sid}")

    async def _watch_status(self) -> None:
        assert self.sid is not None
        message_api = self._channel.client.messages(self.sid)
        deadline = asyncio.get_running_loop().time() + self._channel.settings.status_wait
        while self.status not in FINAL and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(STATUS_CHECK_INTERVAL)
            try:
                message = await self._channel.api("fetch the message", message_api.fetch_async())
            except ProbeError as exc:
                self._channel.best_effort_failures += 1
                self._channel._log.warning("status check failed", extra={"error": str(exc)})
                continue
            except Exception:  # never let a bug end the run silently
                self._channel._log.exception("status check crashed")
                return
            self.on_status(
                str(message.status or ""),
                str(message.error_code or ""),
                message.error_message or "",
            )

    async def backfill(self) -> None:
        if self.sent_at is None:
            return
        for reply in await self._channel.list_replies(self.pair, self.sent_at):
            if self.accepts(reply):
                self.deliver(reply)

    async def close(self) -> list[Evidence]:
        if self._closed:
            return []
        self._closed = True
        # The pair is free for the next run at once; what comes now goes to the runner.
        await self._channel.forget(self)
        if self._status_task is not None:
            self._status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._status_task
        for reply in self.unconsumed():
            await self._channel.inbox.hand_on(self.pair, reply, self.token)
        if self.sent_at is not None:
            # Webhooks can be lost and polls lag: reconcile with the provider's list once,
            # handing what this conversation never saw to the runner (recorded on the run).
            try:
                for reply in await self._channel.list_replies(self.pair, self.sent_at):
                    if reply.external_id not in self._seen and self.accepts(reply):
                        await self._channel.inbox.hand_on(self.pair, reply, self.token)
            except ProbeError as exc:
                self._channel.best_effort_failures += 1
                self._channel._log.warning("could not reconcile replies", extra={"error": str(exc)})
        return [await self._records_evidence()]

    async def _records_evidence(self) -> Evidence:
        outbound: dict[str, Any] = {"sid": self.sid, "status": self.status}
        if self.sid is not None:
            try:
                message = await self._channel.api(
                    "fetch the message", self._channel.client.messages(self.sid).fetch_async()
                )
                outbound.update(
                    status=message.status,
                    error_code=message.error_code,
                    num_segments=message.num_segments,
                    price=message.price,
                    price_unit=message.price_unit,
                    date_sent=message.date_sent.isoformat() if message.date_sent else None,
                )
            except ProbeError as exc:
                outbound["fetch_error"] = str(exc)
        document = {
            "channel": self._channel.kind,
            "from": self._channel.address_of(self.pair[0]),
            "to": self._channel.address_of(self.pair[1]),
            "outbound": outbound,
            "replies": [
                {"sid": reply.external_id, **timing_record(reply), "body": reply.text}
                for reply in self.received
            ],
        }
        return json_evidence(MESSAGE_RECORDS, document)


class SmsChannel(TwilioMessagingChannel):
    kind = "sms"

    @staticmethod
    def estimate_cost(
        settings: TwilioMessagingSettings, address: MessagingAddress, contact: Contact
    ) -> CostUnits:
        """Charged per segment, and the text decides how many (GSM-7 or UCS-2)."""
        return CostUnits(
            unit="segment",
            count=sms_segments(contact.text.strip()),
            destination=address.to,
            account=settings.twilio.account_sid,
        )


class WhatsappChannel(TwilioMessagingChannel):
    kind = "whatsapp"
    prefix = "whatsapp:"
    needs_templates = True

    @staticmethod
    def estimate_cost(
        settings: TwilioMessagingSettings, address: MessagingAddress, contact: Contact
    ) -> CostUnits:
        """Charged per template message (or conversation), whatever the text's length."""
        return CostUnits(
            unit="message", count=1, destination=address.to, account=settings.twilio.account_sid
        )


#: The messaging kinds' service levels and timing; they sit between chat and email: an
#: automatic answer in minutes, a person in an hour.
MESSAGING_SLA = DefaultSla(
    first_response=5 * 60, human_response=3600, after_hours_response=5 * 60, deadline=4 * 3600
)
MESSAGING_METHODOLOGY = Methodology(
    t0="the message accepted by the provider's API",
    reply_timing="provider webhook arrival, or the message's date_sent",
    precision="1 s (date_sent resolution; webhook arrival adds the provider's delivery delay)",
)


def _messaging_type(
    create: type[SmsChannel] | type[WhatsappChannel],
) -> ChannelType[TwilioMessagingSettings, MessagingAddress]:
    return ChannelType(
        kind=create.kind,
        settings_model=TwilioMessagingSettings,
        address_model=MessagingAddress,
        create=create,
        default_sla=MESSAGING_SLA,
        methodology=MESSAGING_METHODOLOGY,
        cross_check=per_address(MessagingAddress.check_against),
        resumable=True,
        needs_http=True,
        # The brand's published number: anyone may text it.
        public=True,
        estimate_cost=create.estimate_cost,
        # A text message carries no bot marker: only target responders rules tell one.
        responders=frozenset({Responder.HUMAN}),
    )


SMS = _messaging_type(SmsChannel)
WHATSAPP = _messaging_type(WhatsappChannel)
