"""Scoring a run's human answers against the scenario's mystery-shopping rubric (0-100).

Called once a run is concluded, after the answer verdicts (``scenarios.answers``): the
``expectations`` item reads the answer verdict and the ``sla`` item the run's outcome. The text
items read the human answers of the whole run (every turn), as the answer expectations do:
each cut to :data:`scenarios.answers.MAX_RAW_CHARS`, HTML stripped and quoted lines dropped, and
:data:`scenarios.answers.MAX_EVALUATED_CHARS` of them together; every pattern runs on RE2, in
time linear in the text. An item is met when its matcher is found in any of the answers; its
span (answer index, offsets, text) is kept as evidence.

This is pattern matching, not understanding: "Hi" followed by a rude answer is a greeting, an
apology in a quoted template is empathy, and a name in the signature line counts as using it.

Applicability: ``empathy`` only when the scenario is a complaint (``complaint: true``);
``expectations`` only when the scenario has ``expect``; ``name`` only when a customer name is
known. An item that does not apply is left out and the others are rescaled so the applicable
weights make 100. No human answer (or no applicable item): no score (None) — a run nobody
answered is measured by the response metrics, not by its manners.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scenarios.answers import HumanAnswer, Span, evaluated_texts, find_fact
from scenarios.model import (
    RUBRIC_TOTAL,
    AnswerVerdict,
    Fact,
    Outcome,
    RubricItem,
    RubricItemResult,
    RubricKind,
    Scenario,
)

#: The kind of the run's JSON evidence document holding each item's result and span.
EVIDENCE_KIND = "rubric"
#: Score and points are kept to this many decimals (what the store, metrics and report show).
SCORE_DECIMALS = 2

_GREETINGS = (
    r"hello|hi|hey|dear|good (morning|afternoon|evening)|greetings|hallo|guten (morgen|tag|abend)"
    r"|liebe[rs]?|sehr geehrte[rs]?|bonjour|bonsoir|cher|chère|hola|buen[oa]s (días|dias|tardes"
    r"|noches)|estimad[oa]"
)
_SIGN_OFFS = (
    r"kind regards|best regards|warm regards|regards|best wishes|best|many thanks|thanks again"
    r"|yours sincerely|yours faithfully|sincerely|all the best|cheers|take care"
    r"|mit freundlichen grüßen|freundliche grüße|viele grüße|beste grüße|cordialement"
    r"|bien à vous|bien cordialement|salutations|atentamente|saludos|un saludo"
)

_APOLOGIES = (
    "sorry", "apologise", "apologize", "apologies", "regret", "inconvenience",
    "understand your frustration", "frustrating", "entschuldig", "bedauer", "désolé",
    "excuses", "lo siento", "lamentamos", "disculp",
)  # fmt: skip

#: Each text kind's matcher when the item gives none. Greetings and sign-offs are looked for at
#: the start of a line (a greeting opens a line; "best" mid-sentence is no sign-off).
DEFAULT_MATCHERS: Mapping[RubricKind, Fact] = {
    RubricKind.GREETING: Fact(name="greeting", regex=rf"(?m)^[ \t]*({_GREETINGS})\b"),
    RubricKind.SIGN_OFF: Fact(name="sign_off", regex=rf"(?m)^[ \t]*({_SIGN_OFFS})\b"),
    RubricKind.EMPATHY: Fact(name="empathy", any=list(_APOLOGIES)),
    RubricKind.REFERENCE: Fact(
        name="reference",
        regex=r"\b(case|ticket|reference|ref|incident|fall|dossier|caso)\b[^.\n]{0,24}?"
        r"\b[A-Z]{0,5}-?[0-9][A-Z0-9-]{3,}\b",
    ),
}


@dataclass(frozen=True)
class RubricScore:
    """A run's rubric score and each item's result."""

    score: float | None
    items: tuple[RubricItemResult, ...]
    answers: int
    evaluated_chars: int
    truncated: bool

    def evidence(self) -> dict[str, Any]:
        """The JSON evidence document (``rubric``)."""
        return {
            "score": self.score,
            "items": [item.as_dict() for item in self.items],
            "answers": self.answers,
            "evaluated_chars": self.evaluated_chars,
            "truncated": self.truncated,
            "method": "keyword and RE2 pattern matching on the human answers' text (quoted "
            "lines dropped, HTML stripped), the answer verdict and the run's outcome; items "
            "that do not apply are left out and the others rescaled to 100",
        }


def name_keywords(customer_name: str) -> list[str]:
    """The words of the customer's name a ``name`` item looks for (first or last name)."""
    return [word for word in re.split(r"[\s,]+", customer_name) if len(word) >= 2]


def item_fact(item: RubricItem, values: Mapping[str, str]) -> Fact | None:
    """What a text item looks for: its own matcher (keywords with placeholders filled in from
    ``values``) or its kind's default; None: nothing to look for (e.g. no customer name)."""
    if item.all or item.any or item.regex:
        return Fact(
            name=item.id,
            all=[keyword.format_map(values) for keyword in item.all],
            any=[keyword.format_map(values) for keyword in item.any],
            regex=item.regex,
        )
    if item.kind is RubricKind.NAME:
        keywords = name_keywords(values.get("customer_name", ""))
        return Fact(name=item.id, any=keywords) if keywords else None
    default = DEFAULT_MATCHERS.get(item.kind)
    return None if default is None else default.model_copy(update={"name": item.id})


def _found(fact: Fact, texts: Sequence[str]) -> Span | None:
    for index, text in enumerate(texts):
        spans = find_fact(fact, text, index)
        if spans is not None:
            return min(spans, key=lambda span: (span.answer, span.start))
    return None


def _judge_item(
    item: RubricItem,
    scenario: Scenario,
    texts: Sequence[str],
    verdict: AnswerVerdict | None,
    outcome: Outcome | None,
    values: Mapping[str, str],
) -> tuple[bool | None, Span | None]:
    """Whether ``item`` is met (None: it does not apply to this run), and its span."""
    if item.kind is RubricKind.EXPECTATIONS:
        if scenario.expect is None or verdict is None:
            return None, None
        return verdict is AnswerVerdict.CORRECT, None
    if item.kind is RubricKind.SLA:
        return outcome is Outcome.MET, None
    if item.kind is RubricKind.EMPATHY and not scenario.complaint:
        return None, None
    fact = item_fact(item, values)
    if fact is None:
        return None, None
    span = _found(fact, texts)
    return span is not None, span


def score_rubric(
    scenario: Scenario,
    answers: Sequence[HumanAnswer],
    *,
    verdict: AnswerVerdict | None,
    outcome: Outcome | None,
    values: Mapping[str, str],
) -> RubricScore | None:
    """The run's rubric score; None when the scenario has no rubric. ``values``: the
    placeholders (``customer_name``, the persona's keys) the items' keywords may use."""
    rubric = scenario.rubric
    if rubric is None:
        return None
    evaluated = evaluated_texts(answers)
    texts = evaluated.texts
    judged = [
        (item, *_judge_item(item, scenario, texts, verdict, outcome, values))
        for item in rubric.items
    ]
    applicable = sum(item.weight for item, met, _ in judged if met is not None)
    scored = bool(texts) and applicable > 0
    scale = RUBRIC_TOTAL / applicable if scored else 0.0
    results = tuple(
        RubricItemResult(
            item=item.id,
            kind=item.kind,
            weight=item.weight,
            met=met if texts else None,
            points=round(item.weight * scale, SCORE_DECIMALS) if scored and met else 0.0,
            span=None if span is None else _span(span),
        )
        for item, met, span in judged
    )
    earned = sum(item.weight for item, met, _ in judged if met)
    score = round(earned * RUBRIC_TOTAL / applicable, SCORE_DECIMALS) if scored else None
    return RubricScore(
        score=score,
        items=results,
        answers=len(answers),
        evaluated_chars=evaluated.chars,
        truncated=evaluated.truncated,
    )


def _span(span: Span) -> dict[str, Any]:
    return {"answer": span.answer, "start": span.start, "end": span.end, "text": span.text}
