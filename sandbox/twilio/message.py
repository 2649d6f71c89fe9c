"""A message as the REST API shows it, and the parameters of the webhooks Twilio sends about it.

The JSON follows the spec's `api.v2010.account.message` schema field for field (the tests hold
the two together): RFC 2822 dates, counts and `price` as strings, a price that is negative
because it is a charge, and `null` until a value exists (`date_sent` before the message leaves,
`price` before it is sent, `error_code` unless it failed).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sandbox.clock import real_now
from sandbox.twilio.resource import API_VERSION, rfc2822

MessageStatus = Literal[
    "queued", "sending", "sent", "delivered", "undelivered", "failed", "received"
]
Direction = Literal["outbound-api", "inbound"]
Channel = Literal["sms", "whatsapp"]

WHATSAPP_PREFIX = "whatsapp:"
MAX_BODY = 1600  # characters; Twilio refuses a longer Body (21617)

# GSM 03.38: the basic character set (one septet each) and its extension table (two each).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


def new_message_sid() -> str:
    return "SM" + secrets.token_hex(16)


def channel_of(address: str) -> Channel:
    return "whatsapp" if address.startswith(WHATSAPP_PREFIX) else "sms"


def bare_number(address: str) -> str:
    """`whatsapp:+15005550006` -> `+15005550006`; a plain number is returned as it is."""
    return address.removeprefix(WHATSAPP_PREFIX)


def count_segments(body: str, channel: Channel) -> int:
    """SMS parts: 160 GSM-7 septets (153 when split) or 70 UCS-2 units (67); WhatsApp: one."""
    if channel == "whatsapp" or not body:
        return 1
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in body):
        septets = sum(2 if c in _GSM_EXTENSION else 1 for c in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


@dataclass(frozen=True)
class MessageRequest:
    """What the client asked for when it created the message (already checked against the spec)."""

    to: str
    from_: str | None
    body: str | None = None
    content_sid: str | None = None
    content_variables: str | None = None
    status_callback: str | None = None
    media_urls: tuple[str, ...] = ()
    messaging_service_sid: str | None = None

    @classmethod
    def from_form(cls, form: Sequence[tuple[str, str]]) -> MessageRequest:
        single = dict(form)
        return cls(
            to=single["To"],
            from_=single.get("From"),
            body=single.get("Body"),
            content_sid=single.get("ContentSid"),
            content_variables=single.get("ContentVariables"),
            status_callback=single.get("StatusCallback"),
            media_urls=tuple(v for k, v in form if k == "MediaUrl"),
            messaging_service_sid=single.get("MessagingServiceSid"),
        )


@dataclass
class MessageRecord:
    sid: str
    account_sid: str
    direction: Direction
    from_: str
    to: str
    body: str
    price_per_segment: Decimal
    price_unit: str
    status: MessageStatus = "queued"
    num_media: int = 0
    status_callback: str | None = None
    content_sid: str | None = None
    date_created: datetime = field(default_factory=real_now)
    date_updated: datetime = field(default_factory=real_now)
    date_sent: datetime | None = None
    price: Decimal | None = None
    error_code: int | None = None
    error_message: str | None = None

    @property
    def channel(self) -> Channel:
        return channel_of(self.to)

    @property
    def num_segments(self) -> int:
        return count_segments(self.body, self.channel)

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def set_status(self, status: MessageStatus) -> None:
        self.status = status
        self.date_updated = real_now()

    def mark_sent(self, *, rate: bool = True) -> None:
        """Sent: it has left, so it has a date_sent and (now, or once rated) a price."""
        self.date_sent = real_now()
        if rate:
            self.rate()
        self.set_status("sent")

    def rate(self) -> None:
        """Charged per segment: the price is set (negative: a charge), once."""
        if self.price is None:
            self.price = -(self.price_per_segment * self.num_segments).quantize(Decimal("0.00001"))
            self.date_updated = real_now()

    def fail(self, status: Literal["failed", "undelivered"], code: int, message: str) -> None:
        self.error_code, self.error_message = code, message
        self.set_status(status)

    def resource(self) -> dict[str, Any]:
        base = self.uri.removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": str(self.num_media),
            "num_segments": str(self.num_segments),
            "price": None if self.price is None else str(self.price),
            "price_unit": self.price_unit,
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "to": self.to,
            "uri": self.uri,
        }

    def status_callback_params(self) -> list[tuple[str, str]]:
        """What Twilio posts to an outbound message's StatusCallback when its status changes."""
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("From", self.from_),
            ("MessageSid", self.sid),
            ("MessageStatus", self.status),
            ("SmsSid", self.sid),
            ("SmsStatus", self.status),
            ("To", self.to),
        ]
        if self.error_code is not None:
            params.append(("ErrorCode", str(self.error_code)))
        if self.channel == "whatsapp":
            params += [("ChannelPrefix", "whatsapp"), ("ChannelToAddress", bare_number(self.to))]
        elif self.status in ("delivered", "undelivered"):
            # The carrier's delivery receipt time, YYMMDDhhmm in UTC.
            params.append(("RawDlrDoneDate", self.date_updated.strftime("%y%m%d%H%M")))
        return params

    def inbound_params(self, profile_name: str | None = None) -> list[tuple[str, str]]:
        """What Twilio posts to the receiving number's messaging webhook ("A message comes in")."""
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("Body", self.body),
            ("From", self.from_),
            ("MessageSid", self.sid),
            ("NumMedia", str(self.num_media)),
            ("NumSegments", str(self.num_segments)),
            ("SmsMessageSid", self.sid),
            ("SmsSid", self.sid),
            ("SmsStatus", "received"),
            ("To", self.to),
        ]
        if self.channel == "whatsapp":
            params += [
                ("MessageType", "text"),
                ("ProfileName", profile_name or ""),
                # The sender's WhatsApp ID: its number's digits, without `whatsapp:` and `+`.
                ("WaId", bare_number(self.from_).removeprefix("+")),
            ]
        return params
