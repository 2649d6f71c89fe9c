"""Configuration models of the Twilio messaging channels, ``sms`` and ``whatsapp`` (Twilio's
Messages API); the automatic-answer phrases they share with the generic channel are in
:mod:`probes.settings`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from probes.settings import DEFAULT_AUTO, Strict, valid_regexes
from probes.twilio.account import TwilioAccount, e164


class Receiving(Strict):
    """How replies reach the monitor."""

    mode: Literal["webhook", "poll"] = Field(
        default="webhook",
        description="webhook: the provider posts each reply to the monitor (signature checked); "
        "poll: the monitor lists new messages every poll_interval.",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^?#]+[^/?#]$",
        description="The monitor's HTTP server as the provider reaches it (a reverse proxy in "
        "front of monitor.http); default: the server's own address (a local sandbox only).",
    )
    poll_interval: float = Field(default=15.0, gt=0, description="Seconds between polls.")
    page_size: int = Field(
        default=50, ge=1, le=1000, description="Messages per list request (bounded pages)."
    )


class TwilioMessagingSettings(Strict):
    """The ``channels.sms`` or ``channels.whatsapp`` section."""

    twilio: TwilioAccount
    from_numbers: list[str] = Field(
        min_length=1,
        description="The probe's own numbers (E.164; WhatsApp senders without 'whatsapp:'). One "
        "open conversation per number and target: more numbers, more runs at once.",
    )
    receiving: Receiving = Field(default_factory=lambda: Receiving())
    status_wait: float = Field(
        default=60.0,
        gt=0,
        description="Seconds to wait for the provider to report the message sent or failed.",
    )
    pair_wait: float = Field(
        default=300.0,
        ge=0,
        description="Seconds a run may wait for one of from_numbers to end its open "
        "conversation with the target before it is recorded as error.",
    )

    @field_validator("from_numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        return [e164(number) for number in value]


class WhatsappTemplate(Strict):
    """An approved WhatsApp template (Twilio Content API) for business-initiated messages."""

    content_sid: str = Field(pattern=r"^HX[0-9a-fA-F]{32}$", description="Content SID (HX…).")
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Template variables; values may use {token} and {customer_name}.",
    )


class MessagingAddress(Strict):
    """A target's ``channels.sms`` / ``channels.whatsapp`` section."""

    to: str = Field(description="The brand's number (E.164; no 'whatsapp:' prefix).")
    auto: list[str] = Field(
        default_factory=lambda: list(DEFAULT_AUTO),
        description="Regular expressions marking an automatic reply (auto); others are human.",
    )
    template: WhatsappTemplate | None = Field(
        default=None,
        description="WhatsApp only: the template sent when no 24-hour session is open (a "
        "free-form message outside it is refused, Twilio error 63016).",
    )

    @field_validator("to")
    @classmethod
    def _number(cls, value: str) -> str:
        return e164(value)

    @field_validator("auto")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        return valid_regexes(value)

    def check_against(self, settings: TwilioMessagingSettings | None) -> str | None:
        if settings is None:
            return "the target has a messaging number but its channel section is missing"
        if self.to in settings.from_numbers:
            return f"{self.to} is one of the probe's own numbers (from_numbers)"
        return None
