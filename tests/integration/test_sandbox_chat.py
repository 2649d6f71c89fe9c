"""The sandbox web-chat site against real peers: aiohttp's client and headless Chromium.

No mocks. Conversations run over real WebSockets on 127.0.0.1 with small fixed latencies; the
browser tests drive the widget the way the web-chat probe does, through its DOM contract.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml
from playwright.async_api import Browser, FrameLocator, Page, async_playwright, expect

from sandbox.chat.site import ChatSite
from sandbox.ground_truth import Event
from sandbox.profile import PROFILES_DIR, Profile
from tests.support import weekly

# Small fixed latencies keep every conversation well under a second.
BOT_DELAY = 0.1
HANDOFF_DELAY = 0.15
AGENT_DELAY = 0.3
TYPING_SECONDS = 0.2
EVENT_TIMEOUT = 10.0
TOKEN = "CXP-7K3M9Q2XZ4"
ISO_MICROSECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
LONDON = ZoneInfo("Europe/London")
CHROMIUM = Path("/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

Frame = dict[str, Any]


def fixed(seconds: float) -> dict[str, Any]:
    return {"distribution": "fixed", "seconds": seconds}


def chat_profile(open_now: bool | None = True, **chat: Any) -> Profile:
    """default.yaml with fast fixed latencies; open_now=None keeps its Mon-Fri office hours."""
    raw = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    if open_now is not None:
        raw["business_hours"] = weekly(open_now)
    settings = raw["chat"]
    settings["widget_delay"] = fixed(0.05)
    settings["bot"]["latency"] = fixed(BOT_DELAY)
    settings["handoff_latency"] = fixed(HANDOFF_DELAY)
    settings["typing_seconds"] = TYPING_SECONDS
    for queue in settings["queues"].values():
        queue["latency"] = fixed(AGENT_DELAY)
    settings.update(chat)
    return Profile.model_validate(raw)


def offset_to_sunday_noon() -> float:
    """Clock offset that puts the site's "now" on the next Sunday at noon, London time."""
    now = datetime.now(UTC)
    local = now.astimezone(LONDON)
    days = (6 - local.weekday()) % 7 or 7
    target = (local + timedelta(days=days)).replace(hour=12, minute=0, second=0, microsecond=0)
    return (target.astimezone(UTC) - now).total_seconds()


StartSite = Callable[..., Awaitable[ChatSite]]


@pytest.fixture
async def start_site(tmp_path: Path) -> AsyncIterator[StartSite]:
    async with AsyncExitStack() as stack:
        count = 0

        async def start(open_now: bool | None = True, **chat: Any) -> ChatSite:
            nonlocal count
            count += 1
            site = ChatSite(chat_profile(open_now, **chat), tmp_path / f"site{count}")
            return await stack.enter_async_context(site)

        yield start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class ChatClient:
    """The customer's side of one chat over aiohttp's WebSocket client."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[Frame] = []  # everything received, in order
        self.session = ""
        self._count = 0

    async def receive(self) -> Frame:
        async with asyncio.timeout(EVENT_TIMEOUT):
            frame: Frame = await self.ws.receive_json()
        self.frames.append(frame)
        return frame

    async def receive_until(self, kind: str) -> Frame:
        while (frame := await self.receive())["type"] != kind:
            pass
        return frame

    async def start(
        self, name: str = "Ann", topic: str = "", email: str = "ann@example.test"
    ) -> None:
        await self.ws.send_json({"type": "start", "name": name, "email": email, "topic": topic})
        self.session = (await self.receive_until("ready"))["session"]

    async def say(self, text: str) -> str:
        """Send a customer message; returns the server's id for it."""
        self._count += 1
        client_id = f"local-{self._count}"
        await self.ws.send_json({"type": "message", "client_id": client_id, "text": text})
        ack = await self.receive_until("ack")
        assert ack["client_id"] == client_id
        return str(ack["id"])

    async def messages(self, count: int) -> list[Frame]:
        return [await self.receive_until("message") for _ in range(count)]

    def messages_so_far(self) -> list[Frame]:
        return [frame for frame in self.frames if frame["type"] == "message"]


@pytest.fixture
async def connect(
    http: aiohttp.ClientSession,
) -> AsyncIterator[Callable[[ChatSite], Awaitable[ChatClient]]]:
    async with AsyncExitStack() as stack:

        async def open_chat(site: ChatSite) -> ChatClient:
            ws = await stack.enter_async_context(http.ws_connect(site.url("/ws")))
            return ChatClient(ws)

        yield open_chat


Connect = Callable[[ChatSite], Awaitable[ChatClient]]


async def events(site: ChatSite, count: int = 1, **match: Any) -> list[Event]:
    def matches(event: Event) -> bool:
        return all(event.get(key) == value for key, value in match.items())

    async with asyncio.timeout(EVENT_TIMEOUT):
        return await site.wait_for(matches, count)


def at(event: Event) -> datetime:
    return datetime.fromisoformat(event["at"])


# -- conversations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "topic", "queue", "label"),
    [
        ("I was charged twice, can I get a refund?", "sales", "billing", "Billing team"),
        ("The app shows an error when I try to login", "", "tech", "Technical Support"),
        ("Hello, I have a question", "tech", "tech", "Technical Support"),
        ("Hello, I have a question", "other", "sales", "Sales team"),
    ],
    ids=["keywords-beat-topic", "keywords", "topic", "default-queue"],
)
async def test_business_hours_chat_is_handed_to_the_queue_its_words_name(
    start_site: StartSite, connect: Connect, text: str, topic: str, queue: str, label: str
) -> None:
    site = await start_site()
    chat = await connect(site)
    await chat.start(topic=topic)
    [greeting] = chat.messages_so_far()
    assert (greeting["role"], greeting["author"]) == ("bot", "Acme Assistant")
    assert greeting["text"] == "Hi Ann! I'm Acme's virtual assistant. What can I do for you?"

    asked = await chat.say(text)
    handoff, joined, answer = await chat.messages(3)

    assert handoff["role"] == "bot"
    assert handoff["text"] == (
        f"Thanks, Ann. I'm passing you to our {label}; an agent will be with you shortly."
    )
    assert joined["role"] == "system"
    assert joined["author"] == "Acme Support"
    agent = joined["text"].removeprefix("You are now chatting with ").split(" ")[0]
    assert joined["text"] == f"You are now chatting with {agent} from the {label}."
    assert joined["team_label"] == label
    assert (answer["role"], answer["author"]) == ("agent", agent)
    assert answer["text"].startswith(f"Hi Ann, {agent} here from the {label}. ")
    typing = [f for f in chat.frames if f["type"] == "typing"]
    assert typing == [{"type": "typing", "author": agent, "on": True}]
    assert chat.frames.index(typing[0]) > chat.frames.index(joined), "typing before joining"

    [received] = await events(site, event="received", message_id=asked)
    assert received["planned"] == ["bot", "system", "agent"]
    [handed] = await events(site, event="handoff", session=chat.session)
    assert (handed["queue"], handed["intended_queue"], handed["agent"]) == (queue, queue, agent)
    assert handed["misrouted"] is False


async def test_misrouted_chat_is_joined_by_another_team_than_the_bot_announced(
    start_site: StartSite, connect: Connect, http: aiohttp.ClientSession
) -> None:
    site = await start_site()
    async with http.post(site.url("/_control/misroute_rate"), json={"rate": 1.0}) as response:
        assert response.status == 200
        assert (await response.json())["misroute_rate"] == 1.0
    chat = await connect(site)
    await chat.start()
    await chat.say(f"Please refund my last invoice {TOKEN}")
    handoff, joined, answer = await chat.messages(3)

    assert "our Billing team;" in handoff["text"]
    assert joined["team_label"] != "Billing team"
    assert joined["text"].endswith(f"from the {joined['team_label']}.")
    [handed] = await events(site, event="handoff", session=chat.session)
    assert handed["intended_queue"] == "billing"
    assert handed["queue"] in {"tech", "sales"}
    assert handed["misrouted"] is True
    [sent] = await events(site, event="reply_sent", message_id=answer["id"])
    assert (sent["queue"], sent["intended_queue"]) == (handed["queue"], "billing")


async def test_after_hours_only_the_bot_answers(start_site: StartSite, connect: Connect) -> None:
    site = await start_site(open_now=False)
    assert site.period_now() == "after_hours"
    chat = await connect(site)
    await chat.start(topic="billing")
    asked = await chat.say("Where is my refund?")
    [reply] = await chat.messages(1)

    assert reply["role"] == "bot"
    assert reply["text"].startswith("Our agents are available Monday to Friday")
    assert "I've noted your message, Ann;" in reply["text"]
    [received] = await events(site, event="received", message_id=asked)
    assert (received["period"], received["planned"]) == ("after_hours", ["bot"])
    [sent] = await events(site, event="reply_sent", in_reply_to=asked)
    assert (sent["responder"], sent["period"], sent["queue"]) == ("bot", "after_hours", None)
    # A second message is answered the same way: there is never a hand-off after hours.
    again = await chat.say("Hello?")
    [second] = await chat.messages(1)
    assert second["text"] == reply["text"]
    [received] = await events(site, event="received", message_id=again)
    assert received["planned"] == ["bot"]


async def test_clock_offset_moves_the_site_out_of_business_hours(
    start_site: StartSite, connect: Connect, http: aiohttp.ClientSession
) -> None:
    site = await start_site(open_now=None)  # Mon-Fri 09:00-17:30, London
    offset = offset_to_sunday_noon()
    async with http.post(site.url("/_control/clock"), json={"offset_seconds": offset}) as response:
        state = await response.json()
    assert state["period"] == "after_hours"
    assert state["desk_time"].startswith(
        (datetime.now(UTC) + timedelta(seconds=offset)).astimezone(LONDON).date().isoformat()
    )
    chat = await connect(site)
    await chat.start()
    await chat.say("My invoice is wrong")
    [reply] = await chat.messages(1)
    assert reply["role"] == "bot"
    assert reply["text"].startswith("Our agents are available")


async def test_follow_up_messages_get_a_fresh_agent_answer(
    start_site: StartSite, connect: Connect
) -> None:
    site = await start_site()
    chat = await connect(site)
    await chat.start()
    await chat.say("I need a refund")
    *_, first = await chat.messages(3)
    asked = await chat.say("It was for order 42")
    [followup] = await chat.messages(1)

    assert (followup["role"], followup["author"]) == ("agent", first["author"])
    assert followup["text"] == "Thanks, let me look into that for you."
    [received] = await events(site, event="received", message_id=asked)
    assert received["planned"] == ["agent"]
    [sent] = await events(site, event="reply_sent", message_id=followup["id"])
    assert (at(sent) - at(received)).total_seconds() >= AGENT_DELAY - 0.01


async def test_outage_means_no_greeting_and_no_answer(
    start_site: StartSite, connect: Connect
) -> None:
    site = await start_site(outage=True)
    chat = await connect(site)
    await chat.start()
    # The greeting would have been written before `ready`.
    assert [frame["type"] for frame in chat.frames] == ["ready"]
    asked = await chat.say("Is anyone there? I need a refund")
    [received] = await events(site, event="received", message_id=asked)
    assert (received["outage"], received["planned"]) == (True, [])
    await chat.ws.send_json({"type": "end"})
    while (await chat.ws.receive()).type is aiohttp.WSMsgType.TEXT:
        pass
    assert chat.messages_so_far() == []
    await events(site, event="session_ended", session=chat.session)
    assert not [e for e in site.ground_truth() if e["event"] == "reply_sent"]


async def test_outage_during_a_chat_drops_the_pending_answers(
    start_site: StartSite, connect: Connect
) -> None:
    site = await start_site()
    chat = await connect(site)
    await chat.start()
    asked = await chat.say("I need a refund")
    site.set_outage(True)
    dropped = await events(site, 3, event="reply_dropped", in_reply_to=asked)
    assert [e["responder"] for e in dropped] == ["bot", "system", "agent"]
    assert {e["reason"] for e in dropped} == {"outage"}
    await chat.ws.close()
    await events(site, event="session_ended", session=chat.session)
    assert chat.messages_so_far() == [chat.frames[0]]  # only the greeting


# -- ground truth ------------------------------------------------------------------------------


async def test_ground_truth_records_every_message_with_its_send_time(
    start_site: StartSite, connect: Connect
) -> None:
    site = await start_site()
    chat = await connect(site)
    await chat.start(name="Bo", email="bo@example.test", topic="tech")
    before = datetime.now(UTC)
    asked = await chat.say(f"I was charged twice for one invoice, ref {TOKEN}")
    frames = chat.messages_so_far() + await chat.messages(3)
    after = datetime.now(UTC)

    [started] = await events(site, event="session_started")
    assert started["session"] == chat.session
    assert (started["name"], started["email"], started["topic"]) == (
        "Bo",
        "bo@example.test",
        "tech",
    )
    assert (started["period"], started["outage"], started["token"]) == ("business", False, None)

    [received] = await events(site, event="received")
    assert received["session"] == chat.session
    assert (received["message_id"], received["client_id"]) == (asked, "local-1")
    assert received["token"] == TOKEN
    assert received["text"] == f"I was charged twice for one invoice, ref {TOKEN}"
    assert before <= at(received) <= after

    sent = await events(site, 4, event="reply_sent")
    assert [e["message_id"] for e in sent] == [frame["id"] for frame in frames]
    for event, frame in zip(sent, frames, strict=True):
        assert ISO_MICROSECONDS.match(event["at"]), event["at"]
        assert event["at"] == frame["sent_at"]
        assert (event["session"], event["responder"], event["text"]) == (
            chat.session,
            frame["role"],
            frame["text"],
        )
    greeting, handoff, joined, answer = sent
    assert (greeting["token"], greeting["in_reply_to"]) == (None, None)
    agent = answer["agent"]
    assert agent in {"Sam", "Priya"}
    for event in (handoff, joined, answer):
        assert event["token"] == TOKEN
        assert event["in_reply_to"] == asked
        assert (event["queue"], event["intended_queue"], event["period"]) == (
            "billing",
            "billing",
            "business",
        )
    assert (handoff["agent"], joined["agent"]) == (None, agent)
    assert at(received) <= at(handoff) <= at(joined) <= at(answer) <= after
    # The documented schedule: bot, then hand-off, then the queue latency, from receipt.
    assert (at(handoff) - at(received)).total_seconds() >= BOT_DELAY - 0.01
    assert (at(joined) - at(handoff)).total_seconds() >= HANDOFF_DELAY - 0.01
    assert (at(answer) - at(received)).total_seconds() >= (
        BOT_DELAY + HANDOFF_DELAY + AGENT_DELAY - 0.01
    )

    [handed] = await events(site, event="handoff")
    assert (handed["message_id"], handed["agent"], handed["token"]) == (
        joined["message_id"],
        agent,
        TOKEN,
    )
    # The file holds the same events, one JSON object per line, flushed as they happen.
    lines = site.ground_truth_path.read_text().splitlines()
    assert len(lines) == len(site.ground_truth())


async def test_session_clean_up_when_the_customer_closes_the_socket(
    start_site: StartSite, connect: Connect
) -> None:
    slow = {
        "label": "Billing team",
        "keywords": ["refund"],
        "agents": ["Sam"],
        "latency": fixed(60),
    }
    site = await start_site(queues={"billing": slow}, default_queue="billing")
    chat = await connect(site)
    await chat.start()
    await chat.say("I need a refund")
    await chat.messages(2)  # hand-off and join; the agent's answer is a minute away
    assert site.state()["pending_replies"] == 1

    await chat.ws.close()
    [ended] = await events(site, event="session_ended")
    assert (ended["session"], ended["reason"], ended["cancelled_replies"]) == (
        chat.session,
        "socket_closed",
        1,
    )
    state = site.state()
    assert (state["open_sessions"], state["pending_replies"]) == (0, 0)


async def test_end_frame_ends_the_session_and_closes_the_socket(
    start_site: StartSite, connect: Connect
) -> None:
    site = await start_site()
    chat = await connect(site)
    await chat.start()
    await chat.ws.send_json({"type": "end"})
    async with asyncio.timeout(EVENT_TIMEOUT):
        closing = await chat.ws.receive()
    assert closing.type is aiohttp.WSMsgType.CLOSE
    [ended] = await events(site, event="session_ended")
    assert ended["reason"] == "customer_ended"


async def test_stopping_the_site_ends_open_sessions(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    profile = chat_profile(
        queues={"billing": {"label": "Billing team", "agents": ["Sam"], "latency": fixed(60)}},
        default_queue="billing",
    )
    async with ChatSite(profile, tmp_path) as site:
        ws = await http.ws_connect(site.url("/ws"))
        chat = ChatClient(ws)
        await chat.start()
        await chat.say("hello")
        await chat.messages(2)  # hand-off and join; the agent's answer is a minute away
        closing = asyncio.create_task(ws.receive())  # answers the close handshake
    assert (await closing).type is aiohttp.WSMsgType.CLOSE
    await ws.close()
    assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    log = site.ground_truth_path.read_text()
    assert '"reason": "site_stopped"' in log
    assert '"cancelled_replies": 1' in log


async def test_bad_frames_get_an_error_frame(start_site: StartSite, connect: Connect) -> None:
    site = await start_site()
    chat = await connect(site)
    await chat.ws.send_json({"type": "message", "text": "hi"})
    assert (await chat.receive())["text"] == "send a start frame before messages"
    await chat.ws.send_str("not json")
    assert (await chat.receive())["type"] == "error"
    await chat.ws.send_json({"type": "start", "name": " "})
    assert (await chat.receive())["text"] == "start needs a non-empty 'name'"
    await chat.start()
    await chat.ws.send_json({"type": "dance"})
    assert (await chat.receive())["text"].startswith("unknown frame type 'dance'")


# -- pages and control API -------------------------------------------------------------------


async def test_pages_serve_every_widget_variant(
    start_site: StartSite, http: aiohttp.ClientSession
) -> None:
    site = await start_site()
    pages: dict[str, str] = {}
    for path in ("/", "/iframe-same", "/iframe-cross", "/widget", "/shadow"):
        async with http.get(site.url(path)) as response:
            assert response.status == 200, path
            assert response.content_type == "text/html"
            pages[path] = await response.text()
    for path in ("/", "/widget", "/shadow"):
        assert 'id="acme-chat-config">{"widget": true, "widget_delay_ms": 50' in pages[path]
        assert 'id: "cookie-accept"' in pages[path]
    assert (
        '<iframe id="support-chat" title="Chat with Acme Support" src="/widget">'
        in pages["/iframe-same"]
    )
    assert (
        f'<iframe id="support-chat" title="Chat with Acme Support" src="{site.alt_url("/widget")}">'
        in pages["/iframe-cross"]
    )
    assert 'attachShadow({ mode: "open" })' in pages["/shadow"]
    assert "<acme-chat></acme-chat>" in pages["/shadow"]
    assert "window.alert" not in "".join(pages.values())
    # Seen from the second origin, the cross-origin iframe points back at the first.
    async with http.get(site.alt_url("/iframe-cross")) as response:
        assert f'src="{site.url("/widget")}"' in await response.text()


async def test_page_switches(start_site: StartSite, http: aiohttp.ClientSession) -> None:
    site = await start_site()
    for name in ("page_error", "widget_missing", "alert_on_load"):
        async with http.post(site.url(f"/_control/{name}"), json={"on": True}) as response:
            assert (await response.json())[name] is True
    for path in ("/", "/iframe-same", "/iframe-cross", "/widget", "/shadow"):
        async with http.get(site.url(path)) as response:
            assert response.status == 500, path
            assert response.content_type == "text/plain"
    async with http.get(site.url("/_control/state")) as response:
        assert response.status == 200

    site.set_page_error(False)
    async with http.get(site.url("/")) as response:
        page = await response.text()
    assert response.status == 200
    assert '{"widget": false' in page
    assert 'window.alert("Sign up for our newsletter!")' in page


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("outage", {"on": "yes"}, 'expected {"on": true} or {"on": false}'),
        ("page_error", [], "body must be a JSON object"),
        ("misroute_rate", {"rate": 2}, "rate must be between 0 and 1, not 2.0"),
        ("misroute_rate", {"rate": True}, 'expected {"rate": <number>}'),
        ("clock", {"offset_seconds": "1h"}, 'expected {"offset_seconds": <number>}'),
    ],
)
async def test_control_api_rejects_bad_bodies(
    start_site: StartSite, http: aiohttp.ClientSession, path: str, body: Any, message: str
) -> None:
    site = await start_site()
    async with http.post(site.url(f"/_control/{path}"), json=body) as response:
        assert response.status == 400
        assert await response.text() == message


async def test_control_api_serves_state_and_ground_truth(
    start_site: StartSite, connect: Connect, http: aiohttp.ClientSession
) -> None:
    site = await start_site()
    chat = await connect(site)
    await chat.start()
    async with http.get(site.url("/_control/state")) as response:
        state = await response.json()
    assert state["open_sessions"] == 1
    assert (state["url"], state["alt_url"]) == (site.url(), site.alt_url())
    async with http.get(site.alt_url("/_control/ground-truth")) as response:
        truth = await response.json()
    assert [e["event"] for e in truth] == ["session_started", "reply_sent"]


# -- a real browser ----------------------------------------------------------------------------


def chromium() -> str:
    """Debian's Chromium; fails (never skips) when it is missing. Never `playwright install`."""
    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing: run scripts/install-system-deps.sh")
    return str(CHROMIUM)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        await playwright.stop()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def start_chat(widget: Page | FrameLocator, message: str) -> None:
    """What the probe does: consent, launcher, pre-chat form, then one message."""
    await widget.locator("#cookie-accept").click()
    await widget.locator("#chat-launcher").click()
    form = widget.locator("#prechat")
    await form.locator("input[name=name]").fill("Ann")
    await form.locator("input[name=email]").fill("ann@example.test")
    await form.locator("select[name=topic]").select_option("other")
    await widget.locator("#prechat-start").click()
    await expect(widget.locator("#chat-send")).to_be_enabled()
    await widget.locator("#chat-input").fill(message)
    await widget.locator("#chat-input").press("Enter")


@pytest.mark.parametrize("path", ["/", "/iframe-same", "/iframe-cross", "/shadow"])
async def test_browser_chat_in_every_variant(start_site: StartSite, page: Page, path: str) -> None:
    site = await start_site()
    await page.goto(site.url(path))
    widget: Page | FrameLocator = page.frame_locator("#support-chat") if "iframe" in path else page
    await start_chat(widget, f"Please refund my invoice {TOKEN}")

    messages = widget.locator("ol.messages > li.msg")
    await expect(widget.locator(".msg--agent")).to_have_count(1)
    await expect(widget.locator(".team-label")).to_have_text("Billing team")
    await expect(messages).to_have_count(5)
    roles = [await li.get_attribute("class") for li in await messages.all()]
    assert roles == [
        "msg msg--bot",
        "msg msg--customer",
        "msg msg--bot",
        "msg msg--system",
        "msg msg--agent",
    ]
    greeting, customer, handoff, _, agent = await messages.all()
    await expect(greeting.locator(".badge-bot")).to_have_text("Bot")
    await expect(greeting.locator(".msg-author")).to_have_text("Acme Assistant")
    await expect(customer.locator(".msg-author")).to_have_text("Ann")
    await expect(customer.locator(".msg-text")).to_have_text(f"Please refund my invoice {TOKEN}")
    await expect(handoff.locator(".msg-text")).to_contain_text("our Billing team;")
    await expect(agent.locator(".badge-bot")).to_have_count(0)
    await expect(agent.locator(".msg-time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    await expect(widget.locator("li.typing")).to_have_count(0)
    # Every rendered message carries the server's id, the customer's one after the ack.
    [received] = await events(site, event="received")
    await expect(customer).to_have_attribute("data-msg-id", received["message_id"])
    sent = await events(site, 4, event="reply_sent")
    [agent_sent] = [e for e in sent if e["responder"] == "agent"]
    await expect(agent).to_have_attribute("data-msg-id", agent_sent["message_id"])
    await expect(agent.locator(".msg-author")).to_have_text(agent_sent["agent"])


async def test_browser_cookie_banner_covers_the_launcher_until_accepted(
    start_site: StartSite, page: Page
) -> None:
    site = await start_site()
    await page.goto(site.url("/"))
    launcher = page.locator("#chat-launcher")
    await expect(launcher).to_be_visible()
    hit = """launcher => {
        const box = launcher.getBoundingClientRect();
        const x = box.left + box.width / 2, y = box.top + box.height / 2;
        const top = document.elementFromPoint(x, y);
        return top.closest("#cookie-banner") ? "banner" : top.id;
    }"""
    assert await launcher.evaluate(hit) == "banner"
    await page.locator("#cookie-accept").click()
    await expect(page.locator("#cookie-banner")).to_have_count(0)
    assert await launcher.evaluate(hit) == "chat-launcher"


async def test_browser_typing_indicator_and_ending_the_chat(
    start_site: StartSite, page: Page
) -> None:
    site = await start_site()
    await page.goto(site.url("/"))
    # The indicator can come and go between two polls of a locator (which back off up to
    # 500 ms, longer on a loaded machine): record it in the page, as it is inserted.
    await page.evaluate(
        """() => {
            window.typingSeen = [];
            new MutationObserver((records) => {
                for (const record of records) {
                    for (const node of record.addedNodes) {
                        if (node instanceof Element && node.matches("li.typing")) {
                            window.typingSeen.push(node.textContent);
                        }
                    }
                }
            }).observe(document.body, { childList: true, subtree: true });
        }"""
    )
    await start_chat(page, "I need a refund")
    await expect(page.locator(".msg--agent")).to_have_count(1)
    seen = await page.evaluate("window.typingSeen")
    assert len(seen) == 1, seen
    assert re.fullmatch(r"\w+ is typing…", seen[0]), seen
    await expect(page.locator("li.typing")).to_have_count(0)

    await page.locator("#chat-end").click()
    await page.locator("#chat-end-confirm").click()
    await expect(page.locator(".msg--system").last).to_contain_text("Chat ended. Thank you!")
    await expect(page.locator("#chat-send")).to_be_disabled()
    [ended] = await events(site, event="session_ended")
    assert ended["reason"] == "customer_ended"


async def test_browser_alert_on_load(start_site: StartSite, page: Page) -> None:
    site = await start_site(alert_on_load=True)
    async with page.expect_event("dialog") as dialog_info:
        await page.goto(site.url("/"))
    dialog = await dialog_info.value
    assert (dialog.type, dialog.message) == ("alert", "Sign up for our newsletter!")
    await dialog.dismiss()


async def test_browser_widget_missing_shows_no_launcher(start_site: StartSite, page: Page) -> None:
    site = await start_site(widget_missing=True)
    async with page.expect_console_message(lambda m: m.text.startswith("acme-chat:")) as console:
        await page.goto(site.url("/"))
    assert (await console.value).text == "acme-chat: widget unavailable"
    await expect(page.locator("#cookie-banner")).to_be_visible()
    await expect(page.locator("#chat-launcher")).to_have_count(0)
