"""Signed webhook requests to the monitor, sent the way Twilio sends them.

POST carries the parameters as a form body; GET appends them to the URL's query string and
signs the URL alone. The URL is sent exactly as the monitor gave it (no re-quoting), because the
signature covers its exact characters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from sandbox.twilio.signature import SIGNATURE_HEADER, twilio_signature

# Twilio waits 15 s for a webhook response by default.
WEBHOOK_TIMEOUT_SECONDS = 15.0
# Twilio's error codes for a webhook that could not be fetched or answered with an error.
HTTP_RETRIEVAL_FAILURE = 11200


@dataclass(frozen=True)
class WebhookReply:
    status: int
    content_type: str
    text: str


class WebhookError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Webhooks:
    def __init__(self, session: aiohttp.ClientSession, auth_token: str) -> None:
        self._session = session
        self._auth_token = auth_token

    async def send(self, method: str, url: str, params: Sequence[tuple[str, str]]) -> WebhookReply:
        """Send a signed request; WebhookError when it fails or the answer is not 2xx."""
        headers = {"User-Agent": "TwilioProxy/1.1", "Accept": "*/*"}
        body: bytes | None = None
        if method == "GET":
            if params:
                url = f"{url}{'&' if '?' in url else '?'}{urlencode(list(params))}"
            headers[SIGNATURE_HEADER] = twilio_signature(self._auth_token, url)
        else:
            body = urlencode(list(params)).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers[SIGNATURE_HEADER] = twilio_signature(self._auth_token, url, params)
        try:
            async with self._session.request(
                method,
                URL(url, encoded=True),
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS),
            ) as response:
                text = await response.text()
                reply = WebhookReply(response.status, response.content_type, text)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise WebhookError(
                HTTP_RETRIEVAL_FAILURE, f"{method} {url} failed: {type(err).__name__}: {err}"
            ) from err
        if not 200 <= reply.status < 300:
            raise WebhookError(
                HTTP_RETRIEVAL_FAILURE, f"{method} {url} answered HTTP {reply.status}"
            )
        return reply

    async def send_after(
        self,
        previous: asyncio.Task[None] | None,
        method: str,
        url: str,
        params: Sequence[tuple[str, str]],
    ) -> WebhookError | None:
        """Send once previous (the same resource's last callback) has ended, so its status
        callbacks arrive in order as Twilio's do; returns the error if this one failed."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await self.send(method, url, params)
        except WebhookError as err:
            return err
        return None
