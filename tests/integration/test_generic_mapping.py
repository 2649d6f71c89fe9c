"""The generic channel's RFC 9535 mappings on the wire: a platform that mixes message and
status events in one webhook array is mapped with a filter, and only its messages become
replies. The contact is sent through the sandbox's generic peer (its real send API); the
mixed event is posted, signed, to the channel's own webhook served on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from probes.base import ChannelServices, Contact, Reply
from probes.generic.channel import WEBHOOK_PREFIX, GenericChannel, GenericConversation
from probes.generic.paths import compile_path, first_value
from probes.generic.settings import GenericAddress, GenericChannelSettings
from sandbox.generic.peer import GenericPeer
from sandbox.generic.webhook import SIGNATURE_HEADER, hub_signature
from tests.support import generic_platform, messaging_profile

PLATFORM = "social"
PROBE = "probe-customer-1"
WAIT = 10.0

#: A platform in the style of many helpdesk APIs: every event of a conversation in one array.
MIXED_MAPPING = {
    "messages": "$.events[?@.type == 'message' && @.direction == 'outbound']",
    "sender": "$.from",
    "recipient": "$.to",
    "text": "$.body.text",
    "id": "$.id",
    "time": "$.at",
    "author": "$.agent.name",
}


def mixed_event(page: str, token: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "conversation": "c-1",
        "events": [
            # Statuses quote the message they are about: without the filter, replies.
            {"type": "status", "id": "s-1", "from": page, "to": PROBE, "status": "delivered",
             "body": {"text": f"my bill is wrong {token}"}, "at": now},
            {"type": "message", "direction": "inbound", "id": "m-0", "from": PROBE, "to": page,
             "body": {"text": f"my bill is wrong {token}"}, "at": now},
            {"type": "status", "id": "s-2", "from": page, "to": PROBE, "status": "read",
             "body": {"text": f"my bill is wrong {token}"}, "at": now},
            {"type": "message", "direction": "outbound", "id": "m-1", "from": page, "to": PROBE,
             "body": {"text": "Sam here, from Billing: let me look."}, "at": now,
             "agent": {"name": "Sam"}},
            {"type": "typing", "id": "t-1", "from": page, "to": PROBE},
        ],
    }  # fmt: skip


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[GenericPeer]:
    profile = messaging_profile()
    assert profile.generic_peer is not None
    async with GenericPeer(profile.generic_peer, workdir=tmp_path) as running:
        yield running


async def serve(routes: list[web.RouteDef], stack: AsyncExitStack) -> str:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


async def test_a_filter_maps_only_the_messages_of_a_mixed_event_array(peer: GenericPeer) -> None:
    platform = generic_platform(peer)
    platform["inbound"] = MIXED_MAPPING
    settings = GenericChannelSettings.model_validate({"platforms": {PLATFORM: platform}})
    unmatched: list[Reply] = []

    async def on_unmatched(reply: Reply) -> None:
        unmatched.append(reply)

    services = ChannelServices(logging.getLogger("cxprobe.test.generic"), on_unmatched)
    channel = GenericChannel(settings, services)
    page = peer.settings.page_id
    address = GenericAddress(platform=PLATFORM, recipient=page, sender=PROBE)
    async with AsyncExitStack() as stack:
        await channel.start(stack, [address])
        base = await serve(services.webhooks.routes, stack)
        conversation = await channel.open(address, "CXP-7K3M9Q2XZ4")
        assert isinstance(conversation, GenericConversation)
        text = f"My bill is wrong. {conversation.token}"
        await conversation.send(Contact(conversation.token, "", text, "Alex"))

        body = json.dumps(mixed_event(page, conversation.token)).encode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{base}{WEBHOOK_PREFIX}/{PLATFORM}",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: hub_signature(peer.settings.app_secret, body),
                },
            ) as response,
        ):
            assert response.status == 200, await response.text()

        async with asyncio.timeout(WAIT):
            reply = await anext(aiter(conversation.replies()))
        await conversation.close()
    assert reply.external_id == f"{PLATFORM}:m-1"
    assert reply.text == "Sam here, from Billing: let me look."
    assert reply.sender == page
    assert reply.headers == {"Author": "Sam"}
    assert reply.timing_method == "platform-timestamp"
    # Statuses, typing and the customer's own message were filtered out, not handed on.
    assert [r.external_id for r in conversation.received] == [f"{PLATFORM}:m-1"]
    assert unmatched == []


@pytest.mark.parametrize(
    ("path", "document", "expected"),
    [
        # The paths the shipped configs and the tests used before RFC 9535: same answers.
        ("$.message.text", {"message": {"text": "hi"}}, "hi"),
        ("$.entry[*].messaging[*]", {"entry": [{"messaging": [{"a": 1}, {"a": 2}]}]}, {"a": 1}),
        ("$['key with spaces']", {"key with spaces": 3}, 3),
        ("$.items[-1]", {"items": [1, 2, 3]}, 3),
        ("$.thread-id", {"thread-id": "t"}, "t"),
        ("$.missing.key", {"message": {}}, None),
        ("$[0]", {"0": "not an array"}, None),
        # What the subset could not say.
        ("$.events[?@.type == 'message'].id", {"events": [{"type": "read"}, {"type": "message", "id": 7}]}, 7),  # noqa: E501
        ("$..mid", {"entry": [{"messaging": [{"message": {"mid": "m_1"}}]}]}, "m_1"),
        ("$.events[?match(@.kind, 'msg|message')].id", {"events": [{"kind": "msg", "id": 1}]}, 1),
    ],
)  # fmt: skip
def test_rfc_9535_paths_select_what_configs_expect(path: str, document: Any, expected: Any) -> None:
    assert first_value(compile_path(path), document) == expected


@pytest.mark.parametrize(
    ("path", "position", "reason"),
    [
        ("message.text", 0, "expected 'TOKEN_ROOT'"),
        ("$.events[?@.type = 'message']", 17, "unexpected token '='"),
        ("$.a[", 4, "unexpected end of query"),
        ("$.a | $.b", 4, "unexpected token '|'"),
    ],
)
def test_an_invalid_path_names_its_position_and_reason(
    path: str, position: int, reason: str
) -> None:
    with pytest.raises(ValueError) as raised:
        compile_path(path)
    message = str(raised.value)
    assert message.startswith(f"JSONPath {path!r} is not valid RFC 9535 at position {position} (")
    assert reason in message
    assert "\n" not in message
