"""Stream mode's cues: who speaks in an utterance (a voice bot, the closed message, a person),
on real synthesised audio fed to a call's listening as the media endpoint feeds it; and the
per-monitor stream and webhook URLs."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from cxprobe.settings import load_config
from probes.base import ChannelServices, ProbeError, Reply, Responder, utc_now
from probes.phone.channel import PhoneChannel
from probes.phone.listen import HeardSegment
from probes.phone.media import StreamSession
from probes.phone.prompts import PromptChecker
from probes.phone.settings import AudioCues, IvrStep, MediaStreamSettings, PhoneChannelSettings
from probes.phone.spoken_cues import judge
from probes.phone.stream_call import CallListening
from sandbox.twilio.audio import FarEndScript, Pcm, Voicebox, frames, mulaw_encode, silence
from tests.support import PHONE_AUTH_TOKEN, phone_config

IVR_VOICE = {"voice": "en-us", "rate": 165, "pitch": 45}
BOT_VOICE = {"voice": "en-us+f3", "rate": 170, "pitch": 60}


@pytest.fixture(scope="module")
def voicebox() -> Voicebox:
    return Voicebox()


# -- judging one utterance ------------------------------------------------------------------

IVR_SPEECH = HeardSegment("ivr", 1.0, 3.0)
AFTER_HOLD = HeardSegment("human", 9.0, 11.0)
CUES = AudioCues(bot=["automated", "virtual assistant"], closed=["tomorrow"], human=["speaking"])


@pytest.mark.parametrize(
    ("segment", "spotted", "responder"),
    [
        (IVR_SPEECH, {"virtual assistant"}, Responder.BOT),
        # A bot and the closed message before a person, as gather mode looks for them.
        (AFTER_HOLD, {"speaking", "automated"}, Responder.BOT),
        (IVR_SPEECH, {"tomorrow", "speaking"}, Responder.AUTO),
        (IVR_SPEECH, {"speaking"}, Responder.HUMAN),
        (AFTER_HOLD, set(), Responder.HUMAN),
        (IVR_SPEECH, set(), Responder.IVR),
        (IVR_SPEECH, {"billing"}, Responder.IVR),  # a prompt's own words are no cue
    ],
)
def test_words_spotted_name_the_speaker_before_its_place_does(
    segment: HeardSegment, spotted: set[str], responder: Responder
) -> None:
    assert judge(segment, CUES, spotted, answers_say=False).responder is responder


def test_speech_answering_the_probes_spoken_move_is_a_bot_only_when_configured() -> None:
    conversing = AudioCues(answer_to_say="bot")
    assert judge(IVR_SPEECH, conversing, set(), answers_say=True).responder is Responder.BOT
    assert judge(IVR_SPEECH, conversing, set(), answers_say=False).responder is Responder.IVR
    assert judge(IVR_SPEECH, AudioCues(), set(), answers_say=True).responder is Responder.IVR
    # A person after hold stays a person, whatever the probe said before.
    assert judge(AFTER_HOLD, conversing, set(), answers_say=True).responder is Responder.HUMAN


def test_cue_words_are_plain_words_kept_in_lower_case() -> None:
    assert AudioCues(bot=["Virtual Assistant"]).words == ["virtual assistant"]
    with pytest.raises(ValueError, match="not a spoken word or phrase"):
        AudioCues(closed=[r"\bclosed\b"])


# -- a call's listening, fed real audio -------------------------------------------------------


@dataclass
class RecordingCall:
    """The call a CallListening belongs to (a CallControl), keeping what it is told."""

    call_sid: str | None = "CA1"
    replies: list[Reply] = field(default_factory=list)
    moves: list[IvrStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[ProbeError] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def heard(self, reply: Reply) -> None:
        self.replies.append(reply)
        self.changed.set()

    def failed(self, error: ProbeError) -> None:
        self.failures.append(error)
        self.changed.set()

    def note(self, event: str, detail: str = "", *, at: datetime | None = None) -> None:
        self.notes.append(event)
        self.changed.set()

    def move(self, step: IvrStep) -> None:
        self.moves.append(step)
        self.changed.set()

    def goodbye(self) -> None:
        pass

    def ended(self) -> bool:
        return False

    async def until(self, done: object) -> None:
        async with asyncio.timeout(20):
            while not callable(done) or not done():
                self.changed.clear()
                if self.failures:
                    raise AssertionError(self.failures)
                await self.changed.wait()


def listening_to(call: RecordingCall, cues: AudioCues, steps: list[IvrStep]) -> CallListening:
    return CallListening(
        control=call,
        token="CXP-1",
        number="+442071234567",
        steps=steps,
        settings=MediaStreamSettings(),
        prompts=PromptChecker() if cues.words else None,
        cues=cues,
    )


def feed(listening: CallListening, session: StreamSession, audio: Pcm) -> None:
    """As the media endpoint does: record each 20 ms frame, feed the listener, let it look."""
    for frame in frames(audio):
        if session.started_at is None:
            session.started_at = utc_now()
        session.recording.extend(mulaw_encode(frame))
        session.listener.feed(frame)
        session.frames += 1
        listening.stream_media(session)


def started(listening: CallListening) -> StreamSession:
    session = listening.stream_session()
    session.parameters = {"token": "CXP-1"}
    session.call_sid = "CA1"

    async def send(message: dict[str, object]) -> None:
        pass

    assert listening.stream_started(session, send)
    return session


@pytest.mark.parametrize(("answer_to_say", "bot"), [("bot", True), ("ivr", False)])
async def test_speech_answering_the_probes_say_is_a_bot_when_the_line_converses(
    voicebox: Voicebox, answer_to_say: str, bot: bool
) -> None:
    call = RecordingCall()
    cues = AudioCues(answer_to_say=answer_to_say)  # type: ignore[arg-type]
    listening = listening_to(call, cues, [IvrStep(say="billing")])
    session = started(listening)
    prompt = FarEndScript().add("silence", silence(0.4))
    prompt.add("ivr", voicebox.speak("Hello. Tell me what you are calling about.", **IVR_VOICE))
    feed(listening, session, np.concatenate([prompt.pcm(), silence(1.2)]))
    await call.until(lambda: call.moves)
    assert [step.say for step in call.moves] == ["billing"]  # the probe's spoken turn
    answer = voicebox.speak("Sure. What is your billing question?", **BOT_VOICE)
    feed(listening, session, np.concatenate([silence(0.5), answer, silence(1.2)]))
    if bot:
        await call.until(lambda: len(call.replies) == 2)
    else:  # nothing to judge: both are the IVR's prompts
        await call.until(lambda: call.notes.count("prompt heard") == 2)
    responders = [reply.responder for reply in call.replies]
    assert responders == ([Responder.IVR, Responder.BOT] if bot else [Responder.IVR])
    roles = [s.role for s in listening.segments() if s.role not in ("silence", "noise")]
    assert roles == (["ivr", "bot"] if bot else ["ivr", "ivr"])


@pytest.mark.parametrize("hung_up", [False, True])
async def test_the_closed_message_is_auto_from_its_spoken_words(
    voicebox: Voicebox, hung_up: bool
) -> None:
    """Judged after a moment of quiet, or at once when the line hangs up as it ends."""
    call = RecordingCall()
    listening = listening_to(call, AudioCues(bot=["automated"], closed=["tomorrow"]), [])
    session = started(listening)
    closed = "Thank you for calling Acme. Our office is closed. Please call again tomorrow morning."
    script = FarEndScript().add("silence", silence(0.6))
    script.add("ivr", voicebox.speak(closed, **IVR_VOICE))
    feed(listening, session, np.concatenate([script.pcm(), silence(0.2 if hung_up else 1.2)]))
    if hung_up:  # 0.2 s of quiet do not end an utterance: the end of the stream does
        session.stopped = True
        listening.stream_ended(session)
    await call.until(lambda: call.notes.count("utterance") == 1)
    (reply,) = call.replies
    assert reply.responder is Responder.AUTO and reply.external_id == "CA1:audio:auto"
    ivr = script.first("ivr")
    assert ivr is not None and session.started_at is not None
    offset = (reply.arrived_at - session.started_at).total_seconds()
    assert offset == pytest.approx(ivr.start, abs=0.1)  # timed at its first frame
    evidence = listening.evidence()[0].content
    assert b'"responder": "auto"' in evidence and b"spoken: tomorrow" in evidence


# -- one stream URL per monitor ------------------------------------------------------------------


async def _nobody(reply: Reply) -> None:
    pass


def _channel(monitor_name: str, **phone: object) -> PhoneChannel:
    settings = PhoneChannelSettings.model_validate(
        {
            "twilio": {"account_sid": "AC" + "0" * 32, "auth_token": "t"},
            "from_number": "+15005550006",
            **phone,
        }
    )
    services = ChannelServices(logging.getLogger("test"), _nobody, monitor_name=monitor_name)
    return PhoneChannel(settings, services)


def test_monitor_placeholder_gives_each_monitor_its_own_stream_and_webhook_urls() -> None:
    urls = {
        "media_stream_url": "wss://cxprobe.example.net/{monitor}",
        "webhook": {"public_url": "https://cxprobe.example.net/{monitor}"},
    }
    a, b = _channel("cxprobe-a", **urls), _channel("cxprobe-b", **urls)
    assert (
        a.stream_url("CXP-1") == "wss://cxprobe.example.net/cxprobe-a/webhooks/twilio/media/CXP-1"
    )
    assert (
        b.stream_url("CXP-1") == "wss://cxprobe.example.net/cxprobe-b/webhooks/twilio/media/CXP-1"
    )
    assert a.webhook_base() == "https://cxprobe.example.net/cxprobe-a"
    # A name that is not URL-safe is escaped, never allowed to change the URL's shape.
    odd = _channel("eu west/1", **urls)
    assert odd.stream_url("T") == "wss://cxprobe.example.net/eu%20west%2F1/webhooks/twilio/media/T"
    # Without the placeholder every monitor has the one URL.
    shared = {"media_stream_url": "wss://cxprobe.example.net"}
    assert _channel("cxprobe-a", **shared).stream_url("T") == _channel(
        "cxprobe-b", **shared
    ).stream_url("T")


def test_a_per_monitor_environment_variable_sets_the_stream_url(tmp_path: Path) -> None:
    path = phone_config(tmp_path, "http://127.0.0.1:1")
    config = yaml.safe_load(path.read_text())
    config["channels"]["phone"]["media_stream_url"] = "${CXPROBE_MEDIA_STREAM_URL}"
    path.write_text(yaml.safe_dump(config))
    environ = {"CXPROBE_TEST_TWILIO_TOKEN": PHONE_AUTH_TOKEN}
    found = {
        url: load_config(path, {**environ, "CXPROBE_MEDIA_STREAM_URL": url})
        .channel_settings("phone")
        .media_stream_url  # type: ignore[union-attr]
        for url in ("wss://cxprobe.example.net/a", "wss://cxprobe.example.net/b")
    }
    assert found == {url: url for url in found}
