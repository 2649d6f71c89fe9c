"""The web-chat channel in real headless Chromium (Debian's) against the sandbox chat site.

Timings are checked against the site's ground truth: the instant the server received the
customer's message and the instant it wrote each answer to the WebSocket. Faults (a widget that
never appears, a selector out of date) must each become a recorded outcome with a reason, and
the next run must succeed; the browser killed mid-chat is the fault suite's
(tests/faults/test_chromium_crash.py).

The plain page's whole run, misrouting, after hours, a page answering 500, restarts and the
deadline are the contract suite's (tests/contract), as for every channel; here are the widget
variants (iframes, shadow DOM) and the faults only a browser has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import load_config
from probes.base import ChannelServices, Contact, Reply, Responder
from probes.webchat.channel import WEBCHAT, page_time
from probes.webchat.settings import DEBIAN_CHROMIUM, WebchatAddress, WebchatChannelSettings
from sandbox.chat.site import ChatSite
from sandbox.profile import Profile
from scenarios.model import Outcome, Period, RoutingResult, RunResult
from tests.support import chat_site_profile, run_evidence_kinds, sandbox_widget, webchat_config

#: Bound on the timing error against the page's own truth (the widget's send handler and its
#: insertion of each message, stamped in the page): the observer stamps in the same task, so
#: only a descheduled renderer between the two stamps can part them, even on a loaded machine.
ACCURACY_SECONDS = 0.020
#: Page and server read one host clock; this allows for its coarsening in the page. The server's
#: times are checked for order only: how long the socket and a busy site take is not the
#: probe's error (BENCHMARKS.md measures it).
CLOCK_TOLERANCE_SECONDS = 0.005
TOKEN = "CXP-7K3M9Q2XZ4"


@pytest.fixture(autouse=True)
def _chromium() -> None:
    if not DEBIAN_CHROMIUM.exists():
        raise AssertionError(
            f"{DEBIAN_CHROMIUM} is missing: run scripts/install-system-deps.sh (make test does)"
        )


@asynccontextmanager
async def chat_site(tmp_path: Path, open_now: bool = True, **chat: Any) -> AsyncIterator[ChatSite]:
    profile = Profile.model_validate(chat_site_profile(open_now, **chat))
    async with ChatSite(profile, tmp_path / "site") as site:
        yield site


@asynccontextmanager
async def monitoring(
    tmp_path: Path, widget: dict[str, Any], **config: Any
) -> AsyncIterator[Monitor]:
    path = webchat_config(tmp_path, widget, **config)
    async with open_monitor(
        load_config(path), logging.getLogger("cxprobe.test"), serve_http=False
    ) as monitor:
        yield monitor


async def run_once(monitor: Monitor) -> RunResult:
    check = monitor.config.checks[0]
    result = await monitor.runner.execute(check, datetime.now(UTC))
    assert result is not None
    return result


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


def session_truth(site: ChatSite, token: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The customer's message as the server received it, and the answers it wrote after."""
    events = [e for e in site.ground_truth() if e.get("token") == token]
    (received,) = [e for e in events if e["event"] == "received"]
    answers = [e for e in events if e["event"] == "reply_sent" and at(e) >= at(received)]
    return received, answers


# -- the channel on its own: timing against the ground truth --------------------------------


async def test_bot_handoff_and_human_answer_timed_against_the_page_truth(tmp_path: Path) -> None:
    async with chat_site(tmp_path) as site, AsyncExitStack() as stack:
        channel = WEBCHAT.create(WebchatChannelSettings(), _services())
        await channel.start(stack)
        address = WebchatAddress.model_validate(sandbox_widget(site.url("/")))
        conversation = await channel.open(address, TOKEN)
        contact = Contact(
            token=TOKEN,
            subject="",
            text=f"Why is my invoice higher this month? Ref {TOKEN}\n",
            sender_name="Alex Morgan",
        )
        sent = await conversation.send(contact)
        replies: list[Reply] = []
        async with asyncio.timeout(10):
            async for reply in conversation.replies():
                replies.append(reply)
                if reply.responder is Responder.HUMAN:
                    break
        page_truth = await conversation._live_page().evaluate("window.acmeChatTruth")
        evidence = await conversation.close()
    received, answers = session_truth(site, TOKEN)
    tolerance = timedelta(seconds=CLOCK_TOLERANCE_SECONDS)
    assert sent.at <= at(received) + tolerance  # the click precedes the server's receipt
    assert [r.responder for r in replies] == [Responder.BOT, Responder.AUTO, Responder.HUMAN]
    assert [a["responder"] for a in answers[:3]] == ["bot", "system", "agent"]
    (page_sent,) = [e for e in page_truth if e["event"] == "sent"]
    inserted = [e for e in page_truth if e["event"] == "inserted" and e["at"] >= page_sent["at"]]
    assert abs((sent.at - page_time(page_sent["at"])).total_seconds()) < ACCURACY_SECONDS
    for reply, truth, in_page in zip(replies, answers, inserted, strict=True):
        assert reply.arrived_at >= at(truth) - tolerance  # rendered after the server wrote it
        measured = (reply.arrived_at - sent.at).total_seconds()
        actual = (page_time(in_page["at"]) - page_time(page_sent["at"])).total_seconds()
        assert abs(measured - actual) < ACCURACY_SECONDS, (reply.text, measured, actual)
        assert reply.text == truth["text"] == in_page["text"]
        assert reply.timing_method == "page-mutation-observer"
    bot, handoff, human = replies
    assert bot.sender == "Acme Assistant"
    assert handoff.headers["Chat-Event"] == "handoff"
    assert human.headers["Team"] == "Billing team"
    assert human.sender == answers[2]["agent"]
    kinds = [piece.kind for piece in evidence]
    assert kinds == ["transcript", "screenshot"]
    transcript = evidence[0].content.decode()
    assert TOKEN in transcript and "now chatting with" in transcript
    assert evidence[1].media_type == "image/jpeg"
    assert evidence[1].content.startswith(b"\xff\xd8\xff")  # JPEG, clipped to the widget


# -- whole runs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "frame"),
    [
        ("/iframe-same", "#support-chat"),
        ("/iframe-cross", "#support-chat"),
        ("/shadow", None),
    ],
    ids=["same-origin-iframe", "cross-origin-iframe", "open-shadow-dom"],
)
async def test_widget_variants_are_driven_by_config_alone(
    tmp_path: Path, path: str, frame: str | None
) -> None:
    async with chat_site(tmp_path) as site:
        widget = sandbox_widget(site.url(path), frame=frame)
        async with monitoring(tmp_path, widget) as monitor:
            result = await run_once(monitor)
            artifacts = await monitor.store.artifacts(result.run_id)
            stored = await monitor.store.messages(result.run_id)
    assert result.outcome is Outcome.MET, result.reason
    assert result.period is Period.BUSINESS
    assert [r.responder for r in result.replies] == [
        Responder.BOT,
        Responder.AUTO,
        Responder.HUMAN,
    ]
    assert (result.routed_queue, result.routing) == ("billing", RoutingResult.CORRECT)
    received, answers = session_truth(site, result.token)
    human_truth = next(a for a in answers if a["responder"] == "agent")
    expected = (at(human_truth) - at(received)).total_seconds()
    assert result.first_human_seconds is not None
    assert abs(result.first_human_seconds - expected) < ACCURACY_SECONDS
    run_level = {a.kind for a in artifacts if a.message_id is None}
    assert run_level == run_evidence_kinds(result, "transcript", "screenshot")
    assert stored[0].direction == "out" and result.token in stored[0].text
    # The chat was ended politely through the widget.
    ended = [e for e in site.ground_truth() if e["event"] == "session_ended"]
    assert [e["reason"] for e in ended] == ["customer_ended"]


async def test_after_hours_without_a_bot_is_breached(tmp_path: Path) -> None:
    async with chat_site(tmp_path, open_now=False, outage=True) as site:
        widget = sandbox_widget(site.url("/"))
        sla = {"after_hours_response": "1s", "deadline": "2s"}
        async with monitoring(tmp_path, widget, open_now=False, sla=sla) as monitor:
            result = await run_once(monitor)
    assert result.period is Period.AFTER_HOURS
    assert result.outcome is Outcome.BREACHED
    assert result.replies == []


# -- faults: each a recorded outcome, and the next run succeeds ------------------------------


async def test_missing_widget_is_an_error_naming_the_step(tmp_path: Path) -> None:
    async with chat_site(tmp_path, widget_missing=True) as site:
        widget = sandbox_widget(site.url("/"))
        async with monitoring(tmp_path, widget, browser={"step_timeout": 1}) as monitor:
            failed = await run_once(monitor)
            site.set_widget_missing(False)
            recovered = await run_once(monitor)
    assert failed.outcome is Outcome.ERROR
    assert "launcher '#chat-launcher'" in failed.reason
    assert "nothing matched within 1s" in failed.reason
    assert recovered.outcome is Outcome.MET, recovered.reason


async def test_selector_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    async with chat_site(tmp_path) as site:
        widget = sandbox_widget(site.url("/"), input="#no-such-box")
        async with monitoring(tmp_path, widget, browser={"step_timeout": 1}) as monitor:
            result = await run_once(monitor)
    assert result.outcome is Outcome.ERROR
    assert "'#no-such-box'" in result.reason


async def test_dialog_on_load_is_dismissed_and_noted(tmp_path: Path) -> None:
    async with (
        chat_site(tmp_path, alert_on_load=True) as site,
        monitoring(tmp_path, sandbox_widget(site.url("/"))) as monitor,
    ):
        result = await run_once(monitor)
        artifacts = await monitor.store.artifacts(result.run_id)
        (transcript,) = [a for a in artifacts if a.kind == "transcript"]
        text = (await monitor.store.artifact_content(transcript.id) or b"").decode()
    assert result.outcome is Outcome.MET, result.reason
    assert "dismissed a alert dialog: Sign up for our newsletter!" in text


def _services() -> ChannelServices:
    async def unmatched(reply: Reply) -> None:
        raise AssertionError(f"unexpected unmatched reply {reply}")

    return ChannelServices(logger=logging.getLogger("cxprobe.test.webchat"), on_unmatched=unmatched)


async def test_brand_selector_out_of_date_is_an_error_not_a_breach(tmp_path: Path) -> None:
    async with chat_site(tmp_path) as site:
        messages = {**sandbox_widget("")["messages"], "brand": ".msg--nobody"}
        widget = sandbox_widget(site.url("/"), messages=messages)
        async with monitoring(tmp_path, widget) as monitor:
            result = await run_once(monitor)
    assert result.outcome is Outcome.ERROR
    assert "messages.brand ('.msg--nobody') no longer matches" in result.reason


async def test_fonts_are_blocked_in_the_browser_and_block_list_can_allow_them(
    tmp_path: Path,
) -> None:
    fetch_font = "fetch('/static/missing.woff2').then((r) => r.status, () => 'blocked')"
    async with chat_site(tmp_path) as site, AsyncExitStack() as stack:
        channel = WEBCHAT.create(WebchatChannelSettings(), _services())
        await channel.start(stack)
        outcomes = []
        for block in (None, []):
            widget = sandbox_widget(site.url("/"))
            if block is not None:
                widget["block"] = block
            conversation = await channel.open(WebchatAddress.model_validate(widget), TOKEN)
            page = conversation._live_page()
            await page.goto(site.url("/"))
            outcomes.append(await page.evaluate(fetch_font))
            await conversation.close()
    assert outcomes == ["blocked", 404]
