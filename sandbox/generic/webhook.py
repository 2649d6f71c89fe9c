"""The generic peer's reply webhook: a Messenger-like JSON event, signed with the app secret.

    POST <webhook_url>
    Content-Type: application/json
    X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the app secret>

    {"object": "page", "entry": [{"id": "<page id>", "time": <epoch ms of this request>,
      "messaging": [{"sender": {"id": "<page id>"}, "recipient": {"id": "<customer id>"},
                     "timestamp": <epoch ms the reply was sent>,
                     "message": {"mid": "m_...", "text": "...", "is_echo": false,
                                 "metadata": "bot" | "agent"}}]}]}

The signature covers the exact bytes sent, so the body is serialised once and posted as bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import aiohttp

from sandbox.clock import real_now

SIGNATURE_HEADER = "X-Hub-Signature-256"
WEBHOOK_TIMEOUT_SECONDS = 10.0


class PeerWebhookError(Exception):
    pass


def hub_signature(app_secret: str, body: bytes) -> str:
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def epoch_ms(instant: datetime) -> int:
    return round(instant.timestamp() * 1000)


def reply_event(
    *, page_id: str, customer_id: str, mid: str, text: str, responder: str, sent_at: datetime
) -> dict[str, Any]:
    return {
        "object": "page",
        "entry": [
            {
                "id": page_id,
                "time": epoch_ms(real_now()),
                "messaging": [
                    {
                        "sender": {"id": page_id},
                        "recipient": {"id": customer_id},
                        "timestamp": epoch_ms(sent_at),
                        "message": {
                            "mid": mid,
                            "text": text,
                            "is_echo": False,
                            "metadata": responder,
                        },
                    }
                ],
            }
        ],
    }


async def post_event(
    session: aiohttp.ClientSession, url: str, app_secret: str, event: dict[str, Any]
) -> None:
    """POST event, signed; PeerWebhookError when it fails or the answer is not 2xx."""
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cxprobe-sandbox-generic-peer/1.0",
        SIGNATURE_HEADER: hub_signature(app_secret, body),
    }
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS),
        ) as response:
            status = response.status
            await response.read()
    except (aiohttp.ClientError, TimeoutError) as err:
        raise PeerWebhookError(f"POST {url} failed: {type(err).__name__}: {err}") from err
    if not 200 <= status < 300:
        raise PeerWebhookError(f"POST {url} answered HTTP {status}")
