"""The phone channel: a Twilio call to a support line that walks its menu and listens.

The probe places an outbound call from its own number (``channels.phone.from_number``) through
the ``twilio`` package's async client, whose HTTP client (:mod:`probes.twilio.http`) sends the
requests to the configured base URL only. Once the line answers, Twilio fetches TwiML from the
monitor's webhook: a speech ``<Gather>`` that listens to the far end. Each thing heard comes
back as a ``SpeechResult``; the probe classifies it, and answers with the next move of the menu
path for the contact's expected queue (``<Play digits>`` or ``<Say>``) and another ``<Gather>``,
until a person (or, after hours, the closed message or a voice bot) is heard. Then it says its
closing line and hangs up.

Timing (DESIGN.md "Timing semantics"): ``Sent.at`` is when the API accepted the call. The
answer is timed by the status callback (``in-progress``), or by the TwiML fetch if that comes
first. Each utterance is timed at its **start**: the first ``partialResultCallback`` Twilio
posts while the far end is still speaking (``timing_method`` ``twilio-partial-speech``); if
none came, at the final ``SpeechResult`` (``twilio-speech-result``, the end of the utterance).
Post-dial delay (ringing), queue wait (last menu move to the person), duration and price are in
the call's timeline, kept as evidence.

Webhooks: every request is checked against ``X-Twilio-Signature`` with the auth token
(``RequestValidator``) over the URL Twilio used (``webhook.public_url`` + path); a bad or missing
signature gets 403, is logged and counted, and changes nothing. Without webhooks
(``webhook.status_only``) the probe polls the call's status, measures time to answer only, hangs
up once answered, and says so in the result.

Classification of what is heard (:mod:`probes.phone.responders`, shared with stream mode):
the address's ``voicebot`` patterns → ``bot``, then ``closed`` → ``auto`` (the after-hours
message), then ``human`` → ``human``; anything else is the ``ivr``.

Lines with ``listen: stream`` are heard over Twilio Media Streams instead (see
:mod:`probes.phone.stream_call`): the answer's TwiML starts a ``<Connect><Stream>`` (or a
``<Start><Stream>`` and a long pause when the menu path has moves, sent later as new TwiML) to
``media_stream_url`` + ``/webhooks/twilio/media/<token>``; the far end's audio is labelled
frame by frame, the replies are timed from it, and the recording and its segments are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from aiohttp import web
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from probes.base import (
    ChannelServices,
    ChannelType,
    ChannelUnavailable,
    Contact,
    ContactRejected,
    CostUnits,
    DefaultSla,
    Evidence,
    Methodology,
    Price,
    ProbeError,
    ProviderError,
    Reply,
    Responder,
    Sent,
    json_evidence,
    utc_now,
)
from probes.phone.media import media_stream_handler
from probes.phone.prompts import PromptChecker, load_prompt_checker
from probes.phone.responders import cued
from probes.phone.settings import (
    MONITOR_PLACEHOLDER,
    IvrStep,
    PhoneAddress,
    PhoneChannelSettings,
    cross_check,
)
from probes.phone.stream_call import MEASURES, SEGMENTS, CallListening
from probes.rejections import Rejections
from probes.twilio.http import TwilioApi
from probes.twilio.pricing import price_of
from probes.twilio.webhooks import SignedRequests, forbidden

#: Where the webhooks live on the monitor's HTTP server.
WEBHOOK_PREFIX = "/webhooks/twilio"
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
#: After the probe's own hang-up TwiML, how long to wait for the call to end before forcing it.
HANGUP_GRACE = 10.0
#: How long to wait for the final status (and the price) once the call was ended.
FINAL_STATUS_WAIT = 5.0
#: After the call ended, how long a speech result for its last words may still arrive.
END_GRACE = 2.0
#: Status-only mode: consecutive failed polls tolerated before the run is an error.
POLL_FAILURES = 5
#: The evidence kind of a call's timeline (dialled, answered, heard, pressed, hung up, ...).
TIMELINE = "call-timeline"


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    event: str  # dialled, initiated, ringing, answered, heard, pressed, said, hung up, ...
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "at": self.at.isoformat(timespec="milliseconds"),
            "event": self.event,
            "detail": self.detail,
        }


class PhoneChannel:
    """The ``phone`` channel driver: one Twilio client, webhooks on the monitor's server."""

    kind: ClassVar[str] = "phone"

    def __init__(self, settings: PhoneChannelSettings, services: ChannelServices) -> None:
        self.settings = settings
        self._log = services.logger
        self._webhooks = services.webhooks
        self._calls: dict[str, PhoneConversation] = {}
        self.lines = asyncio.Semaphore(settings.max_calls)
        self._signed = SignedRequests(
            settings.twilio.auth_token,
            Rejections(services.logger, services.on_rejected_webhook),
        )
        self.twilio = TwilioApi(settings.twilio, services.logger)
        self.calls_placed = 0
        self.streams_heard = 0
        self._monitor_name = services.monitor_name
        # Streams for a token no call of this monitor holds (misrouted to it): refused, counted.
        self._foreign_streams = Rejections(services.logger, services.on_rejected_webhook)
        self._prompts: PromptChecker | None = None
        self._prompts_loaded = False

    async def start(self, stack: AsyncExitStack, addresses: Sequence[PhoneAddress] = ()) -> None:
        self.twilio.connect()
        stack.push_async_callback(self._stop)
        if not self.settings.webhook.status_only:
            self._webhooks.routes.extend(
                [
                    web.post(f"{WEBHOOK_PREFIX}/voice/{{token}}", self._on_voice),
                    web.post(f"{WEBHOOK_PREFIX}/gather/{{token}}", self._on_gather),
                    web.post(f"{WEBHOOK_PREFIX}/partial/{{token}}", self._on_partial),
                    web.post(f"{WEBHOOK_PREFIX}/status/{{token}}", self._on_status),
                ]
            )
        if self.settings.media_stream_url is not None:
            handler = media_stream_handler(
                self.settings.twilio.auth_token.get_secret_value(),
                signed_url=lambda request: self.stream_url(request.match_info["token"]),
                observer_for=self._listening,
                refused=self._stream_refused,
                unknown=self._stream_unknown,
            )
            self._webhooks.routes.append(web.get(f"{WEBHOOK_PREFIX}/media/{{token}}", handler))

    async def _stop(self) -> None:
        for conversation in list(self._calls.values()):
            await conversation.close()
        await self.twilio.close()

    @property
    def client(self) -> Client:
        return self.twilio.client

    async def actual_price(self, external_id: str) -> Price | None:
        """The call's price as Twilio rated it; None until it is rated."""
        call = await self.twilio.call(
            "fetch the price", self.client.calls(external_id).fetch_async()
        )
        return price_of(call)

    def stream_url(self, token: str) -> str:
        """The Media Streams address of the call with token, as Twilio reaches (and signs) it."""
        if self.settings.media_stream_url is None:
            raise ChannelUnavailable(
                "no URL for the call's media stream: set channels.phone.media_stream_url"
            )
        return f"{self._own(self.settings.media_stream_url)}{WEBHOOK_PREFIX}/media/{token}"

    def _own(self, url: str) -> str:
        """A configured URL with {monitor} filled in: this monitor's address among several."""
        return url.replace(MONITOR_PLACEHOLDER, quote(self._monitor_name, safe=""))

    def prompt_checker(self) -> PromptChecker | None:
        """The local recogniser, loaded on first use (None: pocketsphinx is not installed)."""
        if not self._prompts_loaded:
            self._prompts, self._prompts_loaded = load_prompt_checker(), True
        return self._prompts

    def _listening(self, request: web.Request) -> CallListening | None:
        conversation = self._conversation(request)
        return None if conversation is None else conversation.listening

    def _stream_refused(self, request: web.Request, why: str) -> None:
        self._signed.rejections.record(why, path=request.path, remote=request.remote)
        listening = self._listening(request)
        if listening is not None:
            listening.upgrade_refused(why)

    def _stream_unknown(self, request: web.Request) -> None:
        self._foreign_streams.record(
            "a media stream for a call this monitor did not place (404): is the reverse proxy "
            "sending each monitor's channels.phone.media_stream_url to that monitor?",
            path=request.path,
            monitor=self._monitor_name,
        )

    def webhook_base(self) -> str:
        public = self.settings.webhook.public_url
        base = self._own(public) if public is not None else self._webhooks.local_url
        if base is None:
            raise ChannelUnavailable(
                "no URL for Twilio's webhooks: set channels.phone.webhook.public_url, or "
                "channels.phone.webhook.status_only: true to measure time to answer only"
            )
        return base.rstrip("/")

    async def open(self, address: PhoneAddress, token: str) -> PhoneConversation:
        # A line is held from dialling to hang-up: calls in progress never exceed max_calls.
        await self.lines.acquire()
        return PhoneConversation(self, address, token)

    async def resume(self, address: PhoneAddress, token: str, sent: Sent) -> PhoneConversation:
        raise ChannelUnavailable("a phone call cannot be resumed after a restart")

    def health(self) -> Mapping[str, Any]:
        return {
            "api_base_url": self.settings.twilio.api_base_url,
            "mode": "status-only" if self.settings.webhook.status_only else "webhooks",
            "calls_in_progress": len(self._calls),
            "max_calls": self.settings.max_calls,
            "calls_placed": self.calls_placed,
            "streams_heard": self.streams_heard,
            "api_retries": self.twilio.retries,
            "rejected_webhooks": self._signed.rejections.count,
            "foreign_streams": self._foreign_streams.count,
        }

    # -- webhooks --------------------------------------------------------------------------

    async def _verified(self, request: web.Request) -> dict[str, str] | None:
        return await self._signed.form(request, self.webhook_base())

    def _conversation(self, request: web.Request) -> PhoneConversation | None:
        return self._calls.get(request.match_info["token"])

    async def _on_voice(self, request: web.Request) -> web.Response:
        params = await self._verified(request)
        if params is None:
            return forbidden()
        conversation = self._conversation(request)
        if conversation is None:
            # A call this process did not place (or has given up on): with several monitors,
            # webhook.public_url must lead each call's webhooks to its own ({monitor}).
            self._log.warning(
                "call webhook for a call this monitor did not place: hung up",
                extra={"path": request.path, "monitor": self._monitor_name},
            )
            return _twiml(_hang_up())
        return _twiml(conversation.on_answered(params))

    async def _on_gather(self, request: web.Request) -> web.Response:
        params = await self._verified(request)
        if params is None:
            return forbidden()
        conversation = self._conversation(request)
        if conversation is None:
            return _twiml(_hang_up())
        return _twiml(conversation.on_speech(params))

    async def _on_partial(self, request: web.Request) -> web.Response:
        params = await self._verified(request)
        if params is None:
            return forbidden()
        conversation = self._conversation(request)
        if conversation is not None:
            conversation.on_partial_speech(request.query.get("turn", ""))
        return web.Response(status=204)

    async def _on_status(self, request: web.Request) -> web.Response:
        params = await self._verified(request)
        if params is None:
            return forbidden()
        conversation = self._conversation(request)
        if conversation is not None:
            conversation.on_status(params.get("CallStatus", ""), params)
        return web.Response(status=204)


class PhoneConversation:
    """One call: placed by ``send``, driven by webhooks (or status polls), ended by ``close``."""

    def __init__(self, channel: PhoneChannel, address: PhoneAddress, token: str) -> None:
        self._channel = channel
        self._settings = channel.settings
        self._log = channel._log
        self.address = address
        self.token = token
        self._events: asyncio.Queue[Reply | ProbeError | None] = asyncio.Queue()
        self._timeline: list[TimelineEntry] = []
        self._steps: list[IvrStep] = []
        self.call_sid: str | None = None
        self._answered = False
        self._utterance_started: datetime | None = None
        self._turn = 0  # listening turns (<Gather>s) so far; partial results name theirs
        self._heard = 0
        self._last_move_at: datetime | None = None
        self._ending = False  # the probe has said goodbye / hung up
        self._final_status: str | None = None
        self._finished = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._closed = False
        self._disclosure = ""
        self._patterns = {
            responder: [re.compile(p, re.IGNORECASE) for p in patterns]
            for responder, patterns in (
                (Responder.BOT, address.voicebot),
                (Responder.AUTO, address.closed),
                (Responder.HUMAN, address.human),
            )
        }
        #: Stream mode (``listen: stream``): what the call's audio says; None with Gather.
        self.listening: CallListening | None = None
        self._call_tasks: set[asyncio.Task[None]] = set()

    # -- placing the call ------------------------------------------------------------------

    async def send(self, contact: Contact) -> Sent:
        if self.call_sid is not None:
            return await self.follow_up(contact)
        self._steps = list(self.address.path_to(contact.expected_queue))
        if self.address.listen == "stream":
            self.listening = CallListening(
                control=self,
                token=self.token,
                number=self.address.number,
                steps=self._steps,
                settings=self._settings.media_stream,
                prompts=self._channel.prompt_checker()
                if self.address.audio_cues.words or any(s.expect_to_hear for s in self._steps)
                else None,
                cues=self.address.audio_cues,
            )
        # Said to the person who answers, before anything else (DESIGN: a declared contact
        # says it is a test in its opening); the menu before them hears only the moves.
        self._disclosure = contact.disclosure if contact.disclosed else ""
        settings = self._settings
        options: dict[str, Any] = {
            "to": self.address.number,
            "from_": settings.from_number,
            "timeout": settings.ring_timeout,
            "time_limit": settings.max_call_seconds,
        }
        if settings.webhook.status_only:
            # Nothing to say: the call is hung up as soon as it is answered, and cut by Twilio
            # within a minute should this process be gone by then.
            options["twiml"] = '<Response><Pause length="60"/></Response>'
            options["time_limit"] = 60
        else:
            options.update(
                url=self._url("voice"),
                method="POST",
                status_callback=self._url("status"),
                status_callback_event=STATUS_EVENTS,
                status_callback_method="POST",
            )
        # Registered first: the first webhook can arrive before create() returns.
        self._channel._calls[self.token] = self
        try:
            call = await self._api(
                "place the call", self._channel.client.calls.create_async(**options)
            )
        except BaseException:
            self._channel._calls.pop(self.token, None)
            raise
        at = utc_now()
        self.call_sid = str(call.sid)
        self._channel.calls_placed += 1
        self._note("dialled", f"{self.address.number} from {settings.from_number} ({call.sid})")
        if settings.webhook.status_only:
            self._poller = asyncio.create_task(self._poll_status(), name=f"poll:{call.sid}")
        path = " → ".join(_describe(step) for step in self._steps) or "(listen only)"
        return Sent(
            at=at,
            external_id=self.call_sid,
            text=f"call {self.address.number}; menu path: {path}",
            resume_state={
                "call_sid": self.call_sid,
                "mode": "status-only"
                if settings.webhook.status_only
                else ("stream" if self.listening is not None else "webhooks"),
            },
        )

    async def follow_up(self, contact: Contact) -> Sent:
        raise ProviderError("a phone call has no follow-up messages")

    def _url(self, kind: str) -> str:
        return f"{self._channel.webhook_base()}{WEBHOOK_PREFIX}/{kind}/{self.token}"

    async def _api(self, what: str, request: Any) -> Any:
        return await self._channel.twilio.call(what, request)

    # -- what the line does (webhooks) -----------------------------------------------------

    def on_status(self, status: str, params: Mapping[str, str]) -> None:
        if not status or status == self._final_status:
            return
        if status == "in-progress":
            self._mark_answered()
            return
        if status in ("queued", "initiated", "ringing"):
            self._note(status)
            return
        if status not in FINAL_STATUSES or self._final_status is not None:
            return
        self._final_status = status
        duration = params.get("CallDuration")
        self._note("ended", f"{status}" + (f", {duration} s" if duration else ""))
        self._finished.set()
        if status == "busy":
            self._fail(ContactRejected("the support line was busy"))
        elif status == "no-answer":
            self._fail(
                ContactRejected(
                    f"the support line did not answer within {self._settings.ring_timeout}s"
                )
            )
        elif status == "failed":
            self._fail(ProviderError("Twilio could not place the call (status failed)"))
        else:
            # Nothing more will be heard, once a result for the last words (posted after the
            # hang-up) has had a moment to arrive.
            asyncio.get_running_loop().call_later(END_GRACE, self._events.put_nowait, None)

    def on_answered(self, params: Mapping[str, str]) -> str:
        self._mark_answered()
        if self.listening is not None:
            self.listening.answered()
            return self._stream_twiml()
        return self._listen()

    # -- stream mode (CallControl for CallListening) ---------------------------------------

    def _stream_twiml(self) -> str:
        response = VoiceResponse()
        url = self._channel.stream_url(self.token)
        if self._steps:
            # Moves are sent as new TwiML later, which would end a <Connect> stream: <Start>
            # streams last for the call, and the pause keeps the call up meanwhile.
            stream = response.start().stream(url=url)
            stream.parameter(name="token", value=self.token)
            response.pause(length=self._settings.max_call_seconds)
        else:
            stream = response.connect().stream(url=url)
            stream.parameter(name="token", value=self.token)
            if self.listening is not None:
                self.listening.bidirectional = True
        self._note("stream", f"{'start' if self._steps else 'connect'} {url}")
        return str(response)

    def heard(self, reply: Reply) -> None:
        self._events.put_nowait(reply)

    def failed(self, error: ProbeError) -> None:
        self._fail(error)

    def note(self, event: str, detail: str = "", *, at: datetime | None = None) -> None:
        self._note(event, detail, at=at)

    def ended(self) -> bool:
        return self._ending or self._final_status is not None or self._closed

    def move(self, step: IvrStep) -> None:
        response = VoiceResponse()
        if step.digits is not None:
            response.play(digits=step.digits)
            self._note("pressed", step.digits)
        else:
            response.say(step.say)
            self._note("said", step.say or "")
        response.pause(length=self._settings.max_call_seconds)
        self._last_move_at = utc_now()
        self._in_call(self._update("make a menu move", str(response)))

    def goodbye(self) -> None:
        self._channel.streams_heard += 1
        self._in_call(self._update("say goodbye", self._say_goodbye()))

    async def _update(self, what: str, twiml: str) -> None:
        if self.call_sid is None or self._final_status is not None:
            return
        call = self._channel.client.calls(self.call_sid)
        try:
            await self._api(what, call.update_async(twiml=twiml))
        except ProbeError as exc:
            if self._final_status is None:  # a call that just ended cannot be updated
                self._fail(exc)

    def _in_call(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)

    def on_partial_speech(self, turn: str) -> None:
        # A late partial result of an earlier turn must not start this turn's utterance.
        if turn == str(self._turn) and self._utterance_started is None:
            self._utterance_started = utc_now()

    def on_speech(self, params: Mapping[str, str]) -> str:
        heard_at = utc_now()
        started, self._utterance_started = self._utterance_started, None
        text = " ".join(params.get("SpeechResult", "").split())
        if not text:
            return _hang_up() if self._ending else self._listen()
        responder = self._classify(text)
        self._heard += 1
        self._note("heard", f"{responder}: {text}", at=started or heard_at)
        self._events.put_nowait(
            Reply(
                observed_at=heard_at,
                arrived_at=started or heard_at,
                timing_method="twilio-partial-speech" if started else "twilio-speech-result",
                sender=self.address.number,
                text=text,
                responder=responder,
                external_id=f"{self.call_sid}:heard:{self._heard}",
                headers={"Call-Event": "speech", "Confidence": params.get("Confidence", "")},
                thread_keys=frozenset({self.token}),
            )
        )
        if responder is Responder.HUMAN and self._last_move_at is not None:
            wait = ((started or heard_at) - self._last_move_at).total_seconds()
            self._note("queue wait", f"{wait:.1f} s from the last menu move to the person")
        if responder is Responder.HUMAN:
            return self._say_goodbye()
        if responder is not Responder.IVR:
            # A closed message or a voice bot: keep listening (a bot may hand over to a
            # person); the run's verdict decides, and close() ends the call.
            return self._listen()
        return self._next_move(text)

    def _classify(self, text: str) -> Responder:
        patterns = self._patterns
        return cued(lambda kind: any(p.search(text) for p in patterns[kind])) or Responder.IVR

    def _next_move(self, heard: str) -> str:
        response = VoiceResponse()
        if self._steps:
            step = self._steps[0]
            if step.when is None or re.search(step.when, heard, re.IGNORECASE):
                self._steps.pop(0)
                if step.digits is not None:
                    response.play(digits=step.digits)
                    self._note("pressed", step.digits)
                else:
                    response.say(step.say)
                    self._note("said", step.say or "")
                self._last_move_at = utc_now()
        self._gather(response)
        return str(response)

    def _listen(self) -> str:
        response = VoiceResponse()
        self._gather(response)
        return str(response)

    def _gather(self, response: VoiceResponse) -> None:
        self._turn += 1
        self._utterance_started = None
        response.gather(
            input="speech",
            action=self._url("gather"),
            method="POST",
            timeout=self._settings.listen_timeout,
            speech_timeout="auto",
            action_on_empty_result=True,
            partial_result_callback=f"{self._url('partial')}?turn={self._turn}",
            partial_result_callback_method="POST",
        )

    def _say_goodbye(self) -> str:
        self._ending = True
        response = VoiceResponse()
        if self._disclosure:
            response.say(self._disclosure)
        response.say(self._settings.closing_line)
        response.hangup()
        self._note("hung up", "by the probe, after its closing line")
        return str(response)

    def _mark_answered(self) -> None:
        if self._answered:
            return
        self._answered = True
        at = utc_now()
        self._note("answered", at=at)
        self._events.put_nowait(
            Reply(
                observed_at=at,
                arrived_at=at,
                timing_method="twilio-status-poll"
                if self._settings.webhook.status_only
                else "twilio-webhook",
                sender=self.address.number,
                text="(the call was answered)",
                responder=Responder.IVR
                if not self._settings.webhook.status_only
                else Responder.UNKNOWN,
                external_id=f"{self.call_sid}:answered",
                headers={
                    "Call-Event": "answered",
                    **(
                        {"Measured": "time to answer only (status-only mode)"}
                        if self._settings.webhook.status_only
                        else {}
                    ),
                },
                thread_keys=frozenset({self.token}),
            )
        )

    def _fail(self, error: ProbeError) -> None:
        self._note("failed", str(error))
        self._events.put_nowait(error)

    def _note(self, event: str, detail: str = "", *, at: datetime | None = None) -> None:
        self._timeline.append(TimelineEntry(at or utc_now(), event, detail))

    # -- status-only mode ------------------------------------------------------------------

    async def _poll_status(self) -> None:
        assert self.call_sid is not None
        call = self._channel.client.calls(self.call_sid)
        interval = self._settings.webhook.poll_interval
        failures = 0
        while self._final_status is None:
            await asyncio.sleep(interval)
            try:
                fetched = await self._api("poll the call", call.fetch_async())
                status = str(fetched.status)
                duration = str(fetched.duration or "")
                answered = status == "in-progress" or (
                    status == "completed" and duration not in ("", "0")
                )
                if answered and not self._answered:
                    self.on_status("in-progress", {})
                if status == "in-progress":
                    self._ending = True
                    self._note("hung up", "by the probe: status-only mode measures the answer")
                    await self._api("hang up", call.update_async(status="completed"))
                else:
                    self.on_status(status, {"CallDuration": duration})
                failures = 0
            except ProbeError as exc:
                failures += 1
                if failures >= POLL_FAILURES:
                    self._fail(exc)
                    return
                self._log.warning(
                    "status poll failed; retrying",
                    extra={"call_sid": self.call_sid, "error": str(exc)},
                )
            except Exception as exc:  # a bug here must end the run, not hang it
                self._fail(
                    ChannelUnavailable(f"status polling stopped: {type(exc).__name__}: {exc}")
                )
                return

    # -- replies and the end ---------------------------------------------------------------

    async def replies(self) -> AsyncIterator[Reply]:
        while True:
            item = await self._events.get()
            if item is None:
                self._events.put_nowait(None)
                return  # the call ended: nothing more can be heard
            if isinstance(item, ProbeError):
                self._events.put_nowait(item)
                raise item
            yield item

    async def close(self) -> list[Evidence]:
        """End the call if it is still up, then hand back its timeline and what was heard."""
        if self._closed:
            return []
        self._closed = True
        try:
            await self._end_call()
        finally:
            if self.listening is not None:
                self.listening.close()
            for task in list(self._call_tasks):
                task.cancel()
            if self._poller is not None:
                self._poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poller
            self._channel._calls.pop(self.token, None)
            self._channel.lines.release()
        return self._evidence()

    async def _end_call(self) -> None:
        if self.call_sid is None:
            return
        call = self._channel.client.calls(self.call_sid)
        if self._final_status is None and self._ending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANGUP_GRACE):
                    await self._finished.wait()
        if self._final_status is None:
            self._note("hung up", "by the probe, at the end of the run")
            try:
                # "completed" ends a call in any state ("canceled" only one not yet answered).
                await self._api("hang up", call.update_async(status="completed"))
            except ProbeError as exc:
                self._log.warning(
                    "could not hang up", extra={"call_sid": self.call_sid, "error": str(exc)}
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FINAL_STATUS_WAIT):
                    await self._finished.wait()
        try:
            fetched = await self._api("fetch the call", call.fetch_async())
        except ProbeError as exc:
            self._note("no price", str(exc))
            return
        if str(fetched.status) not in FINAL_STATUSES:
            self._log.error(
                "the call is still up after hanging up; Twilio ends it at its time limit",
                extra={"call_sid": self.call_sid, "status": str(fetched.status)},
            )
        price = f"{fetched.price} {fetched.price_unit}" if fetched.price is not None else "unknown"
        self._note("billed", f"{fetched.duration or 0} s, price {price} (Twilio may price later)")

    def _evidence(self) -> list[Evidence]:
        timeline = [entry.as_dict() for entry in sorted(self._timeline, key=lambda e: e.at)]
        document = {"call_sid": self.call_sid, "to": self.address.number, "timeline": timeline}
        kept = [json_evidence(TIMELINE, document)]
        if self.listening is not None:
            kept.extend(self.listening.evidence())
        return kept

    def measures(self) -> dict[str, float]:
        """The figures from the call's audio (stream mode), for the run's metrics."""
        found = None if self.listening is None else self.listening.measures()
        if found is None:
            return {}
        return {name: value for name, value in found.as_json().items() if value is not None}


def timeline_lines(content: bytes, sent_at: datetime | None) -> list[str]:
    """A call's timeline evidence as lines with offsets from the call's t0 (``cxprobe once``)."""
    try:
        entries = json.loads(content).get("timeline", [])
    except (ValueError, AttributeError):
        return ["    (unreadable call timeline)"]
    lines = []
    for entry in entries:
        at = datetime.fromisoformat(entry["at"])
        offset = f"{(at - sent_at).total_seconds():+8.2f}s" if sent_at else ""
        detail = f"  {entry['detail']}" if entry.get("detail") else ""
        lines.append(f"    {at:%H:%M:%S.%f}"[:-3] + f" {offset} {entry['event']:<10}{detail}")
    return lines


def segment_lines(content: bytes, sent_at: datetime | None) -> list[str]:
    """What the call's audio held (``cxprobe once``): its measures and segments."""
    try:
        document = json.loads(content)
    except ValueError:
        return ["    (unreadable call audio segments)"]
    if not document.get("connected"):
        return ["    the media stream never connected"]
    measures = ", ".join(
        f"{name} {value:.2f}s" for name, value in document.get("measures", {}).items() if value
    )
    lines = [f"    audio {document.get('seconds', 0):.2f}s ({document.get('ended')}): {measures}"]
    for segment in document.get("segments", []):
        if segment["role"] != "silence":
            lines.append(f"    {segment['start']:8.2f}s-{segment['end']:.2f}s {segment['role']}")
    return lines


def _describe(step: IvrStep) -> str:
    return f"press {step.digits}" if step.digits is not None else f"say {step.say!r}"


def _hang_up() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/xml")


def estimate_call_cost(
    settings: PhoneChannelSettings, address: PhoneAddress, contact: Contact
) -> CostUnits:
    """A call is charged per started minute; before it is made, only its cap is known."""
    return CostUnits(
        unit="minute",
        count=math.ceil(settings.max_call_seconds / 60),
        destination=address.number,
        account=settings.twilio.account_sid,
    )


PHONE = ChannelType(
    kind=PhoneChannel.kind,
    settings_model=PhoneChannelSettings,
    address_model=PhoneAddress,
    create=PhoneChannel,
    # The line should pick up within a minute; the queue to a person is the long part.
    default_sla=DefaultSla(
        first_response=60, human_response=600, after_hours_response=60, deadline=900
    ),
    methodology=Methodology(
        t0="the call created by the provider",
        reply_timing="provider status events (answered) and partial speech results (who speaks: "
        "IVR, human); lines with listen: stream, the call's audio over Twilio Media Streams "
        "(20 ms frames: IVR, hold music, the first speech after hold is the person; audio_cues "
        "words spotted locally tell a voice bot and the closed message)",
        precision="~0.5 to 1 s (speech is recognised in partial results as it is heard)",
        measures="Lines with listen: stream only. The far end's audio (μ-law, 8 kHz) is "
        "labelled in 20 ms frames (voice activity, tonal hold music, silence), so each measure "
        "has a resolution of 20 ms, timed from the stream's first frame: post-dial delay to "
        "the first sound (ringback or a voice), the IVR's first words, time in the IVR until "
        "the hold music, all the hold music, and the person's first words (the first speech "
        "after hold). Against the sandbox's ground truth on audio no test used (BENCHMARKS.md, "
        "'Phone audio'): every measure within 100 ms at p95, time to a human within 65 ms. "
        "Noisy or percussive hold music blurs the hold edges by up to ~150 ms.",
    ),
    cross_check=cross_check,
    evidence_summaries={TIMELINE: timeline_lines, SEGMENTS: segment_lines},
    measures=MEASURES,
    measures_title="Phone audio",
    resumable=False,
    cannot_resume="a call is heard only by the monitor that placed it (its webhooks and media "
    "stream reach that monitor); Twilio ends it at channels.phone.max_call_seconds",
    needs_http=True,
    # The brand's published support line: anyone may call it.
    public=True,
    estimate_cost=estimate_call_cost,
)
