"""A call as the REST API shows it, and the parameters Twilio sends with the call's webhooks.

The JSON follows the spec's `api.v2010.account.call` schema field for field (the tests hold the
two together): RFC 2822 dates, `duration` and `price` as strings, and a price that is negative
because it is a charge.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any, Literal

from sandbox.clock import real_now

API_VERSION = "2010-04-01"
CallStatus = Literal[
    "queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"
]
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_SUBRESOURCE_PATHS = {
    "notifications": "Notifications",
    "recordings": "Recordings",
    "payments": "Payments",
    "events": "Events",
    "siprec": "Siprec",
    "streams": "Streams",
    "transcriptions": "Transcriptions",
    "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions",
    "user_defined_messages": "UserDefinedMessages",
}
_DEFAULT_RING_TIMEOUT = 60.0


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def rfc2822(instant: datetime | None) -> str | None:
    return None if instant is None else format_datetime(instant)


@dataclass(frozen=True)
class CallRequest:
    """What the client asked for when it created the call (already checked against the spec)."""

    to: str
    from_: str
    url: str | None = None
    method: Literal["GET", "POST"] = "POST"
    twiml: str | None = None
    status_callback: str | None = None
    status_callback_method: Literal["GET", "POST"] = "POST"
    # Twilio's default when StatusCallback is given without events: only `completed`.
    status_callback_events: frozenset[str] = frozenset({"completed"})
    ring_timeout: float = _DEFAULT_RING_TIMEOUT
    time_limit: float | None = None
    send_digits: str | None = None

    @classmethod
    def from_form(cls, form: Sequence[tuple[str, str]]) -> CallRequest:
        single = dict(form)
        events = frozenset(v for k, v in form if k == "StatusCallbackEvent")
        return cls(
            to=single["To"],
            from_=single["From"],
            url=single.get("Url"),
            method="GET" if single.get("Method") == "GET" else "POST",
            twiml=single.get("Twiml"),
            status_callback=single.get("StatusCallback"),
            status_callback_method="GET" if single.get("StatusCallbackMethod") == "GET" else "POST",
            status_callback_events=events or frozenset({"completed"}),
            ring_timeout=float(single.get("Timeout", _DEFAULT_RING_TIMEOUT)),
            time_limit=float(single["TimeLimit"]) if "TimeLimit" in single else None,
            send_digits=single.get("SendDigits"),
        )


@dataclass
class CallRecord:
    sid: str
    account_sid: str
    request: CallRequest
    price_unit: str
    status: CallStatus = "queued"
    date_created: datetime = field(default_factory=real_now)
    date_updated: datetime = field(default_factory=real_now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    price: Decimal | None = None

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATUSES

    def set_status(self, status: CallStatus) -> None:
        self.status = status
        self.date_updated = real_now()

    def answer(self) -> None:
        self.start_time = real_now()
        self.set_status("in-progress")

    def finish(self, status: CallStatus, price_per_minute: Decimal) -> None:
        """Final status, duration in whole seconds (rounded up) and the per-minute price."""
        self.end_time = real_now()
        if self.start_time is None:
            self.duration = 0
        else:
            seconds = (self.end_time - self.start_time).total_seconds()
            self.duration = math.ceil(seconds)
            # Twilio bills every started minute of an answered call.
            minutes = max(1, math.ceil(self.duration / 60))
            self.price = -(price_per_minute * minutes).quantize(Decimal("0.0001"))
        self.set_status(status)

    def resource(self) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "direction": "outbound-api",
            "duration": None if self.duration is None else str(self.duration),
            "end_time": rfc2822(self.end_time),
            "forwarded_from": None,
            "from": self.request.from_,
            "from_formatted": self.request.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None if self.price is None else str(self.price),
            "price_unit": self.price_unit,
            "queue_time": "0",
            "sid": self.sid,
            "start_time": rfc2822(self.start_time),
            "status": self.status,
            "subresource_uris": {
                name: self.uri.removesuffix(".json") + f"/{path}.json"
                for name, path in _SUBRESOURCE_PATHS.items()
            },
            "to": self.request.to,
            "to_formatted": self.request.to,
            "trunk_sid": None,
            "uri": self.uri,
        }

    def webhook_params(self, status: str | None = None) -> list[tuple[str, str]]:
        """The parameters of every voice webhook: TwiML requests, Gather actions, callbacks."""
        return [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", self.sid),
            ("CallStatus", status or self.status),
            ("Called", self.request.to),
            ("Caller", self.request.from_),
            ("Direction", "outbound-api"),
            ("From", self.request.from_),
            ("To", self.request.to),
        ]
