"""A call heard over its Media Stream (``listen: stream``): replies, menu moves and faults.

The listener labels every 20 ms frame as it arrives; every ``LOOK_FRAMES`` frames the call's
segments are read again and acted on:

- the first IVR (or bot) speech is the greeting: an ``ivr`` reply timed at its first frame;
- the end of an IVR prompt (speech, then ``MOVE_AFTER`` seconds of quiet) takes the next move
  of the menu path (keys or words, sent by the channel as new TwiML), after checking the
  prompt against the move's ``expect_to_hear`` with the local recogniser;
- the first speech after hold music is a person: a ``human`` reply timed at its first frame,
  then the probe says its closing line and hangs up.

Faults end the run with a reason: a stream that never connects (``connect_timeout`` after the
answer; refused upgrades with a bad signature are named), a stream that drops (the socket
closes without Twilio's ``stop`` while the call is up), a stream with only silence or noise for
``silence_limit`` seconds, a prompt that does not offer what ``expect_to_hear`` expects.

Times: stream seconds count from the first media frame; a reply's wall-clock time is the
first frame's arrival plus its stream offset (Twilio sends the audio in real time).
"""

from __future__ import annotations

import asyncio
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
from probes.phone.listen import CallMeasures, HeardSegment, Listener, measures_of
from probes.phone.media import Send, StreamSession, mulaw_wav
from probes.phone.prompts import PromptCheck, PromptChecker, UnknownWord
from probes.phone.settings import IvrStep, MediaStreamSettings

#: Segments are read again every this many frames (200 ms).
LOOK_FRAMES = 10
#: Quiet after an IVR prompt that means it has ended (longer than the listener's utterance gap).
MOVE_AFTER = 0.8
#: Speech this long after hold music is taken as the person (not a click or a breath).
HUMAN_MIN_SECONDS = 0.3
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
    session: StreamSession | None = None
    refused_upgrades: int = 0
    #: A <Connect> stream: Twilio takes messages back (marks are echoed once played).
    bidirectional: bool = False
    checks: list[PromptCheck] = field(default_factory=list)
    _greeted: bool = False
    _held: bool = False
    _human: bool = False
    _acted_on: set[float] = field(default_factory=set)  # starts of the prompts moved on
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
            listener=Listener(), recording_cap_bytes=self.settings.recording_max_seconds * 8000
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
        self._look(session)
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

    def _look(self, session: StreamSession) -> None:
        if self._human:
            return
        segments = session.listener.segments()
        now = session.seconds
        for index, segment in enumerate(segments):
            if segment.role in ("ivr", "bot") and not self._greeted:
                self._greeted = True
                self._reply(session, segment, Responder.IVR, "(the IVR's first words)")
            elif segment.role == "hold" and not self._held:
                self._held = True
                self.control.note(
                    "hold", "music on the line", at=self._wall(session, segment.start)
                )
            elif segment.role == "human" and segment.end - segment.start >= HUMAN_MIN_SECONDS:
                self._human = True
                self._reply(session, segment, Responder.HUMAN, "(a person's first words)")
                self._mark(session, "human-heard")
                self.control.goodbye()
                return
            if segment.role == "ivr" and self._prompt_ended(segments, index, now):
                self._prompt_heard(session, segment)
        self._check_silence(segments, now)

    def _prompt_ended(self, segments: Sequence[HeardSegment], index: int, now: float) -> bool:
        later = segments[index + 1 :]
        return (
            segments[index].start not in self._acted_on
            and all(s.role in ("silence", "noise") for s in later)
            and now - segments[index].end >= MOVE_AFTER
        )

    def _prompt_heard(self, session: StreamSession, prompt: HeardSegment) -> None:
        self._acted_on.add(prompt.start)
        self.control.note(
            "prompt heard",
            f"{prompt.start:.2f}-{prompt.end:.2f} s",
            at=self._wall(session, prompt.start),
        )
        if not self.steps:
            return
        step = self.steps[0]
        if not step.expect_to_hear:
            self.control.move(self.steps.pop(0))
            return
        # Off the event loop: recognition takes a few hundred ms of CPU per prompt.
        self._spawn(self._check_then_move(session, prompt, step))

    async def _check_then_move(
        self, session: StreamSession, prompt: HeardSegment, step: IvrStep
    ) -> None:
        if self.prompts is None:
            self.control.failed(
                ChannelUnavailable(
                    "expect_to_hear needs the local recogniser (pocketsphinx), which is not "
                    "installed: pip install pocketsphinx, or remove expect_to_hear"
                )
            )
            return
        audio = bytes(session.recording[round(prompt.start * 8000) : round(prompt.end * 8000)])
        if len(audio) < round((prompt.end - prompt.start) * 8000):
            self.control.failed(
                PromptNotHeard(
                    f"the IVR prompt at {prompt.start:.1f} s is past the recording kept "
                    "(channels.phone.media_stream.recording_max_seconds): expect_to_hear checks "
                    "the recording; raise the limit"
                )
            )
            return
        try:
            check = await asyncio.to_thread(self.prompts.check, audio, step.expect_to_hear)
        except UnknownWord as exc:
            self.control.failed(PromptNotHeard(str(exc)))
            return
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

    def measures(self) -> CallMeasures | None:
        return None if self.session is None else measures_of(self.session.listener.segments())

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
        measures = measures_of(session.listener.segments())
        document.update(
            started_at=None if session.started_at is None else session.started_at.isoformat(),
            seconds=round(session.seconds, 3),
            ended="stop" if session.stopped else "dropped",
            recorded_seconds=round(len(session.recording) / 8000, 3),
            timing="seconds from the stream's first media frame, at 20 ms frame resolution",
            measures=measures.as_json(),
            segments=[segment.as_json() for segment in session.listener.segments()],
            marks_echoed=session.marks,
        )
        kept = [json_evidence(SEGMENTS, document)]
        if session.recording:
            kept.append(Evidence(AUDIO, "audio/wav", mulaw_wav(bytes(session.recording))))
        return kept
