"""The `messaging:` section of a sandbox profile: the brand's SMS and WhatsApp lines.

The lines live on the Twilio sandbox (the profile's `twilio:` account and port): the monitor
sends from its Twilio numbers to the brand's lines through the Messages API, and the brand's
answers arrive as inbound messages on those numbers. Who answers, how fast and with what text is
a `ReplyTeam`, the same shape the generic messaging peer (`generic_peer:`) uses.

Example (all keys shown; most have defaults)::

    messaging:
      sms:
        address: "+442071234568"       # the brand's SMS number
        enabled: true                  # false: messages to it end undelivered (30005)
        opted_out: false               # true: it texted STOP; sends fail at create (21610)
        outage: false                  # delivered, never answered
        bot: true                      # the bot answers on this line
        agents: true                   # people answer on this line
        price_per_segment: "0.0079"
      whatsapp:
        address: "whatsapp:+442071234569"
        enabled: true                  # false: messages to it fail (63003)
        outage: false
        bot: true
        agents: true
        price_per_segment: "0.0050"
        profile_name: Acme             # ProfileName of the brand's messages
        session_window_hours: 24       # free-form Body allowed this long after the brand wrote
      templates:                       # approved Content templates (ContentSid -> text)
        HX00000000000000000000000000000001: "Hi, I have a question about my bill. Ref {{1}}"
      inbound_webhooks:                # the monitor's numbers -> where their messages are POSTed
        "+15005550006": http://127.0.0.1:9464/webhooks/twilio/messages   # or a path (/...)
                                       # joined to python -m sandbox --webhook-base-url
      delivery:                        # an outbound message: queued -> sending -> sent -> delivered
        sending: {distribution: fixed, seconds: 0.1}
        sent: {distribution: fixed, seconds: 0.2}
        delivered: {distribution: fixed, seconds: 0.3}
        rated: {distribution: fixed, seconds: 0}   # sent -> price set (null until then)
      price_unit: USD
      bot:
        enabled: true
        latency: {distribution: fixed, seconds: 2}      # message delivered -> bot reply
        text: "Thanks for your message! ..."
        after_hours: true              # the bot answers after hours (nobody else does)
        after_hours_text: "Thanks for your message. We're closed ..."
      queues:
        billing:
          label: Billing
          keywords: [invoice, bill, refund]
          agents: [Sam, Priya]
          latency: {distribution: lognormal, median: 8, p95: 20}   # delivered -> agent reply
          text: "Hi, I can help with your bill."
          signature: "— {agent}, Acme {label}"
      default_queue: billing
      misroute_rate: 0.0               # chance a message is answered by another queue
      outage: false                    # no line answers at all

Business hours, the time zone and the clock offset are the profile's top-level ones.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Self

from pydantic import Field, field_validator, model_validator

from sandbox.answers import Answers
from sandbox.latency import FixedLatency, Latency
from sandbox.profile_model import (
    StaffedQueue,
    StrictModel,
    check_default_queue,
    check_webhook_url,
)
from sandbox.scripted_agent import Ask
from sandbox.templates import check_placeholders

E164 = r"\+[1-9][0-9]{1,14}"
CONTENT_SID = r"^HX[0-9a-fA-F]{32}$"
# Content API variables: {{1}}, {{2}}, ... (named ones exist too; numbers are what WhatsApp uses).
TEMPLATE_VARIABLE = re.compile(r"\{\{\s*([0-9A-Za-z_]+)\s*\}\}")
# Per segment; also what a message to a number that is not one of the brand's lines costs.
SMS_PRICE = Decimal("0.0079")
WHATSAPP_PRICE = Decimal("0.0050")


# -- who answers: shared with the generic messaging peer ---------------------------------


class MessagingBot(StrictModel):
    """The automatic answer every message gets (in business hours and, optionally, after)."""

    enabled: bool = True
    latency: Latency = FixedLatency(seconds=0.5)
    text: str = (
        "Thanks for your message! This is Acme's automated assistant: a member of our team "
        "will reply shortly."
    )
    after_hours: bool = True
    after_hours_text: str = (
        "Thanks for your message. Our team is available Monday to Friday, 9:00-17:30 UK time, "
        "and will reply when we reopen."
    )

    @field_validator("text", "after_hours_text")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return check_placeholders(value, ("ref",))


class MessagingQueue(StaffedQueue):
    """A human team, and how its replies read."""

    text: str = "Thanks for getting in touch, I'm looking into this for you now."
    signature: str = "— {agent}, Acme {label}"
    #: Questions the agent asks before answering (sandbox/scripted_agent.py).
    asks: list[Ask] = []

    @field_validator("text", "signature")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return check_placeholders(value, ("agent", "label", "ref"))


class ReplyTeam(StrictModel):
    """The bot and the human queues behind a messaging line; see sandbox/reply_team.py."""

    bot: MessagingBot = MessagingBot()
    queues: dict[str, MessagingQueue] = Field(min_length=1)
    default_queue: str
    misroute_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    outage: bool = False
    #: Scripted answer quality (sandbox/answers.py); None: every agent answer is the queue's
    #: ``text``.
    answers: Answers | None = None

    @model_validator(mode="after")
    def _default_queue_exists(self) -> Self:
        check_default_queue(self.default_queue, self.queues)
        return self


# -- the Twilio lines --------------------------------------------------------------------


class _Line(StrictModel):
    enabled: bool = True
    #: The brand's number has texted STOP to the monitor's numbers: like Twilio, creating a
    #: message to it fails at once with error 21610.
    opted_out: bool = False
    outage: bool = False
    bot: bool = True
    agents: bool = True
    price_per_segment: Decimal = Field(default=SMS_PRICE, ge=0)


class SmsLine(_Line):
    address: str = Field(pattern=rf"^{E164}$")


class WhatsAppLine(_Line):
    address: str = Field(pattern=rf"^whatsapp:{E164}$")
    price_per_segment: Decimal = Field(default=WHATSAPP_PRICE, ge=0)
    profile_name: str = Field(default="Acme", min_length=1)
    session_window_hours: float = Field(default=24.0, gt=0)


class DeliverySteps(StrictModel):
    """How long an outbound message waits before each status: queued -> ... -> delivered."""

    sending: Latency = FixedLatency(seconds=0.1)
    sent: Latency = FixedLatency(seconds=0.2)
    delivered: Latency = FixedLatency(seconds=0.3)
    #: From sent to priced: Twilio rates a message after it is sent and its ``price`` is null
    #: until then (0: priced as it is sent). POST /_control/messaging/rate prices every sent
    #: message at once.
    rated: Latency = FixedLatency(seconds=0)


class MessagingSettings(ReplyTeam):
    sms: SmsLine | None = None
    whatsapp: WhatsAppLine | None = None
    templates: dict[str, str] = {}
    inbound_webhooks: dict[str, str | None] = {}
    delivery: DeliverySteps = DeliverySteps()
    price_unit: str = Field(default="USD", pattern=r"^[A-Z]{3}$")

    @field_validator("templates")
    @classmethod
    def _template_sids(cls, value: dict[str, str]) -> dict[str, str]:
        for sid, text in value.items():
            if not re.match(CONTENT_SID, sid):
                raise ValueError(f"template {sid!r} is not a ContentSid (HX + 32 hex digits)")
            if not text.strip():
                raise ValueError(f"template {sid} has no text")
        return value

    @field_validator("inbound_webhooks")
    @classmethod
    def _webhook_numbers(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        for number, url in value.items():
            if not re.match(rf"^(?:whatsapp:)?{E164}$", number):
                raise ValueError(
                    f"inbound_webhooks key {number!r} is not an E.164 number like +15005550006"
                )
            if url is not None:
                check_webhook_url(url, f"inbound_webhooks[{number!r}]")
        return value

    @model_validator(mode="after")
    def _some_line(self) -> Self:
        if self.sms is None and self.whatsapp is None:
            raise ValueError("configure at least one line: sms, whatsapp or both")
        return self

    def line_for(self, address: str) -> SmsLine | WhatsAppLine | None:
        """The brand's line at address (`+44...` or `whatsapp:+44...`), if it has one."""
        for line in (self.sms, self.whatsapp):
            if line is not None and line.address == address:
                return line
        return None
