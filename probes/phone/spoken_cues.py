"""Stream mode: who speaks in one utterance, from the words spotted in it and its place.

An utterance's words (``audio_cues``) are looked for in gather mode's order (a voice bot, the
closed message, a person: :mod:`probes.phone.responders`); with none spotted, its place in the
call names it: the first speech after hold (or any, ``first_human: first_speech``) is a person,
speech answering the probe's own spoken move is a voice bot when ``answer_to_say: bot``, the
rest is the IVR.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from probes.base import Responder
from probes.phone.listen import HeardSegment, Role
from probes.phone.responders import cued
from probes.phone.settings import AudioCues

#: The role a judged utterance has among the call's segments (the closed message is the IVR's).
ROLE_OF: dict[Responder, Role] = {
    Responder.IVR: "ivr",
    Responder.AUTO: "ivr",
    Responder.BOT: "bot",
    Responder.HUMAN: "human",
}


@dataclass(frozen=True)
class Judged:
    """Who spoke in one utterance, and why it was taken to be them."""

    responder: Responder
    why: str

    def as_json(self) -> dict[str, str]:
        return {"responder": self.responder.value, "why": self.why}


def judge(
    segment: HeardSegment, cues: AudioCues, spotted: Collection[str], *, answers_say: bool
) -> Judged:
    """segment as the listener named it (ivr or human), the words spotted in it, and whether
    it answers the probe's own spoken move with no hold between."""
    words = {Responder.BOT: cues.bot, Responder.AUTO: cues.closed, Responder.HUMAN: cues.human}
    by_words = cued(lambda kind: any(word in spotted for word in words[kind]))
    if by_words is not None:
        heard = [word for word in words[by_words] if word in spotted]
        return Judged(by_words, f"spoken: {', '.join(heard)}")
    if segment.role == "human":
        place = "after hold" if cues.first_human == "after_hold" else "at all"
        return Judged(Responder.HUMAN, f"the first speech {place}, no bot or closed cue")
    if answers_say and cues.answer_to_say == "bot":
        return Judged(Responder.BOT, "answers the probe's spoken move (answer_to_say: bot)")
    return Judged(Responder.IVR, "no cue, before any hold")
