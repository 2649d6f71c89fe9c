"""SMS, WhatsApp and the generic webhook channel against the sandbox (real ``twilio`` client).

The Twilio sandbox validates every request against the official OpenAPI description (a
violation fails the test) and signs its webhooks; the generic peer signs its JSON webhooks with
HMAC-SHA256. Timings are checked against the sandbox's ground truth of when each reply was sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from twilio.request_validator import RequestValidator

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import load_config
from probes.base import Responder
from probes.messaging.channel import TwilioMessagingChannel
from sandbox.clock import WeeklyHours
from sandbox.generic.peer import GenericPeer
from sandbox.profile import PROFILES_DIR, Profile
from sandbox.twilio.server import TwilioSandbox
from scenarios.model import Outcome, Period, RoutingResult, RunResult
from tests.support import generic_platform, weekly

PROBE_NUMBER = "+15005550006"
ACCURACY_SECONDS = 1.0
TEMPLATE = "HX00000000000000000000000000000001"


def profile(**messaging: Any) -> Profile:
    raw: dict[str, Any] = yaml.safe_load((PROFILES_DIR / "default.yaml").read_text())
    raw["messaging"].update(messaging)
    raw["generic_peer"].update(
        {k: v for k, v in messaging.items() if k in ("misroute_rate", "outage")}
    )
    return Profile.model_validate(raw)


@asynccontextmanager
async def twilio_lines(
    tmp_path: Path, open_now: bool = True, monitor_down: bool = False, **messaging: Any
) -> AsyncIterator[tuple[TwilioSandbox, Profile]]:
    loaded = profile(**messaging)
    assert loaded.twilio is not None
    hours = WeeklyHours.model_validate(weekly(open_now))
    async with TwilioSandbox(
        loaded.twilio, workdir=tmp_path / "lines", hours=hours, messaging=loaded.messaging
    ) as sandbox:
        yield sandbox, loaded
        # A webhook to a monitor that is down fails (as Twilio's would, error 11200); every
        # request the probe made must still conform to the spec.
        violations = [v for v in sandbox.violations if not (monitor_down and v.source == "webhook")]
        assert violations == [], violations


def config(
    tmp_path: Path,
    channel: str,
    address: dict[str, Any],
    channels: dict[str, Any],
    *,
    open_now: bool = True,
    scenario: str = "billing-question",
) -> Path:
    document: dict[str, Any] = {
        "version": 1,
        "monitor": {
            "location": "test",
            "store_url": f"sqlite+aiosqlite:///{tmp_path / 'cxprobe.db'}",
            "http": {"host": "127.0.0.1", "port": 0},
            "log_format": "json",
        },
        "locations": {"test": {}},
        "channels": channels,
        "targets": {
            "acme": {
                "name": "Acme (sandbox)",
                "business_hours": {"timezone": "UTC", "weekly": weekly(open_now)},
                "channels": {channel: address},
                "queues": {
                    "billing": {"match": [{"text": "Acme Billing"}]},
                    "tech": {"match": [{"text": "Acme Technical Support"}]},
                    "sales": {"match": [{"text": "Acme Sales"}]},
                },
                "responders": [
                    {"responder": "bot", "match": {"text": "automated assistant"}},
                    {"responder": "bot", "match": {"text": "will reply when we reopen"}},
                ],
                "slas": {
                    channel: {
                        "first_response": "5s",
                        "human_response": "10s",
                        "after_hours_response": "5s",
                        "deadline": "12s",
                    }
                },
                "rate_limit": {"max_contacts_per_hour": 1000},
            }
        },
        "checks": [
            {
                "id": f"acme-{channel}",
                "target": "acme",
                "channel": channel,
                "scenario": scenario,
                "schedule": {"every": "1h"},
            }
        ],
    }
    path = tmp_path / "cxprobe.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def twilio_channel(
    sandbox: TwilioSandbox, loaded: Profile, mode: str = "webhook"
) -> dict[str, Any]:
    assert loaded.twilio is not None
    return {
        "twilio": {
            "account_sid": loaded.twilio.account_sid,
            "auth_token": loaded.twilio.auth_token,
            "api_base_url": sandbox.base_url,
        },
        "from_numbers": [PROBE_NUMBER],
        "receiving": {"mode": mode, "poll_interval": 0.3, "page_size": 20},
        "status_wait": 10,
    }


def brand(loaded: Profile, line: str) -> str:
    assert loaded.messaging is not None
    return str(getattr(loaded.messaging, line).address).removeprefix("whatsapp:")


@asynccontextmanager
async def monitoring(path: Path) -> AsyncIterator[Monitor]:
    async with open_monitor(load_config(path), logging.getLogger("cxprobe.test")) as monitor:
        yield monitor


def hook(sandbox: TwilioSandbox, monitor: Monitor, kind: str) -> None:
    assert monitor.server is not None
    number = PROBE_NUMBER if kind == "sms" else f"whatsapp:{PROBE_NUMBER}"
    sandbox.messaging.set_inbound_webhook(number, f"{monitor.server.url}/webhooks/twilio/{kind}")


async def run_once(monitor: Monitor) -> RunResult:
    result = await monitor.runner.execute(monitor.config.checks[0], datetime.now(UTC))
    assert result is not None
    return result


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


def replies_sent(events: list[dict[str, Any]], token: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "reply_sent" and e.get("in_reply_to_token") == token]


def assert_timed(result: RunResult, truth: list[dict[str, Any]]) -> None:
    assert result.sent_at is not None
    assert len(result.replies) == len(truth)
    for observed, event in zip(result.replies, truth, strict=True):
        actual = (at(event) - result.sent_at).total_seconds()
        assert abs(observed.seconds - actual) < ACCURACY_SECONDS, (observed, event)


# -- SMS ------------------------------------------------------------------------------------


async def test_sms_bot_then_human_timed_and_routed(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        path = config(
            tmp_path, "sms", {"to": brand(loaded, "sms")}, {"sms": twilio_channel(sandbox, loaded)}
        )
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "sms")
            result = await run_once(monitor)
            artifacts = await monitor.store.artifacts(result.run_id)
        truth = replies_sent(sandbox.messaging.ground_truth(), result.token)
    assert result.outcome is Outcome.MET, result.reason
    assert [r.responder for r in result.replies] == [Responder.BOT, Responder.HUMAN]
    assert (result.routed_queue, result.routing) == ("billing", RoutingResult.CORRECT)
    assert [e["responder"] for e in truth] == ["bot", "agent"]
    assert_timed(result, truth)
    assert {a.kind for a in artifacts} == {"message-records"}


async def test_sms_misroute_is_reported(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path, misroute_rate=1.0) as (sandbox, loaded):
        path = config(
            tmp_path, "sms", {"to": brand(loaded, "sms")}, {"sms": twilio_channel(sandbox, loaded)}
        )
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "sms")
            result = await run_once(monitor)
    assert result.routing is RoutingResult.WRONG
    assert result.routed_queue not in (None, "billing")


async def test_sms_after_hours_the_bot_answers(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path, open_now=False) as (sandbox, loaded):
        path = config(
            tmp_path,
            "sms",
            {"to": brand(loaded, "sms")},
            {"sms": twilio_channel(sandbox, loaded)},
            open_now=False,
        )
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "sms")
            result = await run_once(monitor)
    assert result.period is Period.AFTER_HOURS
    assert result.outcome is Outcome.MET, result.reason
    assert [r.responder for r in result.replies] == [Responder.BOT]


async def test_polling_mode_sees_the_same_replies_as_webhooks(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        hooked = config(
            tmp_path, "sms", {"to": brand(loaded, "sms")}, {"sms": twilio_channel(sandbox, loaded)}
        )
        async with monitoring(hooked) as monitor:
            hook(sandbox, monitor, "sms")
            result = await run_once(monitor)
            stored = await monitor.store.messages(result.run_id)
            channel = monitor.runner.channels["sms"]
            assert isinstance(channel, TwilioMessagingChannel)
            assert result.sent_at is not None
            polled = await channel.list_replies(
                (PROBE_NUMBER, brand(loaded, "sms")), result.sent_at
            )
        # And a whole run in polling mode, no webhook at all.
        sandbox.messaging.set_inbound_webhook(PROBE_NUMBER, None)
        (tmp_path / "poll").mkdir()
        polling = config(
            tmp_path / "poll",
            "sms",
            {"to": brand(loaded, "sms")},
            {"sms": twilio_channel(sandbox, loaded, mode="poll")},
        )
        async with monitoring(polling) as monitor:
            polled_run = await run_once(monitor)
            # Replies of one poll within one second cannot be ordered (date_sent has second
            # resolution): the run may be judged on the first, and the other is recorded on
            # the run right after, by the close-time reconciliation.
            for _ in range(50):
                polled_stored = await monitor.store.messages(polled_run.run_id)
                if sum(m.direction == "in" for m in polled_stored) >= 2:
                    break
                await asyncio.sleep(0.1)
    webhook_replies = {m.external_id: m for m in stored if m.direction == "in"}
    assert {r.external_id for r in polled} == set(webhook_replies)
    for reply in polled:
        assert reply.timing_method == "twilio-date-sent"
        delta = reply.arrived_at - webhook_replies[reply.external_id].arrived_at
        assert abs(delta.total_seconds()) < ACCURACY_SECONDS
    assert polled_run.outcome is Outcome.MET, polled_run.reason
    assert sorted(m.responder or "" for m in polled_stored if m.direction == "in") == [
        "bot",
        "human",
    ]


async def test_forged_inbound_webhooks_are_rejected(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        path = config(
            tmp_path, "sms", {"to": brand(loaded, "sms")}, {"sms": twilio_channel(sandbox, loaded)}
        )
        async with monitoring(path) as monitor:
            assert monitor.server is not None
            url = f"{monitor.server.url}/webhooks/twilio/sms"
            forged = {
                "MessageSid": "SM" + "0" * 32,
                "From": brand(loaded, "sms"),
                "To": PROBE_NUMBER,
                "Body": "Your refund is approved",
            }
            signature = RequestValidator("not-the-token").compute_signature(url, forged)
            async with aiohttp.ClientSession() as session:
                for headers in ({"X-Twilio-Signature": signature}, {}):
                    async with session.post(url, data=forged, headers=headers) as response:
                        assert response.status == 403
            health = monitor.runner.health()["channels"]["sms"]
            runs = await monitor.store.recent_runs(10)
    assert health["rejected_webhooks"] == 2
    assert runs == []


async def test_a_run_open_at_a_restart_is_resumed_and_gets_its_replies(tmp_path: Path) -> None:
    slow_agents = {"queues": {**profile().model_dump()["messaging"]["queues"]}}
    for queue in slow_agents["queues"].values():
        queue["latency"] = {"distribution": "fixed", "seconds": 2.5}
    async with twilio_lines(tmp_path, monitor_down=True, **slow_agents) as (sandbox, loaded):
        path = config(
            tmp_path, "sms", {"to": brand(loaded, "sms")}, {"sms": twilio_channel(sandbox, loaded)}
        )
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "sms")
            run = asyncio.create_task(run_once(monitor))
            await asyncio.wait_for(
                sandbox.messaging.wait_for(lambda e: e["event"] == "reply_sent"), 10
            )
            run.cancel()  # the monitor stops after the bot answered, before the agent
            await asyncio.gather(run, return_exceptions=True)
        await asyncio.wait_for(
            sandbox.messaging.wait_for(
                lambda e: e["event"] == "reply_sent" and e["responder"] == "agent"
            ),
            10,
        )  # the agent answers while no monitor listens (its webhook fails)
        async with monitoring(path) as monitor:
            resumed = await monitor.runner.resume_open_runs()
            for _ in range(100):
                (run_after,) = await monitor.store.recent_runs(1)
                if run_after.outcome is not None:
                    break
                await asyncio.sleep(0.1)
    assert resumed == 1
    assert run_after.outcome is Outcome.MET, run_after.reason
    assert [r.responder for r in run_after.replies] == [Responder.BOT, Responder.HUMAN]


# -- WhatsApp -------------------------------------------------------------------------------


def whatsapp_address(loaded: Profile, template: bool = True) -> dict[str, Any]:
    address: dict[str, Any] = {"to": brand(loaded, "whatsapp")}
    if template:
        address["template"] = {"content_sid": TEMPLATE, "variables": {"1": "{token}"}}
    return address


async def test_whatsapp_starts_with_the_template_outside_the_session(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        path = config(
            tmp_path,
            "whatsapp",
            whatsapp_address(loaded),
            {"whatsapp": twilio_channel(sandbox, loaded)},
        )
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "whatsapp")
            result = await run_once(monitor)
            stored = await monitor.store.messages(result.run_id)
        received = [e for e in sandbox.messaging.ground_truth() if e["event"] == "message_received"]
        truth = replies_sent(sandbox.messaging.ground_truth(), result.token)
    assert result.outcome is Outcome.MET, result.reason
    assert received[0]["content_sid"] == TEMPLATE and result.token in received[0]["body"]
    assert stored[0].text.startswith(f"template {TEMPLATE}")
    assert_timed(result, truth)


async def test_whatsapp_session_message_inside_the_window(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        sandbox.messaging.open_session_window(f"whatsapp:{PROBE_NUMBER}")
        path = config(
            tmp_path,
            "whatsapp",
            whatsapp_address(loaded, template=False),
            {"whatsapp": twilio_channel(sandbox, loaded)},
        )
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "whatsapp")
            result = await run_once(monitor)
        received = [e for e in sandbox.messaging.ground_truth() if e["event"] == "message_received"]
    assert result.outcome is Outcome.MET, result.reason
    assert received[0]["content_sid"] in (None, "") and "invoice" in received[0]["body"]


async def test_whatsapp_free_form_outside_the_session_is_a_clear_error(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        path = config(
            tmp_path,
            "whatsapp",
            whatsapp_address(loaded, template=False),
            {"whatsapp": twilio_channel(sandbox, loaded)},
        )
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "whatsapp")
            result = await run_once(monitor)
    assert result.outcome is Outcome.ERROR
    assert "63016" in result.reason and "template" in result.reason


# -- the generic channel --------------------------------------------------------------------


@asynccontextmanager
async def peer(
    tmp_path: Path, open_now: bool = True, **options: Any
) -> AsyncIterator[tuple[GenericPeer, Profile]]:
    loaded = profile(**options)
    assert loaded.generic_peer is not None
    hours = WeeklyHours.model_validate(weekly(open_now))
    async with GenericPeer(loaded.generic_peer, workdir=tmp_path / "peer", hours=hours) as server:
        yield server, loaded


def generic_channels(server: GenericPeer) -> dict[str, Any]:
    return {"generic": {"platforms": {"social": generic_platform(server)}}}


async def test_generic_platform_needs_no_code(tmp_path: Path) -> None:
    async with peer(tmp_path) as (server, loaded):
        assert loaded.generic_peer is not None
        address = {
            "platform": "social",
            "recipient": loaded.generic_peer.page_id,
            "sender": "customer-4711",
        }
        path = config(tmp_path, "generic", address, generic_channels(server))
        async with monitoring(path) as monitor:
            assert monitor.server is not None
            webhook = f"{monitor.server.url}/webhooks/generic/social"
            server.set_webhook_url(webhook)
            result = await run_once(monitor)
            async with aiohttp.ClientSession() as session:
                body = b'{"entry": []}'
                forged = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
                async with session.post(webhook, data=body, headers=forged) as response:
                    assert response.status == 403
            health = monitor.runner.health()["channels"]["generic"]
        truth = [e for e in server.ground_truth() if e["event"] == "reply_sent"]
    assert result.outcome is Outcome.MET, result.reason
    assert [r.responder for r in result.replies] == [Responder.BOT, Responder.HUMAN]
    assert result.routing is RoutingResult.CORRECT
    assert all(r.external_id.startswith("social:") for r in result.replies)
    assert_timed(result, truth)
    assert health["rejected_webhooks"] == 1


async def test_generic_platform_misroute_and_rate_limit(tmp_path: Path) -> None:
    async with peer(tmp_path, misroute_rate=1.0) as (server, loaded):
        assert loaded.generic_peer is not None
        server.rate_limit(1, retry_after=1)
        address = {
            "platform": "social",
            "recipient": loaded.generic_peer.page_id,
            "sender": "customer-4711",
        }
        path = config(tmp_path, "generic", address, generic_channels(server))
        async with monitoring(path) as monitor:
            assert monitor.server is not None
            server.set_webhook_url(f"{monitor.server.url}/webhooks/generic/social")
            result = await run_once(monitor)
            health = monitor.runner.health()["channels"]["generic"]
    assert result.routing is RoutingResult.WRONG
    assert health["api_retries"] == 1
