"""The sms and whatsapp kinds' harnesses: the brand's lines on the Twilio sandbox's Messages
API, reached through the real ``twilio`` client; replies come by the inbound webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from twilio.request_validator import RequestValidator

from cxprobe.app import Monitor
from probes.base import Responder
from sandbox.clock import WeeklyHours
from sandbox.profile import Profile
from sandbox.twilio.server import TwilioSandbox
from scenarios.model import RunResult
from tests.contract.harness import (
    SCRIPTED_SCENARIO,
    STEP_TIMEOUT,
    Harness,
    Pace,
    Setup,
    Tolerance,
    Truth,
    asking,
    post_statuses,
    seconds_between,
)
from tests.support import (
    PROBE_NUMBER,
    agents_answering_after,
    brand_number,
    default_profile_data,
    messaging_config,
    messaging_profile,
    run_evidence_kinds,
    twilio_messaging,
    weekly,
)

#: Seconds from delivery to the agent's answer at each pace; the bot answers at 0.2 s.
AGENT_SECONDS = {Pace.PROMPT: 0.5, Pace.AFTER_RESTART: 2.5, Pace.AFTER_DEADLINE: 2.0}
#: Judged at 1 s, after the bot and before the agent.
SLA_BEFORE_THE_AGENT = {"first_response": "1s", "human_response": "1s", "deadline": "1s"}
#: The approved template that opens a WhatsApp conversation outside the session window.
TEMPLATE = "HX00000000000000000000000000000001"
RETRY_FOR = 1.5


@dataclass(frozen=True)
class TwilioLines:
    """The running Twilio sandbox and the profile its lines were built from."""

    sandbox: TwilioSandbox
    profile: Profile


class TwilioMessagingHarness(Harness[TwilioLines]):
    """Both lines answer alike (the same reply team); they differ in addresses."""

    tolerance = Tolerance(first_answer=1.0, first_human=1.0)
    business_responders = (Responder.BOT, Responder.HUMAN)
    after_hours_responders = (Responder.BOT,)
    has_webhooks = True
    resumes = True
    catches_up = True
    late_replies = True
    outage_reason = "Twilio answered HTTP 503"
    failure_evidence: ClassVar[frozenset[str]] = frozenset({"message-records"})
    #: Twilio writes a WhatsApp address with this prefix before the number.
    prefix: ClassVar[str] = ""

    @asynccontextmanager
    async def peer(self, workdir: Path, setup: Setup) -> AsyncIterator[TwilioLines]:
        queues = agents_answering_after(
            default_profile_data()["messaging"], AGENT_SECONDS[setup.pace]
        )
        loaded = messaging_profile(
            misroute_rate=1.0 if setup.misroute else 0.0, queues=asking(queues, setup.scripted)
        )
        assert loaded.twilio is not None
        hours = WeeklyHours.model_validate(weekly(not setup.after_hours))
        async with TwilioSandbox(
            loaded.twilio, workdir=workdir, hours=hours, messaging=loaded.messaging
        ) as sandbox:
            yield TwilioLines(sandbox, loaded)
            # A webhook to a monitor that is down fails (as Twilio's would, error 11200); every
            # request the probe made must still conform to the spec.
            violations = [
                v
                for v in sandbox.violations
                if not (setup.pace is Pace.AFTER_RESTART and v.source == "webhook")
            ]
            assert violations == [], violations

    def address(self, lines: TwilioLines) -> dict[str, Any]:
        return {"to": brand_number(lines.profile, self.kind)}

    def config(self, tmp_path: Path, peer: TwilioLines, setup: Setup) -> Path:
        channel = twilio_messaging(peer.sandbox.base_url, peer.profile, retry_for=RETRY_FOR)
        return messaging_config(
            tmp_path,
            self.kind,
            self.address(peer),
            {self.kind: channel},
            open_now=not setup.after_hours,
            sla=SLA_BEFORE_THE_AGENT if setup.pace is Pace.AFTER_DEADLINE else None,
            scenario=SCRIPTED_SCENARIO if setup.scripted else "billing-question",
        )

    async def human_replies(self, peer: TwilioLines, result: RunResult) -> list[datetime]:
        replies = _replies_sent(peer, result.token)
        return [datetime.fromisoformat(e["at"]) for e in replies if e["responder"] == "agent"]

    async def attach(self, peer: TwilioLines, monitor: Monitor) -> None:
        assert monitor.server is not None
        url = f"{monitor.server.url}/webhooks/twilio/{self.kind}"
        peer.sandbox.messaging.set_inbound_webhook(f"{self.prefix}{PROBE_NUMBER}", url)

    async def truth(self, peer: TwilioLines, monitor: Monitor, result: RunResult) -> Truth:
        return replies_truth(_replies_sent(peer, result.token), result)

    async def human_answered(self, peer: TwilioLines, result: RunResult) -> None:
        async with asyncio.timeout(STEP_TIMEOUT):
            await peer.sandbox.messaging.wait_for(
                lambda e: (
                    e["event"] == "reply_sent"
                    and e.get("in_reply_to_token") == result.token
                    and e["responder"] == "agent"
                )
            )

    def provider_down(self, peer: TwilioLines, monitor: Monitor, down: bool) -> None:
        peer.sandbox.server_error(1000 if down else 0, 503)

    async def check_happy_path(
        self, peer: TwilioLines, monitor: Monitor, result: RunResult
    ) -> None:
        truth = _replies_sent(peer, result.token)
        assert [e["responder"] for e in truth] == ["bot", "agent"]
        assert_every_reply_timed(result, truth, self.tolerance.first_human)
        artifacts = await monitor.store.artifacts(result.run_id)
        assert {a.kind for a in artifacts} == run_evidence_kinds(result, "message-records")

    async def forge_webhooks(
        self, peer: TwilioLines, monitor: Monitor, live: RunResult
    ) -> list[int]:
        assert monitor.server is not None
        url = f"{monitor.server.url}/webhooks/twilio/{self.kind}"
        # Signed with the right key, this would be the brand's answer to the live run.
        forged = {
            "MessageSid": "SM" + "0" * 32,
            "From": f"{self.prefix}{brand_number(peer.profile, self.kind)}",
            "To": f"{self.prefix}{PROBE_NUMBER}",
            "Body": f"Your refund is approved. Ref {live.token}",
        }
        wrong = RequestValidator("not-the-token").compute_signature(url, forged)
        return await post_statuses(url, [(forged, {"X-Twilio-Signature": wrong}), (forged, {})])


class SmsHarness(TwilioMessagingHarness):
    kind = "sms"


class WhatsAppHarness(TwilioMessagingHarness):
    kind = "whatsapp"
    prefix = "whatsapp:"

    def address(self, lines: TwilioLines) -> dict[str, Any]:
        # Outside the 24-hour session window only an approved template may open the chat.
        template = {"content_sid": TEMPLATE, "variables": {"1": "{token}"}}
        return {**super().address(lines), "template": template}


def _replies_sent(lines: TwilioLines, token: str) -> list[dict[str, Any]]:
    return [
        e
        for e in lines.sandbox.messaging.ground_truth()
        if e["event"] == "reply_sent" and e.get("in_reply_to_token") == token
    ]


def replies_truth(replies: list[dict[str, Any]], result: RunResult) -> Truth:
    """The truth of a messaging run from the peer's ``reply_sent`` events to its contact."""
    assert result.sent_at is not None
    assert replies, f"the peer sent no reply to {result.token}"
    agents = [e for e in replies if e["responder"] == "agent"]
    return Truth(
        first_answer_seconds=seconds_between(result.sent_at, replies[0]["at"]),
        first_human_seconds=seconds_between(result.sent_at, agents[0]["at"]) if agents else None,
        queue=agents[0]["queue"] if agents else None,
        intended_queue=agents[0]["intended_queue"] if agents else None,
    )


def assert_every_reply_timed(
    result: RunResult, truth: list[dict[str, Any]], tolerance: float
) -> None:
    """Each of the run's replies within ``tolerance`` of the peer's reply event, one to one."""
    assert result.sent_at is not None
    assert len(result.replies) == len(truth)
    for observed, event in zip(result.replies, truth, strict=True):
        actual = seconds_between(result.sent_at, event["at"])
        assert abs(observed.seconds - actual) < tolerance, (observed, event)
