"""The generic messaging peer: a platform with a send API whose replies come by webhook.

    async with GenericPeer(settings, workdir=tmp, hours=profile.business_hours,
                           zone=profile.zone, clock=DeskClock(offset)) as peer:
        POST peer.send_url  (Bearer settings.access_token)  -> 201 {"message_id": ...}
        ... replies arrive, signed, at settings.webhook_url (or peer.set_webhook_url(...))
        await peer.wait_for(lambda e: e["event"] == "reply_sent")

It stands for a helpdesk's or a social network's messaging API (sandbox/generic/api.py
for the request, sandbox/generic/webhook.py for the Messenger-like reply event). The team
behind the brand's page answers like the Twilio lines do (sandbox/reply_team.py): the bot, then
a routed agent, each a sampled latency after the message was accepted; after hours only the bot;
an outage nothing. `reply_sent.at` is the instant the reply exists and its webhook POST starts
(also the event's `timestamp`). A failing webhook is a `webhook_error`; a reply with no webhook
configured is a `reply_dropped`, since on such a platform nobody would ever see it.

It owns its HTTP server (127.0.0.1), webhook session, random streams, reply tasks and its
ground-truth log (`generic_ground_truth.jsonl`); all of them stop when the block ends.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from sandbox.clock import DeskClock, WeeklyHours, iso_utc, real_now
from sandbox.faults import RequestFaults
from sandbox.generic.api import (
    CONTROL_PREFIX,
    SEND_PATH,
    Accepted,
    Inbound,
    build_app,
    webhook_switch,
)
from sandbox.generic.profile import GenericPeerSettings
from sandbox.generic.webhook import PeerWebhookError, post_event, reply_event
from sandbox.peer import SandboxPeer
from sandbox.reply_team import Plan, PlannedReply, ReplyPlanner, find_token
from sandbox.routing import DeskStreams

log = logging.getLogger(__name__)


def new_message_id() -> str:
    return "m_" + secrets.token_urlsafe(18)


class GenericPeer(SandboxPeer):
    ground_truth_file = "generic_ground_truth.jsonl"
    not_running = "the generic peer is not running; use `async with GenericPeer`"
    control_prefix = CONTROL_PREFIX

    def __init__(
        self,
        settings: GenericPeerSettings,
        *,
        workdir: Path,
        hours: WeeklyHours | None = None,
        zone: ZoneInfo | None = None,
        clock: DeskClock | None = None,
        seed: int = 0,
    ) -> None:
        """hours, zone and clock are the profile's top-level ones (default: always open, UTC)."""
        super().__init__(workdir, hours=hours, zone=zone, clock=clock)
        self.settings = settings
        self.streams = DeskStreams(seed, "generic")
        self._planner = ReplyPlanner(settings, self.streams)
        faults = settings.faults
        self.faults = RequestFaults(
            rate_limit=faults.rate_limit,
            retry_after=faults.retry_after,
            server_error=faults.server_error,
            server_error_status=faults.server_error_status,
        )
        self._outage = settings.outage
        self._webhook_url = settings.webhook_url
        self._received = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def send_url(self) -> str:
        return f"{self.base_url}{SEND_PATH}"

    # -- switches ----------------------------------------------------------------------

    def set_webhook_url(self, url: str | None) -> None:
        """Where replies are POSTed from now on; None: nowhere (they are dropped)."""
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"{url!r} is not an http(s) URL")
        self._webhook_url = url

    def set_outage(self, on: bool) -> None:
        self._outage = on

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        self.faults.rate_limit(count, retry_after)

    def server_error(self, count: int, status: int = 500) -> None:
        self.faults.server_error(count, status)

    def state(self) -> dict[str, Any]:
        return {
            **self.faults.state(),
            "outage": self._outage,
            "webhook_url": self._webhook_url,
            "page_id": self.settings.page_id,
            **self.clock_state(),
            "send_url": self.send_url,
            "messages_received": self._received,
            "pending_replies": len(self._tasks),
            "ground_truth_path": str(self.ground_truth_path),
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def _start(self, stack: AsyncExitStack) -> None:
        self._session = await stack.enter_async_context(aiohttp.ClientSession())
        controls = (
            self._controls()
            .switch("outage", self.set_outage)
            .post("webhook", webhook_switch(self.set_webhook_url))
            .request_faults(self.faults)
        )
        app = build_app(self, self.settings.access_token, self.settings.page_id, controls.routes())
        await self._serve(app, "the generic peer", [self.settings.port])
        # Registered last, so it runs first: replies stop before the server and session go.
        stack.push_async_callback(self._cancel_tasks)

    # -- the page receives -------------------------------------------------------------

    def accept(self, inbound: Inbound) -> Accepted:
        """A customer message the API accepted: record it and plan the team's replies."""
        received_at = real_now()
        message_id = new_message_id()
        period = self.period_now()
        token = find_token(inbound.text, inbound.ref)
        plan = self._planner.plan(inbound.text, period, token=token, silent=self._outage)
        self._received += 1
        self._truth.record(
            "message_received",
            at=received_at,
            message_id=message_id,
            channel="generic",
            sender=inbound.sender_id,
            recipient=self.settings.page_id,
            body=inbound.text,
            ref=inbound.ref,
            token=token,
            period=period,
            queue=plan.queue,
            intended_queue=plan.intended_queue,
            outage=self._outage,
            replies=[reply.responder for reply in plan.replies],
        )
        received = asyncio.get_running_loop().time()
        for reply in plan.replies:
            # Against an absolute deadline, so one reply's webhook does not delay the next.
            coro = self._reply(message_id, inbound, token, plan, reply, received + reply.delay)
            self._spawn(coro).add_done_callback(_log_crash)
        return Accepted(message_id, iso_utc(received_at))

    async def _reply(
        self,
        message_id: str,
        inbound: Inbound,
        token: str | None,
        plan: Plan,
        reply: PlannedReply,
        deadline: float,
    ) -> None:
        await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))
        mid = new_message_id()
        url = self._webhook_url
        fields: dict[str, Any] = {
            "message_id": mid,
            "channel": "generic",
            "responder": reply.responder,
            "queue": reply.queue,
            "intended_queue": reply.intended_queue,
            "agent": reply.agent,
            "answer": reply.answer,
            "rubric": None if reply.rubric is None else list(reply.rubric),
            "body": reply.body,
            "in_reply_to": message_id,
            "in_reply_to_token": token,
            "period": plan.period,
            "to": inbound.sender_id,
            "webhook": url,
        }
        if self._outage:  # an outage began while the reply was being written
            self._truth.record("reply_dropped", reason="outage", **fields)
            return
        if url is None:
            self._truth.record("reply_dropped", reason="no webhook_url configured", **fields)
            return
        sent_at = real_now()
        self._truth.record("reply_sent", at=sent_at, **fields)
        event = reply_event(
            page_id=self.settings.page_id,
            customer_id=inbound.sender_id,
            mid=mid,
            text=reply.body,
            responder=reply.responder,
            sent_at=sent_at,
        )
        try:
            await post_event(self._started(self._session), url, self.settings.app_secret, event)
        except PeerWebhookError as err:
            log.warning("generic peer: reply %s not delivered: %s", mid, err)
            self._truth.record("webhook_error", message_id=mid, url=url, message=str(err))


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a generic peer reply crashed", exc_info=task.exception())
