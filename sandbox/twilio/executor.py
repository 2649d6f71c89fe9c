"""Runs the monitor's TwiML on a call: what the probe says, plays, dials and listens for.

Timing semantics (the figures a monitor measures depend on them):

- `<Say>` takes `len(text) / speech_rate` seconds; its text reaches the far end when it ends
  (an IVR menu matches its keywords, like speech recognition would).
- `<Play digits>` sends each key after a 0.1 s tone; `w` waits 0.5 s and `W` 1 s. `<Play>`
  of a URL lasts 1 s per loop (the sandbox does not fetch audio). `<Pause>` waits `length`.
- `<Gather input="speech">` listens from the moment it starts (nested verbs included). It
  hears the first far-end utterance still being spoken then, or starting before `timeout`
  seconds after the nested verbs end, and posts `SpeechResult` (the whole utterance) to
  `action` when the utterance ends, plus `speechTimeout` seconds when that is a number (the
  `timeout` value when it is absent; nothing more for `auto`). Nothing heard: post without a
  result if `actionOnEmptyResult`, else go on with the next verb. The far end never sends
  DTMF, so a dtmf-only Gather always times out.
- A speech `<Gather partialResultCallback>` also posts interim results from about
  `partial_result_delay` after the utterance it hears starts (sandbox/twilio/partials.py);
  the ones not yet due are dropped when the Gather ends.
- `<Start><Stream>` opens a Media Stream (sandbox/twilio/stream_line.py) that lasts until the
  call ends, and the document goes on; `<Connect><Stream>` waits until its stream ends (the
  call hangs up, the monitor closes the socket, or the handshake fails), then goes on with the
  next verb. A REST update that replaces the TwiML ends a `<Connect>` stream, not a `<Start>`.
- When the document runs out of verbs the call is hung up, as Twilio does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sandbox.twilio.line import Heard, Line, Record, Utterance
from sandbox.twilio.partials import Background, PartialResults
from sandbox.twilio.profile import TwilioSettings
from sandbox.twilio.resource import CallRecord
from sandbox.twilio.spec import Violation
from sandbox.twilio.stream_line import StreamStarter
from sandbox.twilio.twiml import (
    SCHEMA_VIOLATION,
    Gather,
    Hangup,
    Nested,
    Play,
    Redirect,
    Say,
    Stream,
    TwimlError,
    Verb,
    parse_twiml,
)
from sandbox.twilio.webhooks import WebhookError, Webhooks

DIGIT_SECONDS = 0.1
PLAY_SECONDS = 1.0
_PAUSES = {"w": 0.5, "W": 1.0}
_XML_TYPES = frozenset({"text/xml", "application/xml"})
# Twilio's error code for a TwiML response of a content type it cannot run.
INVALID_CONTENT_TYPE = 12300


@dataclass(frozen=True)
class Inline:
    twiml: str


@dataclass(frozen=True)
class Fetch:
    url: str
    method: Literal["GET", "POST"]
    extra: tuple[tuple[str, str], ...] = ()


Document = Inline | Fetch


class TwimlRunner:
    def __init__(
        self,
        call: CallRecord,
        line: Line,
        webhooks: Webhooks,
        settings: TwilioSettings,
        record: Record,
        report: Callable[[Violation], None],
        rng: random.Random,
        background: Background,
        streams: StreamStarter,
    ) -> None:
        """background starts webhook deliveries that outlive this runner (partial results);
        streams starts a Media Stream that outlives it (a <Start><Stream>)."""
        self._call = call
        self._line = line
        self._webhooks = webhooks
        self._settings = settings
        self._record = record
        self._report = report
        self._rng = rng
        self._background = background
        self._streams = streams

    async def run(self, document: Document, send_digits: str | None = None) -> None:
        """Run document and whatever it leads to, then hang up; errors end the call too."""
        current = document
        try:
            if send_digits:
                await self._play_digits(send_digits)
            while True:
                verbs = await self._load(current)
                following = await self._run_verbs(verbs)
                if following is None:
                    break
                current = following
        except TwimlError as err:
            self._fail("twiml", err.code, err.message, current)
            return
        except WebhookError as err:
            self._fail("webhook", err.code, err.message, current)
            return
        self._line.hang_up("caller", "the TwiML ran out of verbs")

    # -- documents ---------------------------------------------------------------------

    async def _load(self, document: Document) -> list[Verb]:
        if isinstance(document, Inline):
            return parse_twiml(document.twiml, None)
        params = [*self._call.webhook_params(), *document.extra]
        reply = await self._webhooks.send(document.method, document.url, params)
        if reply.content_type not in _XML_TYPES:
            raise TwimlError(
                INVALID_CONTENT_TYPE,
                f"{document.method} {document.url} answered {reply.content_type!r}; "
                "TwiML must be text/xml or application/xml",
            )
        return parse_twiml(reply.text, document.url)

    async def _run_verbs(self, verbs: Sequence[Verb]) -> Document | None:
        """Run verbs in order; the document to go on with, or None to hang up."""
        for verb in verbs:
            if isinstance(verb, Hangup):
                self._line.hang_up("caller", "<Hangup/>")
                return None
            if isinstance(verb, Redirect):
                return Fetch(verb.url, verb.method)
            if isinstance(verb, Gather):
                result = await self._gather(verb)
                if result is not None:
                    return result
                continue
            if isinstance(verb, Stream):
                await self._stream(verb)
                continue
            await self._nested(verb)
        return None

    # -- verbs -------------------------------------------------------------------------

    async def _nested(self, verb: Nested) -> None:
        if isinstance(verb, Say):
            for _ in _loops(verb.loop):
                await asyncio.sleep(self._settings.speaking_seconds(verb.text))
                self._record("probe_said", text=verb.text)
                self._line.send(Heard("speech", verb.text))
        elif isinstance(verb, Play):
            for _ in _loops(verb.loop):
                if verb.digits is not None:
                    await self._play_digits(verb.digits)
                else:
                    await asyncio.sleep(PLAY_SECONDS)
        else:
            await asyncio.sleep(verb.seconds)

    async def _stream(self, verb: Stream) -> None:
        stream = self._streams(verb)
        if verb.mode == "start":
            return
        try:
            await stream.finished.wait()
        finally:
            stream.ending.set()  # replaced TwiML (a REST update) ends a <Connect> stream

    async def _play_digits(self, digits: str) -> None:
        for key in digits:
            if key in _PAUSES:
                await asyncio.sleep(_PAUSES[key])
                continue
            await asyncio.sleep(DIGIT_SECONDS)
            self._record("digits_received", digits=key)
            self._line.send(Heard("digit", key))

    async def _gather(self, verb: Gather) -> Fetch | None:
        loop = asyncio.get_running_loop()
        listening_since = loop.time()
        partials = self._partial_results(verb, listening_since)
        try:
            return await self._listen(verb, listening_since, partials)
        finally:
            if partials is not None:
                partials.cancel()

    async def _listen(
        self, verb: Gather, listening_since: float, partials: asyncio.Task[None] | None
    ) -> Fetch | None:
        loop = asyncio.get_running_loop()
        for child in verb.children:
            await self._nested(child)
        utterance = None
        if "speech" in verb.inputs:
            utterance = await self._hear(listening_since, loop.time() + verb.timeout)
        else:
            await asyncio.sleep(verb.timeout)
        if utterance is None:
            self._record("gather_timeout", action=verb.action)
            if not verb.action_on_empty_result:
                return None
            return Fetch(_action(verb), verb.method)
        await utterance.ended.wait()
        if partials is not None:
            # It follows the same utterance, so it is past its last due time and finishes now;
            # awaiting it keeps a partial result due right at the end from being dropped.
            await partials
        if verb.speech_timeout is None:
            await asyncio.sleep(verb.timeout)
        elif verb.speech_timeout != "auto":
            await asyncio.sleep(verb.speech_timeout)
        confidence = f"{self._settings.speech_confidence:.8f}"
        return Fetch(
            _action(verb),
            verb.method,
            (("SpeechResult", utterance.text), ("Confidence", confidence)),
        )

    def _partial_results(self, verb: Gather, listening_since: float) -> asyncio.Task[None] | None:
        """Start following what the Gather hears, if it wants partial results."""
        if verb.partial_result_callback is None or "speech" not in verb.inputs:
            return None
        partials = PartialResults(
            call=self._call,
            webhooks=self._webhooks,
            settings=self._settings,
            rng=self._rng,
            record=self._record,
            report=self._report,
            background=self._background,
            url=verb.partial_result_callback,
            method=verb.partial_result_callback_method,
        )

        async def follow() -> None:
            # No deadline of its own: the Gather cancels it when it stops listening.
            utterance = await self._hear(listening_since, math.inf)
            if utterance is not None:
                await partials.follow(utterance, listening_since)

        return asyncio.create_task(follow())

    async def _hear(self, since: float, deadline: float) -> Utterance | None:
        """The first utterance heard since loop time since that starts before deadline."""
        loop = asyncio.get_running_loop()
        while True:
            changed = self._line.watch()
            utterance = self._line.first_heard_since(since)
            if utterance is not None:
                return utterance
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    # -- failures ----------------------------------------------------------------------

    def _fail(
        self, source: Literal["twiml", "webhook"], code: int, message: str, document: Document
    ) -> None:
        where = document.url if isinstance(document, Fetch) else "inline Twiml"
        self._report(Violation(source, code, message, target=where))
        self._record("twiml_error", code=code, message=message)
        self._line.hang_up("error", f"error {code}: {message}")


def _action(verb: Gather) -> str:
    if verb.action is None:
        raise TwimlError(
            SCHEMA_VIOLATION,
            "<Gather> without action in inline Twiml has no document URL to post its result to",
        )
    return verb.action


def _loops(count: int) -> Iterator[int]:
    """Twilio's loop attribute: 0 repeats until the call ends."""
    return itertools.count() if count == 0 else iter(range(count))
