"""SMS, WhatsApp and the generic webhook channel against the sandbox (real ``twilio`` client).

The Twilio sandbox validates every request against the official OpenAPI description (a
violation fails the test) and signs its webhooks; the generic peer signs its JSON webhooks with
HMAC-SHA256. Timings are checked against the sandbox's ground truth of when each reply was sent.

The timed bot-then-human run, misrouting, after hours, a provider down, forged webhooks,
restarts and late replies are the contract suite's (tests/contract), for sms, whatsapp and
generic alike; here are polling, WhatsApp's templates and session window, and retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import load_config
from probes.messaging.channel import TwilioMessagingChannel
from sandbox.clock import WeeklyHours
from sandbox.generic.peer import GenericPeer
from sandbox.profile import Profile
from sandbox.twilio.server import TwilioSandbox
from scenarios.model import Outcome, RunResult
from tests.support import (
    PROBE_NUMBER,
    brand_number,
    generic_channels,
    messaging_config,
    messaging_profile,
    one_check,
    twilio_messaging,
    weekly,
)

ACCURACY_SECONDS = 1.0
TEMPLATE = "HX00000000000000000000000000000001"
#: The name tests/integration/test_alerting.py imports the profile builder by.


@asynccontextmanager
async def twilio_lines(
    tmp_path: Path, open_now: bool = True, **messaging: Any
) -> AsyncIterator[tuple[TwilioSandbox, Profile]]:
    loaded = messaging_profile(**messaging)
    assert loaded.twilio is not None
    hours = WeeklyHours.model_validate(weekly(open_now))
    async with TwilioSandbox(
        loaded.twilio, workdir=tmp_path / "lines", hours=hours, messaging=loaded.messaging
    ) as sandbox:
        yield sandbox, loaded
        # Every request the probe made must conform to the spec.
        assert sandbox.violations == [], sandbox.violations


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


async def test_polling_mode_sees_the_same_replies_as_webhooks(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        hooked = messaging_config(
            tmp_path,
            "sms",
            {"to": brand_number(loaded, "sms")},
            {"sms": twilio_messaging(sandbox.base_url, loaded)},
        )
        async with monitoring(hooked) as monitor:
            hook(sandbox, monitor, "sms")
            result = await run_once(monitor)
            stored = await monitor.store.messages(result.run_id)
            channel = monitor.runner.channels["sms"]
            assert isinstance(channel, TwilioMessagingChannel)
            assert result.sent_at is not None
            polled = await channel.list_replies(
                (PROBE_NUMBER, brand_number(loaded, "sms")), result.sent_at
            )
        # And a whole run in polling mode, no webhook at all.
        sandbox.messaging.set_inbound_webhook(PROBE_NUMBER, None)
        (tmp_path / "poll").mkdir()
        polling = messaging_config(
            tmp_path / "poll",
            "sms",
            {"to": brand_number(loaded, "sms")},
            {"sms": twilio_messaging(sandbox.base_url, loaded, mode="poll")},
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


async def test_a_run_waits_for_its_pair_rather_than_failing(tmp_path: Path) -> None:
    """Two slots of one check at once (a catch-up at start, then the next slot while it still
    listens) on one probe number: the second contact goes once the first run has ended."""
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        sms = twilio_messaging(sandbox.base_url, loaded)
        path = messaging_config(tmp_path, "sms", {"to": brand_number(loaded, "sms")}, {"sms": sms})
        (tmp_path / "no-wait").mkdir()
        impatient = messaging_config(
            tmp_path / "no-wait",
            "sms",
            {"to": brand_number(loaded, "sms")},
            {"sms": {**sms, "pair_wait": 0}},
        )
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "sms")
            check, now = monitor.config.checks[0], datetime.now(UTC)
            first, second = await asyncio.gather(
                monitor.runner.execute(check, now - timedelta(minutes=1)),
                monitor.runner.execute(check, now),
            )
        async with monitoring(impatient) as monitor:
            hook(sandbox, monitor, "sms")
            check, now = monitor.config.checks[0], datetime.now(UTC)
            refused = await asyncio.gather(
                monitor.runner.execute(check, now - timedelta(minutes=1)),
                monitor.runner.execute(check, now),
            )
    assert first is not None and second is not None
    for result in (first, second):
        assert result.outcome is Outcome.MET, result.reason
    earlier, later = sorted((first, second), key=lambda result: result.sent_at or now)
    assert earlier.sent_at is not None and later.sent_at is not None
    # The earlier run was judged on its human answer; the later contact went after it.
    answered = earlier.sent_at + timedelta(seconds=max(r.seconds for r in earlier.replies))
    assert later.sent_at >= answered
    outcomes = sorted(str(result.outcome.value) for result in refused if result and result.outcome)
    assert outcomes == ["error", "met"], [result and result.reason for result in refused]
    error = next(result for result in refused if result and result.outcome is Outcome.ERROR)
    assert "after 0s (pair_wait)" in (error.reason or "") and error.sent_at is None


async def test_two_monitors_on_one_store_never_open_one_pair_at_once(tmp_path: Path) -> None:
    """Two checks to one brand from one probe number, each started by another monitor of the
    location at the same moment: the pair is held in the store, so the second contact waits for
    the first run to end, and each run is timed on its own replies only."""
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        sms = twilio_messaging(sandbox.base_url, loaded, mode="poll")
        path = messaging_config(tmp_path, "sms", {"to": brand_number(loaded, "sms")}, {"sms": sms})
        document = yaml.safe_load(path.read_text())
        document["checks"].append(one_check("acme-sms-tech", "sms", "technical-fault"))
        configs = []
        for name in ("monitor-a", "monitor-b"):
            document["monitor"] |= {"name": name, "data_dir": str(tmp_path / name)}
            configs.append(tmp_path / f"{name}.yaml")
            configs[-1].write_text(yaml.safe_dump(document, sort_keys=False))
        async with monitoring(configs[0]) as first, monitoring(configs[1]) as second:
            now = datetime.now(UTC)
            results = await asyncio.gather(
                first.runner.execute(first.config.checks[0], now),
                second.runner.execute(second.config.checks[1], now),
            )
        truth = sandbox.messaging.ground_truth()
    runs = [result for result in results if result is not None]
    assert len(runs) == 2
    for result in runs:
        assert result.outcome is Outcome.MET, result.reason
        assert_timed(result, replies_sent(truth, result.token))
    earlier, later = sorted(runs, key=lambda result: result.sent_at or now)
    assert earlier.sent_at is not None and later.sent_at is not None
    answered = earlier.sent_at + timedelta(seconds=max(r.seconds for r in earlier.replies))
    assert later.sent_at >= answered


# -- WhatsApp -------------------------------------------------------------------------------


def whatsapp_address(loaded: Profile, template: bool = True) -> dict[str, Any]:
    address: dict[str, Any] = {"to": brand_number(loaded, "whatsapp")}
    if template:
        address["template"] = {"content_sid": TEMPLATE, "variables": {"1": "{token}"}}
    return address


async def test_whatsapp_starts_with_the_template_outside_the_session(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        path = messaging_config(
            tmp_path,
            "whatsapp",
            whatsapp_address(loaded),
            {"whatsapp": twilio_messaging(sandbox.base_url, loaded)},
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
        path = messaging_config(
            tmp_path,
            "whatsapp",
            whatsapp_address(loaded, template=False),
            {"whatsapp": twilio_messaging(sandbox.base_url, loaded)},
        )
        async with monitoring(path) as monitor:
            hook(sandbox, monitor, "whatsapp")
            result = await run_once(monitor)
        received = [e for e in sandbox.messaging.ground_truth() if e["event"] == "message_received"]
    assert result.outcome is Outcome.MET, result.reason
    assert received[0]["content_sid"] in (None, "") and "invoice" in received[0]["body"]


async def test_whatsapp_free_form_outside_the_session_is_a_clear_error(tmp_path: Path) -> None:
    async with twilio_lines(tmp_path) as (sandbox, loaded):
        path = messaging_config(
            tmp_path,
            "whatsapp",
            whatsapp_address(loaded, template=False),
            {"whatsapp": twilio_messaging(sandbox.base_url, loaded)},
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
    loaded = messaging_profile(**options)
    assert loaded.generic_peer is not None
    hours = WeeklyHours.model_validate(weekly(open_now))
    async with GenericPeer(loaded.generic_peer, workdir=tmp_path / "peer", hours=hours) as server:
        yield server, loaded


async def test_generic_platform_send_is_retried_after_a_rate_limit(tmp_path: Path) -> None:
    async with peer(tmp_path) as (server, loaded):
        assert loaded.generic_peer is not None
        server.rate_limit(1, retry_after=1)
        address = {
            "platform": "social",
            "recipient": loaded.generic_peer.page_id,
            "sender": "customer-4711",
        }
        path = messaging_config(tmp_path, "generic", address, generic_channels(server))
        async with monitoring(path) as monitor:
            assert monitor.server is not None
            server.set_webhook_url(f"{monitor.server.url}/webhooks/generic/social")
            result = await run_once(monitor)
            health = monitor.runner.health()["channels"]["generic"]
    assert result.outcome is Outcome.MET, result.reason
    assert health["api_retries"] == 1
