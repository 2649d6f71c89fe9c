"""A call's Media Stream: the far end's audio, rendered from the `Line` as it happens.

When the monitor's TwiML runs `<Connect><Stream>` or `<Start><Stream>`, the sandbox opens the
WebSocket (`X-Twilio-Signature` over the stream URL, no parameters, as Twilio signs it) and
sends Twilio's messages: `connected`, `start` (with the `<Parameter>`s as customParameters),
one `media` per 20 ms, `stop`. Each frame is what the line carries at that instant: the
utterance being spoken (synthesised by espeak-ng in the speaker's voice, cut where the
utterance ends or is barged in on), else ringback or hold music while they play, else
silence. Frames are paced in real time on an absolute schedule; a frame computed late
(synthesis, a busy loop) still carries what the line did at its own instant, so the stream's
clock is exact even when delivery is not.

Ground truth: every run of one kind (ivr, human, bot, hold, ringback, silence, noise) is
recorded as a `stream_segment` with its start and end in seconds from the first media frame:
what the stream really carried, faults included. A bidirectional stream (`<Connect>`) also
hears the monitor: `mark` messages are recorded and echoed back (nothing of the monitor's is
queued for playback, so at once), `clear` and `media` are recorded.

Faults (`faults.stream`): `drop` closes the socket without `stop` after `stream_drop_after`
seconds of stream; `silence` and `noise` replace the far end's audio; `bad_signature` forges
the upgrade's signature (the monitor must refuse it with 403; recorded as `stream_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from sandbox.twilio.audio import FRAME_SAMPLES, SAMPLE_RATE, Pcm, Voicebox, hold_music, ringback
from sandbox.twilio.faults import Faults
from sandbox.twilio.line import Line, Record, Speaker, Utterance
from sandbox.twilio.media_stream import CONNECTED, media_message, start_message, stop_message
from sandbox.twilio.signature import SIGNATURE_HEADER, twilio_signature
from sandbox.twilio.twiml import Stream

log = logging.getLogger(__name__)

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
# Twilio's error for a WebSocket it could not open (handshake refused or unreachable).
STREAM_HANDSHAKE_ERROR = 31920
_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Voice:
    name: str = "en-us"
    rate: int = 160
    pitch: int = 50


@dataclass(frozen=True)
class StreamVoices:
    """Who sounds how: the IVR, the agents and a voice bot each have their own voice."""

    ivr: Voice = Voice("en-us", 165, 45)
    agent: Voice = Voice("en-gb", 155, 55)
    bot: Voice = Voice("en-us+f3", 170, 60)
    hold_seed: int = 7

    def of(self, speaker: Speaker) -> Voice:
        return {"ivr": self.ivr, "agent": self.agent, "bot": self.bot}[speaker]


_KIND_OF_SPEAKER = {"ivr": "ivr", "agent": "human", "bot": "bot"}


@dataclass
class _Segments:
    """The runs of one kind the stream carried, written to the ground truth as they close."""

    record: Record
    stream_sid: str
    kind: str | None = None
    start_frame: int = 0
    text: str | None = None

    def frame(self, number: int, kind: str, text: str | None) -> None:
        if kind == self.kind and text == self.text:
            return
        self.close(number)
        self.kind, self.start_frame, self.text = kind, number, text

    def close(self, number: int) -> None:
        if self.kind is not None and number > self.start_frame:
            self.record(
                "stream_segment",
                stream_sid=self.stream_sid,
                kind=self.kind,
                start=round(self.start_frame * FRAME_SECONDS, 3),
                end=round(number * FRAME_SECONDS, 3),
                text=self.text,
            )
        self.kind = None


@dataclass
class StreamLine:
    """One Media Stream of one call, from its WebSocket handshake to `stop` (or a drop)."""

    stream: Stream
    line: Line
    call_sid: str
    account_sid: str
    auth_token: str
    stream_sid: str
    voicebox: Voicebox
    faults: Faults
    record: Record
    voices: StreamVoices = field(default_factory=StreamVoices)
    #: Set to end a `<Connect>` stream early (its TwiML was replaced by a REST update).
    ending: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._audio: dict[int, Pcm] = {}  # synthesised utterances by id()
        self._hold = hold_music(30.0, seed=self.voices.hold_seed)
        self._ringback = ringback(6.0)
        self._noise = np.random.default_rng(11)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.finished.set()

    async def _run(self) -> None:
        fault = self.faults.stream
        signature = (
            "forged"
            if fault == "bad_signature"
            else twilio_signature(self.auth_token, self.stream.url)
        )
        async with aiohttp.ClientSession() as http:
            try:
                socket = await http.ws_connect(
                    self.stream.url,
                    headers={SIGNATURE_HEADER: signature},
                    timeout=aiohttp.ClientWSTimeout(ws_close=_CONNECT_TIMEOUT),
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                status = getattr(err, "status", None)
                self.record(
                    "stream_error",
                    stream_sid=self.stream_sid,
                    code=STREAM_HANDSHAKE_ERROR,
                    url=self.stream.url,
                    message=f"WebSocket handshake failed: {status or type(err).__name__}",
                )
                return
            async with socket:
                await self._stream(socket, fault)

    async def _stream(self, socket: aiohttp.ClientWebSocketResponse, fault: str | None) -> None:
        self.record(
            "stream_started",
            stream_sid=self.stream_sid,
            url=self.stream.url,
            mode=self.stream.mode,
            parameters=dict(self.stream.parameters),
        )
        await socket.send_str(json.dumps(CONNECTED))
        await socket.send_str(
            json.dumps(
                start_message(
                    self.call_sid,
                    self.stream_sid,
                    account_sid=self.account_sid,
                    parameters=dict(self.stream.parameters),
                )
            )
        )
        listening = asyncio.create_task(self._hear_the_monitor(socket))
        segments = _Segments(self.record, self.stream_sid)
        loop = asyncio.get_running_loop()
        started = loop.time()
        number = 0
        reason = "stop"
        try:
            while True:
                instant = started + number * FRAME_SECONDS
                if self.line.closed.is_set() and instant >= _closed_at(self.line, instant):
                    break
                if self.ending.is_set() or socket.closed:
                    reason = "closed by the monitor" if socket.closed else "stop"
                    break
                if fault == "drop" and number * FRAME_SECONDS >= self.faults.stream_drop_after:
                    reason = "dropped"
                    break
                kind, text, frame = await self._frame_at(instant, fault)
                segments.frame(number, kind, text)
                number += 1
                await socket.send_str(json.dumps(media_message(self.stream_sid, number, frame)))
                delay = started + number * FRAME_SECONDS - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        except (ConnectionResetError, aiohttp.ClientError):
            reason = "closed by the monitor"
        finally:
            segments.close(number)
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
        if reason == "stop" and not socket.closed:
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
                await socket.send_str(
                    json.dumps(
                        stop_message(self.call_sid, self.stream_sid, number + 2, self.account_sid)
                    )
                )
        self.record(
            "stream_stopped",
            stream_sid=self.stream_sid,
            reason=reason,
            frames=number,
            seconds=round(number * FRAME_SECONDS, 3),
        )
        # A drop: the socket closes without Twilio's stop message.

    async def _frame_at(self, instant: float, fault: str | None) -> tuple[str, str | None, Pcm]:
        """What the line carries at loop time instant: (kind, text, 20 ms of PCM)."""
        if fault == "silence":
            return "silence", None, np.zeros(FRAME_SAMPLES, dtype=np.int16)
        if fault == "noise":
            noise = self._noise.normal(0, 1000, FRAME_SAMPLES)
            return "noise", None, np.clip(noise, -32768, 32767).astype(np.int16)
        utterance = self.line.speaking_at(instant)
        if utterance is not None:
            audio = await self._speech(utterance)
            offset = round((instant - utterance.started) * SAMPLE_RATE)
            if offset < len(audio):
                return _KIND_OF_SPEAKER[utterance.speaker], utterance.text, _cut(audio, offset)
        tone, since = self.line.tone_at(instant)
        if tone is not None:
            sound = self._hold if tone == "hold" else self._ringback
            offset = round((instant - since) * SAMPLE_RATE) % len(sound)
            return tone, None, _cut(np.concatenate([sound, sound[:FRAME_SAMPLES]]), offset)
        return "silence", None, np.zeros(FRAME_SAMPLES, dtype=np.int16)

    async def _speech(self, utterance: Utterance) -> Pcm:
        key = id(utterance)
        if key not in self._audio:
            voice = self.voices.of(utterance.speaker)
            self._audio[key] = await asyncio.to_thread(
                self.voicebox.speak,
                utterance.text,
                voice=voice.name,
                rate=voice.rate,
                pitch=voice.pitch,
            )
        return self._audio[key]

    async def _hear_the_monitor(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """Messages a bidirectional stream takes from the monitor: mark, clear, media."""
        heard_media = False
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT or self.stream.mode != "connect":
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(message.data)
                kind = event.get("event")
                if kind == "mark":
                    name = str(event.get("mark", {}).get("name", ""))
                    self.record("stream_mark", stream_sid=self.stream_sid, name=name)
                    echo = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
                    await socket.send_str(json.dumps(echo))
                elif kind == "clear":
                    self.record("stream_mark", stream_sid=self.stream_sid, name="(clear)")
                elif kind == "media" and not heard_media:
                    heard_media = True
                    self.record("stream_mark", stream_sid=self.stream_sid, name="(media)")


def _cut(audio: Pcm, offset: int) -> Pcm:
    frame = audio[offset : offset + FRAME_SAMPLES]
    if len(frame) < FRAME_SAMPLES:
        frame = np.concatenate([frame, np.zeros(FRAME_SAMPLES - len(frame), dtype=np.int16)])
    return frame


def _closed_at(line: Line, instant: float) -> float:
    """When the line closed, in loop time (now, if it closed without saying)."""
    return line.closed_time if line.closed_time is not None else instant


StreamStarter = Callable[[Stream], StreamLine]
