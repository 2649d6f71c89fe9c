"""SMS and WhatsApp on the Twilio sandbox: the Messages API's state, the brand's lines, the truth.

    async with TwilioSandbox(twilio_settings, messaging=messaging_settings, ...) as twilio:
        twilio.messaging.set_inbound_webhook("+15005550006", "http://127.0.0.1:PORT/sms")
        ...
        await twilio.messaging.wait_for(lambda e: e["event"] == "reply_sent")

`TwilioSandbox` builds this part when its profile has a `messaging:` section and closes it
before its own server. Its ground truth is a file of its own, `messaging_ground_truth.jsonl`,
beside the calls' `twilio_ground_truth.jsonl`: a messaging check and a phone check can then be
compared each with its own log. The same switches are on `/_control/messaging/...`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from aiohttp import web

from sandbox.clock import DeskClock, Period
from sandbox.control import Body, ControlRoutes
from sandbox.ground_truth import Event, GroundTruthLog
from sandbox.messaging_profile import MessagingSettings
from sandbox.reply_team import ReplyPlanner
from sandbox.routing import DeskStreams
from sandbox.twilio.brand_lines import BrandLines
from sandbox.twilio.message import Channel
from sandbox.twilio.messages import MessageBook
from sandbox.twilio.messages_api import MessagesApi
from sandbox.twilio.spec import Violation
from sandbox.twilio.webhooks import Webhooks
from sandbox.twilio.whatsapp_window import SessionWindows

CONTROL_PREFIX = "/_control/messaging"


class TwilioMessaging:
    def __init__(
        self,
        settings: MessagingSettings,
        *,
        account_sid: str,
        workdir: Path,
        webhooks: Webhooks,
        clock: DeskClock,
        period_now: Callable[[], Period],
        api_outage: Callable[[], bool],
        seed: int,
        report: Callable[[Violation], None],
    ) -> None:
        self.settings = settings
        self.ground_truth_path = workdir / "messaging_ground_truth.jsonl"
        self._log = GroundTruthLog(self.ground_truth_path)
        # Streams of their own: calls and messages do not shift each other's draws.
        self.streams = DeskStreams(seed, "messaging")
        self.windows = SessionWindows(clock.now)
        self.book = MessageBook(settings, webhooks, self.streams.latency, self._log.record, report)
        self.lines = BrandLines(
            settings,
            account_sid=account_sid,
            book=self.book,
            webhooks=webhooks,
            planner=ReplyPlanner(settings, self.streams),
            windows=self.windows,
            period_now=period_now,
            api_outage=api_outage,
            record=self._log.record,
            report=report,
        )
        self.api = MessagesApi(settings, self.book, self.lines)

    # -- what happened -----------------------------------------------------------------

    def ground_truth(self) -> list[Event]:
        return self._log.events()

    async def wait_for(self, predicate: Callable[[Event], bool], count: int = 1) -> list[Event]:
        """Wait (bound it with asyncio.timeout) until count events match; returns all matches."""
        return await self._log.wait_for(predicate, count)

    def messages(self) -> list[dict[str, Any]]:
        """Every message's REST resource (both directions), oldest first."""
        return [message.resource() for message in self.book.records()]

    # -- switches ----------------------------------------------------------------------

    def set_inbound_webhook(self, number: str, url: str | None) -> None:
        """Where Twilio posts messages to the monitor's number; None: nowhere (poll instead).

        A bare number (`+15005550006`) covers its WhatsApp address too, unless that address
        (`whatsapp:+15005550006`) has a URL of its own.
        """
        self.lines.set_inbound_webhook(number, url)

    def set_outage(self, on: bool, line: Channel | None = None) -> None:
        """No replies on any line (line None) or on the `sms` or `whatsapp` line only."""
        if line is None:
            self.lines.outage = on
        else:
            self.lines.line_outage[line] = on

    def open_session_window(self, customer: str) -> None:
        """As if the brand's WhatsApp line had just written to customer (`whatsapp:+1...`)."""
        self.windows.brand_wrote(self._whatsapp_line(), customer)

    def close_session_window(self, customer: str) -> None:
        self.windows.close(self._whatsapp_line(), customer)

    def state(self) -> dict[str, Any]:
        return {
            **self.lines.state(),
            "messages": len(self.book.records()),
            "ground_truth_path": str(self.ground_truth_path),
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def stop(self) -> None:
        """End the message tasks (progress, replies, webhooks); the log stays readable."""
        await self.book.close()

    def close_log(self) -> None:
        self._log.close()

    def control_routes(self) -> list[web.RouteDef]:
        return _control_routes(self, self._log)

    # -- helpers -----------------------------------------------------------------------

    def _whatsapp_line(self) -> str:
        if self.settings.whatsapp is None:
            raise ValueError("the messaging profile has no whatsapp line")
        return self.settings.whatsapp.address


def _control_routes(messaging: TwilioMessaging, log: GroundTruthLog) -> list[web.RouteDef]:
    def outage(body: Body) -> None:
        on, line = body.get("on"), body.get("line")
        if not isinstance(on, bool) or line not in ("sms", "whatsapp", None):
            raise web.HTTPBadRequest(
                text='expected {"on": true|false} and optionally "line": "sms" or "whatsapp"'
            )
        messaging.set_outage(on, cast(Channel | None, line))

    def inbound_webhook(body: Body) -> None:
        number, url = body.get("number"), body.get("url")
        if not isinstance(number, str) or not (url is None or isinstance(url, str)):
            raise web.HTTPBadRequest(text='expected {"number": "+1...", "url": "http..." | null}')
        messaging.set_inbound_webhook(number, url)

    def session_window(body: Body) -> None:
        customer, is_open = body.get("customer"), body.get("open")
        if not isinstance(customer, str) or not isinstance(is_open, bool):
            raise web.HTTPBadRequest(
                text='expected {"customer": "whatsapp:+1...", "open": true|false}'
            )
        if is_open:
            messaging.open_session_window(customer)
        else:
            messaging.close_session_window(customer)

    def rate(body: Body) -> None:
        messaging.book.rate_now()  # Twilio's rating of every sent message, at once

    return (
        ControlRoutes(CONTROL_PREFIX, messaging.state)
        .post("outage", outage)
        .post("inbound-webhook", inbound_webhook)
        .post("session-window", session_window)
        .post("rate", rate)
        .ground_truth(log)
        .get("messages", messaging.messages)
        .routes()
    )
