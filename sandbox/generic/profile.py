"""The `generic_peer:` section of a sandbox profile: a messaging platform with a send API.

It stands for any platform the monitor reaches through "POST a message, get the answers on a
webhook": a helpdesk's messaging API, a social network's page inbox. The brand's team behind it
answers like the SMS and WhatsApp lines do (`ReplyTeam`: bot, queues, latencies, after hours,
misrouting, outage).

Example (all keys shown; most have defaults)::

    generic_peer:
      port: 0                        # the API and /_control on 127.0.0.1 (0: a free port)
      page_id: acme-support          # the brand's id: recipient.id of sends, sender.id of replies
      access_token: sandbox-peer-token     # Authorization: Bearer <access_token>
      app_secret: sandbox-peer-secret      # key of X-Hub-Signature-256 on the webhooks
      webhook_url: http://127.0.0.1:9464/webhooks/generic/social   # null: replies go nowhere
                                     # (or a path, /webhooks/..., under --webhook-base-url)
      faults:
        rate_limit: 0                # the first N sends get 429 with Retry-After
        retry_after: 1               # seconds
        server_error: 0              # the first N sends get server_error_status
        server_error_status: 500
      bot:                           # as in messaging: (sandbox/messaging_profile.py)
        enabled: true
        latency: {distribution: fixed, seconds: 2}
        text: "Thanks for your message! A member of our team will reply shortly."
        after_hours: true
        after_hours_text: "We're closed; we will reply when we reopen."
      queues:
        billing:
          label: Billing
          keywords: [invoice, bill, refund]
          agents: [Sam, Priya]
          latency: {distribution: lognormal, median: 8, p95: 20}
          text: "Hi, I can help with your bill."
          signature: "— {agent}, Acme {label}"
      default_queue: billing
      misroute_rate: 0.0
      outage: false                  # messages are accepted, never answered

Business hours, the time zone and the clock offset are the profile's top-level ones.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from sandbox.messaging_profile import ReplyTeam
from sandbox.profile_model import StrictModel, check_webhook_url


class GenericPeerFaults(StrictModel):
    rate_limit: int = Field(default=0, ge=0)
    retry_after: int = Field(default=1, ge=0)
    server_error: int = Field(default=0, ge=0)
    server_error_status: Literal[500, 503] = 500


class GenericPeerSettings(ReplyTeam):
    port: int = Field(default=0, ge=0, le=65535)
    page_id: str = Field(default="acme-support", min_length=1)
    access_token: str = Field(min_length=1)
    app_secret: str = Field(min_length=1)
    webhook_url: str | None = None
    faults: GenericPeerFaults = GenericPeerFaults()

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_webhook_url(value, "webhook_url")
