"""A call heard over its Media Stream (``listen: stream``): replies, menu moves and faults.

The listener labels every 20 ms frame as it arrives; every ``LOOK_FRAMES`` frames the call's
segments are read again and acted on:

- the first IVR (or bot) speech is the greeting: an ``ivr`` reply timed at its first frame;
- the end of an IVR prompt (speech, then ``MOVE_AFTER`` seconds of quiet) takes the next move
  of the menu path (keys or words, sent by the channel as new TwiML), after checking the
  prompt against the move's ``expect_to_hear`` with the local recogniser;
- the first speech after hold music is a person: a ``human`` reply timed at its first frame,
  then the probe says its closing line and hangs up.

With ``audio_cues`` (:mod:`probes.phone.spoken_cues`) every utterance is judged once it ends:
its words are spotted by the local recogniser (off the event loop, one at a time) and it is a
voice bot, the closed message, a person or the IVR; bot and closed-message replies keep the
call up (as gather mode does), the IVR's prompt takes the next move, a person ends the call.

Faults end the run with a reason: a stream that never connects (``connect_timeout`` after the
answer; refused upgrades with a bad signature are named), a stream that drops (the socket
closes without Twilio's ``stop`` while the call is up), a stream with only silence or noise for
``silence_limit`` seconds, a prompt that does not offer what ``expect_to_hear`` expects.

Times: stream seconds count from the first media frame; a reply's wall-clock time is the
first frame's arrival plus its stream offset (Twilio sends the audio in real time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from probes.base import (
    ChannelUnavailable,
    Evidence,
    Measure,
    ProbeError,
    Reply,
    Responder,
    json_evidence,
    utc_now,
)
from probes.phone.listen import CallMeasures, HeardSegment, ListenCues, Listener, measures_of
from probes.phone.media import Send, StreamSession, mulaw_wav
from probes.phone.prompts import PromptCheck, PromptChecker, UnknownWord
from probes.phone.settings import AudioCues, IvrStep, MediaStreamSettings
from probes.phone.spoken_cues import ROLE_OF, Judged, judge

#: Segments are read again every this many frames (200 ms).
LOOK_FRAMES = 10
#: Quiet after an IVR prompt that means it has ended (longer than the listener's utterance gap).
MOVE_AFTER = 0.8
#: Speech this long after hold music is taken as the person (not a click or a breath).
HUMAN_MIN_SECONDS = 0.3
#: Longest wait for the local recogniser on one utterance (its CPU cost is ~0.1 s per second
#: of audio on this machine's cores; far more means the monitor is overloaded).
RECOGNITION_TIMEOUT = 20.0
#: Audio either side of an utterance the recogniser is also given (its edges blur its words).
RECOGNITION_MARGIN = 0.25
#: Evidence kinds: the far end's recording and what was heard in it.
AUDIO = "call-audio"
SEGMENTS = "call-audio-segments"
#: The measures from the audio, as the channel type declares them (metrics, store, report).
MEASURES = {
    "post_dial_delay": Measure(
        "post-dial delay (audio)",
        "Seconds from the stream's first frame to the first sound (ringback or a voice) on "
        "the call's audio.",
    ),
    "time_to_ivr_greeting": Measure(
        "time to IVR greeting (audio)",
        "Seconds from the stream's first frame to the IVR's first words.",
    ),
    "time_in_ivr": Measure(
        "time in IVR (audio)",
        "Seconds from the IVR's first words to the hold music (or the person).",
    ),
    "time_on_hold": Measure("time on hold (audio)", "Seconds of hold music on the call's audio."),
    "time_to_human": Measure(
        "time to a human (audio)",
        "Seconds from the stream's first frame to the person's first words.",
    ),
}


class PromptNotHeard(ProbeError):
    """An IVR prompt did not offer what the menu path expects to hear (``expect_to_hear``)."""

    outcome = "failed"


class CallControl(Protocol):
    """What the listening part asks of the call it belongs to."""

    call_sid: str | None

    def heard(self, reply: Reply) -> None: ...

    def failed(self, error: ProbeError) -> None: ...

    def note(self, event: str, detail: str = "", *, at: datetime | None = None) -> None: ...

    def move(self, step: IvrStep) -> None: ...

    def goodbye(self) -> None: ...

    def ended(self) -> bool: ...


@dataclass
class CallListening:
    """One call's stream-mode listening; the media endpoint feeds it (a StreamObserver)."""

    control: CallControl
    token: str
    number: str
    steps: list[IvrStep]
    settings: MediaStreamSettings
    prompts: PromptChecker | None = None
    cues: AudioCues = field(default_factory=AudioCues)
    session: StreamSession | None = None
    refused_upgrades: int = 0
    #: A <Connect> stream: Twilio takes messages back (marks are echoed once played).
    bidirectional: bool = False
    checks: list[PromptCheck] = field(default_factory=list)
    #: Who spoke in each utterance judged by its audio_cues, by the utterance's start.
    judged: dict[float, Judged] = field(default_factory=dict)
    _greeted: bool = False
    _held: bool = False
    _human: bool = False
    _acted_on: set[float] = field(default_factory=set)  # starts of the utterances acted on
    _replied: set[Responder] = field(default_factory=set)  # bot, auto: one reply each
    _said_at: float | None = None  # stream seconds of the probe's last spoken move
    _last_hold: float | None = None  # stream seconds where the latest hold music started
    _judging: asyncio.Lock = field(default_factory=asyncio.Lock)
    _connect_timer: asyncio.TimerHandle | None = None
    _send: Send | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    # -- the stream's life -----------------------------------------------------------------

    def answered(self) -> None:
        """The call was answered (its TwiML starts the stream): the stream must follow."""
        if self._connect_timer is None:
            loop = asyncio.get_running_loop()
            self._connect_timer = loop.call_later(
                self.settings.connect_timeout, self._never_connected
            )

    def upgrade_refused(self, why: str) -> None:
        self.refused_upgrades += 1
        self.control.note("stream refused", f"403: {why}")

    def stream_session(self) -> StreamSession:
        return StreamSession(
            listener=Listener(ListenCues(human=self.cues.first_human)),
            recording_cap_bytes=self.settings.recording_max_seconds * 8000,
        )

    def stream_started(self, session: StreamSession, send: Send) -> bool:
        token = session.parameters.get("token")
        call_sid = self.control.call_sid
        if token != self.token or (call_sid is not None and session.call_sid != call_sid):
            self.control.note(
                "stream refused",
                f"stream {session.stream_sid} names call {session.call_sid}, not this one",
            )
            return False
        if self.session is not None:
            self.control.note("stream refused", f"a second stream ({session.stream_sid})")
            return False
        self.session, self._send = session, send
        if self._connect_timer is not None:
            self._connect_timer.cancel()
        self.control.note("stream started", f"{session.stream_sid}")
        if self.bidirectional:
            self._mark(session, "listening")  # its echo shows the way back works
        return True

    def stream_media(self, session: StreamSession) -> None:
        if session.frames % LOOK_FRAMES == 0 and not self.control.ended():
            self._look(session)

    def stream_ended(self, session: StreamSession) -> None:
        self._look(session, final=True)
        how = "stop" if session.stopped else "dropped (no stop message)"
        self.control.note("stream ended", f"{how} after {session.seconds:.2f} s of audio")
        if not session.stopped and not self.control.ended():
            self.control.failed(
                ChannelUnavailable(
                    f"the call's media stream dropped after {session.seconds:.1f} s of audio "
                    "(the WebSocket closed without Twilio's stop message while the call was "
                    "up): check the reverse proxy's WebSocket timeouts"
                )
            )

    def close(self) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
        for task in self._tasks:
            task.cancel()

    def _never_connected(self) -> None:
        if self.session is not None or self.control.ended():
            return
        refused = (
            f"; {self.refused_upgrades} WebSocket upgrade(s) for this call were refused for a "
            "bad X-Twilio-Signature (is channels.phone.media_stream_url the address Twilio "
            "used, and twilio.auth_token this account's?)"
            if self.refused_upgrades
            else ""
        )
        self.control.failed(
            ChannelUnavailable(
                f"the call's media stream did not connect within "
                f"{self.settings.connect_timeout:g} s of the answer{refused}: check that "
                "channels.phone.media_stream_url reaches this monitor through the reverse proxy "
                "(WebSocket upgrades forwarded), or use 'listen: gather'"
            )
        )

    # -- what is heard -----------------------------------------------------------------------

    def _look(self, session: StreamSession, *, final: bool = False) -> None:
        """final: the stream has ended, and with it every utterance (each is judged)."""
        if self._human:
            return
        segments = session.listener.segments()
        now = session.seconds
        ended_by = math.inf if final else now
        for index, segment in enumerate(segments):
            if segment.role == "hold":
                self._last_hold = max(self._last_hold or 0.0, segment.start)
            if segment.role == "hold" and not self._held:
                self._held = True
                self.control.note(
                    "hold", "music on the line", at=self._wall(session, segment.start)
                )
            elif self.cues.active:
                if segment.role in ("ivr", "human") and self._utterance_ended(
                    segments, index, ended_by
                ):
                    self._acted_on.add(segment.start)
                    last = self._nothing_after(segments, index)
                    self._spawn(self._judge(session, segment, last=last))
            elif segment.role in ("ivr", "bot") and not self._greeted:
                self._greeted = True
                self._reply(session, segment, Responder.IVR, "(the IVR's first words)")
            elif segment.role == "human" and segment.end - segment.start >= HUMAN_MIN_SECONDS:
                self._person(session, segment)
                return
            if (
                not self.cues.active
                and segment.role == "ivr"
                and self._utterance_ended(segments, index, now)
                and self._nothing_after(segments, index)
            ):
                self._acted_on.add(segment.start)
                self._prompt_heard(session, segment, None)
        self._check_silence(segments, now)

    def _utterance_ended(self, segments: Sequence[HeardSegment], index: int, now: float) -> bool:
        """Not acted on yet, and followed by other sound or by MOVE_AFTER seconds of quiet."""
        segment = segments[index]
        return segment.start not in self._acted_on and (
            not self._nothing_after(segments, index) or now - segment.end >= MOVE_AFTER
        )

    @staticmethod
    def _nothing_after(segments: Sequence[HeardSegment], index: int) -> bool:
        return all(s.role in ("silence", "noise") for s in segments[index + 1 :])

    def _person(self, session: StreamSession, segment: HeardSegment) -> None:
        self._human = True
        self._reply(session, segment, Responder.HUMAN, "(a person's first words)")
        self._mark(session, "human-heard")
        self.control.goodbye()

    async def _judge(self, session: StreamSession, segment: HeardSegment, *, last: bool) -> None:
        """Who spoke in an ended utterance (audio_cues), then what the probe does about it."""
        async with self._judging:  # one recognition at a time, utterances in order
            if self._human:
                return  # (a call that has ended still has its last words judged)
            step = self.steps[0] if last and self.steps and segment.role == "ivr" else None
            expected = step.expect_to_hear if step is not None else []
            words = [*expected, *(w for w in self.cues.words if w not in expected)]
            check = None
            if words:
                check = await self._recognise(session, segment, words)
                if check is None:
                    return  # the run has failed, with the reason
            spotted = set() if check is None else set(check.expected) - set(check.missing)
            judged = judge(segment, self.cues, spotted, answers_say=self._answers_say(segment))
            self.judged[segment.start] = judged
            self.control.note(
                "utterance",
                f"{segment.start:.2f}-{segment.end:.2f} s {judged.responder}: {judged.why}",
                at=self._wall(session, segment.start),
            )
            responder = judged.responder
            if responder is Responder.HUMAN:
                if segment.end - segment.start >= HUMAN_MIN_SECONDS:
                    self._person(session, segment)
                return
            if responder is not Responder.IVR:
                # A closed message or a voice bot: keep listening (a bot may hand over to a
                # person), as gather mode does; the run's verdict decides.
                self._greeted = True
                if responder not in self._replied:
                    self._replied.add(responder)
                    what = "the voice bot" if responder is Responder.BOT else "the closed message"
                    self._reply(session, segment, responder, f"({what}'s first words)")
                return
            if not self._greeted:
                self._greeted = True
                self._reply(session, segment, Responder.IVR, "(the IVR's first words)")
            if last:
                prompt_check = None
                if check is not None and step is not None and step.expect_to_hear:
                    missing = [word for word in check.missing if word in expected]
                    prompt_check = PromptCheck(expected, check.heard, missing)
                self._prompt_heard(session, segment, prompt_check)

    def _answers_say(self, segment: HeardSegment) -> bool:
        """Whether the utterance follows the probe's last spoken move with no hold between."""
        if self._said_at is None or segment.start < self._said_at:
            return False
        return self._last_hold is None or self._last_hold < self._said_at

    def _prompt_heard(
        self, session: StreamSession, prompt: HeardSegment, checked: PromptCheck | None
    ) -> None:
        self.control.note(
            "prompt heard",
            f"{prompt.start:.2f}-{prompt.end:.2f} s",
            at=self._wall(session, prompt.start),
        )
        if not self.steps:
            return
        step = self.steps[0]
        if not step.expect_to_hear:
            self._move(session, self.steps.pop(0))
        elif checked is not None:
            self._check_then_move(session, prompt, step, checked)
        else:
            # Off the event loop: recognition takes a few hundred ms of CPU per prompt.
            self._spawn(self._recognise_then_move(session, prompt, step))

    async def _recognise_then_move(
        self, session: StreamSession, prompt: HeardSegment, step: IvrStep
    ) -> None:
        check = await self._recognise(session, prompt, step.expect_to_hear)
        if check is not None and not self.control.ended():
            self._check_then_move(session, prompt, step, check)

    async def _recognise(
        self, session: StreamSession, segment: HeardSegment, words: list[str]
    ) -> PromptCheck | None:
        """The words spotted in the segment's recording; None when the run failed instead."""
        if self.prompts is None:
            self.control.failed(
                ChannelUnavailable(
                    "expect_to_hear and audio_cues need the local recogniser (pocketsphinx), "
                    "which is not installed: pip install pocketsphinx, or remove them"
                )
            )
            return None
        after = round(segment.end * 8000)
        if len(session.recording) < after:
            self.control.failed(
                PromptNotHeard(
                    f"the utterance at {segment.start:.1f} s is past the recording kept "
                    "(channels.phone.media_stream.recording_max_seconds): expect_to_hear and "
                    "audio_cues check the recording; raise the limit"
                )
            )
            return None
        # With a margin of quiet: the utterance's edges are the listener's, and a word may
        # start before them; other sound (ringback, music) is left out.
        audible = [s for s in session.listener.segments() if s.role not in ("silence", "noise")]
        before = max((s.end for s in audible if s.end <= segment.start), default=0.0)
        later = min((s.start for s in audible if s.start >= segment.end), default=math.inf)
        low = max(before, segment.start - RECOGNITION_MARGIN)
        high = min(later, segment.end + RECOGNITION_MARGIN)
        audio = bytes(session.recording[round(low * 8000) : round(high * 8000)])
        try:
            async with asyncio.timeout(RECOGNITION_TIMEOUT):
                return await asyncio.to_thread(self.prompts.check, audio, words)
        except UnknownWord as exc:
            self.control.failed(PromptNotHeard(f"{exc} (audio_cues or expect_to_hear)"))
        except TimeoutError:
            self.control.failed(
                ChannelUnavailable(
                    f"the local recogniser took over {RECOGNITION_TIMEOUT:g} s for the "
                    f"{segment.end - segment.start:.1f} s utterance at {segment.start:.1f} s: "
                    "the monitor is overloaded (lower channels.phone.max_calls)"
                )
            )
        return None

    def _check_then_move(
        self, session: StreamSession, prompt: HeardSegment, step: IvrStep, check: PromptCheck
    ) -> None:
        self.checks.append(check)
        self.control.note(
            "prompt check",
            f"{'heard' if check.passed else 'missing'} {check.missing or check.expected}",
        )
        if self.control.ended():
            return
        if not check.passed:
            self.control.failed(
                PromptNotHeard(
                    f"the IVR prompt at {prompt.start:.1f} s of the call's audio did not offer "
                    f"{check.missing} (expect_to_hear {check.expected}); the recogniser spotted "
                    f"{check.heard or 'none of them'!r}"
                )
            )
            return
        self.steps.remove(step)
        self._move(session, step)

    def _move(self, session: StreamSession, step: IvrStep) -> None:
        if step.say is not None:
            self._said_at = session.seconds
        self.control.move(step)

    def _check_silence(self, segments: Sequence[HeardSegment], now: float) -> None:
        audible = [s.end for s in segments if s.role not in ("silence", "noise")]
        last_sound = max(audible, default=0.0)
        if now - last_sound >= self.settings.silence_limit:
            what = "silence or noise" if audible else "only silence or noise"
            self.control.failed(
                ChannelUnavailable(
                    f"the call's audio carried {what} for {now - last_sound:.0f} s "
                    f"(channels.phone.media_stream.silence_limit is "
                    f"{self.settings.silence_limit:g} s): no voice, music or ringback"
                )
            )
            self._human = True  # stop looking: the run is over

    def _reply(
        self, session: StreamSession, segment: HeardSegment, responder: Responder, text: str
    ) -> None:
        at = self._wall(session, segment.start)
        self.control.note("heard", f"{responder}: at {segment.start:.2f} s of audio", at=at)
        self.control.heard(
            Reply(
                observed_at=utc_now(),
                arrived_at=at,
                timing_method="media-stream-audio",
                sender=self.number,
                text=text,
                responder=responder,
                external_id=f"{self.control.call_sid}:audio:{responder}",
                headers={"Call-Event": "audio", "Stream-Offset": f"{segment.start:.3f}"},
                thread_keys=frozenset({self.token}),
            )
        )

    def _mark(self, session: StreamSession, name: str) -> None:
        """A mark on a bidirectional stream (Twilio echoes it once queued audio has played)."""
        if not self.bidirectional or self._send is None or session.stream_sid is None:
            return
        message: dict[str, object] = {
            "event": "mark",
            "streamSid": session.stream_sid,
            "mark": {"name": name},
        }
        self._spawn(self._send(message))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _wall(session: StreamSession, offset: float) -> datetime:
        started = session.started_at or utc_now()
        return started + timedelta(seconds=offset)

    # -- what is kept --------------------------------------------------------------------

    def segments(self) -> list[HeardSegment]:
        """The call's segments, each judged utterance with the role its cues gave it."""
        if self.session is None:
            return []
        return [
            segment
            if segment.start not in self.judged
            else dataclasses.replace(segment, role=ROLE_OF[self.judged[segment.start].responder])
            for segment in self.session.listener.segments()
        ]

    def measures(self) -> CallMeasures | None:
        return None if self.session is None else measures_of(self.segments())

    def evidence(self) -> list[Evidence]:
        session = self.session
        document: dict[str, Any] = {
            "stream_sid": None if session is None else session.stream_sid,
            "connected": session is not None,
            "refused_upgrades": self.refused_upgrades,
            "prompt_checks": [check.as_json() for check in self.checks],
        }
        if session is None:
            return [json_evidence(SEGMENTS, document)]
        segments = self.segments()
        measures = measures_of(segments)
        document.update(
            started_at=None if session.started_at is None else session.started_at.isoformat(),
            seconds=round(session.seconds, 3),
            ended="stop" if session.stopped else "dropped",
            recorded_seconds=round(len(session.recording) / 8000, 3),
            timing="seconds from the stream's first media frame, at 20 ms frame resolution",
            measures=measures.as_json(),
            segments=[
                {
                    **segment.as_json(),
                    **(
                        self.judged[segment.start].as_json() if segment.start in self.judged else {}
                    ),
                }
                for segment in segments
            ],
            marks_echoed=session.marks,
        )
        kept = [json_evidence(SEGMENTS, document)]
        if session.recording:
            kept.append(Evidence(AUDIO, "audio/wav", mulaw_wav(bytes(session.recording))))
        return kept
