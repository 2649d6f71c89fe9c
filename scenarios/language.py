"""Languages: a scenario's BCP 47 tag, and which language a reply is written in.

Tags are checked with ``langcodes`` (RFC 5646 syntax and the IANA subtag registry it ships), so
``english`` or ``en-XX1`` fail ``cxprobe validate``. Replies are identified with lingua
(``lingua-language-detector``), which ships its n-gram models inside the wheel: nothing is
downloaded at run time. Its models are large, so one :class:`ReplyLanguages` is built per
process (by the runner); it loads only the languages the configuration needs plus
:data:`COMMON_REPLY_LANGUAGES`, the ones a wrong-language reply is most likely in (a detector
that knows only the scenario's language would call every reply a match), on first use.

It runs in lingua's low-accuracy mode (trigram models only). Measured here for the seven
common languages: high accuracy takes 2.2 s to load and adds 227 MiB of RSS; low accuracy
0.18 s and 18 MiB, and detects a ~3.5 KB reply in ~2 ms. Low accuracy loses precision on
texts of a few words only, and support answers are sentences; below :data:`MIN_LETTERS`
letters the verdict is ``unknown`` anyway.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Annotated

import langcodes
from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder
from pydantic import AfterValidator

#: Languages always loaded besides the scenarios' own (ISO 639-1).
COMMON_REPLY_LANGUAGES = frozenset({"en", "de", "fr", "es", "it", "nl", "pt"})
#: A verdict needs this much letters to go on; shorter text is ``unknown``.
MIN_LETTERS = 20
#: How much of a reply lingua reads: language shows in the first paragraphs, and lingua's time
#: grows with the text.
DETECTED_CHARS = 4096
#: Below this confidence (0..1) of the best language the reply's language is ``unknown``.
MIN_CONFIDENCE = 0.5


_SUBTAGS = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")


def check_language_tag(tag: str) -> str:
    """``tag`` if it is a valid BCP 47 language tag, else a ValueError saying what to write."""
    # langcodes also reads "en_GB" and other spellings; BCP 47 itself is letters and digits
    # in hyphen-separated subtags.
    if not _SUBTAGS.fullmatch(tag) or not langcodes.tag_is_valid(tag):
        raise ValueError(
            f"{tag!r} is not a BCP 47 language tag; write e.g. en, en-GB, de-CH, fr, es-419"
        )
    return tag


#: A BCP 47 language tag (``de``, ``en-GB``), validated.
LanguageTag = Annotated[str, AfterValidator(check_language_tag)]


def primary_language(tag: str) -> str:
    """The language subtag of ``tag`` (``de`` for ``de-CH``), lower case."""
    return str(langcodes.Language.get(tag).language or "").lower()


def _lingua_language(code: str) -> Language | None:
    try:
        return Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
    except ValueError:
        return None  # a language lingua has no model for: its replies are ``unknown``


class ReplyLanguages:
    """Names the language of reply texts; the detector is built once, on first use.

    Thread-safe: the runner calls :meth:`detect` in a worker thread (it is CPU-heavy).
    """

    def __init__(self, wanted: Iterable[str] = ()) -> None:
        codes = {primary_language(tag) for tag in wanted} | COMMON_REPLY_LANGUAGES
        self.languages = frozenset(
            language for code in codes if (language := _lingua_language(code)) is not None
        )
        self._detector: LanguageDetector | None = None
        self._building = threading.Lock()

    def _built(self) -> LanguageDetector:
        with self._building:
            if self._detector is None:
                self._detector = (
                    LanguageDetectorBuilder.from_languages(*self.languages)
                    .with_preloaded_language_models()
                    .with_low_accuracy_mode()
                    .build()
                )
            return self._detector

    def detect(self, text: str) -> str | None:
        """The ISO 639-1 code of ``text``'s language, or None when it cannot be told."""
        sample = text[:DETECTED_CHARS]
        if sum(char.isalpha() for char in sample) < MIN_LETTERS:
            return None
        confidences = self._built().compute_language_confidence_values(sample)
        if not confidences or confidences[0].value < MIN_CONFIDENCE:
            return None
        return str(confidences[0].language.iso_code_639_1.name).lower()
