"""The generic messaging peer: its send API, and replies on a signed webhook.

The webhook app below checks X-Hub-Signature-256 by recomputing the HMAC over the raw body it
received, as a monitor must (a re-serialised body would not match).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sandbox.clock import WeeklyHours
from sandbox.generic.peer import GenericPeer
from sandbox.generic.profile import GenericPeerSettings

TOKEN = "peer-token"
SECRET = "peer-app-secret"
PAGE = "acme-support"
CUSTOMER = "cxprobe-customer-1"
REF = "CXP-7K3M9Q2XZ4"
BOT_TEXT = "Thanks! An agent will be with you shortly."
CLOSED_TEXT = "We're closed right now."
WAIT = 10.0
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def peer_settings(**overrides: Any) -> GenericPeerSettings:
    fast = {"distribution": "fixed", "seconds": 0.3}
    profile: dict[str, Any] = {
        "page_id": PAGE,
        "access_token": TOKEN,
        "app_secret": SECRET,
        "bot": {
            "latency": {"distribution": "fixed", "seconds": 0.1},
            "text": BOT_TEXT,
            "after_hours_text": CLOSED_TEXT,
        },
        "queues": {
            "billing": {
                "label": "Billing",
                "keywords": ["bill"],
                "agents": ["Sam"],
                "latency": fast,
            },
            "sales": {"label": "Sales", "agents": ["Al"], "latency": fast},
        },
        "default_queue": "sales",
    }
    profile.update(overrides)
    return GenericPeerSettings.model_validate(profile)


@dataclass
class Delivery:
    event: dict[str, Any]
    headers: dict[str, str]
    signature_valid: bool
    received_at: datetime


@dataclass
class Inbox:
    """The monitor's webhook for this channel."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        arrived, self.arrived = self.arrived, asyncio.Event()
        arrived.set()

    async def wait_for(self, count: int) -> list[Delivery]:
        async with asyncio.timeout(WAIT):
            while len(self.deliveries) < count:
                await self.arrived.wait()
        return self.deliveries


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    async with running_inbox() as box:
        yield box


@asynccontextmanager
async def running_inbox() -> AsyncIterator[Inbox]:
    """The monitor's webhook on a free port of 127.0.0.1, until the block ends."""
    box = Inbox()

    async def receive(request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Hub-Signature-256", "")
        box.add(
            Delivery(
                json.loads(raw),
                dict(request.headers),
                hmac.compare_digest(expected, given),
                datetime.now(UTC),
            )
        )
        return web.Response(text="EVENT_RECEIVED")

    app = web.Application()
    app.add_routes([web.post("/webhooks/generic/social", receive)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    box.url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/generic/social"
    try:
        yield box
    finally:
        await runner.cleanup()


async def open_peer(
    tmp_path: Path, settings: GenericPeerSettings, **kwargs: Any
) -> AsyncIterator[GenericPeer]:
    async with GenericPeer(settings, workdir=tmp_path / "peer", **kwargs) as peer:
        yield peer


@pytest.fixture
async def peer(tmp_path: Path, inbox: Inbox) -> AsyncIterator[GenericPeer]:
    async for running in open_peer(tmp_path, peer_settings(webhook_url=inbox.url)):
        yield running


def message(text: str, ref: str | None = REF, **top: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"text": text}
    if ref is not None:
        body["metadata"] = {"ref": ref}
    return {"recipient": {"id": PAGE}, "sender": {"id": CUSTOMER}, "message": body, **top}


async def send(
    peer: GenericPeer, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(peer.send_url, json=payload, headers=AUTH if headers is None else headers) as r,
    ):
        return r.status, dict(r.headers), await r.json()


def event(name: str, **match: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == name and all(e.get(k) == v for k, v in match.items())


async def truth(peer: GenericPeer, name: str, count: int = 1) -> list[dict[str, Any]]:
    async with asyncio.timeout(WAIT):
        return await peer.wait_for(event(name), count)


async def test_send_then_signed_bot_and_agent_replies(peer: GenericPeer, inbox: Inbox) -> None:
    before = datetime.now(UTC)
    status, _, created = await send(peer, message("Question about my bill"))
    assert status == 201
    assert set(created) == {"message_id", "created_at"}
    assert created["message_id"].startswith("m_")
    assert before <= datetime.fromisoformat(created["created_at"]) <= datetime.now(UTC)

    bot, agent = await inbox.wait_for(2)
    assert bot.signature_valid and agent.signature_valid
    assert bot.headers["Content-Type"] == "application/json"
    replies = await truth(peer, "reply_sent", 2)
    for delivery, reply in zip((bot, agent), replies, strict=True):
        entry = delivery.event["entry"]
        assert delivery.event["object"] == "page" and len(entry) == 1
        assert entry[0]["id"] == PAGE and isinstance(entry[0]["time"], int)
        (messaging,) = entry[0]["messaging"]
        assert messaging["sender"] == {"id": PAGE}
        assert messaging["recipient"] == {"id": CUSTOMER}
        sent_at = datetime.fromisoformat(reply["at"])
        assert messaging["timestamp"] == round(sent_at.timestamp() * 1000)
        assert messaging["timestamp"] <= entry[0]["time"]
        assert messaging["message"] == {
            "mid": reply["message_id"],
            "text": reply["body"],
            "is_echo": False,
            "metadata": reply["responder"],
        }
        assert sent_at <= delivery.received_at
    assert bot.event["entry"][0]["messaging"][0]["message"]["text"] == BOT_TEXT
    agent_text = agent.event["entry"][0]["messaging"][0]["message"]["text"]
    assert agent_text.endswith("— Sam, Acme Billing")

    (received,) = await truth(peer, "message_received")
    assert received["message_id"] == created["message_id"]
    assert (received["token"], received["ref"], received["sender"]) == (REF, REF, CUSTOMER)
    assert (received["queue"], received["period"]) == ("billing", "business")
    assert [(r["responder"], r["queue"], r["agent"]) for r in replies] == [
        ("bot", None, None),
        ("agent", "billing", "Sam"),
    ]
    assert all(r["in_reply_to"] == created["message_id"] for r in replies)
    assert all(r["in_reply_to_token"] == REF for r in replies)


async def test_token_in_the_text_counts_too(peer: GenericPeer, inbox: Inbox) -> None:
    await send(peer, message(f"Hi, my bill please {REF}", ref=None))
    (received,) = await truth(peer, "message_received")
    assert (received["token"], received["ref"]) == (REF, None)


async def test_wrong_token_gets_401(peer: GenericPeer) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {}, {"Authorization": f"Basic {TOKEN}"}):
        status, response_headers, body = await send(peer, message("Hi"), headers)
        assert status == 401
        assert body["error"]["type"] == "unauthorized" and body["error"]["code"] == 401
        assert response_headers["WWW-Authenticate"].startswith("Bearer")
    assert peer.ground_truth() == []


@pytest.mark.parametrize(
    ("payload", "field_name"),
    [
        ("not an object", "(body)"),
        ({"recipient": {"id": PAGE}, "sender": {"id": CUSTOMER}}, "message"),
        (message(""), "message.text"),
        ({**message("Hi"), "recipient": {"id": "someone-else"}}, "recipient.id"),
        ({**message("Hi"), "sender": {}}, "sender.id"),
        (message("Hi", messaging_type="RESPONSE"), "messaging_type"),
        (
            {**message("Hi"), "message": {"text": "Hi", "metadata": {"reff": REF}}},
            "message.metadata.reff",
        ),
        ({**message("Hi"), "message": {"text": "x" * 2001}}, "message.text"),
    ],
)
async def test_malformed_bodies_get_400_naming_the_field(
    peer: GenericPeer, payload: Any, field_name: str
) -> None:
    status, _, body = await send(peer, payload)
    assert status == 400
    assert body["error"]["type"] == "invalid_request" and body["error"]["field"] == field_name
    assert peer.ground_truth() == []


async def test_rate_limit_then_server_error_then_accepted(peer: GenericPeer) -> None:
    peer.rate_limit(1, retry_after=3)
    peer.server_error(1, status=503)
    status, headers, body = await send(peer, message("Hi"))
    assert (status, headers["Retry-After"], body["error"]["type"]) == (429, "3", "rate_limited")
    status, _, body = await send(peer, message("Hi"))
    assert (status, body["error"]["code"]) == (503, 503)
    status, _, _ = await send(peer, message("Hi"))
    assert status == 201
    assert [e["event"] for e in peer.ground_truth()] == ["message_received"]


async def test_after_hours_only_the_bot(tmp_path: Path, inbox: Inbox) -> None:
    settings = peer_settings(webhook_url=inbox.url)
    async for peer in open_peer(tmp_path, settings, hours=WeeklyHours()):
        await send(peer, message("My bill"))
        (delivery,) = await inbox.wait_for(1)
        text = delivery.event["entry"][0]["messaging"][0]["message"]["text"]
        assert text == CLOSED_TEXT
        await asyncio.sleep(0.5)  # past the agent's latency: nobody else answers
        assert len(inbox.deliveries) == 1
        (received,) = await truth(peer, "message_received")
        assert (received["period"], received["replies"]) == ("after_hours", ["bot"])


async def test_misroute_outage_and_webhook_failures(tmp_path: Path, inbox: Inbox) -> None:
    settings = peer_settings(webhook_url=inbox.url, misroute_rate=1.0)
    async for peer in open_peer(tmp_path, settings):
        await send(peer, message("My bill"))
        replies = await truth(peer, "reply_sent", 2)
        agent = next(r for r in replies if r["responder"] == "agent")
        assert (agent["intended_queue"], agent["queue"], agent["agent"]) == (
            "billing",
            "sales",
            "Al",
        )

        peer.set_outage(True)
        await send(peer, message("Hello?"))
        received = await truth(peer, "message_received", 2)
        assert (received[1]["outage"], received[1]["replies"]) == (True, [])

        peer.set_outage(False)
        peer.set_webhook_url(inbox.url.replace("/social", "/missing"))
        await send(peer, message("Hello again"))
        errors = await truth(peer, "webhook_error", 2)
        assert all("HTTP 404" in e["message"] for e in errors)

        peer.set_webhook_url(None)
        await send(peer, message("Anyone?"))
        dropped = await truth(peer, "reply_dropped", 2)
        assert {d["reason"] for d in dropped} == {"no webhook_url configured"}
        assert len(inbox.deliveries) == 2  # only the first message's replies arrived


async def test_control_endpoints(peer: GenericPeer, inbox: Inbox) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{peer.control_url}/rate-limit", json={"count": 1}) as response:
            assert (await response.json())["rate_limited_requests_left"] == 1
        async with http.post(f"{peer.control_url}/webhook", json={"url": "ftp://x"}) as response:
            assert response.status == 400
        async with http.post(f"{peer.control_url}/outage", json={"on": True}) as response:
            assert (await response.json())["outage"] is True
        async with http.get(peer.base_url + "/v1/elsewhere") as response:
            assert response.status == 404 and (await response.json())["error"]["code"] == 404
    status, _, _ = await send(peer, message("Hi"))
    assert status == 429
