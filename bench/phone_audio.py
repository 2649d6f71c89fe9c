"""Phone audio: the listener's accuracy and cost on calls the tests never heard, a concurrency cap.

Three parts, each on audio made here from seeds, voices, texts and durations that no test uses
(espeak-ng voices and variants, speaking rates, pitches, hold tunes, ringback lengths, gaps):

- **accuracy**: ``calls`` synthetic calls (ringback, an IVR prompt, hold music, an agent), fed
  through μ-law to the probe's :class:`Listener` 20 ms at a time, reading the segments every
  200 ms as the monitor does; each measure against the script's ground truth (p50/p95/max of
  the absolute error), and the listener's CPU seconds per minute of call audio;
- **prompts**: ``prompts`` IVR prompt checks (a keyword that is in the prompt, or one that is
  not) with the local recogniser: share correct, false passes, false failures, CPU per check;
  the same checks once on espeak-ng's formant voices and once on flite's voices built from
  recorded speakers (CMU ARCTIC; nearer to the recorded prompts of a real IVR);
- **concurrency**: ``levels`` of simultaneous calls streamed in real time over real WebSockets
  (the sandbox's Media Streams messages, paced on an absolute 20 ms schedule) into the
  monitor's endpoint with a Listener each: how late the frames are processed (p95 lag) at
  each level. The cap is the largest level whose p95 lag stays under 100 ms (the accuracy
  goal: beyond it, replies, not measures, are late; measures are frame-timed).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np
from aiohttp import web

from bench.stats import cpu_seconds, percentile
from probes.phone.listen import CallMeasures, Listener
from probes.phone.media import Send, StreamSession, media_stream_handler
from probes.phone.prompts import PromptChecker
from sandbox.twilio.audio import (
    FLITE_VOICES,
    FarEndScript,
    Voicebox,
    frames,
    hold_music,
    mulaw_decode,
    mulaw_encode,
    ringback,
    silence,
)
from sandbox.twilio.media_stream import CONNECTED, media_message, start_message, stop_message
from sandbox.twilio.signature import SIGNATURE_HEADER, twilio_signature

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-us+f2")
PROMPTS = (
    "Thank you for calling Northwind. For {kw} press one, for deliveries press two.",
    "Welcome. Please listen carefully as our options have changed. For {kw}, press one.",
    "You have reached the customer care line. To talk about {kw}, press one now.",
    "Hello and welcome. If you are calling about {kw}, please press one.",
    "Thanks for calling. For orders press one. For {kw} press two. For anything else hold.",
)
KEYWORDS = ("billing", "payments", "insurance", "repairs", "account", "returns")
AGENTS = (
    "Good morning, Priya speaking, how can I help you today?",
    "Hi there, you're through to Marcus in accounts.",
    "Thanks for holding, my name is Dana. What can I do for you?",
    "Hello, customer service, this is Lee.",
    "Sorry for the wait. Chris here, how may I help?",
)
LEVELS = (1, 4, 8, 16)
LAG_CAP_SECONDS = 0.1


@dataclass(frozen=True)
class Call:
    script: FarEndScript
    keyword: str


def synthetic_call(voicebox: Voicebox, rng: random.Random) -> Call:
    keyword = rng.choice(KEYWORDS)
    voice = rng.choice(VOICES)
    agent_voice = rng.choice([v for v in VOICES if v != voice])
    prompt = rng.choice(PROMPTS).format(kw=keyword)
    script = FarEndScript()
    if rng.random() < 0.7:
        script.add("ringback", ringback(rng.uniform(0.5, 4.0)))
    script.add("silence", silence(rng.uniform(0.1, 0.8)))
    script.add(
        "ivr",
        voicebox.speak(prompt, voice=voice, rate=rng.randint(140, 185), pitch=rng.randint(35, 65)),
        prompt,
    )
    script.add("silence", silence(rng.uniform(0.3, 1.2)))
    script.add("hold", hold_music(rng.uniform(1.0, 20.0), seed=rng.randint(100, 10_000)))
    if rng.random() < 0.5:
        script.add("silence", silence(rng.uniform(0.05, 0.6)))
    greeting = rng.choice(AGENTS)
    script.add(
        "human",
        voicebox.speak(
            greeting, voice=agent_voice, rate=rng.randint(140, 185), pitch=rng.randint(35, 65)
        ),
        greeting,
    )
    script.add("silence", silence(1.0))
    return Call(script, keyword)


def _truth(script: FarEndScript) -> dict[str, float]:
    ivr, human = script.first("ivr"), script.first("human")
    holds = [s for s in script.segments if s.kind == "hold"]
    audible = [s for s in script.segments if s.kind != "silence"]
    assert ivr is not None and human is not None and holds and audible
    return {
        "post_dial_delay": audible[0].start,
        "time_to_ivr_greeting": ivr.start,
        "time_in_ivr": holds[0].start - ivr.start,
        "time_on_hold": sum(s.end - s.start for s in holds),
        "time_to_human": human.start,
    }


def _listen(script: FarEndScript) -> CallMeasures:
    listener = Listener()
    for number, frame in enumerate(frames(mulaw_decode(mulaw_encode(script.pcm()))), start=1):
        listener.feed(frame)
        if number % 10 == 0:
            listener.segments()  # as the monitor looks every 200 ms
    return listener.measures()


def measure_accuracy(calls: Sequence[Call]) -> dict[str, object]:
    errors: dict[str, list[float]] = {name: [] for name in _truth(calls[0].script)}
    missing = 0
    audio_seconds = 0.0
    cpu = 0.0
    for call in calls:
        audio_seconds += call.script.seconds
        before = cpu_seconds()
        measured = _listen(call.script).as_json()
        cpu += cpu_seconds() - before
        for name, truth in _truth(call.script).items():
            value = measured[name]
            if value is None:
                missing += 1
                continue
            errors[name].append(abs(value - truth))
    return {
        "calls": len(calls),
        "audio_minutes": round(audio_seconds / 60, 2),
        "measures_missing": missing,
        "abs_error_ms": {
            name: {
                "p50": round(percentile(values, 0.5) * 1000, 1),
                "p95": round(percentile(values, 0.95) * 1000, 1),
                "max": round(max(values) * 1000, 1),
                "within_100ms": round(sum(v <= 0.1 for v in values) / len(values), 3),
            }
            for name, values in errors.items()
            if values
        },
        "listener_cpu_seconds_per_call_minute": round(cpu / (audio_seconds / 60), 3),
    }


def measure_prompts(
    voicebox: Voicebox,
    count: int,
    rng: random.Random,
    threshold: float | None = None,
    voices: Sequence[str] = VOICES,
) -> dict[str, object]:
    checker = PromptChecker() if threshold is None else PromptChecker(threshold)
    right = false_pass = false_fail = 0
    cpu = 0.0
    for _ in range(count):
        keyword = rng.choice(KEYWORDS)
        prompt = rng.choice(PROMPTS).format(kw=keyword)
        audio = voicebox.speak(
            prompt,
            voice=rng.choice(voices),
            rate=rng.randint(140, 185),
            pitch=rng.randint(35, 65),
        )
        present = rng.random() < 0.5
        expected = keyword if present else rng.choice([k for k in KEYWORDS if k != keyword])
        before = cpu_seconds()
        check = checker.check(mulaw_encode(audio), [expected])
        cpu += cpu_seconds() - before
        if check.passed == present:
            right += 1
        elif check.passed:
            false_pass += 1
        else:
            false_fail += 1
    return {
        "checks": count,
        "correct": round(right / count, 3),
        "false_pass": false_pass,
        "false_fail": false_fail,
        "cpu_seconds_per_check": round(cpu / count, 3),
    }


class _Lagging:
    """A stream observer that records how late each frame is handled."""

    def __init__(self, lags: list[float]) -> None:
        self._lags = lags
        self._first: float | None = None

    def stream_session(self) -> StreamSession:
        return StreamSession()

    def stream_started(self, session: StreamSession, send: Send) -> bool:
        return True

    def stream_media(self, session: StreamSession) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = now
        if session.frames % 10 == 0:
            session.listener.segments()
        self._lags.append(now - (self._first + (session.frames - 1) * 0.02))

    def stream_ended(self, session: StreamSession) -> None:
        pass


async def _paced(url: str, token: str, messages: list[str]) -> None:
    headers = {SIGNATURE_HEADER: twilio_signature(token, url)}
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as socket:
        await socket.send_str(json.dumps(CONNECTED))
        await socket.send_str(json.dumps(start_message("CA-bench", "MZ-bench")))
        started = loop.time()
        for number, message in enumerate(messages):
            delay = started + number * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await socket.send_str(message)
        await socket.send_str(json.dumps(stop_message("CA-bench", "MZ-bench", len(messages) + 2)))


async def measure_concurrency(
    calls: Sequence[Call], levels: Sequence[int], seconds: float
) -> dict[str, object]:
    token = "bench-token"
    lags: list[float] = []
    app = web.Application()
    url_of: dict[str, str] = {}
    app.router.add_get(
        "/media",
        media_stream_handler(token, lambda request: url_of["url"], lambda request: _Lagging(lags)),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url_of["url"] = url = f"ws://127.0.0.1:{port}/media"
    samples = round(seconds * 8000)
    streams = [
        [
            json.dumps(media_message("MZ-bench", n, frame))
            for n, frame in enumerate(frames(np.resize(call.script.pcm(), samples)), start=1)
        ]
        for call in calls
    ]
    figures: dict[str, object] = {}
    try:
        for level in levels:
            lags.clear()
            before, started = cpu_seconds(), time.monotonic()
            await asyncio.gather(
                *(_paced(url, token, streams[i % len(streams)]) for i in range(level))
            )
            elapsed = time.monotonic() - started
            figures[str(level)] = {
                "lag_p50_ms": round(percentile(lags, 0.5) * 1000, 1),
                "lag_p95_ms": round(percentile(lags, 0.95) * 1000, 1),
                "lag_max_ms": round(max(lags) * 1000, 1),
                "cpu_share_of_one_core": round((cpu_seconds() - before) / elapsed, 3),
            }
    finally:
        await runner.cleanup()
    keeping_up = [
        level
        for level in levels
        if isinstance(entry := figures[str(level)], dict)
        and entry["lag_p95_ms"] <= LAG_CAP_SECONDS * 1000
    ]
    return {
        "seconds_per_call": seconds,
        "levels": figures,
        "cap": max(keeping_up, default=0),
    }


async def measure(
    calls: int = 40,
    prompts: int = 60,
    levels: Sequence[int] = LEVELS,
    seed: int = 4242,
    concurrency_seconds: float = 20.0,
) -> dict[str, object]:
    voicebox = Voicebox()
    rng = random.Random(seed)
    made = [synthetic_call(voicebox, rng) for _ in range(calls)]
    return {
        "seed": seed,
        "accuracy": measure_accuracy(made),
        # The same checks on each synthesiser's voices: espeak-ng's formant voices, and flite's
        # voices built from recorded speakers (nearer to a recorded IVR prompt).
        "prompts": {
            engine: measure_prompts(voicebox, prompts, random.Random(seed + 1), voices=voices)
            for engine, voices in (("espeak-ng", VOICES), ("flite", FLITE_VOICES))
        },
        "concurrency": await measure_concurrency(made, levels, concurrency_seconds),
    }
