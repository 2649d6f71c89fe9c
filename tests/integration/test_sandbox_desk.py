"""The sandbox mail desk against real peers: Dovecot, aiosmtpd, aiosmtplib and aioimaplib.

No mocks. Dovecot must be installed; without it the desk fixture fails with install advice.
"""

from __future__ import annotations

import asyncio
import email
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import make_msgid, parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import aioimaplib
import aiosmtplib
import pytest
import yaml

from sandbox.mail.desk import MailDesk
from sandbox.profile import PROFILES_DIR, Profile

PROBE = "probe@cxprobe.test"
PROBE_PASSWORD = "probe-secret"
SUPPORT = "support@acme.test"
LONDON = ZoneInfo("Europe/London")
# Small fixed latencies keep every test under a few seconds.
ACK_DELAY = 0.1
HUMAN_DELAY = 0.4
EVENT_TIMEOUT = 10.0
# Long enough that a reply the desk should not send would have been sent by now.
QUIET_PERIOD = HUMAN_DELAY + 0.8


def fixed(seconds: float) -> dict[str, Any]:
    return {"distribution": "fixed", "seconds": seconds}


def profile_with(**mail: Any) -> Profile:
    """The default test profile with fast fixed latencies and the given mail overrides."""
    raw = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    raw["mail"]["auto_ack"]["delay"] = fixed(ACK_DELAY)
    raw["mail"]["after_hours"]["delay"] = fixed(ACK_DELAY)
    for queue in raw["mail"]["queues"].values():
        queue["latency"] = fixed(HUMAN_DELAY)
    raw["mail"].update(mail)
    return Profile.model_validate(raw)


def offset_to(weekday: int, hour: int) -> float:
    """Clock offset that puts the desk's "now" on the next given weekday at hour, London time."""
    now = datetime.now(UTC)
    local = now.astimezone(LONDON)
    days = (weekday - local.weekday()) % 7 or 7
    target = (local + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    # Subtract in UTC: aware datetimes sharing a tzinfo subtract as wall-clock times.
    return (target.astimezone(UTC) - now).total_seconds()


WEDNESDAY_NOON = 2, 12
SUNDAY_NOON = 6, 12

StartDesk = Callable[..., Awaitable[MailDesk]]


@pytest.fixture
async def start_desk(tmp_path: Path) -> AsyncIterator[StartDesk]:
    async with AsyncExitStack() as stack:
        count = 0

        async def start(at: tuple[int, int] = WEDNESDAY_NOON, **mail: Any) -> MailDesk:
            nonlocal count
            count += 1
            desk = MailDesk(profile_with(**mail), tmp_path / f"desk{count}")
            await stack.enter_async_context(desk)
            desk.set_clock_offset(offset_to(*at))
            return desk

        yield start


def customer_mail(subject: str, body: str, sender: str = PROBE) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Pat Probe <{sender}>"
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="cxprobe.test")
    message["References"] = "<earlier@cxprobe.test>"
    message.set_content(body)
    return message


@dataclass
class Stored:
    message: EmailMessage
    internaldate: datetime


async def mailbox(desk: MailDesk) -> list[Stored]:
    """Every message in the probe's INBOX, read over IMAP."""
    client = aioimaplib.IMAP4(desk.host, desk.imap_port, timeout=EVENT_TIMEOUT)
    await client.wait_hello_from_server()
    assert (await client.login(PROBE, PROBE_PASSWORD)).result == "OK"
    try:
        selected = await client.select("INBOX")
        exists = next(int(line.split()[0]) for line in selected.lines if line.endswith(b"EXISTS"))
        if exists == 0:
            return []
        response = await client.fetch("1:*", "(INTERNALDATE BODY.PEEK[])")
        assert response.result == "OK"
        stored: list[Stored] = []
        for header, body in zip(response.lines, response.lines[1:], strict=False):
            if isinstance(body, bytearray):
                match = re.search(rb'INTERNALDATE "([^"]+)"', header)
                assert match, header
                internal = datetime.strptime(match.group(1).decode(), "%d-%b-%Y %H:%M:%S %z")
                parsed = email.message_from_bytes(bytes(body), policy=default_policy)
                assert isinstance(parsed, EmailMessage)
                stored.append(Stored(parsed, internal))
        return stored
    finally:
        await client.logout()


async def replies_sent(desk: MailDesk, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(EVENT_TIMEOUT):
        return await desk.wait_for_events(lambda e: e["event"] == "reply_sent", count)


def by_kind(stored: list[Stored], kind: str) -> EmailMessage:
    auto = {"auto_ack", "after_hours"}
    matches = [
        s.message for s in stored if (s.message["Auto-Submitted"] is not None) == (kind in auto)
    ]
    assert len(matches) == 1, [s.message["Subject"] for s in stored]
    return matches[0]


def assert_threaded(reply: EmailMessage, original: EmailMessage) -> None:
    assert reply["Subject"] == f"Re: {original['Subject']}"
    assert "[CXP-ABC123]" in reply["Subject"]
    assert reply["In-Reply-To"] == original["Message-ID"]
    assert reply["References"].split() == [original["References"], original["Message-ID"]]
    assert reply["Message-ID"] and reply["Message-ID"] != original["Message-ID"]
    assert parsedate_to_datetime(reply["Date"]).tzinfo is not None
    assert reply["To"] == PROBE


def assert_auto(reply: EmailMessage) -> None:
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["X-Autoreply"] == "yes"
    assert reply["Precedence"] == "auto_reply"
    assert reply["Return-Path"] == "<>"


async def send(desk: MailDesk, message: EmailMessage, **options: Any) -> None:
    await aiosmtplib.send(message, hostname=desk.host, port=desk.smtp_port, **options)


async def test_business_hours_gives_auto_ack_then_routed_human_reply(
    start_desk: StartDesk,
) -> None:
    desk = await start_desk()
    original = customer_mail(
        "Refund for invoice 42 [CXP-ABC123]", "Hello,\nI was charged twice.\n.\nThanks"
    )
    await send(desk, original)

    events = await replies_sent(desk, 2)
    stored = await mailbox(desk)

    assert len(stored) == 2
    ack, human = by_kind(stored, "auto_ack"), by_kind(stored, "human")
    for reply in (ack, human):
        assert_threaded(reply, original)
    assert_auto(ack)
    assert ack["From"] == "noreply@acme.test"
    for header in ("Auto-Submitted", "X-Autoreply", "Precedence"):
        assert human[header] is None
    assert human["From"] == "billing@acme.test"
    assert human["Return-Path"] == "<billing@acme.test>"
    text = human.get_content().replace("\r\n", "\n")
    assert text.rstrip("\n").endswith("-- \nAcme Billing Team")
    assert "> I was charged twice." in text

    kinds = [e["kind"] for e in events]
    assert kinds == ["auto_ack", "human"]
    received = next(e for e in desk.ground_truth() if e["event"] == "received")
    assert received["message_id"] == original["Message-ID"]
    assert received["period"] == "business"
    human_event = events[1]
    assert human_event["queue"] == human_event["intended_queue"] == "billing"
    assert human_event["in_reply_to"] == original["Message-ID"]
    assert human_event["message_id"] == human["Message-ID"]
    assert human_event["to"] == PROBE

    # reply_sent.at is when LMTP accepted the message; INTERNALDATE is that instant, floored
    # to the second by IMAP.
    for event in events:
        sent_at = datetime.fromisoformat(event["at"])
        internal = next(
            s.internaldate for s in stored if s.message["Message-ID"] == event["message_id"]
        )
        assert timedelta(0) <= sent_at - internal < timedelta(seconds=2)
        assert sent_at - datetime.fromisoformat(received["at"]) >= timedelta(seconds=ACK_DELAY)
    on_disk = [e for e in desk.ground_truth_path.read_text().splitlines() if e]
    assert len(on_disk) == len(desk.ground_truth())


async def test_after_hours_gives_only_the_after_hours_auto_reply(start_desk: StartDesk) -> None:
    desk = await start_desk(at=SUNDAY_NOON)
    original = customer_mail("Login broken [CXP-ABC123]", "I get an error when I log in.")
    await send(desk, original)

    [event] = await replies_sent(desk, 1)
    await asyncio.sleep(QUIET_PERIOD)  # a human reply, if wrongly planned, would land by now

    stored = await mailbox(desk)
    assert len(stored) == 1
    reply = stored[0].message
    assert_threaded(reply, original)
    assert_auto(reply)
    assert "Our office is closed" in reply.get_content()
    assert event["kind"] == "after_hours"
    assert event["period"] == "after_hours"
    assert [e["event"] for e in desk.ground_truth()] == ["received", "reply_sent"]


async def test_clock_moves_via_control_api_change_the_period(start_desk: StartDesk) -> None:
    desk = await start_desk()
    async with aiohttp.ClientSession(desk.control_url) as http:
        async with http.get("/healthz") as response:
            assert response.status == 200
        async with http.post("/clock", json={"offset_seconds": offset_to(*SUNDAY_NOON)}) as r:
            assert (await r.json())["period"] == "after_hours"
        await send(desk, customer_mail("Price of the pro plan [CXP-ABC123]", "How much?"))
        [event] = await replies_sent(desk, 1)
        assert event["kind"] == "after_hours"
        async with http.get("/ground-truth") as response:
            truth = await response.json()
    assert [e["event"] for e in truth] == ["received", "reply_sent"]


async def test_outage_accepts_mail_but_never_answers(start_desk: StartDesk) -> None:
    desk = await start_desk()
    async with (
        aiohttp.ClientSession(desk.control_url) as http,
        http.post("/outage", json={"on": True}) as response,
    ):
        assert (await response.json())["outage"] is True

    await send(desk, customer_mail("Invoice question [CXP-ABC123]", "Where is my invoice?"))
    await asyncio.sleep(QUIET_PERIOD)

    assert await mailbox(desk) == []
    [received] = desk.ground_truth()
    assert received["event"] == "received"
    assert received["outage"] is True


async def test_reject_refuses_the_support_address_with_550(start_desk: StartDesk) -> None:
    desk = await start_desk(reject=True)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send(desk, customer_mail("Invoice question [CXP-ABC123]", "Hello?"))

    [error] = refused.value.recipients
    assert error.code == 550
    assert "5.1.1" in error.message
    assert [e["event"] for e in desk.ground_truth()] == ["rejected"]


async def test_starttls_with_auth_verifies_against_the_generated_ca(
    start_desk: StartDesk,
) -> None:
    desk = await start_desk(
        smtp={"tls": "starttls", "auth": {"username": "customer", "password": "s3cret"}}
    )
    tls = {"start_tls": True, "cert_bundle": str(desk.ca_file)}

    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as wrong:
        await send(desk, customer_mail("Bill [CXP-ABC123]", "x"), **tls, username="customer",
                   password="nope")  # fmt: skip
    assert wrong.value.code == 535

    with pytest.raises(aiosmtplib.SMTPException):
        # Without STARTTLS the server refuses to take mail at all.
        await send(desk, customer_mail("Bill [CXP-ABC123]", "x"), start_tls=False)

    await send(desk, customer_mail("Bill [CXP-ABC123]", "x"), **tls, username="customer",
               password="s3cret")  # fmt: skip
    assert len(await replies_sent(desk, 2)) == 2


async def test_implicit_tls_verifies_against_the_generated_ca(start_desk: StartDesk) -> None:
    desk = await start_desk(smtp={"tls": "implicit"})
    await send(
        desk,
        customer_mail("Bill [CXP-ABC123]", "x"),
        use_tls=True,
        cert_bundle=str(desk.ca_file),
    )
    assert len(await replies_sent(desk, 2)) == 2

    with pytest.raises(aiosmtplib.SMTPException):
        # The system trust store does not know the sandbox CA: verification must fail.
        await send(desk, customer_mail("Bill [CXP-ABC123]", "x"), use_tls=True)


async def test_misroute_rate_one_answers_from_another_queue(start_desk: StartDesk) -> None:
    desk = await start_desk(misroute_rate=1.0)
    await send(desk, customer_mail("Refund please [CXP-ABC123]", "Refund my payment."))

    events = await replies_sent(desk, 2)
    human_event = next(e for e in events if e["kind"] == "human")
    assert human_event["intended_queue"] == "billing"
    assert human_event["queue"] in {"tech", "sales"}
    human = by_kind(await mailbox(desk), "human")
    assert human["From"] == f"{human_event['queue']}@acme.test"


async def test_reply_to_a_foreign_address_is_dropped_not_delivered(
    start_desk: StartDesk,
) -> None:
    desk = await start_desk()
    await send(desk, customer_mail("Bill [CXP-ABC123]", "x", sender="someone@elsewhere.test"))

    async with asyncio.timeout(EVENT_TIMEOUT):
        dropped = await desk.wait_for_events(lambda e: e["event"] == "reply_dropped", 2)
    assert {e["to"] for e in dropped} == {"someone@elsewhere.test"}
    assert await mailbox(desk) == []
