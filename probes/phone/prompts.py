"""IVR prompt checks (``expect_to_hear``): keyword spotting on the prompt's audio, locally.

PocketSphinx's keyword search runs on the prompt as the stream delivered it (8 kHz μ-law,
decoded and band-limited up to the 16 kHz its bundled US English model was trained on); no
cloud service, no model download. Each expected word must be spotted (``kws_threshold``: lower
finds more and invents more). It is a coarse recogniser: BENCHMARKS.md ("Phone audio") has its
accuracy on the sandbox's synthetic prompts, and README its limits.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

#: Keyword-spotting threshold; chosen on the sandbox's prompts (bench/phone_audio.py).
KWS_THRESHOLD = 1e-20


@dataclass(frozen=True)
class PromptCheck:
    expected: list[str]
    heard: str  # the keywords the recogniser spotted, in order
    missing: list[str]

    @property
    def passed(self) -> bool:
        return not self.missing

    def as_json(self) -> dict[str, object]:
        return {
            "expected": self.expected,
            "heard": self.heard,
            "missing": self.missing,
            "passed": self.passed,
        }


class UnknownWord(ValueError):
    """A keyword the recogniser's dictionary does not hold (it cannot be spotted)."""


class PromptChecker:
    """Spots keywords in μ-law audio; one decoder per check (decoders are not thread-safe)."""

    def __init__(self, threshold: float = KWS_THRESHOLD) -> None:
        from pocketsphinx import Decoder  # imported here: its model loads with the decoder

        self._decoder_type = Decoder
        self._threshold = threshold

    def check(self, mulaw: bytes, expected: list[str]) -> PromptCheck:
        words = [word.lower() for word in expected]
        with tempfile.TemporaryDirectory() as folder:
            keywords = os.path.join(folder, "keywords.txt")
            with open(keywords, "w") as out:
                out.writelines(f"{word} /{self._threshold:g}/\n" for word in words)
            decoder = self._decoder_type(samprate=16000, loglevel="FATAL", kws=keywords)
            unknown = [
                word for word in words if any(decoder.lookup_word(w) is None for w in word.split())
            ]
            if unknown:
                raise UnknownWord(
                    f"expect_to_hear {unknown}: not in the recogniser's English dictionary "
                    "(use common English words, e.g. billing, support)"
                )
            decoder.start_utt()
            decoder.process_raw(_to_16k(mulaw).tobytes(), full_utt=True)
            decoder.end_utt()
            spotted = [segment.word.strip().lower() for segment in decoder.seg() or ()]
        missing = [
            original for original, word in zip(expected, words, strict=True) if word not in spotted
        ]
        return PromptCheck(expected, " ".join(spotted), missing)


def _to_16k(mulaw: bytes) -> np.ndarray[tuple[int], np.dtype[np.int16]]:
    """μ-law 8 kHz to 16-bit PCM at 16 kHz (band-limited: nothing above the phone's 4 kHz)."""
    code = ~np.frombuffer(mulaw, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << exponent) - 0x84
    pcm = np.where(code & 0x80, -magnitude, magnitude).astype(np.float64)
    if not len(pcm):
        return np.zeros(0, dtype=np.int16)
    spectrum = np.fft.rfft(pcm)
    padded = np.zeros(len(pcm) + 1, dtype=complex)
    padded[: len(spectrum)] = spectrum
    out = np.fft.irfft(padded, n=2 * len(pcm)) * 2
    return np.clip(out, -32768, 32767).astype(np.int16)


def load_prompt_checker() -> PromptChecker | None:
    """The checker, or None when pocketsphinx is not installed (prompt checks then fail)."""
    try:
        return PromptChecker()
    except ImportError:
        return None
