"""The generic kind's harness: the sandbox's generic messaging peer (a send API whose replies
come by an HMAC-signed JSON webhook), configured as data alone."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from cxprobe.app import Monitor
from probes.base import Responder
from sandbox.clock import WeeklyHours
from sandbox.generic.peer import GenericPeer
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
)
from tests.contract.harnesses.messaging import assert_every_reply_timed, replies_truth
from tests.support import (
    agents_answering_after,
    default_profile_data,
    generic_platform,
    messaging_config,
    messaging_profile,
    weekly,
)

#: Seconds from acceptance to the agent's answer at each pace; the bot answers at 0.2 s. A
#: reply posted to a stopped monitor is lost, so after a restart the agent must come later.
AGENT_SECONDS = {Pace.PROMPT: 0.5, Pace.AFTER_RESTART: 4.0, Pace.AFTER_DEADLINE: 2.0}
SLA_BEFORE_THE_AGENT = {"first_response": "1s", "human_response": "1s", "deadline": "1s"}
PLATFORM = "social"
CUSTOMER = "customer-4711"
RETRY_FOR = 1.5


class GenericHarness(Harness[GenericPeer]):
    kind = "generic"
    tolerance = Tolerance(first_answer=1.0, first_human=1.0)
    business_responders = (Responder.BOT, Responder.HUMAN)
    after_hours_responders = (Responder.BOT,)
    has_webhooks = True
    resumes = True
    #: The platform posts each reply once; nothing to fetch after a restart.
    catches_up = False
    late_replies = True
    outage_reason = "answered HTTP 503"
    failure_evidence: ClassVar[frozenset[str]] = frozenset({"message-records"})

    @asynccontextmanager
    async def peer(self, workdir: Path, setup: Setup) -> AsyncIterator[GenericPeer]:
        queues = agents_answering_after(
            default_profile_data()["generic_peer"], AGENT_SECONDS[setup.pace]
        )
        loaded = messaging_profile(
            misroute_rate=1.0 if setup.misroute else 0.0,
            generic_peer={"queues": asking(queues, setup.scripted)},
        )
        assert loaded.generic_peer is not None
        hours = WeeklyHours.model_validate(weekly(not setup.after_hours))
        async with GenericPeer(loaded.generic_peer, workdir=workdir, hours=hours) as peer:
            yield peer

    def config(self, tmp_path: Path, peer: GenericPeer, setup: Setup) -> Path:
        platform = generic_platform(peer)
        platform["send"]["retry_for"] = RETRY_FOR
        address = {"platform": PLATFORM, "recipient": peer.settings.page_id, "sender": CUSTOMER}
        return messaging_config(
            tmp_path,
            self.kind,
            address,
            {"generic": {"platforms": {PLATFORM: platform}}},
            open_now=not setup.after_hours,
            sla=SLA_BEFORE_THE_AGENT if setup.pace is Pace.AFTER_DEADLINE else None,
            scenario=SCRIPTED_SCENARIO if setup.scripted else "billing-question",
        )

    async def human_replies(self, peer: GenericPeer, result: RunResult) -> list[datetime]:
        replies = _replies_sent(peer, result.token)
        return [datetime.fromisoformat(e["at"]) for e in replies if e["responder"] == "agent"]

    async def attach(self, peer: GenericPeer, monitor: Monitor) -> None:
        assert monitor.server is not None
        peer.set_webhook_url(f"{monitor.server.url}/webhooks/generic/{PLATFORM}")

    async def truth(self, peer: GenericPeer, monitor: Monitor, result: RunResult) -> Truth:
        return replies_truth(_replies_sent(peer, result.token), result)

    async def human_answered(self, peer: GenericPeer, result: RunResult) -> None:
        async with asyncio.timeout(STEP_TIMEOUT):
            await peer.wait_for(
                lambda e: (
                    e["event"] == "reply_sent"
                    and e.get("in_reply_to_token") == result.token
                    and e["responder"] == "agent"
                )
            )

    def provider_down(self, peer: GenericPeer, monitor: Monitor, down: bool) -> None:
        peer.server_error(1000 if down else 0, 503)

    async def check_happy_path(
        self, peer: GenericPeer, monitor: Monitor, result: RunResult
    ) -> None:
        assert all(r.external_id.startswith(f"{PLATFORM}:") for r in result.replies)
        assert_every_reply_timed(
            result, _replies_sent(peer, result.token), self.tolerance.first_human
        )

    async def forge_webhooks(
        self, peer: GenericPeer, monitor: Monitor, live: RunResult
    ) -> list[int]:
        assert monitor.server is not None
        url = f"{monitor.server.url}/webhooks/generic/{PLATFORM}"
        # Signed with the platform's secret, this would be the page's answer to the live run.
        message = {
            "sender": {"id": peer.settings.page_id},
            "recipient": {"id": CUSTOMER},
            "timestamp": int(time.time() * 1000),
            "message": {"mid": "m_forged", "text": f"Your refund is approved. Ref {live.token}"},
        }
        body = json.dumps({"object": "page", "entry": [{"messaging": [message]}]}).encode()
        digest = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
        json_type = {"Content-Type": "application/json"}
        return await post_statuses(
            url,
            [(body, {**json_type, "X-Hub-Signature-256": f"sha256={digest}"}), (body, json_type)],
        )


def _replies_sent(peer: GenericPeer, token: str) -> list[dict[str, Any]]:
    return [
        e
        for e in peer.ground_truth()
        if e["event"] == "reply_sent" and e.get("in_reply_to_token") == token
    ]
