"""The sandbox's Media Streams line talking to the monitor's endpoint over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from probes.phone.media import Send, StreamSession, media_stream_handler
from sandbox.twilio.audio import FarEndScript, Voicebox, hold_music, silence
from sandbox.twilio.media_stream import start_message, stream_far_end
from sandbox.twilio.signature import SIGNATURE_HEADER, twilio_signature

TOKEN = "sandbox-auth-token"


@dataclass
class Endpoint:
    url: str
    sessions: list[StreamSession]
    arrived: asyncio.Event  # set when the handler hands over a finished stream


class _Collector:
    """A stream observer that keeps each finished stream."""

    def __init__(self, finished: Callable[[StreamSession], None]) -> None:
        self._finished = finished

    def stream_session(self) -> StreamSession:
        return StreamSession()

    def stream_started(self, session: StreamSession, send: Send) -> bool:
        return True

    def stream_media(self, session: StreamSession) -> None:
        pass

    def stream_ended(self, session: StreamSession) -> None:
        self._finished(session)


@pytest.fixture(scope="session")
def voicebox() -> Voicebox:
    return Voicebox()


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    sessions: list[StreamSession] = []
    arrived = asyncio.Event()

    def finished(session: StreamSession) -> None:
        sessions.append(session)
        arrived.set()

    app = web.Application()
    runner = web.AppRunner(app)
    site_url: dict[str, str] = {}
    handler = media_stream_handler(
        TOKEN, lambda request: site_url["url"], lambda request: _Collector(finished)
    )
    app.router.add_get("/twilio/media", handler)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    site_url["url"] = f"ws://127.0.0.1:{port}/twilio/media"
    yield Endpoint(site_url["url"], sessions, arrived)
    await runner.cleanup()


async def test_time_to_human_from_the_stream_is_within_100_ms(
    endpoint: Endpoint, voicebox: Voicebox
) -> None:
    url, sessions = endpoint.url, endpoint.sessions
    script = (
        FarEndScript()
        .add("silence", silence(0.4))
        .add("ivr", voicebox.speak("For billing, press one."))
        .add("silence", silence(0.4))
        .add("hold", hold_music(1.5, seed=5))
        .add("silence", silence(0.3))
        .add("human", voicebox.speak("Hello, Sam speaking.", voice="en-gb"))
    )
    await stream_far_end(url, TOKEN, script, call_sid="CA1", stream_sid="MZ1", pace=0)
    assert len(sessions) == 1
    session = sessions[0]
    assert session.stopped and session.call_sid == "CA1" and session.stream_sid == "MZ1"
    human = script.first("human")
    assert human is not None
    measures = session.listener.measures()
    assert measures.time_to_human == pytest.approx(human.start, abs=0.1)
    assert len(session.recording) == len(script.pcm())  # one μ-law byte per sample


async def test_bad_signature_is_refused_with_403_and_nothing_recorded(
    endpoint: Endpoint,
) -> None:
    url, sessions = endpoint.url, endpoint.sessions
    script = FarEndScript().add("silence", silence(0.1))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await stream_far_end(
            url, TOKEN, script, call_sid="CA2", stream_sid="MZ2", pace=0, signature="forged"
        )
    assert refused.value.status == 403
    assert sessions == []


async def test_a_stream_closed_without_stop_is_a_drop(
    endpoint: Endpoint,
) -> None:
    url, sessions = endpoint.url, endpoint.sessions
    headers = {SIGNATURE_HEADER: twilio_signature(TOKEN, url)}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as socket:
        await socket.send_str('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
        await socket.send_str(json.dumps(start_message("CA3", "MZ3")))
    async with asyncio.timeout(5):
        while not sessions:  # the server's side finishes after the client closed
            await endpoint.arrived.wait()
    assert sessions[0].stopped is False  # the socket closed before Twilio's stop message
