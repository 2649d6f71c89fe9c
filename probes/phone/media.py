"""The monitor's Twilio Media Streams endpoint: the far end's audio, frame by frame, to a Listener.

Twilio opens the WebSocket with an `X-Twilio-Signature` header computed over the stream's
public URL (the `wss://` address in `<Stream url>`) with no parameters; a bad or missing
signature gets 403 before the upgrade and nothing is recorded. The messages are Twilio's:
`connected`, `start` (streamSid, callSid, customParameters, mediaFormat), `media` (base64
μ-law 8 kHz, 20 ms), `mark`, `dtmf`, `stop`. A socket that closes without `stop` is a drop.

Which call a stream belongs to is in its URL (the run's token) and must agree with its `start`
message (the token as a custom parameter, the call's SID): a stream that does not is closed
with WebSocket code 1008 and fed to nobody.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web
from twilio.request_validator import RequestValidator

from probes.base import utc_now
from probes.phone.listen import Listener

SIGNATURE_HEADER = "X-Twilio-Signature"
Send = Callable[[dict[str, object]], Awaitable[None]]


@dataclass
class StreamSession:
    """What one stream delivered: its ids, the listener fed its frames, and how it ended."""

    listener: Listener = field(default_factory=Listener)
    recording_cap_bytes: int = 10 * 60 * 8000
    stream_sid: str | None = None
    call_sid: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    started_at: datetime | None = None  # wall clock of the first media frame
    stopped: bool = False  # False after the socket closed: the stream dropped
    recording: bytearray = field(default_factory=bytearray)
    marks: list[str] = field(default_factory=list)  # marks Twilio echoed back
    frames: int = 0

    @property
    def seconds(self) -> float:
        return self.listener.seconds


class StreamObserver(Protocol):
    """The call a stream belongs to: told when it starts, after each frame, and when it ends."""

    def stream_session(self) -> StreamSession: ...

    def stream_started(self, session: StreamSession, send: Send) -> bool:
        """False refuses the stream (it is not this call's)."""
        ...

    def stream_media(self, session: StreamSession) -> None: ...

    def stream_ended(self, session: StreamSession) -> None: ...


def media_stream_handler(
    auth_token: str,
    signed_url: Callable[[web.Request], str],
    observer_for: Callable[[web.Request], StreamObserver | None],
    *,
    refused: Callable[[web.Request, str], None] = lambda request, why: None,
    unknown: Callable[[web.Request], None] = lambda request: None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler for the stream's route.

    signed_url is the URL Twilio signed for the request (the public wss address);
    observer_for finds the call the request's URL names (None: no such call, 404, and
    unknown is told).
    """
    validator = RequestValidator(auth_token)

    async def handle(request: web.Request) -> web.StreamResponse:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature or not validator.validate(signed_url(request), {}, signature):
            refused(request, f"{'invalid' if signature else 'missing'} {SIGNATURE_HEADER}")
            raise web.HTTPForbidden(text=f"invalid or missing {SIGNATURE_HEADER}")
        observer = observer_for(request)
        if observer is None:
            unknown(request)
            raise web.HTTPNotFound(text="no call of this monitor streams here")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        session = observer.stream_session()

        async def send(message: dict[str, object]) -> None:
            if not socket.closed:
                await socket.send_str(json.dumps(message))

        started = False
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                event = json.loads(message.data)
            except ValueError:
                continue
            kind = _apply(session, event)
            if kind == "start":
                started = observer.stream_started(session, send)
                if not started:
                    await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"not this call")
                    return socket
            elif kind == "media" and started:
                observer.stream_media(session)
        if started:
            observer.stream_ended(session)
        return socket

    return handle


def _apply(session: StreamSession, event: dict[str, object]) -> str | None:
    kind = event.get("event")
    if kind == "start":
        start = event.get("start")
        if isinstance(start, dict):
            session.stream_sid = str(start.get("streamSid"))
            session.call_sid = str(start.get("callSid"))
            parameters = start.get("customParameters")
            if isinstance(parameters, dict):
                session.parameters = {str(k): str(v) for k, v in parameters.items()}
    elif kind == "media":
        media = event.get("media")
        if isinstance(media, dict):
            payload = base64.b64decode(str(media.get("payload", "")))
            if session.started_at is None:
                session.started_at = utc_now()
            if len(session.recording) + len(payload) <= session.recording_cap_bytes:
                session.recording.extend(payload)
            session.listener.feed(_decode(payload))
            session.frames += 1
    elif kind == "mark":
        mark = event.get("mark")
        if isinstance(mark, dict):
            session.marks.append(str(mark.get("name", "")))
    elif kind == "stop":
        session.stopped = True
    return kind if isinstance(kind, str) else None


def mulaw_wav(mulaw: bytes) -> bytes:
    """8 kHz mono G.711 μ-law in a WAV file (format 7, with the fact chunk non-PCM needs)."""
    fmt = (
        (7).to_bytes(2, "little")  # WAVE_FORMAT_MULAW
        + (1).to_bytes(2, "little")
        + (8000).to_bytes(4, "little")
        + (8000).to_bytes(4, "little")  # bytes per second
        + (1).to_bytes(2, "little")  # block align
        + (8).to_bytes(2, "little")  # bits per sample
        + (0).to_bytes(2, "little")  # no extra format bytes
    )
    chunks = (
        b"fmt " + len(fmt).to_bytes(4, "little") + fmt
        + b"fact" + (4).to_bytes(4, "little") + len(mulaw).to_bytes(4, "little")
        + b"data" + len(mulaw).to_bytes(4, "little") + mulaw
        + (b"\0" if len(mulaw) % 2 else b"")
    )  # fmt: skip
    return b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks


def _decode(payload: bytes) -> np.ndarray[tuple[int], np.dtype[np.int16]]:
    """G.711 μ-law to 16-bit PCM (the probe does not import the sandbox's codec)."""
    code = ~np.frombuffer(payload, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)
