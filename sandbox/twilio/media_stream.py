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

import aiohttp

from sandbox.twilio.audio import FarEndScript, frames, mulaw_encode
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
        await socket.send_str(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        await socket.send_str(json.dumps(_start(call_sid, stream_sid)))
        for number, frame in enumerate(frames(script.pcm()), start=1):
            payload = base64.b64encode(mulaw_encode(frame)).decode("ascii")
            media = {
                "track": "inbound",
                "chunk": str(number),
                "timestamp": str((number - 1) * 20),
                "payload": payload,
            }
            await socket.send_str(
                json.dumps(
                    {
                        "event": "media",
                        "sequenceNumber": str(number + 1),
                        "media": media,
                        "streamSid": stream_sid,
                    }
                )
            )
            if pace:
                await asyncio.sleep(pace)
        await socket.send_str(
            json.dumps({"event": "stop", "streamSid": stream_sid, "stop": {"callSid": call_sid}})
        )


def _start(call_sid: str, stream_sid: str) -> dict[str, object]:
    return {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
