"""The audio path of one answered call, as both ends of it experience it.

The far end (the target's IVR, queue and agent) speaks utterances; the probe's TwiML listens
for them with `<Gather input="speech">` and sends digits and speech back. Time on the line is
real time: an utterance of four seconds takes four seconds, so the webhook round trips of the
monitor overlap the far end's speech exactly as they would on a real call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sandbox.clock import real_now
from sandbox.ground_truth import EventName

Speaker = Literal["ivr", "agent", "bot"]
Tone = Literal["ringback", "hold"]
HangupBy = Literal["caller", "callee", "api", "time_limit", "error"]


class Record(Protocol):
    """Writes one ground-truth event for the call (the call's SID is already bound)."""

    def __call__(
        self, event: EventName, /, *, at: datetime | None = None, **fields: Any
    ) -> None: ...


@dataclass(frozen=True)
class Heard:
    """Something the probe sent down the line: one DTMF key, or the text of a <Say>."""

    kind: Literal["digit", "speech"]
    value: str


@dataclass(eq=False)
class Utterance:
    text: str
    speaker: Speaker
    started: float  # event-loop time
    started_at: datetime
    seconds: float  # planned length; shorter when the caller barges in
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended_time: float | None = None  # event-loop time
    ended_at: datetime | None = None
    interrupted: bool = False


class Line:
    def __init__(self) -> None:
        self.utterances: list[Utterance] = []
        self.heard: asyncio.Queue[Heard] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.hangup_by: HangupBy | None = None
        self.hangup_reason: str | None = None
        self.closed_time: float | None = None  # event-loop time of the hangup
        # (event-loop time, tone or None) in order: what plays when nobody speaks.
        self.tones: list[tuple[float, Tone | None]] = []
        # Replaced on every change: a listener holds the current one and is woken when it is set.
        self._changed = asyncio.Event()

    # -- the far end -------------------------------------------------------------------

    def start_utterance(self, text: str, speaker: Speaker, seconds: float) -> Utterance:
        utterance = Utterance(text, speaker, _loop_time(), real_now(), seconds)
        self.utterances.append(utterance)
        self._notify()
        return utterance

    def finish_utterance(self, utterance: Utterance, *, interrupted: bool = False) -> None:
        utterance.ended_time = _loop_time()
        utterance.ended_at = real_now()
        utterance.interrupted = interrupted
        utterance.ended.set()
        self._notify()

    def play_tone(self, tone: Tone | None) -> None:
        """Ringback or hold music from now on (None: silence between utterances)."""
        self.tones.append((_loop_time(), tone))
        self._notify()

    def tone_at(self, instant: float) -> tuple[Tone | None, float]:
        """The tone playing at loop time instant, and since when."""
        playing: tuple[Tone | None, float] = (None, 0.0)
        for since, tone in self.tones:
            if since > instant:
                break
            playing = (tone, since)
        return playing

    def speaking_at(self, instant: float) -> Utterance | None:
        """The utterance being spoken at loop time instant (the latest started, not yet ended)."""
        for utterance in reversed(self.utterances):
            if utterance.started <= instant and (
                utterance.ended_time is None or utterance.ended_time > instant
            ):
                return utterance
        return None

    # -- the probe ---------------------------------------------------------------------

    def send(self, heard: Heard) -> None:
        self.heard.put_nowait(heard)

    def first_heard_since(self, instant: float) -> Utterance | None:
        """The first utterance still being spoken at, or started after, loop time instant."""
        return next(
            (u for u in self.utterances if u.ended_time is None or u.ended_time > instant), None
        )

    def watch(self) -> asyncio.Event:
        """An event set at the next change; take it before checking, then wait on it."""
        return self._changed

    # -- either end --------------------------------------------------------------------

    def hang_up(self, by: HangupBy, reason: str) -> bool:
        """End the call; False when it had already ended (the first hangup is the one kept)."""
        if self.closed.is_set():
            return False
        self.hangup_by, self.hangup_reason = by, reason
        self.closed_time = _loop_time()
        self.closed.set()
        self._notify()
        return True

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
