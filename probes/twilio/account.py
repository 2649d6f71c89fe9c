"""The Twilio (or Twilio-compatible) account settings shared by the phone and messaging channels."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr

from probes.settings import Strict

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
TWILIO_API = "https://api.twilio.com"


def e164(value: str) -> str:
    if not E164.match(value):
        raise ValueError(
            f"{value!r} is not an E.164 phone number: write it as + and the country code and "
            "number, digits only (e.g. +442071234567)"
        )
    return value


class TwilioAccount(Strict):
    """The Twilio (or Twilio-compatible) account the probe calls from."""

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$", description="Account SID (AC…).")
    auth_token: SecretStr = Field(
        description="Auth token (use ${ENV_VAR}); also verifies the webhooks' signatures."
    )
    api_base_url: str = Field(
        default=TWILIO_API,
        pattern=r"^https?://[^/]+$",
        description="Where https://api.twilio.com requests go: a Twilio-compatible provider or "
        "the sandbox. Scheme and host[:port] only.",
    )
    request_timeout: float = Field(default=15.0, gt=0, description="Seconds per API request.")
    retry_for: float = Field(
        default=60.0,
        ge=0,
        description="Seconds to keep retrying 429 (Retry-After honoured) and 5xx answers, with "
        "exponential backoff and full jitter (a send is also bounded by monitor.send_timeout).",
    )
