"""The phone kind's harness: the Twilio sandbox's IVR line, through the real ``twilio`` client.

The sandbox validates every request against Twilio's OpenAPI description: a violation fails
the test when the peer stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

from twilio.request_validator import RequestValidator

from cxprobe.app import Monitor
from probes.base import Responder
from sandbox.clock import WeeklyHours
from sandbox.twilio.server import TwilioSandbox
from scenarios.model import RunResult
from tests.contract.harness import (
    STEP_TIMEOUT,
    Harness,
    Pace,
    Setup,
    Tolerance,
    Truth,
    post_statuses,
    seconds_between,
)
from tests.support import phone_config, phone_line, run_evidence_kinds, weekly

#: Seconds on hold before the agent picks up, at each pace (menu and greeting take ~2 s).
QUEUE_WAIT = {Pace.PROMPT: 1.0, Pace.AFTER_RESTART: 4.0, Pace.AFTER_DEADLINE: 5.0}
#: Judged while the caller is still on hold.
SLA_BEFORE_THE_AGENT = {"first_response": "5s", "human_response": "2s", "deadline": "3s"}
#: Long enough to show the retries, short enough for the outage test.
RETRY_FOR = 1.5


class PhoneHarness(Harness[TwilioSandbox]):
    kind = "phone"
    #: The issue's bound on the time to a human; the answer itself is a status event.
    tolerance = Tolerance(first_answer=0.5, first_human=1.0)
    #: The sandbox's phone agents greet and wait; none asks questions (its transcripts are
    #: the IVR's and the greeting): conversation scripts are tested on the other kinds.
    scripted_agents = False
    #: Option 2 ("support") is wired to sales though the line means it for tech.
    misroute_scenario = "technical-fault"
    business_responders = (Responder.IVR, Responder.IVR, Responder.HUMAN)
    after_hours_responders = (Responder.IVR, Responder.AUTO)
    has_webhooks = True
    resumes = False
    catches_up = False
    late_replies = False
    outage_reason = "place the call: Twilio answered HTTP 503"
    #: The timeline of what the probe tried (here: the refused request).
    failure_evidence: ClassVar[frozenset[str]] = frozenset({"call-timeline"})

    @asynccontextmanager
    async def peer(self, workdir: Path, setup: Setup) -> AsyncIterator[TwilioSandbox]:
        line = phone_line(queue_wait=QUEUE_WAIT[setup.pace])
        hours = WeeklyHours.model_validate(weekly(not setup.after_hours))
        async with TwilioSandbox(line, workdir=workdir, hours=hours) as sandbox:
            yield sandbox
            # Status callbacks to a monitor that was stopped fail, as Twilio's would (11200);
            # every request of the probe must still conform to the spec.
            violations = [
                v
                for v in sandbox.violations
                if not (setup.pace is Pace.AFTER_RESTART and v.source == "webhook")
            ]
            assert violations == [], violations

    def config(self, tmp_path: Path, peer: TwilioSandbox, setup: Setup) -> Path:
        return phone_config(
            tmp_path,
            peer.base_url,
            open_now=not setup.after_hours,
            scenario=self.misroute_scenario if setup.misroute else self.scenario,
            retry_for=RETRY_FOR,
            sla=SLA_BEFORE_THE_AGENT if setup.pace is Pace.AFTER_DEADLINE else None,
        )

    async def truth(self, peer: TwilioSandbox, monitor: Monitor, result: RunResult) -> Truth:
        assert result.sent_at is not None
        events = _call_events(peer, await _call_sid(monitor, result))
        (answered,) = [e for e in events if e["event"] == "answered"]
        agents = [e for e in events if e["event"] == "agent_answered"]
        queued = [e for e in events if e["event"] == "queue_entered"]
        return Truth(
            first_answer_seconds=seconds_between(result.sent_at, answered["at"]),
            first_human_seconds=(
                seconds_between(result.sent_at, agents[0]["at"]) if agents else None
            ),
            queue=queued[0]["queue"] if queued else None,
            intended_queue=queued[0]["intended_queue"] if queued else None,
        )

    async def human_answered(self, peer: TwilioSandbox, result: RunResult) -> None:
        async with asyncio.timeout(STEP_TIMEOUT):
            await peer.wait_for(lambda e: e["event"] == "agent_answered")

    def provider_down(self, peer: TwilioSandbox, monitor: Monitor, down: bool) -> None:
        peer.server_error(1000 if down else 0, 503)

    async def check_happy_path(
        self, peer: TwilioSandbox, monitor: Monitor, result: RunResult
    ) -> None:
        events = _call_events(peer, await _call_sid(monitor, result))
        (agent,) = [e for e in events if e["event"] == "agent_answered"]
        assert agent["queue"] == "billing"
        assert [e["digits"] for e in events if e["event"] == "digits_received"] == ["1"]
        # The probe said goodbye and hung up; the timeline is kept as evidence.
        hangups = [e for e in events if e["event"] == "hangup"]
        assert hangups and hangups[-1]["by"] == "caller"
        artifacts = await monitor.store.artifacts(result.run_id)
        assert {a.kind for a in artifacts} == run_evidence_kinds(result, "call-timeline")

    async def check_after_hours(
        self, peer: TwilioSandbox, monitor: Monitor, result: RunResult
    ) -> None:
        # The line answers, then the closed message plays: that is the automatic answer.
        assert result.sent_at is not None
        events = _call_events(peer, await _call_sid(monitor, result))
        (closed,) = [e for e in events if e["event"] == "closed_message"]
        auto = next(r for r in result.replies if r.responder is Responder.AUTO)
        expected = seconds_between(result.sent_at, closed["at"])
        assert abs(auto.seconds - expected) < self.tolerance.first_human

    async def forge_webhooks(
        self, peer: TwilioSandbox, monitor: Monitor, live: RunResult
    ) -> list[int]:
        assert monitor.server is not None
        (created,) = [e for e in peer.ground_truth() if e["event"] == "call_created"]
        url = f"{monitor.server.url}/webhooks/twilio/status/{live.token}"
        # Signed with the right key, this would end the call as busy.
        forged = {"CallSid": created["call_sid"], "CallStatus": "busy"}
        wrong = RequestValidator("not-the-token").compute_signature(url, forged)
        return await post_statuses(url, [(forged, {"X-Twilio-Signature": wrong}), (forged, {})])

    async def conversation_left(self, peer: TwilioSandbox, result: RunResult) -> None:
        (created,) = [e for e in peer.ground_truth() if e["event"] == "call_created"]
        call_sid = created["call_sid"]
        async with asyncio.timeout(STEP_TIMEOUT):
            await peer.wait_for(lambda e: e["event"] == "completed" and e["call_sid"] == call_sid)
        events = _call_events(peer, call_sid)
        # The probe hung up through the REST API while on hold: no agent can answer a
        # completed call.
        hangups = [e for e in events if e["event"] == "hangup"]
        assert [h["by"] for h in hangups] == ["api"], hangups
        assert not [e for e in events if e["event"] == "agent_answered"]


async def _call_sid(monitor: Monitor, result: RunResult) -> str:
    """The SID of the run's call: the external id of its contact."""
    (contact, *_) = [m for m in await monitor.store.messages(result.run_id) if m.direction == "out"]
    return contact.external_id


def _call_events(sandbox: TwilioSandbox, call_sid: str) -> list[dict[str, Any]]:
    return [e for e in sandbox.ground_truth() if e.get("call_sid") == call_sid]
