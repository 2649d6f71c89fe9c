"""The generic messaging channel: any platform with a send API and a reply webhook.

A platform is config, not code (``channels.generic.platforms.<name>``): the HTTP request that
sends a message (method, URL, headers with ``${SECRETS}``, a JSON body template with {text},
{token}, {recipient}, {sender}), how its webhooks are signed (an HMAC of the raw body: header,
algorithm, prefix, hex or base64) and where a reply's sender, text, id and time are in the
webhook's JSON (RFC 9535 JSONPath, :mod:`probes.generic.paths`). Each platform's webhook is
``/webhooks/generic/<name>`` on the monitor's HTTP server; a request whose signature does not
verify gets 403 and changes nothing.

``Sent.at`` is when the platform's API accepted the message (its 2xx). A reply is timed by the
platform's own timestamp when the mapping gives one (``platform-timestamp``; epoch seconds,
epoch milliseconds or ISO 8601), else when the webhook arrived (``webhook-arrival``). Replies
are matched to the open run of their pair (the probe's id, the brand's id) as on SMS; API
answers 429 (Retry-After honoured) and 5xx are retried with backoff and jitter for
``send.retry_for`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import hashlib
import hmac
import json
import random
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from probes.base import (
    ChannelServices,
    ChannelType,
    ChannelUnavailable,
    Contact,
    ContactRejected,
    DefaultSla,
    Evidence,
    Methodology,
    ProviderError,
    Reply,
    Responder,
    Sent,
    json_evidence,
    per_address,
    utc_now,
)
from probes.generic.paths import compile_path, first_value
from probes.generic.settings import (
    GenericAddress,
    GenericChannelSettings,
    GenericPlatform,
    InboundMapping,
    Signature,
)
from probes.inbox import (
    MESSAGE_RECORDS,
    InboxConversation,
    Pair,
    PairedInbox,
    classify_auto,
    timing_record,
)
from probes.rejections import Rejections

WEBHOOK_PREFIX = "/webhooks/generic"
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


def fill_url(template: str, values: Mapping[str, str]) -> str:
    """A URL template with its placeholders percent-encoded (a text cannot add parameters)."""
    return str(fill(template, {name: quote(value, safe="") for name, value in values.items()}))


def fill_headers(template: Mapping[str, SecretStr], values: Mapping[str, str]) -> dict[str, str]:
    headers = {
        name: str(fill(value.get_secret_value(), values)) for name, value in template.items()
    }
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ContactRejected(f"header {name!r} would contain a line break; not sent")
    return headers


def fill(template: Any, values: Mapping[str, str]) -> Any:
    """``template`` (JSON-like) with {name} placeholders replaced in every string."""
    if isinstance(template, str):
        for name, value in values.items():
            template = template.replace("{" + name + "}", value)
        return template
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    return template


def signature_valid(signature: Signature, body: bytes, header_value: str) -> bool:
    if not header_value.startswith(signature.prefix):
        return False
    digest = hmac.new(
        signature.secret.get_secret_value().encode(), body, getattr(hashlib, signature.algorithm)
    ).digest()
    given = header_value[len(signature.prefix) :].strip().encode("utf-8", "replace")
    if signature.encoding == "hex":
        return hmac.compare_digest(digest.hex().encode(), given.lower())
    return hmac.compare_digest(base64.b64encode(digest), given)


def parse_time(value: Any) -> datetime | None:
    """Epoch seconds, epoch milliseconds or ISO 8601, as UTC; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)?", value.strip()):
        value = float(value)  # epoch time sent as a string (WhatsApp Cloud API, Slack's ts)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class _Mapping:
    """An :class:`InboundMapping` with its paths parsed once."""

    def __init__(self, mapping: InboundMapping) -> None:
        self.messages = compile_path(mapping.messages)
        self.sender = compile_path(mapping.sender)
        self.recipient = compile_path(mapping.recipient)
        self.text = compile_path(mapping.text)
        self.id = compile_path(mapping.id)
        self.time = compile_path(mapping.time) if mapping.time else None
        self.author = compile_path(mapping.author) if mapping.author else None
        self.skip = compile_path(mapping.skip_if_true) if mapping.skip_if_true else None


class GenericChannel:
    """The ``generic`` channel driver: every configured platform, one webhook each."""

    kind: ClassVar[str] = "generic"

    def __init__(self, settings: GenericChannelSettings, services: ChannelServices) -> None:
        self.settings = settings
        self._log = services.logger
        self._webhooks = services.webhooks
        self._auto_by_brand: dict[tuple[str, str], list[re.Pattern[str]]] = {}
        self._own_ids: dict[str, set[str]] = {name: set() for name in settings.platforms}
        self._inboxes = {
            name: PairedInbox(
                services.state,
                services.on_unmatched,
                services.logger,
                namespace=name,
                classify=functools.partial(self._classify, name),
            )
            for name in settings.platforms
        }
        self._mappings = {name: _Mapping(p.inbound) for name, p in settings.platforms.items()}
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()
        self._rejections = Rejections(services.logger, services.on_rejected_webhook)
        self.retries = 0

    def _classify(self, platform: str, reply: Reply) -> Reply:
        """A late reply, classified as its conversation would have."""
        return classify_auto(reply, self._auto_by_brand.get((platform, reply.sender), []))

    async def start(self, stack: AsyncExitStack, addresses: Sequence[GenericAddress] = ()) -> None:
        for address in addresses:
            self._own_ids[address.platform].add(address.sender)
            self._auto_by_brand[(address.platform, address.recipient)] = [
                re.compile(pattern, re.IGNORECASE) for pattern in address.auto
            ]
        self._session = aiohttp.ClientSession()
        stack.push_async_callback(self._session.close)
        for name in self.settings.platforms:
            self._webhooks.routes.append(
                web.post(f"{WEBHOOK_PREFIX}/{name}", self._inbound_handler(name))
            )

    def inbox(self, platform: str) -> PairedInbox:
        return self._inboxes[platform]

    async def open(self, address: GenericAddress, token: str) -> GenericConversation:
        conversation = GenericConversation(self, address, token)
        try:
            await self._inboxes[address.platform].claim(
                [address.sender], address.recipient, conversation, wait=self.settings.pair_wait
            )
        except LookupError:
            raise ChannelUnavailable(
                f"{address.platform}: {address.sender} still had an open conversation with "
                f"{address.recipient} after {self.settings.pair_wait:g}s (pair_wait); one run "
                "at a time per pair"
            ) from None
        return conversation

    async def resume(self, address: GenericAddress, token: str, sent: Sent) -> GenericConversation:
        conversation = GenericConversation(self, address, token)
        conversation.sent_at = sent.at
        try:
            await self._inboxes[address.platform].attach(conversation.pair, conversation)
        except LookupError:
            raise ChannelUnavailable(
                f"{address.sender} has started a new conversation with {address.recipient}"
            ) from None
        return conversation

    def health(self) -> Mapping[str, Any]:
        return {
            "platforms": {
                name: {"open_conversations": len(inbox), "runs_waiting_for_the_pair": inbox.waiting}
                for name, inbox in self._inboxes.items()
            },
            "rejected_webhooks": self._rejections.count,
            "api_retries": self.retries,
        }

    # -- sending ---------------------------------------------------------------------------

    async def post(self, platform: GenericPlatform, values: Mapping[str, str]) -> Any:
        """Send one message with the platform's request template; its JSON answer."""
        assert self._session is not None, "start() first"
        request = platform.send
        url = fill_url(request.url, values)
        headers = fill_headers(request.headers, values)
        body = fill(request.body, values)
        where = _origin(url)  # never the path or query: they may carry a token
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                async with self._session.request(
                    request.method,
                    url,
                    json=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=request.timeout),
                ) as response:
                    text = await response.text()
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise ChannelUnavailable(f"cannot reach {where}: {type(exc).__name__}") from None
            if status < 400:
                try:
                    return json.loads(text) if text.strip() else {}
                except ValueError:
                    return {}
            # A send that may have been processed is not repeated (the brand would get it
            # twice): only 429 and 503 say it was not.
            if status in (429, 503):
                wait = _backoff(attempt, retry_after, self._rng)
                if time.monotonic() + wait - started <= request.retry_for:
                    self.retries += 1
                    attempt += 1
                    await asyncio.sleep(wait)
                    continue
            excerpt = text.strip().replace("\n", " ")[:200]
            if status in (401, 403):
                raise ChannelUnavailable(
                    f"the platform refused the credentials (HTTP {status}): {excerpt}"
                )
            if 400 <= status < 500:
                raise ContactRejected(
                    f"the platform refused the message (HTTP {status}): {excerpt}"
                )
            raise ProviderError(f"the platform answered HTTP {status}: {excerpt}")

    # -- receiving -------------------------------------------------------------------------

    def _inbound_handler(self, name: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            return await self._on_inbound(name, request)

        return handle

    async def _on_inbound(self, name: str, request: web.Request) -> web.Response:
        platform = self.settings.platforms[name]
        body = await request.read()
        header = request.headers.get(platform.signature.header, "")
        if not header or not signature_valid(platform.signature, body, header):
            self._rejections.record(
                f"{'invalid' if header else 'missing'} {platform.signature.header}",
                platform=name,
                remote=request.remote,
            )
            return web.Response(status=403, text="invalid or missing signature")
        observed = utc_now()
        try:
            payload = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="the body is not JSON")
        mapping = self._mappings[name]
        for message in mapping.messages.findall(payload):
            if mapping.skip is not None and first_value(mapping.skip, message) is True:
                continue
            sender = first_value(mapping.sender, message)
            text = first_value(mapping.text, message)
            message_id = first_value(mapping.id, message)
            if str(sender) in self._own_ids[name]:
                continue  # our own message, echoed back by the platform
            if sender is None or text is None or message_id is None:
                self._log.warning(
                    "webhook message without sender, text or id", extra={"platform": name}
                )
                continue
            recipient = first_value(mapping.recipient, message)
            stamped = parse_time(first_value(mapping.time, message)) if mapping.time else None
            author = first_value(mapping.author, message) if mapping.author else None
            reply = Reply(
                observed_at=observed,
                arrived_at=min(stamped, observed) if stamped else observed,
                timing_method="platform-timestamp" if stamped else "webhook-arrival",
                sender=str(sender),
                text=str(text),
                responder=Responder.HUMAN,  # classified by the conversation that takes it
                external_id=f"{name}:{message_id}",
                headers={"Author": str(author)} if author else {},
            )
            await self._inboxes[name].route((str(recipient or ""), str(sender)), reply)
        return web.Response(status=200, text="ok")


class GenericConversation(InboxConversation):
    # Replies are timed by the platform's clock, and t0 by ours after the API answered.
    clock_tolerance = timedelta(seconds=5)

    def __init__(self, channel: GenericChannel, address: GenericAddress, token: str) -> None:
        super().__init__(token)
        self._channel = channel
        self.address = address
        self.pair: Pair = (address.sender, address.recipient)
        self.sent_at: datetime | None = None
        self._auto = [re.compile(p, re.IGNORECASE) for p in address.auto]
        self._closed = False

    async def send(self, contact: Contact) -> Sent:
        platform = self._channel.settings.platforms[self.address.platform]
        text = contact.text.strip()
        await self._channel.inbox(self.address.platform).remember(self.pair, self.token)
        answer = await self._channel.post(platform, self._values(text))
        self.sent_at = utc_now()
        message_id = None
        if platform.send.message_id is not None:
            message_id = first_value(compile_path(platform.send.message_id), answer)
        return Sent(
            at=self.sent_at,
            external_id=f"{self.address.platform}:{message_id or self.token}",
            text=text,
            resume_state={"platform": self.address.platform},
        )

    async def follow_up(self, contact: Contact) -> Sent:
        platform = self._channel.settings.platforms[self.address.platform]
        text = contact.text.strip()
        await self._channel.post(platform, self._values(text))
        return Sent(
            at=utc_now(),
            external_id=f"{self.address.platform}:{self.token}:{time.time_ns()}",
            text=text,
        )

    def _values(self, text: str) -> dict[str, str]:
        return {
            "text": text,
            "token": self.token,
            "recipient": self.address.recipient,
            "sender": self.address.sender,
        }

    def deliver(self, reply: Reply) -> bool:
        # The platform's clock may run ahead of ours: never an answer before t0.
        arrived = max(reply.arrived_at, self.sent_at) if self.sent_at else reply.arrived_at
        classified = dataclasses.replace(
            classify_auto(reply, self._auto),
            arrived_at=arrived,
            thread_keys=frozenset({self.token}),
        )
        return super().deliver(classified)

    async def close(self) -> list[Evidence]:
        if self._closed:
            return []
        self._closed = True
        inbox = self._channel.inbox(self.address.platform)
        await inbox.release(self.pair, self)
        for reply in self.unconsumed():  # delivered, but the run was judged before them
            await inbox.hand_on(self.pair, reply, self.token)
        records = [
            {
                "id": reply.external_id,
                "sender": reply.sender,
                **timing_record(reply),
                "text": reply.text,
            }
            for reply in self.received
        ]
        document = {"platform": self.address.platform, "pair": list(self.pair), "replies": records}
        return [json_evidence(MESSAGE_RECORDS, document)]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _backoff(attempt: int, retry_after: str | None, rng: random.Random) -> float:
    if retry_after is not None:
        try:
            return min(BACKOFF_CAP, max(0.0, float(retry_after)))
        except ValueError:
            pass
    return rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


GENERIC = ChannelType(
    kind=GenericChannel.kind,
    settings_model=GenericChannelSettings,
    address_model=GenericAddress,
    create=GenericChannel,
    # A messaging desk: an automatic answer in minutes, a person in an hour.
    default_sla=DefaultSla(
        first_response=5 * 60, human_response=3600, after_hours_response=5 * 60, deadline=4 * 3600
    ),
    methodology=Methodology(
        t0="the message accepted by the platform's API",
        reply_timing="the platform's own timestamp of the reply, else its webhook's arrival",
        precision="the platform timestamp's resolution (milliseconds to 1 s); webhook arrival "
        "adds the platform's delivery delay",
    ),
    cross_check=per_address(GenericAddress.check_against),
    resumable=True,
    needs_http=True,
    # A platform integration with its own credentials and terms (an inbox API, a partner
    # webhook): not something any member of the public can reach, so not public.
    public=False,
    # the platform marks no bot: only target responders rules tell one.
    responders=frozenset({Responder.HUMAN}),
)
