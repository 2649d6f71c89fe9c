"""Simulated outbound calls, one asyncio task each, from `queued` to a final status.

    queued -> (post_dial_delay) -> ringing -> (ring_time) -> in-progress -> completed
                    `-> failed / busy           `-> no-answer (rang for the request's Timeout)

Once answered, two tasks share the call's `Line`: the far end (IVR, queue, agent or the closed
message) and the monitor's TwiML. The call ends at the first hangup - the probe's TwiML, the far
end, a REST `Status=completed` or the time limit - and is priced per started minute.
Status callbacks go out in order (each waits for the one before), with a SequenceNumber.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sandbox.clock import Period, real_now
from sandbox.ground_truth import EventName
from sandbox.routing import DeskStreams
from sandbox.twilio.audio import Voicebox
from sandbox.twilio.executor import Document, Fetch, Inline, TwimlRunner
from sandbox.twilio.faults import Faults
from sandbox.twilio.ivr import FarEnd
from sandbox.twilio.line import Line
from sandbox.twilio.profile import TwilioSettings
from sandbox.twilio.resource import CallRecord, CallRequest, CallStatus, new_call_sid, rfc2822
from sandbox.twilio.spec import Violation
from sandbox.twilio.stream_line import StreamLine, StreamVoices
from sandbox.twilio.twiml import Stream
from sandbox.twilio.webhooks import Webhooks

log = logging.getLogger(__name__)

# Twilio's warning for a status callback that failed or answered with an error.
CALLBACK_FAILURE = 15003
# How long a REST hangup waits for the call to reach its final status before answering.
_HANGUP_SETTLE_SECONDS = 5.0


class TruthWriter:
    """Records a ground-truth event; the sandbox gives every call one bound to its SID."""

    def __init__(self, write: Callable[..., None], call_sid: str) -> None:
        self._write = write
        self._call_sid = call_sid

    def __call__(self, event: EventName, /, *, at: datetime | None = None, **fields: Any) -> None:
        self._write(event, call_sid=self._call_sid, at=at, **fields)


@dataclass(frozen=True)
class CallEnvironment:
    settings: TwilioSettings
    faults: Faults
    webhooks: Webhooks
    streams: DeskStreams
    period_now: Callable[[], Period]
    write_truth: Callable[..., None]  # (event, call_sid=..., at=..., **fields)
    report: Callable[[Violation], None]
    voicebox: Voicebox  # one per sandbox: each prompt is synthesised once
    voices: StreamVoices = field(default_factory=StreamVoices)


class CallSimulation:
    def __init__(self, call: CallRecord, env: CallEnvironment) -> None:
        self.call = call
        self._env = env
        self._record = TruthWriter(env.write_truth, call.sid)
        request = call.request
        self._document: Document = (
            Fetch(request.url, request.method) if request.url else Inline(request.twiml or "")
        )
        self._abort = asyncio.Event()
        self._finished = asyncio.Event()
        self._line: Line | None = None
        self._probe: asyncio.Task[None] | None = None
        self._line_tasks: set[asyncio.Task[None]] = set()  # far end and TwiML
        # Webhooks in flight (status callbacks, partial results): like Twilio's, they outlive
        # the call; only the sandbox closing cancels them.
        self._callback_tasks: set[asyncio.Task[None]] = set()
        self._callbacks: asyncio.Task[None] | None = None  # the last one queued
        self._streams: list[StreamLine] = []
        self._sequence = 0
        self._task = asyncio.create_task(self._run(), name=f"call {call.sid}")

    # -- REST updates ------------------------------------------------------------------

    async def hang_up(self, status: Literal["completed", "canceled"]) -> None:
        """Twilio's rules: `canceled` ends only calls not yet answered; `completed` ends any."""
        if self.call.ended:
            return
        if self._line is None:
            self._abort.set()
        elif status == "completed":
            self._line.hang_up("api", "REST update Status=completed")
        else:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_HANGUP_SETTLE_SECONDS):
                await self._finished.wait()

    def redirect(self, document: Document) -> bool:
        """Run document instead of the current TwiML; False once the call has ended."""
        if self.call.ended:
            return False
        self._record("redirected", document=_describe(document))
        if self._line is None:
            self._document = document  # not answered yet: run it on answer
            return True
        if self._probe is not None:
            self._probe.cancel()
        self._probe = self._start_probe(self._line, document, None)
        return True

    async def close(self) -> None:
        tasks = [self._task, *self._line_tasks, *self._callback_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the call ----------------------------------------------------------------------

    async def _run(self) -> None:
        env, request = self._env, self.call.request
        result = env.faults.take_call_result()
        self._status_callback("initiated", "initiated")
        if result == "failed":
            self._end("failed")
            return
        if not await self._wait(env.settings.post_dial_delay.sample(env.streams.latency)):
            self._end("canceled")
            return
        if result == "busy":
            self._end("busy")
            return
        self.call.set_status("ringing")
        self._record("ringing")
        self._status_callback("ringing")
        ring = env.settings.ring_time.sample(env.streams.latency)
        unanswered = env.faults.outage or result == "no-answer" or ring > request.ring_timeout
        if not await self._wait(request.ring_timeout if unanswered else ring):
            self._end("canceled")
            return
        if unanswered:
            self._end("no-answer")
            return
        await self._talk()

    async def _talk(self) -> None:
        env, request = self._env, self.call.request
        self.call.answer()
        period = env.period_now()
        self._record("answered", period=period)
        self._status_callback("answered")
        line = self._line = Line()
        far_end = FarEnd(env.settings, line, env.streams, self._record)
        self._spawn(far_end.run(period), line, "far end")
        self._probe = self._start_probe(line, self._document, request.send_digits)
        limit = min(env.settings.max_call_seconds, request.time_limit or math.inf)
        try:
            async with asyncio.timeout(limit):
                await line.closed.wait()
        except TimeoutError:
            line.hang_up("time_limit", f"the call reached its time limit of {limit:g} s")
        # Streams send their last frames and `stop` before the call's tasks are cancelled.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_HANGUP_SETTLE_SECONDS):
                for stream in self._streams:
                    await stream.finished.wait()
        running = list(self._line_tasks)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        self._record("hangup", by=line.hangup_by, reason=line.hangup_reason)
        self._end("completed")

    def _start_probe(
        self, line: Line, document: Document, send_digits: str | None
    ) -> asyncio.Task[None]:
        env = self._env
        runner = TwimlRunner(
            self.call,
            line,
            env.webhooks,
            env.settings,
            self._record,
            env.report,
            env.streams.latency,
            background=lambda delivery: _start(delivery, self._callback_tasks),
            streams=lambda verb: self._start_stream(line, verb),
        )
        return self._spawn(runner.run(document, send_digits), line, "TwiML")

    def _start_stream(self, line: Line, verb: Stream) -> StreamLine:
        env = self._env
        stream = StreamLine(
            stream=verb,
            line=line,
            call_sid=self.call.sid,
            account_sid=self.call.account_sid,
            auth_token=env.settings.auth_token,
            stream_sid="MZ" + secrets.token_hex(16),
            voicebox=env.voicebox,
            faults=env.faults,
            record=self._record,
            voices=env.voices,
        )
        self._streams.append(stream)
        # A task of the call, not of the TwiML: a <Start> stream outlives a REST redirect.
        _start(stream.run(), self._line_tasks)
        return stream

    def _end(self, status: CallStatus) -> None:
        self.call.finish(status, self._env.settings.price_per_minute)
        self._record(
            "completed",
            status=status,
            duration=self.call.duration,
            price=None if self.call.price is None else str(self.call.price),
            price_unit=self.call.price_unit,
        )
        self._status_callback("completed")
        self._finished.set()

    async def _wait(self, seconds: float) -> bool:
        """Sleep seconds; False when a REST update canceled the call meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                await self._abort.wait()
        except TimeoutError:
            return True
        return False

    # -- status callbacks --------------------------------------------------------------

    def _status_callback(self, event: str, status: str | None = None) -> None:
        request = self.call.request
        if request.status_callback is None or event not in request.status_callback_events:
            return
        params = self.call.webhook_params(status)
        params += [
            ("CallbackSource", "call-progress-events"),
            ("SequenceNumber", str(self._sequence)),
            ("Timestamp", rfc2822(real_now()) or ""),
        ]
        if event == "completed":
            params.append(("CallDuration", str(self.call.duration or 0)))
        self._sequence += 1
        delivery = self._deliver(
            self._callbacks, request.status_callback_method, request.status_callback, params
        )
        self._callbacks = _start(delivery, self._callback_tasks)

    async def _deliver(
        self,
        previous: asyncio.Task[None] | None,
        method: str,
        url: str,
        params: list[tuple[str, str]],
    ) -> None:
        err = await self._env.webhooks.send_after(previous, method, url, params)
        if err is not None:
            self._env.report(Violation("webhook", CALLBACK_FAILURE, err.message, method, url))
            self._record("webhook_error", code=CALLBACK_FAILURE, message=err.message)

    # -- tasks -------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], line: Line, what: str) -> asyncio.Task[None]:
        """A task of the answered call; if it crashes, the call ends instead of hanging."""
        task = _start(coro, self._line_tasks)

        def crashed(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("call %s: %s crashed", self.call.sid, what, exc_info=done.exception())
                line.hang_up("error", f"the sandbox's {what} crashed: {done.exception()!r}")

        task.add_done_callback(crashed)
        return task


class CallBook:
    """Every call the sandbox has made, newest last; closing it ends their tasks."""

    def __init__(self, env: CallEnvironment) -> None:
        self._env = env
        self._calls: dict[str, CallSimulation] = {}

    def create(self, account_sid: str, request: CallRequest) -> CallRecord:
        call = CallRecord(new_call_sid(), account_sid, request, self._env.settings.price_unit)
        self._env.write_truth(
            "call_created",
            call_sid=call.sid,
            at=call.date_created,
            to=request.to,
            from_number=request.from_,
            url=request.url,
            inline_twiml=request.twiml is not None and request.url is None,
            period=self._env.period_now(),
        )
        self._calls[call.sid] = CallSimulation(call, self._env)
        return call

    def get(self, sid: str) -> CallSimulation | None:
        return self._calls.get(sid)

    def records(self) -> list[CallRecord]:
        return [simulation.call for simulation in self._calls.values()]

    async def close(self) -> None:
        await asyncio.gather(*(simulation.close() for simulation in self._calls.values()))


def _start(coro: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]]) -> asyncio.Task[None]:
    task = asyncio.create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


def _describe(document: Document) -> str:
    return f"{document.method} {document.url}" if isinstance(document, Fetch) else "inline Twiml"
