"""Listening to the far end: 20 ms frames labelled silence, ringback, tonal (hold music) or speech.

Each frame gets cheap features as it arrives (its level, webrtcvad's voice decision, how much of
its energy sits at ringback's 440/480 Hz, and how alike its spectrum is to the frame before:
a chord holds still for hundreds of milliseconds, a voice changes every few frames). The raw
labels are then smoothed into segments (short runs fold into their neighbours; words of one
utterance join across pauses shorter than `utterance_gap`) and the segments named: speech before
any hold is the IVR, the first speech after hold is the human (configurable through
`ListenCues`). Boundaries stay at frame resolution: they are where the raw labels change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import webrtcvad

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
# "unvoiced": audible but not a voice by itself (an aspirated onset, a fricative, a breath).
Label = Literal["silence", "ringback", "tonal", "noise", "unvoiced", "speech"]
Role = Literal["silence", "ringback", "ivr", "hold", "bot", "human", "noise"]
_FFT = 512
_FREQUENCIES = np.fft.rfftfreq(_FFT, 1 / SAMPLE_RATE)
_RINGBACK_BINS = (np.abs(_FREQUENCIES - 440) < 40) | (np.abs(_FREQUENCIES - 480) < 40)
# Music is compared with the frame 100 ms back: a held chord is still alike, a voice has moved.
_TONAL_LAG = 5
_STABILITY_WINDOW = 15
_WINDOW = np.hanning(FRAME_SAMPLES)
# Spectral flatness is measured over the telephone band (125 Hz to 3.1 kHz).
_BAND = (_FREQUENCIES >= 125) & (_FREQUENCIES <= 3100)


@dataclass(frozen=True)
class ListenCues:
    """How segments are told apart; the defaults suit an IVR, then hold music, then an agent."""

    silence_dbfs: float = -50.0  # frames quieter than this are silence
    vad_aggressiveness: int = 2
    tonal_similarity: float = 0.85  # spectral likeness to 100 ms earlier that means music
    # Median spectral flatness over 300 ms above which sound is noise, not a voice (voices
    # have formants: ~0.03; white noise ~0.57; a hiss-like consonant alone ~0.5).
    noise_flatness: float = 0.4
    # Frames this peaky (flatness below it) are pure tones: clean hold music, ringback. The
    # smoothed edges of hold (±150 ms) move to the last/first such frame within the window;
    # music never this clean keeps the smoothed edge.
    music_flatness: float = 0.0011
    min_tonal_seconds: float = 0.8  # a held vowel of synthetic speech can be steady for 0.5 s
    min_speech_seconds: float = 0.16
    utterance_gap: float = 0.6  # pauses inside one utterance are shorter than this
    # "after_hold": the first speech after hold music is a human; "first_speech": any speech.
    human: Literal["after_hold", "first_speech"] = "after_hold"


@dataclass(frozen=True)
class HeardSegment:
    role: Role
    start: float  # seconds since the stream's first media frame
    end: float

    def as_json(self) -> dict[str, object]:
        return {"role": self.role, "start": round(self.start, 3), "end": round(self.end, 3)}


@dataclass(frozen=True)
class CallMeasures:
    """The five figures from the audio, in seconds from the stream's first frame (None: absent)."""

    post_dial_delay: float | None
    time_to_ivr_greeting: float | None
    time_in_ivr: float | None
    time_on_hold: float | None
    time_to_human: float | None

    def as_json(self) -> dict[str, float | None]:
        return {
            name: None if value is None else round(value, 3)
            for name, value in self.__dict__.items()
        }


@dataclass(frozen=True)
class _Frame:
    loud: bool
    ringback: bool
    voiced: bool
    stability: float  # spectral likeness to the frame 100 ms earlier (0 when there is none)
    flatness: float  # geometric over arithmetic mean of the band's power (1: white noise)


@dataclass
class Listener:
    """Fed the far end's frames as they arrive; `segments` and `measures` read the call so far."""

    cues: ListenCues = field(default_factory=ListenCues)
    _frames: list[_Frame] = field(default_factory=list)
    _spectra: list[npt.NDArray[np.float64]] = field(default_factory=list)
    # Labels of frames whose whole stability window has arrived: they cannot change, so a
    # long call is labelled once, not again at every look.
    _settled: list[Label] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._vad = webrtcvad.Vad(self.cues.vad_aggressiveness)

    @property
    def seconds(self) -> float:
        return len(self._frames) * FRAME_SECONDS

    def feed(self, frame: npt.NDArray[np.int16]) -> None:
        """One 20 ms frame of 16-bit PCM at 8 kHz."""
        samples = frame.astype(np.float64)
        rms = float(np.sqrt(np.mean(samples**2))) + 1e-9
        spectrum = np.abs(np.fft.rfft(samples * _WINDOW, _FFT))
        self._spectra = [*self._spectra[-(_TONAL_LAG - 1) :], spectrum]
        earlier = self._spectra[0] if len(self._spectra) == _TONAL_LAG else None
        energy = spectrum**2
        band = energy[_BAND] + 1e-9
        self._frames.append(
            _Frame(
                loud=20 * np.log10(rms / 32768) >= self.cues.silence_dbfs,
                ringback=bool(energy[_RINGBACK_BINS].sum() > 0.6 * energy.sum()),
                voiced=self._vad.is_speech(frame.astype("<i2").tobytes(), SAMPLE_RATE),
                stability=0.0 if earlier is None else _similarity(spectrum, earlier),
                flatness=float(np.exp(np.mean(np.log(band))) / np.mean(band)),
            )
        )

    def labels(self) -> list[Label]:
        """Each frame's label; music is judged on the median stability of a 300 ms window."""
        half = _STABILITY_WINDOW // 2
        first = len(self._settled)
        since = max(0, first - half)
        stability = np.array([frame.stability for frame in self._frames[since:]])
        flatness = np.array([frame.flatness for frame in self._frames[since:]])
        labels: list[Label] = list(self._settled)
        for index in range(first, len(self._frames)):
            frame = self._frames[index]
            around = slice(max(0, index - half) - since, index + half + 1 - since)
            window = stability[around]
            if not frame.loud:
                labels.append("silence")
            elif frame.ringback:
                labels.append("ringback")
            elif (
                float(np.median(window)) > self.cues.tonal_similarity
                or float(np.median(flatness[around])) < self.cues.music_flatness
            ):
                labels.append("tonal")
            elif float(np.median(flatness[around])) > self.cues.noise_flatness:
                labels.append("noise")
            elif frame.voiced:
                labels.append("speech")
            else:
                labels.append("unvoiced")
        self._settled = labels[: max(0, len(self._frames) - half)]
        return labels

    def segments(self) -> list[HeardSegment]:
        runs = _fold_short(_runs(self.labels()), self._minimum_frames())
        runs = _join_utterances(runs, round(self.cues.utterance_gap / FRAME_SECONDS))
        pure = [frame.flatness < self.cues.music_flatness for frame in self._frames]
        return _name(_sharpen_tonal_edges(runs, pure), self.cues)

    def _minimum_frames(self) -> dict[Label, int]:
        return {
            "tonal": round(self.cues.min_tonal_seconds / FRAME_SECONDS),
            "speech": round(self.cues.min_speech_seconds / FRAME_SECONDS),
            "ringback": 5,
            "noise": 15,
            "unvoiced": len(self._frames) + 1,  # never on its own: it joins a neighbour
            "silence": 1,
        }

    def measures(self) -> CallMeasures:
        return measures_of(self.segments())


def measures_of(segments: list[HeardSegment]) -> CallMeasures:
    audible = [s for s in segments if s.role not in ("silence", "noise")]
    greeting = next((s for s in segments if s.role in ("ivr", "bot")), None)
    holds = [s for s in segments if s.role == "hold"]
    human = next((s for s in segments if s.role == "human"), None)
    ivr_end = holds[0].start if holds else (human.start if human else None)
    return CallMeasures(
        post_dial_delay=audible[0].start if audible else None,
        time_to_ivr_greeting=greeting.start if greeting else None,
        time_in_ivr=ivr_end - greeting.start if greeting and ivr_end is not None else None,
        time_on_hold=sum(s.end - s.start for s in holds) if holds else None,
        time_to_human=human.start if human else None,
    )


def _similarity(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


Run = tuple[Label, int, int]  # label, first frame, frame after the last


def _runs(labels: list[Label]) -> list[Run]:
    runs: list[Run] = []
    for index, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1], index + 1)
        else:
            runs.append((label, index, index + 1))
    return runs


def _merge_adjacent(runs: list[Run]) -> list[Run]:
    merged: list[Run] = []
    for label, start, end in runs:
        if merged and merged[-1][0] == label:
            merged[-1] = (label, merged[-1][1], end)
        else:
            merged.append((label, start, end))
    return merged


def _fold_short(runs: list[Run], minimum: dict[Label, int]) -> list[Run]:
    """Runs shorter than their label's minimum join the longer neighbour, shortest first;
    unvoiced sound beside speech joins the speech (the onset or tail of a word)."""
    runs = list(runs)
    while len(runs) > 1:
        short = [i for i, (label, start, end) in enumerate(runs) if end - start < minimum[label]]
        if not short:
            break
        index = min(short, key=lambda i: runs[i][2] - runs[i][1])
        _, start, end = runs[index]
        neighbours = [runs[i] for i in (index - 1, index + 1) if 0 <= i < len(runs)]
        if runs[index][0] == "unvoiced" and any(n[0] == "speech" for n in neighbours):
            runs[index] = ("speech", start, end)
        else:
            longest = max(neighbours, key=lambda run: run[2] - run[1])
            runs[index] = (longest[0], start, end)
        runs = _merge_adjacent(runs)
    return runs


def _join_utterances(runs: list[Run], gap_frames: int) -> list[Run]:
    """Silence shorter than the gap between two speech runs belongs to the utterance."""
    joined = list(runs)
    for index in range(1, len(joined) - 1):
        label, start, end = joined[index]
        if (
            label == "silence"
            and end - start < gap_frames
            and joined[index - 1][0] == "speech"
            and joined[index + 1][0] == "speech"
        ):
            joined[index] = ("speech", start, end)
    return _merge_adjacent(joined)


def _sharpen_tonal_edges(runs: list[Run], pure: list[bool]) -> list[Run]:
    """Moves each edge between tonal and another run to where the pure-tone frames end/begin,
    within half the smoothing window of it (the median over 300 ms blurs edges by ±150 ms)."""
    half = _STABILITY_WINDOW // 2
    sharpened = list(runs)
    for index in range(len(sharpened) - 1):
        (label, start, edge), (after, _, end) = sharpened[index], sharpened[index + 1]
        if (label == "tonal") == (after == "tonal"):
            continue
        low, high = max(start + 1, edge - half), min(end - 1, edge + half)
        window = range(low, high + 1)
        if label == "tonal":  # the music ends after its last pure frame
            last = [k for k in window if pure[k - 1]]
            moved = last[-1] if last else edge
        else:  # the music starts at its first pure frame
            first = [k for k in window if pure[k]]
            moved = first[0] if first else edge
        sharpened[index] = (label, start, moved)
        sharpened[index + 1] = (after, moved, end)
    return sharpened


def _name(runs: list[Run], cues: ListenCues) -> list[HeardSegment]:
    segments: list[HeardSegment] = []
    held = False
    human_found = False
    for label, start, end in runs:
        role: Role
        if label == "tonal":
            role, held = "hold", True
        elif label == "speech":
            is_human = not human_found and (held or cues.human == "first_speech")
            role = "human" if is_human or human_found else "ivr"
            human_found = human_found or is_human
        elif label == "unvoiced":  # alone (a whole call of it): audible, but no voice
            role = "noise"
        else:
            role = label
        segments.append(HeardSegment(role, start * FRAME_SECONDS, end * FRAME_SECONDS))
    return segments
