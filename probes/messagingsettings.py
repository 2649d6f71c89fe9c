"""Configuration models of the messaging channels: ``sms`` and ``whatsapp`` (through Twilio's
Messages API) and ``generic`` (any platform with a send API and a reply webhook)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from probes.jsonpath import JsonPath
from probes.phonesettings import TwilioAccount, _e164

#: Phrases that mark an automatic answer in most messaging desks (an address may replace them;
#: a target's ``responders`` rules can re-classify any reply, e.g. as a bot).
DEFAULT_AUTO = [
    r"\b(automatic|automated|auto-?)\s*(reply|response|message)\b",
    r"\bdo not reply\b",
    r"\b(virtual|digital) assistant\b",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _regexes(values: list[str]) -> list[str]:
    for value in values:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
    return values


class Receiving(_Strict):
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


class TwilioMessagingSettings(_Strict):
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

    @field_validator("from_numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        return [_e164(number) for number in value]


class WhatsappTemplate(_Strict):
    """An approved WhatsApp template (Twilio Content API) for business-initiated messages."""

    content_sid: str = Field(pattern=r"^HX[0-9a-fA-F]{32}$", description="Content SID (HX…).")
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Template variables; values may use {token} and {customer_name}.",
    )


class MessagingAddress(_Strict):
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
        return _e164(value)

    @field_validator("auto")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        return _regexes(value)

    def check_against(self, settings: TwilioMessagingSettings | None) -> str | None:
        if settings is None:
            return "the target has a messaging number but its channel section is missing"
        if self.to in settings.from_numbers:
            return f"{self.to} is one of the probe's own numbers (from_numbers)"
        return None


# -- the generic channel ----------------------------------------------------------------------


def _path(value: str | None) -> str | None:
    if value is not None:
        JsonPath.parse(value)
    return value


class SendRequest(_Strict):
    """The HTTP request that sends a message. Strings anywhere in ``headers``, ``url`` and
    ``body`` may use {text}, {token}, {recipient}, {sender} and ${ENV} secrets."""

    method: Literal["POST", "PUT"] = "POST"
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Request headers; held as secrets (they usually carry the credentials). "
        "Keep tokens out of the URL.",
    )
    body: dict[str, Any] = Field(description="The JSON body, as a template.")
    message_id: str | None = Field(
        default=None, description="JSONPath of the sent message's id in the response."
    )
    timeout: float = Field(default=15.0, gt=0)
    retry_for: float = Field(default=30.0, ge=0, description="Seconds of retries on 429/5xx.")

    @field_validator("message_id")
    @classmethod
    def _jsonpath(cls, value: str | None) -> str | None:
        return _path(value)


class Signature(_Strict):
    """How the platform signs its webhooks: an HMAC of the raw body."""

    header: str = Field(default="X-Hub-Signature-256")
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    prefix: str = Field(default="sha256=", description="Text before the digest in the header.")
    encoding: Literal["hex", "base64"] = "hex"
    secret: SecretStr = Field(description="The shared secret (use ${ENV_VAR}).")

    @field_validator("secret")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            # An HMAC with an empty key is one anybody can compute.
            raise ValueError("the signing secret is empty; check the ${VAR} it comes from")
        return value


class InboundMapping(_Strict):
    """Where a reply's parts are in the webhook's JSON (JSONPath)."""

    messages: str = Field(default="$", description="The messages in one payload.")
    sender: str = Field(description="Within a message: who sent it.")
    recipient: str = Field(description="Within a message: to whom (the probe's id).")
    text: str
    id: str = Field(description="Within a message: its unique id (deduplication).")
    time: str | None = Field(
        default=None, description="Within a message: when it was sent (epoch s/ms or ISO 8601)."
    )
    author: str | None = Field(default=None, description="The agent's or bot's name, if any.")
    skip_if_true: str | None = Field(
        default=None, description="A flag that marks messages to ignore (e.g. echoes)."
    )

    @model_validator(mode="after")
    def _paths(self) -> InboundMapping:
        for value in (
            self.messages,
            self.sender,
            self.recipient,
            self.text,
            self.id,
            self.time,
            self.author,
            self.skip_if_true,
        ):
            _path(value)
        return self


class GenericPlatform(_Strict):
    """One messaging platform: how to send, and how its reply webhook reads."""

    send: SendRequest
    signature: Signature
    inbound: InboundMapping


class GenericChannelSettings(_Strict):
    """The ``channels.generic`` section: platforms by name; each gets its own webhook,
    ``/webhooks/generic/<name>`` on the monitor's HTTP server."""

    platforms: dict[str, GenericPlatform] = Field(min_length=1)
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^?#]+[^/?#]$",
        description="The monitor's HTTP server as the platforms reach it.",
    )

    @field_validator("platforms")
    @classmethod
    def _names(cls, value: dict[str, GenericPlatform]) -> dict[str, GenericPlatform]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
                raise ValueError(f"platform name {name!r}: use lowercase letters, digits, - or _")
        return value


class GenericAddress(_Strict):
    """A target's ``channels.generic`` section."""

    platform: str = Field(description="A channels.generic.platforms key.")
    recipient: str = Field(description="The brand's id on the platform (a page, an inbox).")
    sender: str = Field(description="The probe's own id on the platform.")
    auto: list[str] = Field(default_factory=lambda: list(DEFAULT_AUTO))

    @field_validator("auto")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        return _regexes(value)

    def check_against(self, settings: GenericChannelSettings | None) -> str | None:
        if settings is None:
            return "the target has a generic messaging address but no 'channels.generic' section"
        if self.platform not in settings.platforms:
            return (
                f"platform {self.platform!r} is not defined under channels.generic.platforms "
                f"(defined: {', '.join(sorted(settings.platforms))})"
            )
        return None
