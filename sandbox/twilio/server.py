"""The Twilio sandbox: a Twilio-compatible REST API whose calls reach a simulated IVR and whose
messages (SMS, WhatsApp) reach the brand's messaging lines.

    async with TwilioSandbox(settings, workdir=tmp, hours=profile.business_hours,
                             zone=profile.zone, clock=DeskClock(offset),
                             messaging=profile.messaging) as twilio:
        client = Client(sid, token, http_client=<rewrites api.twilio.com to twilio.base_url>)
        ...
        assert twilio.violations == []

It owns its HTTP server (127.0.0.1 only), webhook session, random stream, call tasks and
ground-truth log (`twilio_ground_truth.jsonl`), and with a messaging profile the Messages part
(`twilio.messaging`, sandbox/twilio/messaging.py, its own `messaging_ground_truth.jsonl`); all
of them stop when the block ends. It shares no code with the client it checks: requests are
validated against Twilio's published OpenAPI description and webhooks are signed from Twilio's
documented algorithm.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from sandbox.clock import DeskClock, Period, WeeklyHours, iso_utc, real_now
from sandbox.ground_truth import Event, EventName, GroundTruthLog
from sandbox.messaging_profile import MessagingSettings
from sandbox.net import LOOPBACK
from sandbox.twilio.api import RestApi, build_app
from sandbox.twilio.calls import CallBook, CallEnvironment
from sandbox.twilio.faults import Faults
from sandbox.twilio.messaging import TwilioMessaging
from sandbox.twilio.profile import CallResult, TwilioSettings
from sandbox.twilio.spec import TwilioSpec, Violation
from sandbox.twilio.webhooks import Webhooks

_T = TypeVar("_T")


class TwilioSandbox:
    host: str = LOOPBACK

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
    ) -> None:
        """hours, zone and clock are the profile's top-level ones (default: always open, UTC).

        messaging is the profile's `messaging:` section; without it the Messages API answers
        404 (not simulated).
        """
        self.settings = settings
        self.workdir = Path(workdir).resolve()
        all_week = ["00:00-24:00"]
        self._hours = hours or WeeklyHours.model_validate(
            {day: all_week for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        )
        self._zone = zone or ZoneInfo("UTC")
        self._clock = clock or DeskClock()
        self._rng = random.Random(seed)
        self._seed = seed
        self._spec = spec
        self._messaging_settings = messaging
        self._messaging: TwilioMessaging | None = None
        self.faults = Faults(settings.faults)
        self._violations: list[Violation] = []
        self._stack = AsyncExitStack()
        self._log: GroundTruthLog | None = None
        self._calls: CallBook | None = None
        self._port: int | None = None

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._started(self._port)

    @property
    def base_url(self) -> str:
        """Where the client's `https://api.twilio.com` must point, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_control"

    @property
    def ground_truth_path(self) -> Path:
        return self.workdir / "twilio_ground_truth.jsonl"

    # -- what happened -----------------------------------------------------------------

    @property
    def violations(self) -> list[Violation]:
        """Every break of Twilio's contract seen so far (requests, TwiML, webhook answers)."""
        return list(self._violations)

    def ground_truth(self) -> list[Event]:
        return self._started(self._log).events()

    async def wait_for(self, predicate: Callable[[Event], bool], count: int = 1) -> list[Event]:
        """Wait (bound it with asyncio.timeout) until count events match; returns all matches."""
        return await self._started(self._log).wait_for(predicate, count)

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

    def rate_limit(self, count: int, retry_after: int = 1) -> None:
        self.faults.rate_limit(count, retry_after)

    def server_error(self, count: int, status: int = 500) -> None:
        if status not in (500, 503):
            raise ValueError(f"status must be 500 or 503, not {status}")
        self.faults.server_error(count, 503 if status == 503 else 500)

    def set_clock_offset(self, seconds: float) -> None:
        self._clock.offset_seconds = seconds

    def set_inbound_webhook(self, number: str, url: str | None) -> None:
        """Where messages to the monitor's number are POSTed; see TwilioMessaging."""
        self.messaging.set_inbound_webhook(number, url)

    def period_now(self) -> Period:
        return self._hours.period_at(self._clock.now(), self._zone)

    def state(self) -> dict[str, Any]:
        return {
            **self.faults.state(),
            "clock_offset_seconds": self._clock.offset_seconds,
            "desk_time": self._clock.now().astimezone(self._zone).isoformat(),
            "period": self.period_now(),
            "base_url": self.base_url,
            "calls": len(self._started(self._calls).records()),
            "violations": len(self._violations),
            "ground_truth_path": str(self.ground_truth_path),
            "messaging": None if self._messaging is None else self._messaging.state(),
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> TwilioSandbox:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            spec = self._spec or TwilioSpec.load()
            self._log = GroundTruthLog(self.ground_truth_path)
            self._stack.callback(self._log.close)
            session = await self._stack.enter_async_context(aiohttp.ClientSession())
            webhooks = Webhooks(session, self.settings.auth_token)
            env = CallEnvironment(
                settings=self.settings,
                faults=self.faults,
                webhooks=webhooks,
                rng=self._rng,
                period_now=self.period_now,
                write_truth=self._write_truth,
                report=self._violations.append,
            )
            calls = self._calls = CallBook(env)
            messaging = self._messaging = self._start_messaging(webhooks)
            if messaging is not None:
                self._stack.callback(messaging.close_log)
            api = RestApi(
                spec,
                self.settings,
                self.faults,
                calls,
                self._violations.append,
                None if messaging is None else messaging.api,
            )
            routes = [] if messaging is None else messaging.control_routes()
            runner = web.AppRunner(build_app(api, self, routes), access_log=None)
            await runner.setup()
            self._stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, self.host, self.settings.port)
            await site.start()
            self._port = runner.addresses[0][1]
            # Registered last, so they run first: calls and messages stop before the server and
            # the session go.
            self._stack.push_async_callback(calls.close)
            if messaging is not None:
                self._stack.push_async_callback(messaging.stop)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    # -- helpers -----------------------------------------------------------------------

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
        entry: Event = {"event": event, "at": iso_utc(at or real_now()), "call_sid": call_sid}
        entry.update(fields)
        with contextlib.suppress(ValueError):  # the log is closed once the sandbox has stopped
            self._started(self._log).append(entry)

    @staticmethod
    def _started(part: _T | None) -> _T:
        if part is None:
            raise RuntimeError("the Twilio sandbox is not running; use `async with TwilioSandbox`")
        return part
