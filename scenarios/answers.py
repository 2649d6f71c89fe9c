"""Judging what the human answers of a run say: the scenario's answer expectations and its
language.

Called once a run is concluded (``scenarios.verdicts.Judge.answers`` collects the texts), in a
worker thread: language detection is CPU-heavy. Pure otherwise, and bounded whatever a reply
holds: each answer is cut to :data:`MAX_RAW_CHARS` before HTML is stripped and the run's answers
to :data:`MAX_EVALUATED_CHARS` of text together; every pattern runs on RE2, whose time is linear
in the text. This is pattern matching, not understanding: a fact "mentioned" in a negation
("we do not offer a refund") still counts as mentioned; scenario authors write expectations
that tell right from wrong by what is said (``must_not_mention`` for the wrong figure).

Verdicts: ``none`` without a human answer; ``wrong`` when any ``must_not_mention`` fact is
found; ``correct`` when every ``must_mention`` fact is; ``incomplete`` otherwise. ``resolved``
(a first-contact-resolution proxy): an answer that came before any follow-up of the probe
matches ``resolution`` (without one: the answer is correct and came before any follow-up).
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scenarios.language import ReplyLanguages, primary_language
from scenarios.model import (
    AnswerFacts,
    AnswerVerdict,
    Fact,
    LanguageVerdict,
    Scenario,
    compile_fact_pattern,
)

#: The kind of the run's JSON evidence document holding the verdicts and matched spans.
EVIDENCE_KIND = "answer-quality"
#: The most of one answer read at all (a 10 MB reply is cut here before anything else).
MAX_RAW_CHARS = 1024 * 1024
#: The most text of a run's answers the expectations are evaluated on, together.
MAX_EVALUATED_CHARS = 64 * 1024
#: How much of a matched span the evidence quotes.
SPAN_QUOTE_CHARS = 200

#: Unicode spaces (no-break, thin, ...) as plain spaces: RE2's ``\s`` is ASCII-only, and
#: "14&nbsp;days" must match ``14\s+days``.
_UNICODE_SPACES = str.maketrans(
    {chr(code): " " for code in range(0x80, 0x3001) if chr(code).isspace()}
)
_SCRIPTS_AND_STYLES = r"(?s)<(script|style)\b.*?</(script|style)\s*>"
_TAGS = r"<[^>]*>"
_BLOCK_TAGS = r"(?i)<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>"


@dataclass(frozen=True)
class HumanAnswer:
    """One human reply's text, and whether the probe had sent a follow-up before it came."""

    arrived_at: datetime
    text: str
    after_follow_up: bool = False


@dataclass(frozen=True)
class Span:
    """Where a fact was found: answer index, offsets in its evaluated text, the text there."""

    fact: str
    answer: int
    start: int
    end: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "fact": self.fact,
            "answer": self.answer,
            "start": self.start,
            "end": self.end,
            "text": self.text,
        }


@dataclass(frozen=True)
class AnswerQuality:
    """The answer and language verdicts of one run, with the spans they rest on."""

    answer: AnswerVerdict | None  # None: the scenario has no expectations
    resolved: bool | None
    language: LanguageVerdict | None  # None: the scenario names no language
    reply_language: str | None = None  # ISO 639-1 code lingua named, None when unknown
    mentioned: tuple[Span, ...] = ()
    missing: tuple[str, ...] = ()
    wrong: tuple[Span, ...] = ()
    resolution: tuple[Span, ...] = ()
    answers: int = 0
    evaluated_chars: int = 0
    truncated: bool = False
    expected_language: str | None = None

    def evidence(self) -> dict[str, Any]:
        """The JSON evidence document (``answer-quality``)."""
        return {
            "answer": None if self.answer is None else str(self.answer),
            "resolved": self.resolved,
            "language": None if self.language is None else str(self.language),
            "expected_language": self.expected_language,
            "reply_language": self.reply_language,
            "answers": self.answers,
            "evaluated_chars": self.evaluated_chars,
            "truncated": self.truncated,
            "mentioned": [span.as_dict() for span in self.mentioned],
            "missing": list(self.missing),
            "wrong": [span.as_dict() for span in self.wrong],
            "resolution": [span.as_dict() for span in self.resolution],
            "method": "keyword and RE2 pattern matching on the human answers' text (quoted "
            "lines dropped, HTML stripped); language by lingua-language-detector",
        }


def plain_text(raw: str) -> str:
    """The readable text of an answer: HTML stripped, quoted lines (``> ...``) and the
    "On ... wrote:" line before them dropped, cut to :data:`MAX_RAW_CHARS` first."""
    text = raw[:MAX_RAW_CHARS]
    if "<" in text and ">" in text:
        text = compile_fact_pattern(_SCRIPTS_AND_STYLES).sub(" ", text)
        text = compile_fact_pattern(_BLOCK_TAGS).sub("\n", text)
        text = html.unescape(compile_fact_pattern(_TAGS).sub(" ", text))
    lines = text.translate(_UNICODE_SPACES).splitlines()
    kept = [
        line
        for index, line in enumerate(lines)
        if not line.lstrip().startswith(">") and not _introduces_quote(lines, index)
    ]
    return "\n".join(kept).strip()


def _introduces_quote(lines: list[str], index: int) -> bool:
    following = lines[index + 1] if index + 1 < len(lines) else ""
    return lines[index].rstrip().endswith("wrote:") and following.lstrip().startswith(">")


def keyword_pattern(keyword: str) -> str:
    """A keyword as an RE2 pattern that matches it at the start of a word, ignoring case:
    "refund" finds "Refunds" but "avoir" does not find "savoir". (RE2's ``\\b`` knows only
    ASCII letters, hence the explicit Unicode class.)"""
    return r"(?:^|[^\pL\pN])(" + re.escape(keyword) + ")"


def find_fact(fact: Fact, text: str, answer: int) -> list[Span] | None:
    """The spans that show ``fact`` in ``text``, or None when it is not there."""
    spans: list[Span] = []
    for keyword in fact.all:
        found = _search(keyword_pattern(keyword), fact.name, text, answer)
        if found is None:
            return None
        spans.append(found)
    if fact.any:
        found_any = [_search(keyword_pattern(k), fact.name, text, answer) for k in fact.any]
        hits = [span for span in found_any if span is not None]
        if not hits:
            return None
        spans.append(min(hits, key=lambda span: span.start))
    if fact.regex is not None:
        found = _search(fact.regex, fact.name, text, answer, group=0)
        if found is None:
            return None
        spans.append(found)
    return spans


def _search(pattern: str, name: str, text: str, answer: int, group: int = 1) -> Span | None:
    """The first match of ``pattern`` (its ``group``: 1 for a keyword, 0 for a whole regex)."""
    match = compile_fact_pattern(pattern).search(text)
    if match is None:
        return None
    start, end = match.start(group), match.end(group)
    return Span(name, answer, start, end, text[start:end][:SPAN_QUOTE_CHARS])


@dataclass(frozen=True)
class EvaluatedTexts:
    texts: list[str]
    truncated: bool

    @property
    def chars(self) -> int:
        return sum(len(text) for text in self.texts)


def evaluated_texts(answers: Sequence[HumanAnswer]) -> EvaluatedTexts:
    """The answers' plain texts as the expectations (and the rubric) read them, within
    :data:`MAX_EVALUATED_CHARS` together."""
    budget = MAX_EVALUATED_CHARS
    texts: list[str] = []
    truncated = False
    for answer in answers:
        # The judge keeps at most MAX_RAW_CHARS of a reply: one that long was cut.
        truncated = truncated or len(answer.text) >= MAX_RAW_CHARS
        text = plain_text(answer.text)
        truncated = truncated or len(text) > budget
        texts.append(text[:budget])
        budget = max(0, budget - len(texts[-1]))
    return EvaluatedTexts(texts, truncated)


def _first_found(fact: Fact, texts: Sequence[str]) -> list[Span] | None:
    for index, text in enumerate(texts):
        spans = find_fact(fact, text, index)
        if spans is not None:
            return spans
    return None


def _answer_verdict(
    facts: AnswerFacts, texts: Sequence[str]
) -> tuple[AnswerVerdict, list[Span], list[str], list[Span]]:
    mentioned: list[Span] = []
    missing: list[str] = []
    wrong: list[Span] = []
    for fact in facts.must_mention:
        spans = _first_found(fact, texts)
        if spans is None:
            missing.append(fact.name)
        else:
            mentioned.extend(spans)
    for fact in facts.must_not_mention:
        wrong.extend(_first_found(fact, texts) or [])
    if not texts:
        verdict = AnswerVerdict.NONE
    elif wrong:
        verdict = AnswerVerdict.WRONG
    elif missing:
        verdict = AnswerVerdict.INCOMPLETE
    else:
        verdict = AnswerVerdict.CORRECT
    return verdict, mentioned, missing, wrong


def _resolution(
    facts: AnswerFacts,
    answers: Sequence[HumanAnswer],
    texts: Sequence[str],
    verdict: AnswerVerdict,
) -> tuple[bool, list[Span]]:
    """Resolved at first contact: by an answer that came before any follow-up of the probe."""
    first_contact = [i for i, answer in enumerate(answers) if not answer.after_follow_up]
    if facts.resolution is None:
        return verdict is AnswerVerdict.CORRECT and bool(first_contact), []
    for index in first_contact:
        spans = find_fact(facts.resolution, texts[index], index)
        if spans is not None:
            return True, spans
    return False, []


def _language_verdict(
    expected: str | None, texts: Sequence[str], languages: ReplyLanguages | None
) -> tuple[LanguageVerdict | None, str | None]:
    if expected is None:
        return None, None
    if languages is None or not texts:
        return LanguageVerdict.UNKNOWN, None
    detected = languages.detect("\n\n".join(texts))
    if detected is None:
        return LanguageVerdict.UNKNOWN, None
    matches = detected == primary_language(expected)
    return (LanguageVerdict.MATCH if matches else LanguageVerdict.MISMATCH), detected


def assess_answers(
    scenario: Scenario,
    answers: Sequence[HumanAnswer],
    languages: ReplyLanguages | None,
) -> AnswerQuality | None:
    """The run's answer and language verdicts; None when the scenario asks for neither."""
    if scenario.expect is None and scenario.language is None:
        return None
    evaluated = evaluated_texts(answers)
    texts = evaluated.texts
    language, detected = _language_verdict(scenario.language, texts, languages)
    language_only = AnswerQuality(
        answer=None,
        resolved=None,
        language=language,
        reply_language=detected,
        answers=len(answers),
        evaluated_chars=evaluated.chars,
        truncated=evaluated.truncated,
        expected_language=scenario.language,
    )
    if scenario.expect is None:
        return language_only
    facts = scenario.expect.for_language(scenario.language)
    verdict, mentioned, missing, wrong = _answer_verdict(facts, texts)
    resolved, resolution = _resolution(facts, answers, texts, verdict)
    return dataclasses.replace(
        language_only,
        answer=verdict,
        resolved=resolved,
        mentioned=tuple(mentioned),
        missing=tuple(missing),
        wrong=tuple(wrong),
        resolution=tuple(resolution),
    )
