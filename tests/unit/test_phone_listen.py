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


@pytest.mark.parametrize("level", [300, 3000])
def test_noise_is_neither_speech_nor_music(level: int) -> None:
    """webrtcvad alone calls white noise speech; its flat spectrum says it is noise."""
    rng = np.random.default_rng(level)
    noise = np.clip(rng.normal(0, level, 8000 * 3), -32768, 32767).astype(np.int16)
    listener = _listen(FarEndScript().add("silence", noise))
    assert {s.role for s in listener.segments()} == {"noise"}
    assert listener.measures().post_dial_delay is None  # noise is not a sound of the line


def test_a_held_vowel_is_not_hold_music_and_a_person_after_music_starts_on_time(
    voicebox: Voicebox,
) -> None:
    """A long prompt (its held vowels are steady for up to ~0.5 s) stays the IVR; music cut
    straight into the agent's voice, with no pause, ends at the right frame (the smoothed
    edge alone is 120 ms late here)."""
    prompt = voicebox.speak(
        "Thanks for calling. For orders press one. For billing press two. For anything else hold.",
        voice="en-gb-scotland",
        rate=146,
        pitch=63,
    )
    script = (
        FarEndScript()
        .add("ivr", prompt)
        .add("silence", silence(0.3))
        .add("hold", hold_music(2.5, seed=41))
        .add("human", voicebox.speak("Hi, you're through to Sam.", voice="en-gb"))
    )
    segments = [s for s in _listen(script).segments() if s.role != "silence"]
    roles = [s.role for s in segments]
    # The prompt's two sentences may be two utterances; none of it is music.
    assert [role for i, role in enumerate(roles) if roles[i - 1 : i] != [role]] == [
        "ivr",
        "hold",
        "human",
    ]
    human = script.first("human")
    assert human is not None
    assert segments[-1].start == pytest.approx(human.start, abs=TOLERANCE)
