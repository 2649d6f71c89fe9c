"""The monitor's Twilio Media Streams endpoint: the far end's audio, frame by frame, to a Listener.

Twilio opens the WebSocket with an `X-Twilio-Signature` header computed over the stream's
public URL (the `wss://` address in `<Stream url>`) with no parameters; a bad or missing
signature gets 403 before the upgrade and nothing is recorded. The messages are Twilio's:
`connected`, `start` (streamSid, callSid, mediaFormat), `media` (base64 μ-law 8 kHz, 20 ms),
`mark`, `dtmf`, `stop`. Not yet wired into the phone channel (see the issue 14 report).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aiohttp import WSMsgType, web
from twilio.request_validator import RequestValidator

from probes.phone.listen import Listener


@dataclass
class StreamSession:
    """What one stream delivered: its ids, the listener fed its frames, and how it ended."""

    listener: Listener = field(default_factory=Listener)
    stream_sid: str | None = None
    call_sid: str | None = None
    stopped: bool = False  # False after the socket closed: the stream dropped
    recording: bytearray = field(default_factory=bytearray)


def media_stream_handler(
    auth_token: str,
    public_url: str,
    on_session: Callable[[StreamSession], None],
    *,
    recording_cap_bytes: int = 10 * 60 * 8000,
) -> Callable[[web.Request], object]:
    """An aiohttp handler for the stream's route; each finished stream goes to on_session."""
    validator = RequestValidator(auth_token)

    async def handle(request: web.Request) -> web.StreamResponse:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(public_url, {}, signature):
            raise web.HTTPForbidden(text="bad X-Twilio-Signature")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        session = StreamSession()
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            _apply(session, json.loads(message.data), recording_cap_bytes)
        on_session(session)
        return socket

    return handle


def _apply(session: StreamSession, event: dict[str, object], cap: int) -> None:
    kind = event.get("event")
    if kind == "start":
        start = event.get("start")
        if isinstance(start, dict):
            session.stream_sid = str(start.get("streamSid"))
            session.call_sid = str(start.get("callSid"))
    elif kind == "media":
        media = event.get("media")
        if isinstance(media, dict):
            payload = base64.b64decode(str(media.get("payload", "")))
            if len(session.recording) + len(payload) <= cap:
                session.recording.extend(payload)
            session.listener.feed(_decode(payload))
    elif kind == "stop":
        session.stopped = True


def _decode(payload: bytes) -> np.ndarray[tuple[int], np.dtype[np.int16]]:
    """G.711 μ-law to 16-bit PCM (the probe does not import the sandbox's codec)."""
    code = ~np.frombuffer(payload, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)
