"""Every message of the Twilio sandbox, and the progress of the outbound ones.

    queued -> (delivery.sending) -> sending -> (delivery.sent) -> sent -> (delivery.delivered)
       |                                                                   -> delivered
       `-> failed (e.g. 63016 outside the WhatsApp window)                `-> undelivered

Like Twilio, no status callback is sent for the initial `queued` (the create response has it)
nor for `sending`; `sent`, `delivered`, `undelivered` and `failed` are posted to the message's
StatusCallback, in order (each waits for the one before). A message reaching `delivered` is
handed to `on_delivered`: that is the moment the recipient (the brand's line) has it.
Inbound messages (the brand's replies) are created already `received`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sandbox.messaging_profile import (
    SMS_PRICE,
    WHATSAPP_PRICE,
    MessagingSettings,
    SmsLine,
    WhatsAppLine,
)
from sandbox.twilio.message import (
    Channel,
    MessageRecord,
    MessageRequest,
    channel_of,
    new_message_sid,
)
from sandbox.twilio.spec import Violation
from sandbox.twilio.webhooks import Webhooks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """How an outbound message will end instead of `delivered`."""

    status: Literal["failed", "undelivered"]
    code: int
    message: str


@dataclass(frozen=True)
class _Delays:
    sending: float
    sent: float
    delivered: float
    rated: float


class MessageBook:
    def __init__(
        self,
        settings: MessagingSettings,
        webhooks: Webhooks,
        rng: random.Random,
        record: Callable[..., None],  # (event, at=..., **fields): a ground-truth line
        report: Callable[[Violation], None],
    ) -> None:
        self._settings = settings
        self._webhooks = webhooks
        self._rng = rng
        self._record = record
        self._report = report
        self._messages: dict[str, MessageRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._callbacks: dict[str, asyncio.Task[None]] = {}  # the last one queued, by message
        self.on_delivered: Callable[[MessageRecord], None] = lambda record: None

    # -- creating ----------------------------------------------------------------------

    def send(
        self,
        account_sid: str,
        request: MessageRequest,
        from_: str,
        body: str,
        failure: Failure | None,
    ) -> MessageRecord:
        """An outbound message (REST create), queued; its progress runs in a task."""
        record = MessageRecord(
            new_message_sid(),
            account_sid,
            "outbound-api",
            from_,
            request.to,
            body,
            self._price(channel_of(request.to)),
            self._settings.price_unit,
            num_media=len(request.media_urls),
            status_callback=request.status_callback,
            content_sid=request.content_sid,
        )
        self._messages[record.sid] = record
        steps = self._settings.delivery
        # Drawn now, in request order, so a seeded sandbox replays the same timings.
        delays = _Delays(
            steps.sending.sample(self._rng),
            steps.sent.sample(self._rng),
            steps.delivered.sample(self._rng),
            steps.rated.sample(self._rng),
        )
        self.spawn(self._progress(record, delays, failure))
        return record

    def receive(self, account_sid: str, from_: str, to: str, body: str) -> MessageRecord:
        """An inbound message to one of the account's numbers, received (and priced) now."""
        record = MessageRecord(
            new_message_sid(),
            account_sid,
            "inbound",
            from_,
            to,
            body,
            self._price(channel_of(to)),
            self._settings.price_unit,
            status="received",
        )
        record.date_sent = record.date_updated = record.date_created
        record.price = -(record.price_per_segment * record.num_segments).quantize(
            Decimal("0.00001")
        )
        self._messages[record.sid] = record
        return record

    # -- reading -----------------------------------------------------------------------

    def get(self, sid: str) -> MessageRecord | None:
        return self._messages.get(sid)

    def records(self) -> list[MessageRecord]:
        """Oldest first."""
        return list(self._messages.values())

    # -- tasks -------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_crash)
        return task

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- progress ----------------------------------------------------------------------

    async def _progress(
        self, record: MessageRecord, delays: _Delays, failure: Failure | None
    ) -> None:
        await asyncio.sleep(delays.sending)
        if failure is not None and failure.status == "failed":
            self._end(record, failure)
            return
        record.set_status("sending")
        await asyncio.sleep(delays.sent)
        record.mark_sent(rate=delays.rated <= 0)
        if delays.rated > 0:
            self.spawn(self._rate_after(record, delays.rated))
        self._status_callback(record)
        await asyncio.sleep(delays.delivered)
        if failure is not None:
            self._end(record, failure)
            return
        record.set_status("delivered")
        self.on_delivered(record)
        self._status_callback(record)

    async def _rate_after(self, record: MessageRecord, delay: float) -> None:
        await asyncio.sleep(delay)
        record.rate()

    def rate_now(self) -> int:
        """Price every sent message not priced yet (Twilio's rating, at once); how many."""
        unrated = [r for r in self._messages.values() if r.date_sent and r.price is None]
        for record in unrated:
            record.rate()
        return len(unrated)

    def _end(self, record: MessageRecord, failure: Failure) -> None:
        record.fail(failure.status, failure.code, failure.message)
        self._record(
            "message_failed",
            at=record.date_updated,
            sid=record.sid,
            channel=record.channel,
            status=record.status,
            error_code=failure.code,
            error_message=failure.message,
            **{"from": record.from_, "to": record.to},
        )
        self._status_callback(record)

    def _status_callback(self, record: MessageRecord) -> None:
        url = record.status_callback
        if url is None:
            return
        params = record.status_callback_params()  # taken now: the status may change meanwhile
        previous = self._callbacks.get(record.sid)
        self._callbacks[record.sid] = self.spawn(self._post(previous, record, url, params))

    async def _post(
        self,
        previous: asyncio.Task[None] | None,
        record: MessageRecord,
        url: str,
        params: list[tuple[str, str]],
    ) -> None:
        err = await self._webhooks.send_after(previous, "POST", url, params)
        if err is not None:
            self._report(Violation("webhook", err.code, err.message, "POST", url))
            self._record(
                "webhook_error",
                sid=record.sid,
                kind="status_callback",
                url=url,
                code=err.code,
                message=err.message,
            )

    def _price(self, channel: Channel) -> Decimal:
        sms, whatsapp = self._settings.sms, self._settings.whatsapp
        line: SmsLine | WhatsAppLine | None = sms if channel == "sms" else whatsapp
        if line is not None:
            return line.price_per_segment
        return SMS_PRICE if channel == "sms" else WHATSAPP_PRICE


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a messaging task crashed", exc_info=task.exception())
