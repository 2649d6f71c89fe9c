"""The email kind's harness: the sandbox desk, real Dovecot behind the desk's SMTP front."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from cxprobe.app import Monitor
from probes.base import Responder
from sandbox.mail.desk import MailDesk
from sandbox.profile import Profile
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
    seconds_between,
)
from tests.support import desk_profile, monitor_config, one_check, require_binary

#: Seconds the desk's human takes at each pace; the auto-acknowledgement comes at 0.3 s.
HUMAN_SECONDS = {Pace.PROMPT: 1.5, Pace.AFTER_RESTART: 3.0, Pace.AFTER_DEADLINE: 1.5}
#: Judged at 1 s, before the human's answer at 1.5 s.
SLA_BEFORE_THE_HUMAN = {"human_response": "1s", "first_response": "1s", "deadline": "1s"}
#: Nothing listens on port 1: the SMTP server is unreachable.
DEAD_PORT = 1


class EmailHarness(Harness[MailDesk]):
    kind = "email"
    #: The issue's bound: INTERNALDATE has second resolution, IDLE adds ~0.5 s.
    tolerance = Tolerance(first_answer=1.5, first_human=1.5)
    business_responders = (Responder.AUTO, Responder.HUMAN)
    after_hours_responders = (Responder.AUTO,)
    has_webhooks = False
    resumes = True
    catches_up = True
    late_replies = True
    outage_reason = "ChannelUnavailable"
    failure_evidence: ClassVar[frozenset[str]] = frozenset()

    def require(self) -> None:
        require_binary("dovecot")

    @asynccontextmanager
    async def peer(self, workdir: Path, setup: Setup) -> AsyncIterator[MailDesk]:
        profile = desk_profile(
            not setup.after_hours,
            human_seconds=HUMAN_SECONDS[setup.pace],
            misroute_rate=1.0 if setup.misroute else 0.0,
        )
        profile["mail"]["queues"] = asking(profile["mail"]["queues"], setup.scripted)
        async with MailDesk(Profile.model_validate(profile), workdir) as desk:
            yield desk

    def config(self, tmp_path: Path, peer: MailDesk, setup: Setup) -> Path:
        return monitor_config(
            tmp_path,
            smtp_port=peer.smtp_port,
            imap_port=peer.imap_port,
            open_now=not setup.after_hours,
            sla=SLA_BEFORE_THE_HUMAN if setup.pace is Pace.AFTER_DEADLINE else None,
            checks=[one_check("acme-email", "email", SCRIPTED_SCENARIO)]
            if setup.scripted
            else None,
        )

    async def truth(self, peer: MailDesk, monitor: Monitor, result: RunResult) -> Truth:
        assert result.sent_at is not None
        replies = _replies_to(peer, result.token)
        assert replies, f"the desk sent no reply to {result.token}"
        humans = [e for e in replies if e["kind"] == "human"]
        return Truth(
            first_answer_seconds=seconds_between(result.sent_at, replies[0]["at"]),
            first_human_seconds=(
                seconds_between(result.sent_at, humans[0]["at"]) if humans else None
            ),
            queue=humans[0]["queue"] if humans else None,
            intended_queue=humans[0]["intended_queue"] if humans else None,
        )

    async def human_answered(self, peer: MailDesk, result: RunResult) -> None:
        async with asyncio.timeout(STEP_TIMEOUT):
            await peer.wait_for_events(
                lambda e: (
                    e["event"] == "reply_sent"
                    and e["kind"] == "human"
                    and e["in_reply_to"] == _contact_id(peer, result.token)
                )
            )

    async def human_replies(self, peer: MailDesk, result: RunResult) -> list[datetime]:
        # Every message of the thread carries the token in its subject.
        ids = {
            e["message_id"]
            for e in peer.ground_truth()
            if e["event"] == "received" and result.token in e["subject"]
        }
        return [
            datetime.fromisoformat(e["at"])
            for e in peer.ground_truth()
            if e["event"] == "reply_sent" and e["kind"] == "human" and e["in_reply_to"] in ids
        ]

    def provider_down(self, peer: MailDesk, monitor: Monitor, down: bool) -> None:
        # The desk has no switch that takes its SMTP front down: the monitor's mailbox is
        # pointed at a port nothing listens on instead, the same refused connection.
        smtp = monitor.config.channel_settings("email").mailboxes["probe"].smtp
        smtp.port = DEAD_PORT if down else peer.smtp_port

    async def check_happy_path(self, peer: MailDesk, monitor: Monitor, result: RunResult) -> None:
        assert result.first_response_responder is Responder.AUTO
        # Evidence: the sent email and both replies, raw, with hashes.
        stored = await monitor.store.messages(result.run_id)
        assert [m.direction for m in stored] == ["out", "in", "in"]
        assert all(m.sha256 and (m.size or 0) > 200 for m in stored)


def _contact_id(desk: MailDesk, token: str) -> str | None:
    """The Message-ID of the contact carrying ``token`` (its subject ends ``[token]``)."""
    received = [
        e for e in desk.ground_truth() if e["event"] == "received" and token in e["subject"]
    ]
    return received[0]["message_id"] if received else None


def _replies_to(desk: MailDesk, token: str) -> list[dict[str, Any]]:
    contact = _contact_id(desk, token)
    return [
        e
        for e in desk.ground_truth()
        if e["event"] == "reply_sent" and contact is not None and e["in_reply_to"] == contact
    ]
