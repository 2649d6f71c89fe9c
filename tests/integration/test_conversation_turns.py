"""A three-turn scripted conversation on email (real Dovecot), web chat (real Chromium) and SMS
(the Twilio sandbox): the desk's agent asks for the order number, then the account's e-mail
address, then answers (sandbox/scripted_agent.py); the probe answers each question from the
library scenario ``order-status``'s persona in the same thread, session or pair. Each turn's
time to the next human reply is checked against the desk's ground truth, within the channel's
accuracy (the contract suite's tolerances)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import load_config
from probes.webchat.settings import DEBIAN_CHROMIUM
from sandbox.chat.site import ChatSite
from sandbox.clock import WeeklyHours
from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
from sandbox.twilio.server import TwilioSandbox
from scenarios.model import Outcome, RunResult
from tests.contract.harnesses.chat import WebchatHarness
from tests.contract.harnesses.mail import EmailHarness
from tests.contract.harnesses.messaging import SmsHarness
from tests.support import (
    CHAT_SLA,
    PROBE_NUMBER,
    PROBE_PASSWORD,
    brand_number,
    chat_site_profile,
    default_profile_data,
    desk_profile,
    fixed,
    messaging_config,
    messaging_profile,
    monitor_config,
    one_check,
    require_binary,
    sandbox_widget,
    twilio_messaging,
    webchat_config,
    weekly,
)

SCENARIO = "order-status"
ORDER_QUESTION = "Could you give me your order number, please?"
EMAIL_QUESTION = "Thank you. And the e-mail address on the account?"
ASKS = [
    {"question": ORDER_QUESTION, "expects": r"\b482913\b"},
    {"question": EMAIL_QUESTION, "expects": r"pat\.probe@example\.net"},
]
#: The SLA of these runs: time for three human replies and two turns.
SLA = {**CHAT_SLA, "human_response": "20s", "deadline": "25s"}


def with_asks(queues: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Every queue (as profile data) asking ASKS before it answers."""
    return {name: {**queue, "asks": ASKS, **changes} for name, queue in queues.items()}


async def run_once(monitor: Monitor) -> RunResult:
    result = await monitor.runner.execute(monitor.config.checks[0], datetime.now(UTC))
    assert result is not None
    return result


async def check_turns(
    monitor: Monitor, result: RunResult, human_sent_at: Sequence[datetime], tolerance: float
) -> None:
    """Three turns answered as scripted, each timed within ``tolerance`` of the desk's human
    replies (``human_sent_at``: when the desk sent each), and kept as turns, evidence and
    metrics."""
    assert result.outcome is Outcome.MET, result.reason
    assert [turn.matched for turn in result.turns] == ["", "turns[0]", "turns[1]"]
    assert "482913" in result.turns[1].said and "pat.probe@example.net" in result.turns[2].said
    assert len(human_sent_at) == 3, human_sent_at
    for turn, truth_at in zip(result.turns, human_sent_at, strict=True):
        expected = (truth_at - turn.sent_at).total_seconds()
        assert turn.next_human_seconds is not None, turn
        assert abs(turn.next_human_seconds - expected) < tolerance, (turn, expected)
    # Answering the agent's questions is no chaser: first-contact resolution is untouched.
    stored = await monitor.store.messages(result.run_id)
    out = [m for m in stored if m.direction == "out"]
    assert [m.turn["turn"] if m.turn else None for m in out] == [None, 1, 2]
    kinds = {artifact.kind for artifact in await monitor.store.artifacts(result.run_id)}
    assert "conversation" in kinds
    labels = {
        "target": "acme",
        "channel": result.channel,
        "scenario": SCENARIO,
        "location": "test",
    }
    assert monitor.registry.get_sample_value("cxprobe_turns_sent_total", labels) == 2
    for number in ("0", "1", "2"):
        count = monitor.registry.get_sample_value(
            "cxprobe_turn_human_response_seconds_count", {**labels, "turn": number}
        )
        assert count == 1, number


async def test_three_turns_on_email_threaded_and_timed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("dovecot")
    monkeypatch.setenv("CXPROBE_TEST_IMAP_PASSWORD", PROBE_PASSWORD)
    profile = desk_profile(human_seconds=0.8)
    profile["mail"]["queues"] = with_asks(profile["mail"]["queues"])
    async with MailDesk(Profile.model_validate(profile), tmp_path / "desk") as desk:
        path = monitor_config(
            tmp_path,
            smtp_port=desk.smtp_port,
            imap_port=desk.imap_port,
            sla=SLA,
            checks=[one_check("acme-email-order", "email", SCENARIO)],
        )
        async with open_monitor(load_config(path), logging.getLogger("test")) as monitor:
            result = await run_once(monitor)
            humans = [
                e
                for e in desk.ground_truth()
                if e["event"] == "reply_sent" and e["kind"] == "human"
            ]
            assert [e["asked"] for e in humans] == [0, 1, None]
            await check_turns(
                monitor,
                result,
                [datetime.fromisoformat(e["at"]) for e in humans],
                EmailHarness.tolerance.first_human,
            )


async def test_three_turns_on_chat_in_the_same_session_and_timed(tmp_path: Path) -> None:
    assert DEBIAN_CHROMIUM.exists(), f"{DEBIAN_CHROMIUM} is missing"
    raw = chat_site_profile(agent_seconds=0.6)
    raw["chat"]["queues"] = with_asks(raw["chat"]["queues"])
    async with ChatSite(Profile.model_validate(raw), tmp_path / "site") as site:
        path = webchat_config(tmp_path, sandbox_widget(site.url("/")), sla=SLA, scenario=SCENARIO)
        async with open_monitor(
            load_config(path), logging.getLogger("test"), serve_http=False
        ) as monitor:
            result = await run_once(monitor)
            agents = [
                e
                for e in site.ground_truth()
                if e["event"] == "reply_sent" and e["responder"] == "agent"
            ]
            assert ORDER_QUESTION in agents[0]["text"] and agents[1]["text"] == EMAIL_QUESTION
            sessions = {e["session"] for e in agents}
            assert len(sessions) == 1  # every turn in the one chat session
            await check_turns(
                monitor,
                result,
                [datetime.fromisoformat(e["at"]) for e in agents],
                WebchatHarness.tolerance.first_human,
            )


async def test_three_turns_on_sms_on_the_same_pair_and_timed(tmp_path: Path) -> None:
    queues = default_profile_data()["messaging"]["queues"]
    loaded = messaging_profile(queues=with_asks(queues, latency=fixed(1.0)))
    assert loaded.twilio is not None
    hours = WeeklyHours.model_validate(weekly(True))
    async with TwilioSandbox(
        loaded.twilio, workdir=tmp_path / "lines", hours=hours, messaging=loaded.messaging
    ) as sandbox:
        path = messaging_config(
            tmp_path,
            "sms",
            {"to": brand_number(loaded, "sms")},
            {"sms": twilio_messaging(sandbox.base_url, loaded)},
            scenario=SCENARIO,
            sla=SLA,
        )
        async with open_monitor(load_config(path), logging.getLogger("test")) as monitor:
            assert monitor.server is not None
            sandbox.messaging.set_inbound_webhook(
                PROBE_NUMBER, f"{monitor.server.url}/webhooks/twilio/sms"
            )
            result = await run_once(monitor)
            agents = [
                e
                for e in sandbox.messaging.ground_truth()
                if e["event"] == "reply_sent" and e["responder"] == "agent"
            ]
            assert agents[0]["body"].startswith(ORDER_QUESTION)
            assert agents[1]["body"].startswith(EMAIL_QUESTION)
            assert {(e["from"], e["to"]) for e in agents} == {
                (brand_number(loaded, "sms"), PROBE_NUMBER)
            }
            await check_turns(
                monitor,
                result,
                [datetime.fromisoformat(e["at"]) for e in agents],
                SmsHarness.tolerance.first_human,
            )
        assert sandbox.violations == [], sandbox.violations
