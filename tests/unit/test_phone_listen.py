"""The listener's segments and measures on real synthesised audio, against the ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from probes.phone.listen import FRAME_SECONDS, ListenCues, Listener
from sandbox.twilio.audio import (
    FarEndScript,
    Voicebox,
    frames,
    hold_music,
    mulaw_decode,
    mulaw_encode,
    ringback,
    silence,
)

TOLERANCE = 0.1  # the goal: within 100 ms of the ground truth


@pytest.fixture(scope="session")
def voicebox() -> Voicebox:
    """One synthesis per prompt for the whole session."""
    return Voicebox()


def _listen(script: FarEndScript, cues: ListenCues | None = None) -> Listener:
    listener = Listener(cues or ListenCues())
    # Through μ-law and back, as the audio arrives from Twilio.
    for frame in frames(mulaw_decode(mulaw_encode(script.pcm()))):
        listener.feed(frame)
    return listener


def _ivr_hold_human(voicebox: Voicebox) -> FarEndScript:
    return (
        FarEndScript()
        .add("ringback", ringback(1.5))
        .add("silence", silence(0.5))
        .add("ivr", voicebox.speak("For billing, press one."), "For billing, press one.")
        .add("silence", silence(0.4))
        .add("hold", hold_music(2.0, seed=3))
        .add("silence", silence(0.3))
        .add("human", voicebox.speak("Hello, this is Sam.", voice="en-gb"))
    )


def test_measures_are_within_100_ms_of_the_ground_truth(voicebox: Voicebox) -> None:
    script = _ivr_hold_human(voicebox)
    measures = _listen(script).measures()
    truth = {kind: script.first(kind) for kind in ("ringback", "ivr", "hold", "human")}
    assert all(segment is not None for segment in truth.values())
    ivr, hold, human = truth["ivr"], truth["hold"], truth["human"]
    assert ivr is not None and hold is not None and human is not None
    assert measures.post_dial_delay == pytest.approx(0.0, abs=TOLERANCE)
    assert measures.time_to_ivr_greeting == pytest.approx(ivr.start, abs=TOLERANCE)
    assert measures.time_in_ivr == pytest.approx(hold.start - ivr.start, abs=TOLERANCE)
    assert measures.time_on_hold == pytest.approx(hold.end - hold.start, abs=TOLERANCE)
    assert measures.time_to_human == pytest.approx(human.start, abs=TOLERANCE)


def test_segments_name_ringback_ivr_hold_and_human_in_order(voicebox: Voicebox) -> None:
    roles = [s.role for s in _listen(_ivr_hold_human(voicebox)).segments() if s.role != "silence"]
    assert roles == ["ringback", "ivr", "hold", "human"]


def test_without_hold_the_first_speech_is_a_human_only_when_the_cue_says_so(
    voicebox: Voicebox,
) -> None:
    script = FarEndScript().add("silence", silence(0.6)).add("human", voicebox.speak("Hello."))
    assert _listen(script).measures().time_to_human is None
    measures = _listen(script, ListenCues(human="first_speech")).measures()
    assert measures.time_to_human == pytest.approx(0.6, abs=TOLERANCE)


def test_silence_only_has_no_measures() -> None:
    listener = _listen(FarEndScript().add("silence", silence(1.0)))
    assert listener.seconds == pytest.approx(1.0, abs=FRAME_SECONDS)
    assert listener.measures().post_dial_delay is None
    assert [s.role for s in listener.segments()] == ["silence"]


def test_mulaw_round_trip_keeps_the_signal() -> None:
    signal = (np.sin(np.arange(800) / 8000 * 2 * np.pi * 300) * 10000).astype(np.int16)
    error = np.abs(mulaw_decode(mulaw_encode(signal)).astype(int) - signal)
    assert int(error.max()) < 400  # μ-law's step at this level
