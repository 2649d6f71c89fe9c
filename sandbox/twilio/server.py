"""The Twilio sandbox: a Twilio-compatible REST API whose calls reach a simulated IVR and whose
messages (SMS, WhatsApp) reach the brand's messaging lines.

    async with TwilioSandbox(settings, workdir=tmp, hours=profile.business_hours,
                             zone=profile.zone, clock=DeskClock(offset),
                             messaging=profile.messaging) as twilio:
        client = Client(sid, token, http_client=<rewrites api.twilio.com to twilio.base_url>)
        ...
        assert twilio.violations == []

It owns its HTTP server (127.0.0.1 only), webhook session, random streams, call tasks and
ground-truth log (`twilio_ground_truth.jsonl`), and with a messaging profile the Messages part
(`twilio.messaging`, sandbox/twilio/messaging.py, its own `messaging_ground_truth.jsonl`); all
of them stop when the block ends. It shares no code with the client it checks: requests are
validated against Twilio's published OpenAPI description and webhooks are signed from Twilio's
documented algorithm.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from sandbox.clock import DeskClock, WeeklyHours
from sandbox.ground_truth import EventName
from sandbox.messaging_profile import MessagingSettings
from sandbox.peer import SandboxPeer
from sandbox.routing import DeskStreams
from sandbox.twilio.api import (
    CONTROL_PREFIX,
    RestApi,
    build_app,
    call_result_switch,
    stream_fault_switch,
)
from sandbox.twilio.audio import Voicebox
from sandbox.twilio.calls import CallBook, CallEnvironment
from sandbox.twilio.faults import Faults
from sandbox.twilio.messaging import TwilioMessaging
from sandbox.twilio.profile import CallResult, StreamFault, TwilioSettings
from sandbox.twilio.spec import TwilioSpec, Violation
from sandbox.twilio.webhooks import Webhooks


class TwilioSandbox(SandboxPeer):
    ground_truth_file = "twilio_ground_truth.jsonl"
    not_running = "the Twilio sandbox is not running; use `async with TwilioSandbox`"
    control_prefix = CONTROL_PREFIX

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        workdir: Path,
        hours: WeeklyHours | None = None,
        zone: ZoneInfo | None = None,
        clock: DeskClock | None = None,
        seed: int = 0,
        spec: TwilioSpec | None = None,
        messaging: MessagingSettings | None = None,
        voicebox: Voicebox | None = None,
    ) -> None:
        """hours, zone and clock are the profile's top-level ones (default: always open, UTC).

        messaging is the profile's `messaging:` section; without it the Messages API answers
        404 (not simulated).
        """
        super().__init__(workdir, hours=hours, zone=zone, clock=clock)
        self.settings = settings
        self.streams = DeskStreams(seed, "phone")
        self._seed = seed
        self._spec = spec
        self._messaging_settings = messaging
        self._messaging: TwilioMessaging | None = None
        self.faults = Faults(settings.faults)
        self._violations: list[Violation] = []
        self._calls: CallBook | None = None
        self._voicebox = voicebox or Voicebox()

    # -- what happened -----------------------------------------------------------------

    @property
    def violations(self) -> list[Violation]:
        """Every break of Twilio's contract seen so far (requests, TwiML, webhook answers)."""
        return list(self._violations)

    def calls(self) -> list[dict[str, Any]]:
        """Every call's REST resource, oldest first."""
        return [call.resource() for call in self._started(self._calls).records()]

    @property
    def messaging(self) -> TwilioMessaging:
        """The Messages part: its ground truth, messages and switches (needs `messaging:`)."""
        if self._messaging_settings is None:
            raise RuntimeError("this Twilio sandbox has no messaging: section in its profile")
        return self._started(self._messaging)

    # -- switches ----------------------------------------------------------------------

    def set_outage(self, on: bool) -> None:
        self.faults.outage = on

    def set_call_result(self, result: CallResult | None, count: int | None = None) -> None:
        self.faults.set_call_result(result, count)

    def set_stream_fault(self, fault: StreamFault | None, drop_after: float = 2.0) -> None:
        self.faults.set_stream_fault(fault, drop_after)

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        self.faults.rate_limit(count, retry_after)

    def server_error(self, count: int, status: int = 500) -> None:
        self.faults.server_error(count, status)

    def set_inbound_webhook(self, number: str, url: str | None) -> None:
        """Where messages to the monitor's number are POSTed; see TwilioMessaging."""
        self.messaging.set_inbound_webhook(number, url)

    def state(self) -> dict[str, Any]:
        return {
            **self.faults.state(),
            **self.clock_state(),
            "base_url": self.base_url,
            "calls": len(self._started(self._calls).records()),
            "violations": len(self._violations),
            "ground_truth_path": str(self.ground_truth_path),
            "messaging": None if self._messaging is None else self._messaging.state(),
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def _start(self, stack: AsyncExitStack) -> None:
        spec = self._spec or TwilioSpec.load()
        session = await stack.enter_async_context(aiohttp.ClientSession())
        webhooks = Webhooks(session, self.settings.auth_token)
        calls = self._calls = CallBook(self._call_environment(webhooks))
        messaging = self._messaging = self._start_messaging(webhooks)
        if messaging is not None:
            stack.callback(messaging.close_log)
        api = RestApi(
            spec,
            self.settings,
            self.faults,
            calls,
            self._violations.append,
            None if messaging is None else messaging.api,
        )
        app = build_app(api, self._control_routes(messaging))
        await self._serve(app, "the Twilio sandbox", [self.settings.port])
        # Registered last, so they run first: calls and messages stop before the server and
        # the session go.
        stack.push_async_callback(calls.close)
        if messaging is not None:
            stack.push_async_callback(messaging.stop)

    # -- helpers -----------------------------------------------------------------------

    def _call_environment(self, webhooks: Webhooks) -> CallEnvironment:
        return CallEnvironment(
            settings=self.settings,
            faults=self.faults,
            webhooks=webhooks,
            streams=self.streams,
            period_now=self.period_now,
            write_truth=self._write_truth,
            report=self._violations.append,
            voicebox=self._voicebox,
        )

    def _control_routes(self, messaging: TwilioMessaging | None) -> list[web.RouteDef]:
        """/_control/...: state, clock, ground truth, faults, violations; then messaging's."""
        controls = (
            self._controls()
            .switch("outage", self.set_outage)
            .post("call-result", call_result_switch(self.faults))
            .post("stream-fault", stream_fault_switch(self.faults))
            .request_faults(self.faults)
            .get("violations", lambda: [vars(v) for v in self._violations])
        )
        return [*controls.routes(), *([] if messaging is None else messaging.control_routes())]

    def _start_messaging(self, webhooks: Webhooks) -> TwilioMessaging | None:
        if self._messaging_settings is None:
            return None
        return TwilioMessaging(
            self._messaging_settings,
            account_sid=self.settings.account_sid,
            workdir=self.workdir,
            webhooks=webhooks,
            clock=self._clock,
            period_now=self.period_now,
            api_outage=lambda: self.faults.outage,
            seed=self._seed,
            report=self._violations.append,
        )

    def _write_truth(
        self, event: EventName, *, call_sid: str | None, at: datetime | None = None, **fields: Any
    ) -> None:
        self._truth.record(event, at=at, call_sid=call_sid, **fields)
