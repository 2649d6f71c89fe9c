"""The far end's real audio for the Media Streams line: speech, hold music, ringback, silence.

Speech is synthesised with Debian's `espeak-ng` (formant voices; a subprocess, no Python binding)
or, for a voice named ``flite:<voice>``, Debian's `flite` (voices built from recordings of real
speakers, CMU ARCTIC: nearer to a recorded IVR prompt), resampled to Twilio's 8 kHz and kept as
16-bit PCM; hold music is generated chords and ringback the North
American 440 + 480 Hz cadence. A `Voicebox` caches each synthesis, so a process (a test
session, a benchmark) synthesises a prompt once, never per frame or per call. `FarEndScript`
joins segments into one signal and keeps the ground truth of where each one starts and ends.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: the size of every Twilio media payload
Pcm = npt.NDArray[np.int16]
SegmentKind = Literal["silence", "ringback", "ivr", "hold", "bot", "human"]


#: The prefix of a voice synthesised by flite instead of espeak-ng (``flite:slt``).
FLITE_PREFIX = "flite:"
#: flite's voices built into Debian's package (``flite -lv``), each from one CMU ARCTIC speaker.
FLITE_VOICES = ("flite:slt", "flite:rms", "flite:awb", "flite:kal16")
#: flite's own speaking rate, in words a minute: a requested rate stretches durations from it.
_FLITE_RATE = 175


class Voicebox:
    """Speech synthesis at 8 kHz (espeak-ng, or flite for ``flite:`` voices), cached by (text,
    voice, rate, pitch). flite has no pitch setting for its recorded voices: pitch is ignored."""

    def __init__(self, executable: str = "espeak-ng", flite: str = "flite") -> None:
        self._executable = executable
        self._flite = flite
        self._cache: dict[tuple[str, str, int, int], Pcm] = {}

    def speak(self, text: str, *, voice: str = "en-us", rate: int = 160, pitch: int = 50) -> Pcm:
        key = (text, voice, rate, pitch)
        if key not in self._cache:
            self._cache[key] = self._synthesise(*key)
        return self._cache[key]

    def _synthesise(self, text: str, voice: str, rate: int, pitch: int) -> Pcm:
        if voice.startswith(FLITE_PREFIX):
            wav = self._flite_wav(text, voice.removeprefix(FLITE_PREFIX), rate)
        else:
            espeak = [self._executable, "-v", voice, "-s", str(rate), "-p", str(pitch)]
            wav = subprocess.run(
                [*espeak, "--stdout", text],
                check=True,
                capture_output=True,
            ).stdout
        with wave.open(io.BytesIO(wav)) as reader:
            source_rate = reader.getframerate()
            samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
        return _trim(resample(samples, source_rate, SAMPLE_RATE))

    def _flite_wav(self, text: str, voice: str, rate: int) -> bytes:
        # flite writes a seekable WAV file only (its header is rewritten at the end).
        with tempfile.NamedTemporaryFile(suffix=".wav") as out:
            stretch = f"duration_stretch={_FLITE_RATE / rate:.3f}"
            subprocess.run(
                [self._flite, "-voice", voice, "--setf", stretch, "-t", text, "-o", out.name],
                check=True,
                capture_output=True,
            )
            return out.read()


def resample(samples: Pcm, source_rate: int, target_rate: int) -> Pcm:
    """Band-limited resampling through the spectrum (no aliasing above the new Nyquist)."""
    if source_rate == target_rate:
        return samples
    count = round(len(samples) * target_rate / source_rate)
    spectrum = np.fft.rfft(samples.astype(np.float64))
    kept = spectrum[: count // 2 + 1]
    out = np.fft.irfft(kept, n=count) * (count / len(samples))
    return np.clip(out, -32768, 32767).astype(np.int16)


def _trim(samples: Pcm, threshold: int = 200) -> Pcm:
    """Drops espeak's leading and trailing silence so the ground truth starts at the voice."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if not len(loud):
        return samples
    return samples[loud[0] : loud[-1] + 1]


def silence(seconds: float) -> Pcm:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


def ringback(seconds: float) -> Pcm:
    """440 + 480 Hz, 2 s on and 4 s off, as a North American exchange plays it."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.2 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t))
    tone[(t % 6.0) >= 2.0] = 0.0
    return (tone * 32767 * 0.5).astype(np.int16)


def hold_music(seconds: float, *, seed: int = 0) -> Pcm:
    """A chord progression (major triads, 0.5 s each, soft attack): tonal, steady, not speech."""
    rng = np.random.default_rng(seed)
    roots = 220.0 * 2 ** (rng.integers(0, 12, size=max(1, int(seconds / 0.5) + 1)) / 12)
    chord_samples = SAMPLE_RATE // 2
    t = np.arange(chord_samples) / SAMPLE_RATE
    envelope = np.minimum(1.0, t / 0.03) * np.minimum(1.0, (t[::-1] + 1 / SAMPLE_RATE) / 0.03)
    chords = [
        envelope * sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1.0, 1.26, 1.5)) / 3
        for root in roots
    ]
    music = np.concatenate(chords)[: round(seconds * SAMPLE_RATE)]
    return (music * 32767 * 0.4).astype(np.int16)


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    start: float  # seconds from the first sample the stream sends
    end: float
    text: str | None = None


@dataclass
class FarEndScript:
    """What the far end sends, in order, with the ground truth of every segment."""

    parts: list[Pcm] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(len(part) for part in self.parts) / SAMPLE_RATE

    def add(self, kind: SegmentKind, samples: Pcm, text: str | None = None) -> FarEndScript:
        start = self.seconds
        self.parts.append(samples)
        self.segments.append(Segment(kind, start, start + len(samples) / SAMPLE_RATE, text))
        return self

    def pcm(self) -> Pcm:
        joined = np.concatenate(self.parts) if self.parts else silence(0)
        padding = (-len(joined)) % FRAME_SAMPLES
        return np.concatenate([joined, silence(padding / SAMPLE_RATE)])

    def first(self, kind: SegmentKind) -> Segment | None:
        return next((segment for segment in self.segments if segment.kind == kind), None)

    def ground_truth(self) -> list[dict[str, object]]:
        return [
            {"kind": s.kind, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
            for s in self.segments
        ]


def frames(samples: Pcm) -> Sequence[Pcm]:
    """The signal cut into 20 ms frames (the last one zero-padded)."""
    padding = (-len(samples)) % FRAME_SAMPLES
    padded = np.concatenate([samples, np.zeros(padding, dtype=np.int16)])
    return list(padded.reshape(-1, FRAME_SAMPLES))


# -- G.711 μ-law -------------------------------------------------------------------------

_BIAS = 0x84
_CLIP = 32635


def mulaw_encode(samples: Pcm) -> bytes:
    """16-bit PCM to G.711 μ-law bytes (what Twilio's audio/x-mulaw payloads carry)."""
    pcm = samples.astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(pcm), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return bytes(code.astype(np.uint8).tobytes())


def mulaw_decode(data: bytes) -> Pcm:
    """G.711 μ-law bytes to 16-bit PCM."""
    code = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)
