"""The sandbox line's side of Twilio Media Streams: opens the WebSocket and sends the far end.

Messages follow Twilio's documentation: `connected`, `start` (streamSid, callSid, mediaFormat
audio/x-mulaw 8000 Hz mono), one `media` per 20 ms (sequenceNumber, chunk, timestamp in ms,
base64 payload), `stop`. The upgrade request carries `X-Twilio-Signature` over the stream URL
with no parameters, as Twilio signs it. `pace` is the seconds per frame (0.02 as on a call;
0 in tests that only check the audio).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence

import aiohttp

from sandbox.twilio.audio import FarEndScript, Pcm, frames, mulaw_encode
from sandbox.twilio.signature import SIGNATURE_HEADER, twilio_signature


async def stream_far_end(
    url: str,
    auth_token: str,
    script: FarEndScript,
    *,
    call_sid: str,
    stream_sid: str,
    pace: float = 0.02,
    signature: str | None = None,
) -> None:
    headers = {SIGNATURE_HEADER: signature or twilio_signature(auth_token, url)}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as socket:
        await socket.send_str(json.dumps(CONNECTED))
        await socket.send_str(json.dumps(start_message(call_sid, stream_sid)))
        chunks = frames(script.pcm())
        for number, frame in enumerate(chunks, start=1):
            await socket.send_str(json.dumps(media_message(stream_sid, number, frame)))
            if pace:
                await asyncio.sleep(pace)
        await socket.send_str(json.dumps(stop_message(call_sid, stream_sid, len(chunks) + 2)))


CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}


def start_message(
    call_sid: str,
    stream_sid: str,
    *,
    account_sid: str = "",
    parameters: Mapping[str, str] | None = None,
    tracks: Sequence[str] = ("inbound",),
) -> dict[str, object]:
    return {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "streamSid": stream_sid,
            "accountSid": account_sid,
            "callSid": call_sid,
            "tracks": list(tracks),
            "customParameters": dict(parameters or {}),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }


def media_message(stream_sid: str, number: int, frame: Pcm) -> dict[str, object]:
    """Media chunk number (from 1): 20 ms of μ-law, timestamp in ms from the stream's start."""
    return {
        "event": "media",
        "sequenceNumber": str(number + 1),
        "media": {
            "track": "inbound",
            "chunk": str(number),
            "timestamp": str((number - 1) * 20),
            "payload": base64.b64encode(mulaw_encode(frame)).decode("ascii"),
        },
        "streamSid": stream_sid,
    }


def stop_message(
    call_sid: str, stream_sid: str, sequence: int, account_sid: str = ""
) -> dict[str, object]:
    return {
        "event": "stop",
        "sequenceNumber": str(sequence),
        "streamSid": stream_sid,
        "stop": {"accountSid": account_sid, "callSid": call_sid},
    }
