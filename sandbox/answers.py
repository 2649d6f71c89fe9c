"""Scripted answer quality: what a desk's human answers say, with ground truth.

``answers.kinds`` picks the answer's content (correct, incomplete, wrong, in another language)
by rate; ``answers.parts`` (optional) composes each human message from the manners a
mystery-shopping rubric scores, each included by its own rate::

    answers:
      kinds:
        correct: {rate: 0.5, text: "A replacement has been sent today."}
        incomplete: {rate: 0.5, text: "We will look into it."}
      parts:
        greeting: {rate: 0.8, text: "Hello"}            # opens the first line
        name: {rate: 0.5, text: "Alex"}                # the name the desk's CRM knows
        empathy: {rate: 0.5, text: "I am sorry about this."}   # before the text
        reference: {rate: 0.5, text: "Your case number is {case}."}  # after it
        sign_off: {rate: 0.6, text: "Kind regards"}    # the closing line

The desk records the kind (``answer``) and the parts it included (``rubric``: their names) on
each human ``reply_sent`` event. Shared by the mail desk and the messaging reply team, so both
compose alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator
from pydantic import model_validator as _model_validator

from sandbox.profile_model import StrictModel
from sandbox.templates import check_placeholders

#: What a desk's human answer says, for tests with ground truth of answer quality.
AnswerKind = Literal["correct", "incomplete", "wrong", "other_language"]
#: The rubric items a composed answer can satisfy, in the order the parts are drawn.
PART_NAMES = ("greeting", "name", "empathy", "reference", "sign_off")


class ScriptedAnswer(StrictModel):
    """One kind of human answer: how often the desk gives it, and its text."""

    rate: float = Field(ge=0.0, le=1.0)
    text: str = Field(min_length=1)


class AnswerPart(StrictModel):
    """A part of a composed answer, included with probability ``rate``."""

    rate: float = Field(ge=0.0, le=1.0)
    text: str = Field(min_length=1)

    @field_validator("text")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return check_placeholders(value, ("case",))


class AnswerParts(StrictModel):
    """The manners of a composed answer (see the module docstring)."""

    greeting: AnswerPart | None = None
    name: AnswerPart | None = None
    empathy: AnswerPart | None = None
    reference: AnswerPart | None = None
    sign_off: AnswerPart | None = None


@dataclass(frozen=True)
class Composed:
    """A human message as composed, and which rubric parts it includes (ground truth)."""

    text: str
    parts: tuple[str, ...]


class Answers(StrictModel):
    """Scripted answer quality: the desk picks one kind per human reply by its rate (the rates
    sum to 1) and records the kind in its ground truth (``answer`` on ``reply_sent``)."""

    kinds: dict[AnswerKind, ScriptedAnswer] = Field(min_length=1)
    #: None: the desk writes its answers as it always did (no rubric ground truth).
    parts: AnswerParts | None = None

    @_model_validator(mode="after")
    def _rates_sum_to_one(self) -> Answers:
        total = sum(answer.rate for answer in self.kinds.values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"answer rates must sum to 1, not {total:g}")
        return self

    def pick(self, rng: random.Random) -> tuple[AnswerKind, str]:
        kinds = list(self.kinds)
        weights = [self.kinds[kind].rate for kind in kinds]
        kind = rng.choices(kinds, weights=weights)[0]
        return kind, self.kinds[kind].text

    def compose(self, rng: random.Random, text: str) -> Composed | None:
        """``text`` (an answer or an agent's question) with the parts drawn for it; None
        without ``parts``. Every part is drawn whether or not it is configured, so one
        message's parts do not change the draws of the next."""
        if self.parts is None:
            return None
        draws = {name: rng.random() for name in PART_NAMES}
        case = str(rng.randrange(100_000, 1_000_000))
        chosen = {
            name: part.text.format(case=case)
            for name in PART_NAMES
            if (part := getattr(self.parts, name)) is not None and draws[name] < part.rate
        }
        opening = " ".join(chosen[name] for name in ("greeting", "name") if name in chosen)
        body = " ".join(
            [*([chosen["empathy"]] if "empathy" in chosen else []), text]
            + ([chosen["reference"]] if "reference" in chosen else [])
        )
        blocks = [
            *([f"{opening},"] if opening else []),
            body,
            *([f"{chosen['sign_off']},"] if "sign_off" in chosen else []),
        ]
        return Composed("\n\n".join(blocks), tuple(chosen))
