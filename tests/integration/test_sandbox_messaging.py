"""SMS and WhatsApp on the Twilio sandbox, driven by Twilio's own Python library.

The client is the real `twilio` package (async API) redirected to the sandbox; a local aiohttp
app plays the monitor's numbers and checks every X-Twilio-Signature with the package's
RequestValidator, so a parameter or signature the real library would not accept fails here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from sandbox.clock import WeeklyHours
from sandbox.messaging_profile import MessagingSettings
from sandbox.twilio.server import TwilioSandbox
from tests.integration.test_sandbox_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    BASIC_AUTH,
    SandboxHttpClient,
)
from tests.integration.test_sandbox_twilio import settings as twilio_settings

SMS_LINE = "+442071234568"
WHATSAPP_LINE = "whatsapp:+442071234569"
PROBE = "+15005550006"
PROBE_WHATSAPP = f"whatsapp:{PROBE}"
TOKEN = "CXP-7K3M9Q2XZ4"
BILL_TEMPLATE = "HX" + "0123456789abcdef" * 2
BOT_TEXT = "Thanks for your message! An agent will reply shortly."
CLOSED_TEXT = "We're closed; we'll reply when we reopen."
WINDOW_ERROR = (
    "Failed to send freeform message because you are outside the allowed window. If you want "
    "to send messages outside the window, please use a Message Template."
)
WAIT = 10.0  # seconds any single test step may take before the test fails
AGENT_SECONDS = 0.4


def messaging(**overrides: Any) -> MessagingSettings:
    """Both lines, fast fixed delays: delivered after 0.1 s, bot at 0.1 s, agents at 0.4 s."""
    fast = {"distribution": "fixed", "seconds": AGENT_SECONDS}
    profile: dict[str, Any] = {
        "sms": {"address": SMS_LINE},
        "whatsapp": {"address": WHATSAPP_LINE, "profile_name": "Acme"},
        "templates": {BILL_TEMPLATE: "Hi, I have a question about my bill. Ref {{1}}"},
        "delivery": {
            step: {"distribution": "fixed", "seconds": 0.03}
            for step in ("sending", "sent", "delivered")
        },
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
            "tech": {"label": "Tech", "keywords": ["login"], "agents": ["Jo"], "latency": fast},
            "sales": {"label": "Sales", "agents": ["Al"], "latency": fast},
        },
        "default_queue": "sales",
    }
    profile.update(overrides)
    return MessagingSettings.model_validate(profile)


@dataclass
class Posted:
    path: str
    params: dict[str, str]
    received_at: datetime
    signature_valid: bool


@dataclass
class Phone:
    """The monitor's numbers: their messaging webhook (/sms) and status callbacks (/status)."""

    base_url: str = ""
    posts: list[Posted] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def seen(self, path: str) -> list[Posted]:
        return [p for p in self.posts if p.path == path]

    def add(self, post: Posted) -> None:
        self.posts.append(post)
        arrived, self.arrived = self.arrived, asyncio.Event()
        arrived.set()

    async def wait_for(self, path: str, count: int = 1) -> list[Posted]:
        async with asyncio.timeout(WAIT):
            while len(self.seen(path)) < count:
                await self.arrived.wait()
        return self.seen(path)


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    monitor = Phone()
    validator = RequestValidator(AUTH_TOKEN)

    async def record(request: web.Request) -> web.Response:
        params = {k: str(v) for k, v in (await request.post()).items()}
        valid = validator.validate(
            str(request.url), params, request.headers.get("X-Twilio-Signature", "")
        )
        monitor.add(Posted(request.path, params, datetime.now(UTC), valid))
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.add_routes([web.post("/sms", record), web.post("/status", record)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    monitor.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield monitor
    finally:
        await runner.cleanup()


@dataclass
class Twilio:
    sandbox: TwilioSandbox
    client: Client


async def open_twilio(
    tmp_path: Path, settings: MessagingSettings, **kwargs: Any
) -> AsyncIterator[Twilio]:
    async with TwilioSandbox(
        twilio_settings(), workdir=tmp_path / "twilio", messaging=settings, **kwargs
    ) as sandbox:
        http = SandboxHttpClient(sandbox.base_url)
        try:
            yield Twilio(sandbox, Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http))
        finally:
            await http.close()


@pytest.fixture
async def twilio(tmp_path: Path) -> AsyncIterator[Twilio]:
    async for running in open_twilio(tmp_path, messaging()):
        yield running


def event(name: str, **match: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == name and all(e.get(k) == v for k, v in match.items())


async def truth(twilio: Twilio, name: str, count: int = 1, **match: Any) -> list[dict[str, Any]]:
    async with asyncio.timeout(WAIT):
        return await twilio.sandbox.messaging.wait_for(event(name, **match), count)


def utc_second() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def test_sms_gets_bot_and_agent_replies_by_webhook_and_in_the_listing(
    twilio: Twilio, phone: Phone
) -> None:
    twilio.sandbox.messaging.set_inbound_webhook(PROBE, phone.url("/sms"))
    started = utc_second()
    body = f"Hello, a question about my bill please. Ref {TOKEN}"
    sent = await twilio.client.messages.create_async(
        to=SMS_LINE, from_=PROBE, body=body, status_callback=phone.url("/status")
    )
    assert sent.sid.startswith("SM") and len(sent.sid) == 34
    assert (sent.status, sent.direction, sent.date_sent, sent.price) == (
        "queued",
        "outbound-api",
        None,
        None,
    )
    assert (sent.body, sent.num_segments, sent.error_code) == (body, "1", None)

    bot, agent = await phone.wait_for("/sms", 2)
    assert all(p.signature_valid for p in phone.posts)
    assert bot.params["Body"] == BOT_TEXT
    assert agent.params["Body"] == (
        "Thanks for getting in touch, I'm looking into this for you now.\n— Sam, Acme Billing"
    )
    for post in (bot, agent):
        params = post.params
        assert (params["From"], params["To"]) == (SMS_LINE, PROBE)
        assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"]
        assert params["MessageSid"].startswith("SM")
        assert (params["AccountSid"], params["ApiVersion"]) == (ACCOUNT_SID, "2010-04-01")
        assert (params["NumMedia"], params["SmsStatus"]) == ("0", "received")
        assert int(params["NumSegments"]) >= 1
        assert "WaId" not in params and "ProfileName" not in params
    assert agent.params["NumSegments"] == "2"  # the em dash makes it UCS-2: 70 units a part

    (received,) = await truth(twilio, "message_received")
    assert (received["sid"], received["channel"], received["token"]) == (sent.sid, "sms", TOKEN)
    assert (received["from"], received["to"], received["body"]) == (PROBE, SMS_LINE, body)
    assert (received["queue"], received["intended_queue"], received["period"]) == (
        "billing",
        "billing",
        "business",
    )
    replies = await truth(twilio, "reply_sent", 2)
    assert [(r["responder"], r["queue"], r["agent"]) for r in replies] == [
        ("bot", None, None),
        ("agent", "billing", "Sam"),
    ]
    assert all(
        r["in_reply_to_token"] == TOKEN and r["in_reply_to_sid"] == sent.sid for r in replies
    )
    assert [r["sid"] for r in replies] == [bot.params["MessageSid"], agent.params["MessageSid"]]
    for reply, post in zip(replies, (bot, agent), strict=True):
        at = datetime.fromisoformat(reply["at"])
        assert at <= post.received_at
        since_received = (at - datetime.fromisoformat(received["at"])).total_seconds()
        expected = 0.1 if reply["responder"] == "bot" else AGENT_SECONDS
        assert expected - 0.02 <= since_received <= expected + 0.3

    # The status callbacks: sent, then delivered (none for queued and sending, like Twilio).
    callbacks = await phone.wait_for("/status", 2)
    assert [c.params["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
    assert all(c.params["MessageSid"] == sent.sid for c in callbacks)
    assert all((c.params["From"], c.params["To"]) == (PROBE, SMS_LINE) for c in callbacks)
    assert all("ErrorCode" not in c.params for c in callbacks)

    # Polling finds the same replies: newest first, over two pages of one.
    listed = await twilio.client.messages.list_async(
        to=PROBE, from_=SMS_LINE, date_sent_after=started, page_size=1
    )
    assert [m.sid for m in listed] == [agent.params["MessageSid"], bot.params["MessageSid"]]
    for message in listed:
        assert (message.direction, message.status) == ("inbound", "received")
        assert message.price is not None and message.price.startswith("-")
        assert message.date_sent is not None and message.date_sent >= started
        assert message.error_code is None and message.price_unit == "USD"
    later = await twilio.client.messages.list_async(
        to=PROBE, date_sent_after=datetime.now(UTC) + timedelta(seconds=2)
    )
    assert later == []

    fetched = await twilio.client.messages(sent.sid).fetch_async()
    assert (fetched.status, fetched.price, fetched.num_segments) == ("delivered", "-0.00790", "1")
    assert fetched.date_sent is not None
    assert twilio.sandbox.violations == []


async def test_whatsapp_freeform_outside_the_window_fails_with_63016(
    twilio: Twilio, phone: Phone
) -> None:
    twilio.sandbox.messaging.set_inbound_webhook(PROBE, phone.url("/sms"))
    freeform = await twilio.client.messages.create_async(
        to=WHATSAPP_LINE,
        from_=PROBE_WHATSAPP,
        body=f"About my bill {TOKEN}",
        status_callback=phone.url("/status"),
    )
    assert freeform.status == "queued"  # accepted: the window is checked on the way out
    (callback,) = await phone.wait_for("/status")
    assert callback.signature_valid
    params = callback.params
    assert (params["MessageStatus"], params["ErrorCode"]) == ("failed", "63016")
    assert (params["ChannelPrefix"], params["ChannelToAddress"]) == ("whatsapp", "+442071234569")
    fetched = await twilio.client.messages(freeform.sid).fetch_async()
    assert (fetched.status, fetched.error_code, fetched.error_message) == (
        "failed",
        63016,
        WINDOW_ERROR,
    )
    assert fetched.price is None
    (failed,) = await truth(twilio, "message_failed")
    assert (failed["sid"], failed["error_code"], failed["channel"]) == (
        freeform.sid,
        63016,
        "whatsapp",
    )

    with pytest.raises(TwilioRestException) as unknown:
        await twilio.client.messages.create_async(
            to=WHATSAPP_LINE,
            from_=PROBE_WHATSAPP,
            content_sid="HX" + "f" * 32,
            content_variables=json.dumps({"1": TOKEN}),
        )
    assert (unknown.value.status, unknown.value.code) == (400, 21655)
    assert "The ContentSid is Invalid" in unknown.value.msg

    template = await twilio.client.messages.create_async(
        to=WHATSAPP_LINE,
        from_=PROBE_WHATSAPP,
        content_sid=BILL_TEMPLATE,
        content_variables=json.dumps({"1": TOKEN}),
    )
    assert template.body == f"Hi, I have a question about my bill. Ref {TOKEN}"
    (received,) = await truth(twilio, "message_received")
    assert (received["sid"], received["token"], received["queue"]) == (
        template.sid,
        TOKEN,
        "billing",
    )
    assert received["content_sid"] == BILL_TEMPLATE
    bot, agent = await phone.wait_for("/sms", 2)
    for post in (bot, agent):
        assert post.signature_valid
        assert (post.params["From"], post.params["To"]) == (WHATSAPP_LINE, PROBE_WHATSAPP)
        assert (post.params["ProfileName"], post.params["WaId"]) == ("Acme", "442071234569")
        assert post.params["NumSegments"] == "1"
    assert agent.params["Body"].endswith("— Sam, Acme Billing")

    # The brand has written: the window is open, and free-form text now goes through.
    follow_up = await twilio.client.messages.create_async(
        to=WHATSAPP_LINE, from_=PROBE_WHATSAPP, body="Thanks! One more thing about the bill."
    )
    await truth(twilio, "message_received", sid=follow_up.sid)
    assert (await twilio.client.messages(follow_up.sid).fetch_async()).status == "delivered"
    # A day later it has closed again (the desk clock decides, like business hours).
    twilio.sandbox.set_clock_offset(25 * 3600)
    late = await twilio.client.messages.create_async(
        to=WHATSAPP_LINE, from_=PROBE_WHATSAPP, body="Hello again"
    )
    await truth(twilio, "message_failed", sid=late.sid, error_code=63016)
    assert twilio.sandbox.violations == []


async def test_after_hours_only_the_bot_answers(tmp_path: Path, phone: Phone) -> None:
    async for twilio in open_twilio(tmp_path, messaging(), hours=WeeklyHours()):
        twilio.sandbox.messaging.set_inbound_webhook(PROBE, phone.url("/sms"))
        sent = await twilio.client.messages.create_async(
            to=SMS_LINE, from_=PROBE, body=f"My bill is wrong {TOKEN}"
        )
        (received,) = await truth(twilio, "message_received")
        assert (received["period"], received["replies"]) == ("after_hours", ["bot"])
        (reply,) = await truth(twilio, "reply_sent")
        assert (reply["responder"], reply["period"]) == ("bot", "after_hours")
        assert reply["body"] == CLOSED_TEXT
        (post,) = await phone.wait_for("/sms")
        assert post.params["Body"] == CLOSED_TEXT and post.signature_valid
        await asyncio.sleep(AGENT_SECONDS + 0.2)  # past when an agent would have answered
        assert len(twilio.sandbox.messaging.ground_truth()) == 2
        assert received["sid"] == sent.sid
        assert twilio.sandbox.violations == []


async def test_misrouted_message_is_answered_by_another_queue(tmp_path: Path) -> None:
    async for twilio in open_twilio(tmp_path, messaging(misroute_rate=1.0)):
        await twilio.client.messages.create_async(
            to=SMS_LINE, from_=PROBE, body=f"I cannot login {TOKEN}"
        )
        replies = await truth(twilio, "reply_sent", 2)
        agent = next(r for r in replies if r["responder"] == "agent")
        assert agent["intended_queue"] == "tech" and agent["queue"] in ("billing", "sales")
        label = {"billing": "Billing", "sales": "Sales"}[agent["queue"]]
        assert agent["body"].endswith(f"— {agent['agent']}, Acme {label}")
        # Nobody listens on the probe number: the replies are still there for polling.
        listed = await twilio.client.messages.list_async(to=PROBE)
        assert {m.sid for m in listed} == {r["sid"] for r in replies}


async def test_outages_silence_the_lines(twilio: Twilio) -> None:
    messaging_part = twilio.sandbox.messaging
    messaging_part.set_outage(True, line="sms")
    quiet = await twilio.client.messages.create_async(to=SMS_LINE, from_=PROBE, body="Hello?")
    (received,) = await truth(twilio, "message_received", sid=quiet.sid)
    assert (received["outage"], received["replies"]) == (True, [])
    # The other line still answers.
    await twilio.client.messages.create_async(
        to=WHATSAPP_LINE, from_=PROBE_WHATSAPP, content_sid=BILL_TEMPLATE
    )
    await truth(twilio, "reply_sent", 2, channel="whatsapp")
    # The Twilio-wide outage switch (POST /_control/outage) silences messaging too.
    messaging_part.set_outage(False, line="sms")
    twilio.sandbox.set_outage(True)
    again = await twilio.client.messages.create_async(to=SMS_LINE, from_=PROBE, body="Hello??")
    (received,) = await truth(twilio, "message_received", sid=again.sid)
    assert received["outage"] is True
    # An outage that starts while a reply is being written drops it.
    twilio.sandbox.set_outage(False)
    last = await twilio.client.messages.create_async(to=SMS_LINE, from_=PROBE, body="Hi")
    await truth(twilio, "message_received", sid=last.sid)
    messaging_part.set_outage(True)
    dropped = await truth(twilio, "reply_dropped", 2, in_reply_to_sid=last.sid)
    assert {d["reason"] for d in dropped} == {"outage"}
    sent = [e for e in messaging_part.ground_truth() if e["event"] == "reply_sent"]
    assert {e["channel"] for e in sent} == {"whatsapp"}
    assert twilio.sandbox.violations == []


async def test_a_failing_webhook_is_logged_and_the_reply_still_listed(
    twilio: Twilio, phone: Phone
) -> None:
    missing = phone.url("/missing")
    twilio.sandbox.messaging.set_inbound_webhook(PROBE, missing)
    await twilio.client.messages.create_async(to=SMS_LINE, from_=PROBE, body=f"Bill {TOKEN}")
    errors = await truth(twilio, "webhook_error", 2)
    assert {(e["kind"], e["url"], e["code"]) for e in errors} == {("inbound", missing, 11200)}
    violations = twilio.sandbox.violations
    assert [(v.source, v.code, v.target) for v in violations] == [("webhook", 11200, missing)] * 2
    listed = await twilio.client.messages.list_async(to=PROBE, from_=SMS_LINE)
    assert {m.sid for m in listed} == {e["sid"] for e in errors}


async def test_control_endpoints_set_the_webhook_and_show_the_truth(
    twilio: Twilio, phone: Phone
) -> None:
    control = f"{twilio.sandbox.control_url}/messaging"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{control}/inbound-webhook", json={"number": PROBE, "url": phone.url("/sms")}
        ) as response:
            state = await response.json()
        assert state["inbound_webhooks"] == {PROBE: phone.url("/sms")}
        async with http.post(f"{control}/inbound-webhook", json={"number": "555"}) as bad:
            assert bad.status == 400
        await twilio.client.messages.create_async(to=SMS_LINE, from_=PROBE, body="Hi")
        await phone.wait_for("/sms", 2)
        async with http.get(f"{control}/ground-truth") as response:
            events = [e["event"] for e in await response.json()]
        assert events == ["message_received", "reply_sent", "reply_sent"]
        async with http.get(f"{twilio.sandbox.control_url}/state") as response:
            assert (await response.json())["messaging"]["messages"] == 3


async def test_disabled_sms_line_ends_undelivered(tmp_path: Path, phone: Phone) -> None:
    settings = messaging(sms={"address": SMS_LINE, "enabled": False})
    async for twilio in open_twilio(tmp_path, settings):
        sent = await twilio.client.messages.create_async(
            to=SMS_LINE, from_=PROBE, body="Hello", status_callback=phone.url("/status")
        )
        callbacks = await phone.wait_for("/status", 2)
        assert [(c.params["MessageStatus"], c.params.get("ErrorCode")) for c in callbacks] == [
            ("sent", None),
            ("undelivered", "30005"),
        ]
        fetched = await twilio.client.messages(sent.sid).fetch_async()
        assert (fetched.status, fetched.error_code) == ("undelivered", 30005)
        assert fetched.price == "-0.00790"  # sent, so charged
        events = [e["event"] for e in twilio.sandbox.messaging.ground_truth()]
        assert events == ["message_failed"]


async def test_twilio_rules_beyond_the_spec(twilio: Twilio) -> None:
    async def refused(**kwargs: Any) -> tuple[int, int]:
        with pytest.raises(TwilioRestException) as raised:
            await twilio.client.messages.create_async(**kwargs)
        return raised.value.status, raised.value.code

    assert await refused(to=WHATSAPP_LINE, from_=PROBE, body="x") == (400, 21910)
    assert await refused(to=SMS_LINE, from_=SMS_LINE, body="x") == (400, 21266)
    assert await refused(to=SMS_LINE, from_=PROBE, body="") == (400, 21602)
    assert await refused(to=SMS_LINE, from_=PROBE, body="x" * 1601) == (400, 21617)
    bad_variables = {"content_sid": BILL_TEMPLATE, "content_variables": "not json"}
    assert await refused(to=WHATSAPP_LINE, from_=PROBE_WHATSAPP, **bad_variables) == (400, 21656)
    assert await refused(to=SMS_LINE, messaging_service_sid="MG" + "0" * 32, body="x") == (
        400,
        21603,
    )
    assert twilio.sandbox.messaging.messages() == []
    assert twilio.sandbox.violations == []


async def test_nonconforming_requests_are_rejected_and_recorded(twilio: Twilio) -> None:
    url = f"{twilio.sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    form = [("To", "whatsapp:0044 20 7123"), ("From", PROBE), ("Bodyy", "Hello")]
    async with aiohttp.ClientSession(headers=BASIC_AUTH) as http:
        async with http.post(url, data=form) as response:
            body = await response.json()
        async with http.get(url, params={"DateSent>": "yesterday"}) as listing:
            listed = await listing.json()
    assert response.status == 400 and body["more_info"].endswith(str(body["code"]))
    assert "'Bodyy'; did you mean 'Body'" in body["message"]
    assert listing.status == 400 and "DateSent>" in listed["message"]
    rules = [(v.operation, v.parameter, v.rule) for v in twilio.sandbox.violations]
    assert rules == [
        ("CreateMessage", "Bodyy", "unknown"),
        ("CreateMessage", "To", "format"),
        ("CreateMessage", "Body", "required"),
        ("ListMessage", "DateSent>", "format"),
    ]
    assert twilio.sandbox.messaging.messages() == []


async def test_api_faults_apply_to_messages(twilio: Twilio) -> None:
    twilio.sandbox.rate_limit(1, retry_after=2)
    url = f"{twilio.sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    async with (
        aiohttp.ClientSession(headers=BASIC_AUTH) as http,
        http.post(url, data={"To": SMS_LINE, "From": PROBE, "Body": "Hi"}) as response,
    ):
        assert (response.status, response.headers["Retry-After"]) == (429, "2")
        assert (await response.json())["code"] == 20429
    twilio.sandbox.server_error(1, status=503)
    with pytest.raises(TwilioRestException) as raised:
        await twilio.client.messages.create_async(to=SMS_LINE, from_=PROBE, body="Hi")
    assert (raised.value.status, raised.value.code) == (503, 20503)
    assert twilio.sandbox.messaging.messages() == []
    await twilio.client.messages.create_async(to=SMS_LINE, from_=PROBE, body="Hi")
    assert len(twilio.sandbox.messaging.messages()) == 1


async def test_page_tokens_survive_new_messages(twilio: Twilio) -> None:
    for n in range(3):
        await twilio.client.messages.create_async(to=SMS_LINE, from_=PROBE, body=f"n{n}")
    twilio.sandbox.messaging.set_outage(True)
    url = f"{twilio.sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    async with aiohttp.ClientSession(headers=BASIC_AUTH) as http:
        async with http.get(url, params={"From": PROBE, "PageSize": "2"}) as response:
            first = await response.json()
        assert [m["body"] for m in first["messages"]] == ["n2", "n1"]
        assert (
            "PageToken=PA" in first["next_page_uri"]
            and "From=%2B15005550006" in (first["next_page_uri"])
        )
        await twilio.client.messages.create_async(to=SMS_LINE, from_=PROBE, body="n3")
        async with http.get(twilio.sandbox.base_url + first["next_page_uri"]) as response:
            second = await response.json()
    assert [m["body"] for m in second["messages"]] == ["n0"]
    assert second["next_page_uri"] is None and second["page"] == 1
    sent = parsedate_to_datetime(first["messages"][0]["date_created"])
    assert sent.tzinfo is not None
    assert twilio.sandbox.violations == []


async def test_without_a_messaging_profile_messages_are_not_simulated(tmp_path: Path) -> None:
    async with TwilioSandbox(twilio_settings(), workdir=tmp_path) as sandbox:
        http = SandboxHttpClient(sandbox.base_url)
        try:
            client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
            with pytest.raises(TwilioRestException) as raised:
                await client.messages.create_async(to=SMS_LINE, from_=PROBE, body="Hi")
        finally:
            await http.close()
        assert raised.value.status == 404 and "messaging:" in raised.value.msg
        with pytest.raises(RuntimeError, match="no messaging: section"):
            sandbox.messaging.messages()
