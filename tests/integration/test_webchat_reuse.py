"""Warm browser contexts (``browser.reuse_contexts``) in real Chromium against the sandbox chat
site, whose widget remembers a browser the way real widgets do: a visitor id in localStorage
and a cookie, the conversation so far in sessionStorage, shown again on a reload.

A reused context must start a new widget session (the site sees another visitor, no earlier
transcript shows), and a context whose chat failed or whose page crashed must be closed, not
lent to the next chat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from probes.base import (
    ChannelServices,
    ChannelUnavailable,
    Contact,
    Reply,
    Responder,
    new_token,
)
from probes.webchat.channel import WEBCHAT, WebchatChannel, WebchatConversation
from probes.webchat.settings import DEBIAN_CHROMIUM, WebchatAddress, WebchatChannelSettings
from sandbox.chat.site import ChatSite
from sandbox.profile import Profile
from tests.support import chat_site_profile, sandbox_widget

AGAIN = new_token()
CRASH = new_token()
FAILED = new_token()
FIRST = new_token()
NEXT = new_token()
OTHER = new_token()
SECOND = new_token()

STORED = """() => ({
  visitor: localStorage.getItem("acme-visitor"),
  transcript: JSON.parse(sessionStorage.getItem("acme-transcript") || "[]").length,
  cookie: document.cookie,
  restored: document.querySelectorAll("[data-restored]").length,
  name: window.name,
  history: history.length,
})"""


@pytest.fixture(autouse=True)
def _chromium() -> None:
    if not DEBIAN_CHROMIUM.exists():
        raise AssertionError(
            f"{DEBIAN_CHROMIUM} is missing: run scripts/install-system-deps.sh (make test does)"
        )


@asynccontextmanager
async def site_and_channel(
    tmp_path: Path, **browser: Any
) -> AsyncIterator[tuple[ChatSite, WebchatChannel]]:
    profile = Profile.model_validate(chat_site_profile(True))
    async with ChatSite(profile, tmp_path / "site") as site, AsyncExitStack() as stack:
        settings = WebchatChannelSettings.model_validate({"browser": browser})
        channel = WEBCHAT.create(settings, _services())
        await channel.start(stack)
        yield site, channel


def _services() -> ChannelServices:
    async def unmatched(reply: Reply) -> None:
        raise AssertionError(f"unexpected unmatched reply {reply}")

    return ChannelServices(logging.getLogger("cxprobe.test.webchat"), unmatched)


def _contact(token: str) -> Contact:
    return Contact(
        token=token, subject="", text=f"Why is my invoice higher? Ref {token}", sender_name="Alex"
    )


async def _chat_until_human(conversation: WebchatConversation, token: str) -> None:
    await conversation.send(_contact(token))
    async with asyncio.timeout(15):
        async for reply in conversation.replies():
            if reply.responder is Responder.HUMAN:
                return


def _visitor_of(site: ChatSite, token: str) -> str | None:
    (started,) = [
        e for e in site.ground_truth() if e["event"] == "session_started" and e["token"] == token
    ]
    visitor: str | None = started["visitor_id"]
    return visitor


async def test_a_reused_context_starts_a_new_widget_session(tmp_path: Path) -> None:
    async with site_and_channel(tmp_path, max_contexts=1) as (site, channel):
        address = WebchatAddress.model_validate(sandbox_widget(site.url("/")))
        first = await channel.open(address, FIRST)
        await _chat_until_human(first, FIRST)
        page = first._live_page()
        await page.evaluate("window.name = 'left by the first chat'")
        remembered = await page.evaluate(STORED)
        await first.close()
        second = await channel.open(address, SECOND)
        assert second._live_page() is page  # the same tab, lent again
        await _chat_until_human(second, SECOND)
        fresh = await second._live_page().evaluate(STORED)
        health = channel.health()
        await second.close()
    # The first chat left a visitor id, a cookie and a transcript in the tab...
    assert remembered["visitor"] and remembered["transcript"] >= 4
    assert f"acme-visitor={remembered['visitor']}" in remembered["cookie"]
    # ... and the second started clean: a new visitor, nothing restored, no history.
    first_visitor = _visitor_of(site, FIRST)
    second_visitor = _visitor_of(site, SECOND)
    assert first_visitor == remembered["visitor"]
    assert second_visitor and second_visitor != first_visitor
    assert fresh["visitor"] == second_visitor
    assert fresh["restored"] == 0
    assert fresh["name"] == ""
    assert fresh["history"] == 2  # about:blank, then the chat page
    assert health["contexts_reused"] == 1


async def test_without_clearing_the_widget_remembers_the_visitor(tmp_path: Path) -> None:
    """The control for the test above: the same tab reloaded as it is, without the channel's
    clearing, comes back as the same visitor with the earlier transcript shown again."""
    async with site_and_channel(tmp_path, reuse_contexts=False) as (site, channel):
        address = WebchatAddress.model_validate(sandbox_widget(site.url("/")))
        conversation = await channel.open(address, FIRST)
        await _chat_until_human(conversation, FIRST)
        page = conversation._live_page()
        await page.reload()
        await page.click("#cookie-accept")
        await page.click("#chat-launcher")
        await page.fill("input[name=name]", f"Alex {AGAIN}")
        await page.fill("input[name=email]", "alex@example.test")
        await page.click("#prechat-start")
        async with asyncio.timeout(10):
            await site.wait_for(lambda e: e["event"] == "session_started" and e["token"] == AGAIN)
        again = await page.evaluate(STORED)
        await conversation.close()
    assert _visitor_of(site, AGAIN) == _visitor_of(site, FIRST)
    assert again["restored"] >= 4


async def test_a_context_whose_chat_failed_is_closed_not_reused(tmp_path: Path) -> None:
    async with site_and_channel(tmp_path, max_contexts=1, step_timeout=1) as (site, channel):
        broken = WebchatAddress.model_validate(sandbox_widget(site.url("/"), input="#no-box"))
        failed = await channel.open(broken, FAILED)
        with pytest.raises(ChannelUnavailable, match="#no-box"):
            await failed.send(_contact(FAILED))
        failed_page = failed._live_page()
        await failed.close()
        after_failure = channel.health()
        address = WebchatAddress.model_validate(sandbox_widget(site.url("/")))
        next_chat = await channel.open(address, NEXT)
        assert next_chat._live_page() is not failed_page
        await _chat_until_human(next_chat, NEXT)
        await next_chat.close()
        after_success = channel.health()
    assert failed_page.is_closed()
    assert after_failure["warm_contexts"] == 0
    assert after_success["warm_contexts"] == 1 and after_success["contexts_reused"] == 0


async def test_a_context_whose_page_crashed_is_closed_not_reused(tmp_path: Path) -> None:
    async with site_and_channel(tmp_path, max_contexts=1) as (site, channel):
        address = WebchatAddress.model_validate(sandbox_widget(site.url("/")))
        crashed = await channel.open(address, CRASH)
        await crashed.send(_contact(CRASH))
        page = crashed._live_page()
        with pytest.raises(Exception):  # noqa: B017 - navigating to it kills the renderer
            await page.goto("chrome://crash", timeout=5000)
        with pytest.raises(ChannelUnavailable, match="the chat page crashed"):
            async with asyncio.timeout(10):
                async for _ in crashed.replies():
                    pass
        await crashed.close()
        after_crash = channel.health()
        next_chat = await channel.open(address, NEXT)
        assert next_chat._live_page() is not page
        await _chat_until_human(next_chat, NEXT)
        await next_chat.close()
    assert after_crash["warm_contexts"] == 0 and after_crash["contexts_reused"] == 0


async def test_a_warm_context_serves_only_the_site_it_served(tmp_path: Path) -> None:
    async with site_and_channel(tmp_path, max_contexts=1) as (site, channel):
        here = WebchatAddress.model_validate(sandbox_widget(site.url("/")))
        elsewhere = WebchatAddress.model_validate(sandbox_widget(site.alt_url("/")))
        first = await channel.open(here, FIRST)
        await _chat_until_human(first, FIRST)
        page = first._live_page()
        await first.close()
        other = await channel.open(elsewhere, OTHER)
        other_page = other._live_page()
        await _chat_until_human(other, OTHER)
        await other.close()
        health = channel.health()
    assert other_page is not page and page.is_closed()  # closed to stay within max_contexts
    assert health["contexts_reused"] == 0 and health["warm_contexts"] == 1
