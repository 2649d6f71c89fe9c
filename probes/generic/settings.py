"""Configuration models of the generic messaging channel (``channels.generic`` and a target's
platform address): any platform with a send API and a signed reply webhook, as config."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from probes.generic.paths import compile_path
from probes.settings import DEFAULT_AUTO, Strict, valid_regexes


def _path(value: str | None) -> str | None:
    if value is not None:
        compile_path(value)
    return value


class SendRequest(Strict):
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


class Signature(Strict):
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


class InboundMapping(Strict):
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

    @field_validator(
        "messages", "sender", "recipient", "text", "id", "time", "author", "skip_if_true"
    )
    @classmethod
    def _jsonpath(cls, value: str | None) -> str | None:
        return _path(value)


class GenericPlatform(Strict):
    """One messaging platform: how to send, and how its reply webhook reads."""

    send: SendRequest
    signature: Signature
    inbound: InboundMapping


class GenericChannelSettings(Strict):
    """The ``channels.generic`` section: platforms by name; each gets its own webhook,
    ``/webhooks/generic/<name>`` on the monitor's HTTP server."""

    platforms: dict[str, GenericPlatform] = Field(min_length=1)
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^?#]+[^/?#]$",
        description="The monitor's HTTP server as the platforms reach it.",
    )
    pair_wait: float = Field(
        default=300.0,
        ge=0,
        description="Seconds a run may wait for the probe's open conversation with the same "
        "recipient to end before it is recorded as error.",
    )

    @field_validator("platforms")
    @classmethod
    def _names(cls, value: dict[str, GenericPlatform]) -> dict[str, GenericPlatform]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
                raise ValueError(f"platform name {name!r}: use lowercase letters, digits, - or _")
        return value


class GenericAddress(Strict):
    """A target's ``channels.generic`` section."""

    platform: str = Field(description="A channels.generic.platforms key.")
    recipient: str = Field(description="The brand's id on the platform (a page, an inbox).")
    sender: str = Field(description="The probe's own id on the platform.")
    auto: list[str] = Field(default_factory=lambda: list(DEFAULT_AUTO))

    @field_validator("auto")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        return valid_regexes(value)

    def check_against(self, settings: GenericChannelSettings | None) -> str | None:
        if settings is None:
            return "the target has a generic messaging address but no 'channels.generic' section"
        if self.platform not in settings.platforms:
            return (
                f"platform {self.platform!r} is not defined under channels.generic.platforms "
                f"(defined: {', '.join(sorted(settings.platforms))})"
            )
        return None
